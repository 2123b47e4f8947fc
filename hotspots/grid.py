"""The study area and the one seamless grid laid over it (square or hexagonal cells).

Input: incidents (``x``, ``y`` in EPSG:27700) and, optionally, a boundary
layer naming the study area. Output: a ``Grid`` (origin, cell size, shape and
the mask of cells that intersect the study area) and, per incident, its cell.
Cells are assigned arithmetically (floor division), never by spatial join,
which drops points lying exactly on cell edges and is 40x slower.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hotspots.errors import UserError

NICE_SIZES = (25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 2500, 5000)
MIN_CELL_M = 50.0      # police.uk snap points are displaced by up to ~200 m: finer cells are noise
MAX_CELLS = 1_000_000  # the most cells a default (chosen) cell size gives
# Resource limits, enforced wherever a lattice is allocated: a configured cell size may give at most
# MAX_GRID_CELLS cells over the study area's extent (0.01 m cells over the City would be 121 GiB), and
# a Gi* neighbourhood may reach MAX_NEIGHBOUR_CELLS cells and MAX_NEIGHBOUR_PAIRS pairs in all.
MAX_GRID_CELLS = 4_000_000
MAX_NEIGHBOUR_CELLS = 20
MAX_NEIGHBOUR_PAIRS = 100_000_000


def check_cells(nx: int, ny: int, cell: float, what: str = "grid") -> None:
    """A UserError when a ``nx`` x ``ny`` lattice of ``cell``-metre cells is over ``MAX_GRID_CELLS``."""
    n = int(nx) * int(ny)
    if n > MAX_GRID_CELLS:
        side = cell * (n / MAX_GRID_CELLS) ** 0.5
        raise UserError(f"a {cell:g} m {what} over this study area ({nx * cell / 1000:,.1f} km x "
                        f"{ny * cell / 1000:,.1f} km) would have {n:,} cells, more than the limit of "
                        f"{MAX_GRID_CELLS:,} cells.",
                        hint=f"Set [analysis] cell_size_m to at least {side:,.0f} m, or leave it out to have it "
                             "chosen from the study area.")


def check_neighbour_distance(distance: float, cell: float, n_cells: int) -> None:
    """A UserError when a Gi* neighbourhood of ``distance`` metres is beyond the stated limits."""
    distance = float(distance)
    if not (distance > 0 and np.isfinite(distance)):
        raise UserError(f"[analysis] neighbour_distance_m = {distance:g} should be a positive number of metres.")
    if distance > MAX_NEIGHBOUR_CELLS * cell:
        raise UserError(f"[analysis] neighbour_distance_m = {distance:g} is more than {MAX_NEIGHBOUR_CELLS} cells "
                        f"({MAX_NEIGHBOUR_CELLS * cell:g} m with {cell:g} m cells): the limit of a Gi* "
                        "neighbourhood.")
    pairs = n_cells * np.pi * (distance / cell) ** 2
    if pairs > MAX_NEIGHBOUR_PAIRS:
        raise UserError(f"[analysis] neighbour_distance_m = {distance:g} over {n_cells:,} cells of {cell:g} m "
                        f"would make about {pairs:,.0f} neighbour pairs, more than the limit of "
                        f"{MAX_NEIGHBOUR_PAIRS:,}.", hint="Use a shorter distance or larger cells.")


@dataclass
class Raster:
    """A regular square lattice on which surfaces (KDE) are computed and drawn."""
    x0: float
    y0: float
    cell: float
    nx: int
    ny: int

    def sample(self, surface: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Values of ``surface`` (ny, nx) at points (nearest lattice cell; NaN off the lattice)."""
        col = np.floor((np.asarray(x) - self.x0) / self.cell).astype(np.int64)
        row = np.floor((np.asarray(y) - self.y0) / self.cell).astype(np.int64)
        ok = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny)
        out = np.full(len(col), np.nan)
        out[ok] = surface[row[ok], col[ok]]
        return out


@dataclass
class Grid:
    """A square grid aligned to multiples of ``cell`` metres.

    Cell (row j, column i) spans x0 + i*cell .. x0 + (i+1)*cell and likewise in y.
    ``mask`` (ny, nx) is True for cells that intersect the study area: those are
    the analysed cells, numbered 0..n-1 in row-major order (``cell_number``).
    """
    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    mask: np.ndarray
    inside: np.ndarray  # (ny, nx) True for cells wholly within the study area

    @property
    def n(self) -> int:
        return int(self.mask.sum())

    @property
    def rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each analysed cell, in cell-number order."""
        return np.nonzero(self.mask)

    @property
    def cell_number(self) -> np.ndarray:
        """(ny, nx) array: the analysed cell's number, -1 elsewhere."""
        num = np.full(self.mask.shape, -1, dtype=np.int64)
        num[self.mask] = np.arange(self.n)
        return num

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each point (may fall outside the grid)."""
        col = np.floor((np.asarray(x) - self.x0) / self.cell).astype(np.int64)
        row = np.floor((np.asarray(y) - self.y0) / self.cell).astype(np.int64)
        return row, col

    def assign(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The analysed cell number of each point, -1 outside the analysed cells.

        A point exactly on the study area's right or top edge falls
        arithmetically in the cell beyond; it is given to the cell on its
        left or below, so that points on the edge of the area are not lost.
        """
        row, col = self.locate(x, y)
        num = self.cell_number
        out = np.full(len(row), -1, dtype=np.int64)
        ok = (row >= 0) & (row < self.ny) & (col >= 0) & (col < self.nx)
        out[ok] = num[row[ok], col[ok]]
        # The edge rule reads only the points not yet in a cell, not every point three times more
        # (10 M points, 45 % of them outside the cells: 1.50 s -> 0.81-1.15 s).
        rest = np.flatnonzero(out < 0)
        if not len(rest):
            return out
        x, y, row, col = np.asarray(x)[rest], np.asarray(y)[rest], row[rest], col[rest]
        moved = np.full(len(rest), -1, dtype=np.int64)
        for dr, dc in ((0, -1), (-1, 0), (-1, -1)):     # only points lying exactly on that edge may move
            r, c = row + dr, col + dc
            todo = (moved < 0) & ((dc == 0) | (x == self.x0 + col * self.cell)) & \
                ((dr == 0) | (y == self.y0 + row * self.cell))
            ok = todo & (r >= 0) & (r < self.ny) & (c >= 0) & (c < self.nx)
            moved[ok] = num[r[ok], c[ok]]
        out[rest] = moved
        return out

    def boxes(self) -> np.ndarray:
        """Shapely boxes (hexagons for a ``HexGrid``) of the analysed cells, in cell-number order; made
        once per grid (stages ask for them a dozen times) and read-only."""
        if "_boxes" not in self.__dict__:
            self.__dict__["_boxes"] = self._make_boxes()
            self.__dict__["_boxes"].flags.writeable = False
        return self.__dict__["_boxes"]

    def _make_boxes(self) -> np.ndarray:
        rows, cols = self.rows_cols
        xmin = self.x0 + cols * self.cell
        ymin = self.y0 + rows * self.cell
        return shapely.box(xmin, ymin, xmin + self.cell, ymin + self.cell)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = self.rows_cols
        return self.x0 + (cols + 0.5) * self.cell, self.y0 + (rows + 0.5) * self.cell

    shape = "square"

    @property
    def touch_distance(self) -> float:
        """Centre distance of cells that share an edge or a corner (queen contiguity)."""
        return self.cell * np.sqrt(2)

    @property
    def cell_area(self) -> float:
        return self.cell ** 2

    def neighbours(self, distance: float):
        """Binary Gi* neighbours (self included) of the analysed cells within ``distance``: a sparse
        matrix made once per grid and distance (Gi*, its scenarios, trends and regions share it: not
        to be modified)."""
        memo = self.__dict__.setdefault("_neighbours", {})
        if float(distance) not in memo:
            memo[float(distance)] = self._make_neighbours(float(distance))
        return memo[float(distance)]

    def _make_neighbours(self, distance: float):
        from hotspots.detect.gistar import neighbour_matrix
        check_neighbour_distance(distance, self.cell, self.n)
        rows, cols = self.rows_cols
        return neighbour_matrix(cols, rows, self.cell, distance)

    def raster(self) -> Raster:
        """The lattice for surfaces: the grid itself."""
        return Raster(self.x0, self.y0, self.cell, self.nx, self.ny)


SQRT3 = np.sqrt(3.0)


@dataclass
class HexGrid(Grid):
    """Pointy-top hexagons in odd-row offset layout; ``cell`` is the distance between
    adjacent centres (the width across flats, as sf's ``st_make_grid(square = FALSE)``).

    Centre of (row j, column i): x = x0 + (i + 0.5 * (j odd)) * cell, y = y0 + j * cell * sqrt(3)/2,
    so (x0, y0) is the centre of cell (0, 0). Each cell has six neighbours at
    distance ``cell``: that is the contiguity of hexagons, and the default Gi*
    neighbourhood is that ring.
    """
    shape = "hexagon"

    @property
    def row_step(self) -> float:
        return self.cell * SQRT3 / 2

    @property
    def touch_distance(self) -> float:
        return self.cell

    @property
    def cell_area(self) -> float:
        return SQRT3 / 2 * self.cell ** 2

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the hexagon holding each point (cube rounding of axial coordinates)."""
        r_size = self.cell / SQRT3                       # circumradius
        px = np.asarray(x, dtype=float) - self.x0
        py = np.asarray(y, dtype=float) - self.y0
        q = (SQRT3 / 3 * px - py / 3) / r_size
        r = (2 / 3 * py) / r_size
        cx, cz = q, r
        cy = -cx - cz
        rx, ry, rz = np.round(cx), np.round(cy), np.round(cz)
        dx, dy, dz = np.abs(rx - cx), np.abs(ry - cy), np.abs(rz - cz)
        fix_x = (dx > dy) & (dx > dz)
        fix_z = ~fix_x & (dz >= dy)
        rx = np.where(fix_x, -ry - rz, rx)
        rz = np.where(fix_z, -rx - ry, rz)
        row = rz.astype(np.int64)
        col = (rx + (row - (row & 1)) // 2).astype(np.int64)
        return row, col

    def assign(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        row, col = self.locate(x, y)
        ok = (row >= 0) & (row < self.ny) & (col >= 0) & (col < self.nx)
        out = np.full(len(row), -1, dtype=np.int64)
        out[ok] = self.cell_number[row[ok], col[ok]]
        return out

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = self.rows_cols
        return self.x0 + (cols + 0.5 * (rows & 1)) * self.cell, self.y0 + rows * self.row_step

    def _make_boxes(self) -> np.ndarray:
        cx, cy = self.centres()
        return _hexagons(cx, cy, self.cell)

    def _make_neighbours(self, distance: float):
        from hotspots.detect.gistar import neighbour_matrix_xy
        check_neighbour_distance(distance, self.cell, self.n)
        cx, cy = self.centres()
        return neighbour_matrix_xy(cx, cy, distance)

    def raster(self) -> Raster:
        """A square lattice at half the hexagon spacing over the grid's extent."""
        step = self.cell / 2
        x0 = self.x0 - self.cell
        y0 = self.y0 - self.cell
        nx = int(np.ceil((self.nx + 2) * self.cell / step))
        ny = int(np.ceil((self.ny * self.row_step + 2 * self.cell) / step))
        return Raster(x0, y0, step, nx, ny)


def _hexagons(cx: np.ndarray, cy: np.ndarray, spacing: float) -> np.ndarray:
    """Pointy-top hexagon polygons around the centres."""
    r_size = spacing / SQRT3
    angles = np.deg2rad(30 + 60 * np.arange(6))
    xs = cx[:, None] + r_size * np.cos(angles)[None, :]
    ys = cy[:, None] + r_size * np.sin(angles)[None, :]
    coords = np.stack([xs, ys], axis=-1)
    coords = np.concatenate([coords, coords[:, :1]], axis=1)
    return shapely.polygons(coords)


def nice_cell_size(value: float) -> float:
    """The nearest 'round' cell size to ``value`` metres."""
    return float(min(NICE_SIZES, key=lambda s: abs(np.log(s / value))))


def choose_cell_size(area: BaseGeometry) -> tuple[float, str]:
    """Default cell size: the shorter side of the study area's extent / 50 (sfhotspot's
    rule), rounded to a round size, at least 50 m, and large enough for at most
    1,000,000 cells. Returns the size and the rule as text."""
    xmin, ymin, xmax, ymax = area.bounds
    short = min(xmax - xmin, ymax - ymin)
    size = max(nice_cell_size(max(short / 50.0, 1.0)), MIN_CELL_M)
    while (xmax - xmin) * (ymax - ymin) / size ** 2 > MAX_CELLS:
        size = NICE_SIZES[min(NICE_SIZES.index(size) + 1, len(NICE_SIZES) - 1)] if size in NICE_SIZES else size * 2
    how = (f"shorter side of the study area's extent ({short:,.0f} m) / 50, rounded to {size:g} m "
           f"(minimum {MIN_CELL_M:g} m: police.uk locations are snap points)")
    return size, how


def build_grid(area: BaseGeometry, cell: float, shape: str = "square") -> Grid:
    """Lay a grid of ``cell``-metre squares (or hexagons) over ``area``; mask the cells that intersect it."""
    if shape == "hexagon":
        return build_hex_grid(area, cell)
    xmin, ymin, xmax, ymax = area.bounds
    x0 = np.floor(xmin / cell) * cell
    y0 = np.floor(ymin / cell) * cell
    nx = int(np.ceil((xmax - x0) / cell))
    ny = int(np.ceil((ymax - y0) / cell))
    check_cells(nx, ny, cell)
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny))
    bx = shapely.box(x0 + ii * cell, y0 + jj * cell, x0 + (ii + 1) * cell, y0 + (jj + 1) * cell)
    shapely.prepare(area)
    inter = shapely.intersects(area, bx)
    # "The area contains the cell" is "the cell is within the area", but only this way round does the
    # prepared area serve (10x faster: 0.05 s against 0.5 s for 46,000 cells).
    inside = shapely.contains(area, bx)
    # A cell that merely shares an edge with the area is not in it.
    edge = inter & ~inside
    if edge.any():
        frac = shapely.area(shapely.intersection(bx[edge], area)) / cell ** 2
        inter[edge] = frac > 1e-6
    return Grid(float(x0), float(y0), float(cell), nx, ny, inter, inside)


def build_hex_grid(area: BaseGeometry, cell: float) -> HexGrid:
    """Lay pointy-top hexagons (centre spacing ``cell``) over ``area``, aligned to round coordinates."""
    xmin, ymin, xmax, ymax = area.bounds
    row_step = cell * SQRT3 / 2
    x0 = np.floor(xmin / cell) * cell - cell
    y0 = np.floor(ymin / row_step) * row_step - row_step
    nx = int(np.ceil((xmax - x0) / cell)) + 2
    ny = int(np.ceil((ymax - y0) / row_step)) + 2
    check_cells(nx, ny, cell, "hexagon grid")
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    cx = x0 + (ii + 0.5 * (jj & 1)) * cell
    cy = y0 + jj * row_step
    hexes = _hexagons(cx.ravel(), cy.ravel(), cell)
    shapely.prepare(area)
    inter = shapely.intersects(area, hexes)
    inside = shapely.contains(area, hexes)     # = within(hexes, area), with the prepared area (build_grid)
    edge = inter & ~inside
    if edge.any():
        inter[edge] = shapely.area(shapely.intersection(hexes[edge], area)) / (SQRT3 / 2 * cell ** 2) > 1e-6
    return HexGrid(float(x0), float(y0), float(cell), nx, ny, inter.reshape(ny, nx), inside.reshape(ny, nx))


def in_area(grid: Grid, area: BaseGeometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True for points inside ``area`` (boundary included); cheap for points in interior cells."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    row, col = grid.locate(x, y)
    on_grid = (row >= 0) & (row < grid.ny) & (col >= 0) & (col < grid.nx)
    sure = np.zeros(len(x), dtype=bool)
    sure[on_grid] = grid.inside[row[on_grid], col[on_grid]]
    xmin, ymin, xmax, ymax = area.bounds
    maybe = ~sure & (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    result = sure.copy()
    if maybe.any():
        shapely.prepare(area)
        result[maybe] = shapely.intersects_xy(area, x[maybe], y[maybe])
    return result


def drop_strays(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Mask of points that belong to the main body of the data.

    Rule: distance from the median centre; a point farther than
    max(2 km, 3 x the 90th percentile of those distances) is a stray. Robust
    to a handful of far-away points (a mistyped coordinate, a record from
    another county), which would otherwise stretch the grid and, because
    Gi* is relative, turn the whole city hot.
    """
    mx, my = np.median(x), np.median(y)
    d = np.hypot(np.asarray(x) - mx, np.asarray(y) - my)
    limit = max(2000.0, 3.0 * float(np.percentile(d, 90))) if len(d) else 0.0
    rule = (f"points farther than {limit:,.0f} m (max of 2 km and 3 x the 90th percentile distance) "
            f"from the median centre are strays")
    return d <= limit, rule


def derived_area(x: np.ndarray, y: np.ndarray, cell: float, rings: int = 2,
                 min_share: float = 0.01) -> tuple[BaseGeometry, np.ndarray]:
    """The study area from the data, and which points lie in it.

    Rule: the cells holding incidents, closed by ``rings`` cells (grown then
    shrunk back, 8-connected, so gaps are joined but no empty rim is added),
    holes filled; of the resulting patches, those holding at least
    ``min_share`` of the incidents are kept (an island around a few isolated
    records would otherwise be analysed as if it were part of the city).
    Returns the area and a mask of the points inside a kept patch.
    """
    from scipy import ndimage
    col = np.floor(x / cell).astype(np.int64)
    row = np.floor(y / cell).astype(np.int64)
    c0, r0 = col.min() - rings, row.min() - rings
    check_cells(col.max() - c0 + rings + 1, row.max() - r0 + rings + 1, cell)
    occ = np.zeros((row.max() - r0 + rings + 1, col.max() - c0 + rings + 1), dtype=bool)
    occ[row - r0, col - c0] = True
    # Closing (grow, then shrink back) joins the gaps between occupied cells without
    # adding an empty margin: an empty rim would make everything inside look hot (Gi* is relative).
    square = np.ones((3, 3), bool)
    grown = ndimage.binary_fill_holes(ndimage.binary_dilation(occ, structure=square, iterations=rings))
    closed = ndimage.binary_fill_holes(ndimage.binary_closing(occ, structure=square, iterations=rings) | occ)
    # Patches are told apart on the grown mask (points up to 2 x rings cells apart belong together) ...
    labels, count = ndimage.label(grown, structure=np.ones((3, 3), int))
    point_label = labels[row - r0, col - c0]
    share = np.bincount(point_label, minlength=count + 1) / max(len(x), 1)
    keep_label = share >= min_share
    keep_label[0] = False
    # ... but the area is the closed mask, with no empty rim around the data.
    jj, ii = np.nonzero(keep_label[labels] & closed)
    boxes = shapely.box((ii + c0) * cell, (jj + r0) * cell, (ii + c0 + 1) * cell, (jj + r0 + 1) * cell)
    # Neighbours' shared sides are the same numbers (whole cells times the size), so the boxes are a
    # coverage: GEOS dissolves it edge by edge, the same polygon as union_all's (0.87 s -> 0.05 s for
    # 22,413 boxes; only where the parts and rings start differs).
    return shapely.coverage_union_all(boxes), keep_label[point_label]
