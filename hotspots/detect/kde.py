"""Weighted kernel density estimation (KDE) of incident points on a square grid.

Public API
----------
``kde_grid(x, y, w, x0, y0, cell, nx, ny, bandwidth, kernel="quartic")``
    Density at the centres of an ``ny`` x ``nx`` grid of ``cell``-metre cells
    whose lower-left corner is ``(x0, y0)``: cell (row ``j``, column ``i``) has
    centre ``(x0 + (i + 0.5) * cell, y0 + (j + 0.5) * cell)``. Units are
    weighted incidents per square kilometre, and each point spreads a kernel
    mass equal to its weight.
``kde_exact(x, y, w, cx, cy, bandwidth, kernel="quartic")``
    Direct summation over all points at arbitrary evaluation points (the
    reference the grid method is tested against), chunked to bound memory.
``choose_bandwidth(x, y, w=None, cell=None)``
    ArcGIS Pro's spatial Silverman rule; returns ``(bandwidth_m, how_chosen)``.
    Where the rule is undefined (fewer than two points, all at one location, or
    no weight) and ``cell`` is given, the fallback is ``FALLBACK_CELLS`` cells,
    and ``how_chosen`` says so.

Limits: ``kde_grid`` refuses (``UserError``) a bandwidth below
``MIN_BANDWIDTH_CELLS`` (half a cell: a finer kernel only draws the grid, and
took over 240 s at 1e-9 m) or above ``MAX_BANDWIDTH_CELLS`` cells (the lattice
grows with its square).

Kernels (``d`` = distance, ``h`` = ``bandwidth`` in metres)
-----------------------------------------------------------
``"quartic"`` (biweight), as ArcGIS Kernel Density and CrimeStat's quartic::

    K(d) = 3 / (pi h^2) * (1 - d^2 / h^2)^2   for d < h, else 0

``"gaussian"`` with sigma = h, truncated at 4 sigma and renormalised so the
kernel mass is exactly 1 (the truncation drops exp(-8) = 0.03 % of the mass)::

    K(d) = exp(-d^2 / (2 h^2)) / (2 pi h^2 (1 - exp(-8)))   for d < 4h, else 0

How ``kde_grid`` is computed
----------------------------
1. Moment binning on a fine lattice. The lattice has spacing ``s = cell / f``
   for an integer ``f`` chosen so ``s <= h / 14`` (quartic) or ``s <= h / 4``
   (Gaussian), is aligned so every cell centre is a lattice node, and is
   padded by the kernel radius so points outside the grid still contribute.
   Each point goes to its nearest node, and each node keeps the weighted
   moments of its points' offsets up to second order (``sum w``,
   ``sum w dx``, ``sum w dy``, ``sum w dx^2``, ``sum w dx dy``,
   ``sum w dy^2``).
2. FFT convolution. The density is the second-order Taylor expansion of the
   kernel about each node: six convolutions (moment field * matching kernel
   derivative field, sampled on the lattice), done with real FFTs in single
   precision, with the six products summed in the frequency domain so there is
   one inverse transform; the result is read off at the cell-centre nodes.
   The sampled kernel is normalised so its sum times the lattice-cell area is
   exactly 1, so mass is preserved (no absolute-value truncation of the
   kernel, the pitfall that makes some FFT KDEs lose mass in metre units).
3. Error bound and exact repair. The Taylor error per unit weight, as a
   function of the node-to-centre offset, is evaluated numerically (worst
   case over the point's possible offsets, times a 1.5 safety factor; it
   includes the kink of the quartic at ``d = h`` and the Gaussian's
   truncation) and convolved with the binned weights in the same FFT pass,
   giving an upper bound of the error at every cell. Cells whose density
   could be at least 0.5 % of the maximum but whose bound exceeds 1 % of
   their density are recomputed exactly (k-d tree pair search). In dense data
   this is rarely any cell; it matters where single points dominate (sparse
   data, small bandwidths), whose kernel tails a fixed lattice cannot resolve.
   So the result is within 1 % of the exact KDE wherever the density is at
   least 0.5 % of its maximum (tests/test_kde.py). Values below 1e-5 of the
   maximum (the FFT round-off floor is about 1e-7) are set to 0, so cells no
   kernel reaches are exactly 0 (not done when some weights are negative).

``method="auto"`` (the default) instead sums the kernel exactly over the few
cell centres each point reaches when that is cheaper: tiny bandwidths (a cell
or two), where the fine lattice would be large, or few points.

Speed (2 cores, 300 x 300 grid, 1,000,000 points, quartic bandwidth 5 cells):
about 0.14 s; see ``benchmarks/kde_vs_sklearn.py`` for a comparison with
scikit-learn.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

__all__ = ["kde_grid", "kde_exact", "choose_bandwidth", "KERNELS"]

KERNELS = ("quartic", "gaussian")

_GAUSS_TRUNC = 4.0                                # gaussian support, in sigmas
_GAUSS_NORM = 1.0 - math.exp(-0.5 * _GAUSS_TRUNC ** 2)   # mass kept by truncation
_M2_TO_KM2 = 1e6                                  # per m^2 -> per km^2
_STEPS_PER_H = {"quartic": 14.0, "gaussian": 4.0}  # fine spacing s <= h / this
_MAX_FINE_NODES = 16_000_000                      # cap on the padded fine lattice
_BOUND_SAFETY = 1.5            # error-bound margin for maxima between the sampled offsets
_REPAIR_TOL = 0.01             # repair cells whose error bound exceeds 1 % ...
_REPAIR_FLOOR = 0.005          # ... if their density could be >= 0.5 % of the maximum
_FFT_DTYPE = np.float32        # FFTs in single precision: 2-3x faster, error ~1e-6 of max
_FFT_FUZZ = 1e-5               # round-off allowance added to the error bound (x max)
MIN_BANDWIDTH_CELLS = 0.5      # bandwidth limits, in cells of the grid the surface is computed on
MAX_BANDWIDTH_CELLS = 200
FALLBACK_CELLS = 3.0           # bandwidth where Silverman's rule is undefined (one point, one place)


# --------------------------------------------------------------------------- kernels
def _check_kernel(kernel: str) -> str:
    k = str(kernel).lower()
    if k not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return k


def _support(kernel: str, h: float) -> float:
    """Radius beyond which the kernel is exactly zero (metres)."""
    return h if kernel == "quartic" else _GAUSS_TRUNC * h


def _kernel_value(kernel: str, d2: np.ndarray, h: float) -> np.ndarray:
    """K at squared distance ``d2`` (m^2), per m^2; zero outside the support."""
    if kernel == "quartic":
        u = 1.0 - d2 / (h * h)
        return np.where(u > 0.0, (3.0 / (math.pi * h * h)) * u * u, 0.0)
    r2 = d2 / (h * h)
    return np.where(r2 < _GAUSS_TRUNC ** 2,
                    np.exp(-0.5 * r2) / (2.0 * math.pi * h * h * _GAUSS_NORM), 0.0)


def _kernel_fields(kernel: str, h: float, s: float, q: int) -> list[np.ndarray]:
    """Kernel and its scaled derivatives on the (2q+1)^2 lattice of spacing ``s``.

    Returned in the order matching the moment fields
    ``[1, ex, ey, ex^2, ex*ey, ey^2]`` (offsets ``ex, ey`` in units of ``s``):
    ``K, -s Kx, -s Ky, s^2 Kxx / 2, s^2 Kxy, s^2 Kyy / 2``, all multiplied by the
    factor that makes ``sum(K) * s^2 == 1``.
    """
    t = np.arange(-q, q + 1, dtype=float) * s
    X, Y = np.meshgrid(t, t)                     # rows = y, columns = x
    d2 = X * X + Y * Y
    if kernel == "quartic":
        h2 = h * h
        c = 3.0 / (math.pi * h2)
        u = 1.0 - d2 / h2
        inside = u > 0.0
        k0 = c * u * u
        kx = -4.0 * c * u * X / h2
        ky = -4.0 * c * u * Y / h2
        kxx = -4.0 * c * (u - 2.0 * X * X / h2) / h2
        kyy = -4.0 * c * (u - 2.0 * Y * Y / h2) / h2
        kxy = 8.0 * c * X * Y / (h2 * h2)
    else:
        s2 = h * h
        inside = d2 < (_GAUSS_TRUNC * h) ** 2
        k0 = np.exp(-0.5 * d2 / s2) / (2.0 * math.pi * s2 * _GAUSS_NORM)
        kx = -X / s2 * k0
        ky = -Y / s2 * k0
        kxx = (X * X / s2 - 1.0) / s2 * k0
        kyy = (Y * Y / s2 - 1.0) / s2 * k0
        kxy = X * Y / (s2 * s2) * k0
    fields = [k0, -s * kx, -s * ky, 0.5 * s * s * kxx, s * s * kxy, 0.5 * s * s * kyy]
    fields = [np.where(inside, f, 0.0) for f in fields]
    mass = fields[0].sum() * s * s
    return [f / mass for f in fields]


# --------------------------------------------------------------------------- inputs
def _as_points(x, y, w):
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError("x and y must have the same length")
    if w is None:
        w = np.ones_like(x)
    else:
        w = np.asarray(w, dtype=float).ravel()
        if w.size == 1 and x.size != 1:
            w = np.full_like(x, float(w[0]))
        if w.shape != x.shape:
            raise ValueError("w must have the same length as x and y")
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(w)
    if not ok.all():
        raise ValueError(f"{int((~ok).sum())} non-finite coordinate(s) or weight(s)")
    return x, y, w


def _merge_identical(x, y, w):
    """Points at one location as one point carrying their summed weight. The density is linear in the
    weights, so the surface is the same to round-off, and every later step costs per point: police.uk
    locations are snap points (the 1 M benchmark's 883,000 risk incidents sit on 196,000 places), and the
    exact repair of cells took 9.9 s of the 10 M run. Returned as given when fewer than half would merge."""
    from hotspots.detect.inference import collapse
    if x.size < 1000:
        return x, y, w
    places, summed = collapse(np.column_stack([x, y]), w)
    if len(places) > 0.5 * x.size:
        return x, y, w
    return places[:, 0].copy(), places[:, 1].copy(), summed


def _check_bandwidth(bandwidth) -> float:
    h = float(bandwidth)
    if not (h > 0.0 and math.isfinite(h)):
        raise ValueError(f"bandwidth must be a positive number of metres, got {bandwidth!r}")
    return h


# --------------------------------------------------------------------------- exact
def kde_exact(x, y, w, cx, cy, bandwidth, kernel: str = "quartic",
              max_pairs: int = 4_000_000) -> np.ndarray:
    """Exact weighted KDE at the points ``(cx, cy)`` by direct summation.

    Every point within the kernel support of an evaluation point is summed
    (no binning). Work is chunked so that at most about ``max_pairs``
    point/target pairs are held in memory at once; points are sorted by x so
    each chunk of (x-sorted) targets only visits the slab of points that can
    reach it. Returns densities in weighted incidents per km^2 with the shape
    of ``cx``.
    """
    kernel = _check_kernel(kernel)
    h = _check_bandwidth(bandwidth)
    x, y, w = _as_points(x, y, w)
    cx = np.asarray(cx, dtype=float)
    cy = np.asarray(cy, dtype=float)
    if cx.shape != cy.shape:
        raise ValueError("cx and cy must have the same shape")
    shape = cx.shape
    tx, ty = cx.ravel(), cy.ravel()
    out = np.zeros(tx.size)
    if tx.size == 0 or x.size == 0:
        return out.reshape(shape)
    R = _support(kernel, h)
    order = np.argsort(x, kind="stable")
    px, py, pw = x[order], y[order], w[order]
    torder = np.argsort(tx, kind="stable")
    tchunk = max(1, min(4096, tx.size))
    for a in range(0, tx.size, tchunk):
        idx = torder[a:a + tchunk]
        txc, tyc = tx[idx], ty[idx]
        lo = np.searchsorted(px, txc.min() - R, side="left")
        hi = np.searchsorted(px, txc.max() + R, side="right")
        acc = np.zeros(idx.size)
        pchunk = max(1, max_pairs // idx.size)
        for b in range(lo, hi, pchunk):
            e = min(hi, b + pchunk)
            dx = txc[:, None] - px[None, b:e]
            dy = tyc[:, None] - py[None, b:e]
            acc += _kernel_value(kernel, dx * dx + dy * dy, h) @ pw[b:e]
        out[idx] = acc
    return (out * _M2_TO_KM2).reshape(shape)


# --------------------------------------------------------------------------- grid
def _fine_factor(kernel: str, h: float, cell: float) -> int:
    return max(1, math.ceil(_STEPS_PER_H[kernel] * cell / h - 1e-9))


def _grid_direct(x, y, w, x0, y0, cell, nx, ny, h, kernel) -> np.ndarray:
    """Exact KDE at all cell centres, visiting only the centres each point reaches.

    Loops over the (2 * reach + 3)^2 centre offsets a point can reach, so it
    is cheap only when the support is a few cells across.
    """
    R = _support(kernel, h)
    reach = int(math.ceil(R / cell))
    fi = (x - x0) / cell - 0.5          # fractional column on the centre lattice
    fj = (y - y0) / cell - 0.5
    keep = (fi > -reach - 2) & (fi < nx + reach + 1) & (fj > -reach - 2) & (fj < ny + reach + 1)
    fi, fj, w = fi[keep], fj[keep], w[keep]
    i0 = np.floor(fi).astype(np.int64)
    j0 = np.floor(fj).astype(np.int64)
    ex, ey = (fi - i0) * cell, (fj - j0) * cell   # metres from centre (i0, j0)
    out = np.zeros(ny * nx)
    R2 = R * R
    for dj in range(-reach, reach + 2):
        jj = j0 + dj
        vy = ey - dj * cell
        oky = (jj >= 0) & (jj < ny) & (np.abs(vy) < R)
        if not oky.any():
            continue
        for di in range(-reach, reach + 2):
            ii = i0 + di
            vx = ex - di * cell
            d2 = vx * vx + vy * vy
            ok = oky & (ii >= 0) & (ii < nx) & (d2 < R2)
            if not ok.any():
                continue
            k = _kernel_value(kernel, d2[ok], h) * w[ok]
            out += np.bincount(jj[ok] * nx + ii[ok], weights=k, minlength=ny * nx)
    return out.reshape(ny, nx) * _M2_TO_KM2


def _exact_at_cells(x, y, w, x0, y0, cell, h, kernel, targets,
                    max_pairs: int = 2_000_000) -> np.ndarray:
    """Exact KDE at the centres of the cells flagged in the (ny, nx) mask ``targets``.

    Only points within reach of a flagged cell are considered, and the
    point/centre pairs closer than the kernel support are enumerated with
    k-d trees, so the cost is proportional to the number of such pairs.
    Returns the values in the order of ``np.nonzero(targets)``.
    """
    ny, nx = targets.shape
    R = _support(kernel, h)
    reach = int(math.ceil(R / cell)) + 1
    jt, it = np.nonzero(targets)
    tx = x0 + (it + 0.5) * cell
    ty = y0 + (jt + 0.5) * cell
    near = maximum_filter(np.pad(targets, reach).astype(np.uint8), size=2 * reach + 1,
                          mode="constant").astype(bool)
    ci = np.floor((x - x0) / cell).astype(np.int64) + reach
    cj = np.floor((y - y0) / cell).astype(np.int64) + reach
    inside = (ci >= 0) & (ci < nx + 2 * reach) & (cj >= 0) & (cj < ny + 2 * reach)
    sel = np.flatnonzero(inside)
    sel = sel[near[cj[sel], ci[sel]]]
    out = np.zeros(tx.size)
    if sel.size == 0:
        return out
    px, py, pw = x[sel] - x0, y[sel] - y0, w[sel]
    ptree = cKDTree(np.column_stack([px, py]))
    # chunk the targets so the pair list stays bounded
    per_target = max(1.0, sel.size * math.pi * R * R / max(1.0, (nx + 2 * reach) * (ny + 2 * reach) * cell * cell))
    chunk = int(max(1, min(tx.size, max_pairs // per_target)))
    for a in range(0, tx.size, chunk):
        ttree = cKDTree(np.column_stack([tx[a:a + chunk] - x0, ty[a:a + chunk] - y0]))
        pairs = ttree.sparse_distance_matrix(ptree, R, output_type="ndarray")
        if pairs.size:
            k = _kernel_value(kernel, pairs["v"] ** 2, h) * pw[pairs["j"]]
            out[a:a + chunk] = np.bincount(pairs["i"], weights=k, minlength=min(chunk, tx.size - a))
    return out * _M2_TO_KM2


def _error_bound_kernel(kernel, h, s, q, fields, samples=9) -> np.ndarray:
    """Worst-case |exact - Taylor| per unit weight, by node offset (per m^2).

    For every lattice offset ``t`` (node to target, half-width ``q + 1`` so the
    nodes just outside the support are covered) the error of the second-order
    expansion is evaluated for a ``samples`` x ``samples`` grid of point
    offsets covering the node's square, and the maximum is kept (times a
    safety factor for the maximum falling between samples).
    """
    Q = q + 1
    # the sampled offsets are symmetric, so the bound is even in x and y:
    # compute the quadrant t >= 0 and mirror it
    t = np.arange(0, Q + 1, dtype=float)
    TX, TY = np.meshgrid(t, t)
    F = [np.pad(g, 1)[Q:, Q:] for g in fields]
    quad = np.zeros_like(TX)
    grid = np.linspace(-0.5, 0.5, samples)
    for ex in grid:
        for ey in grid:
            approx = (F[0] + ex * F[1] + ey * F[2] + ex * ex * F[3] + ex * ey * F[4]
                      + ey * ey * F[5])
            dx = (TX - ex) * s
            dy = (TY - ey) * s
            exact = _kernel_value(kernel, dx * dx + dy * dy, h)
            np.maximum(quad, np.abs(exact - approx), out=quad)
    beta = np.empty((2 * Q + 1, 2 * Q + 1))
    beta[Q:, Q:] = quad
    beta[Q:, :Q] = quad[:, :0:-1]
    beta[:Q, :] = beta[2 * Q:Q:-1, :]
    return beta * _BOUND_SAFETY


def _grid_fft(x, y, w, x0, y0, cell, nx, ny, h, kernel, f, workers):
    """Taylor-moment binning on a fine lattice + FFT convolution (see module doc).

    Returns ``(density, bound)`` at the cell centres, per km^2, where ``bound``
    is a guaranteed-by-construction upper limit of ``|density - exact|``.
    """
    s = cell / f
    q = int(math.ceil(_support(kernel, h) / s))   # kernel half-width in nodes
    pad = q + 2                                    # lattice nodes beyond the centres
    NX = (nx - 1) * f + 1 + 2 * pad
    NY = (ny - 1) * f + 1 + 2 * pad
    ax = x0 + 0.5 * cell - pad * s                 # coordinates of node (0, 0)
    ay = y0 + 0.5 * cell - pad * s
    gx = (x - ax) / s
    gy = (y - ay) / s
    kx = np.rint(gx)
    ky = np.rint(gy)
    keep = (kx >= 0) & (kx < NX) & (ky >= 0) & (ky < NY)
    if not keep.all():
        gx, gy, kx, ky, w = gx[keep], gy[keep], kx[keep], ky[keep], w[keep]
    ex = gx - kx                                   # offsets in units of s, |e| <= 1/2
    ey = gy - ky
    # FFT size: circular wrap never reaches a cell-centre node because every
    # centre is at least pad > q + 1 nodes inside the lattice, so L >= N suffices.
    LX = sfft.next_fast_len(NX, real=True)
    LY = sfft.next_fast_len(NY, real=True)
    flat = ky.astype(np.int64) * LX + kx.astype(np.int64)   # binned straight into
    size = LY * LX                                          # the zero-padded array
    buf = np.zeros((LY, LX), dtype=_FFT_DTYPE)

    def spectrum(g):
        c = g.shape[0] // 2                        # kernel centred on node (0, 0),
        buf[...] = 0.0                             # negative offsets wrapped round
        buf[:c + 1, :c + 1] = g[c:, c:]
        buf[:c + 1, LX - c:] = g[c:, :c]
        buf[LY - c:, :c + 1] = g[:c, c:]
        buf[LY - c:, LX - c:] = g[:c, :c]
        return sfft.rfft2(buf, workers=workers)

    def binned_spectrum(m):
        b = np.bincount(flat, weights=m, minlength=size).astype(_FFT_DTYPE)
        return sfft.rfft2(b.reshape(LY, LX), workers=workers)

    fields = _kernel_fields(kernel, h, s, q)
    wx, wy = w * ex, w * ey
    moments = (w, wx, wy, wx * ex, wx * ey, wy * ey)
    acc = None
    m0_hat = None
    for m, g in zip(moments, fields):
        prod = binned_spectrum(m)
        if m0_hat is None:
            m0_hat = prod.copy() if (w >= 0).all() else binned_spectrum(np.abs(w))
        prod *= spectrum(g)
        if acc is None:
            acc = prod
        else:
            acc += prod
    del prod
    rows = slice(pad, pad + (ny - 1) * f + 1, f)
    cols = slice(pad, pad + (nx - 1) * f + 1, f)
    dens = sfft.irfft2(acc, s=(LY, LX), workers=workers)[rows, cols].astype(float)
    dens *= _M2_TO_KM2
    del acc
    m0_hat *= spectrum(_error_bound_kernel(kernel, h, s, q, fields))
    bound = sfft.irfft2(m0_hat, s=(LY, LX), workers=workers)[rows, cols].astype(float)
    bound *= _M2_TO_KM2
    # FFT round-off (single precision): far below this fraction of the largest values
    fuzz = _FFT_FUZZ * (np.abs(dens).max() + np.abs(bound).max())
    return np.ascontiguousarray(dens), np.ascontiguousarray(bound) + fuzz


def kde_grid(x, y, w, x0, y0, cell, nx, ny, bandwidth, kernel: str = "quartic",
             method: str = "auto", workers: int | None = None,
             repair: bool = True, distinct: bool = False) -> np.ndarray:
    """Weighted KDE at the centres of a regular square grid, in incidents per km^2.

    Parameters
    ----------
    x, y : array-like
        Point coordinates in metres (British National Grid).
    w : array-like or None
        Point weights (``None`` = 1 each); each point spreads kernel mass ``w``.
    x0, y0 : float
        Lower-left corner of the grid (metres).
    cell : float
        Cell size in metres. Cell (row ``j``, column ``i``) has centre
        ``(x0 + (i + 0.5) * cell, y0 + (j + 0.5) * cell)``.
    nx, ny : int
        Number of columns and rows.
    bandwidth : float
        Quartic search radius, or Gaussian sigma, in metres.
    kernel : {"quartic", "gaussian"}
    method : {"auto", "fft", "direct"}
        ``"fft"``: moment binning + FFT (module docstring); ``"direct"``: exact
        summation over the centres each point reaches (cheap only when the
        bandwidth is a few cells or less, or there are few points); ``"auto"``
        picks whichever should be faster.
    workers : int, optional
        Threads for ``scipy.fft`` (default: all CPUs).
    repair : bool
        FFT path only: recompute exactly the cells whose error bound is not
        small (default True). ``False`` returns the raw FFT estimate.
    distinct : bool
        The points are distinct places already (``inference.merged_places``): not merged again
        (the pipeline's 1.8 M places at 10 M incidents: 2.3 s of hashing that merged none).

    Returns
    -------
    numpy.ndarray, shape ``(ny, nx)``
        Density at the cell centres. Points outside the grid still contribute
        wherever their kernel reaches a centre.

    Accuracy
    --------
    ``"direct"`` is exact (to round-off). ``"fft"`` also computes, internally,
    a per-cell upper bound of its error (the worst-case error of the Taylor
    expansion per unit weight, convolved with the binned weights); every cell
    whose exact density could be at least 0.5 % of the grid maximum and whose
    bound exceeds 1 % of its density is recomputed exactly, so the result is
    within 1 % of the exact KDE wherever the density is at least 0.5 % of the
    maximum. In dense data almost no cells need repair; with sparse points
    (where the tails of single points matter) more do, but then there are few
    points to sum.
    """
    kernel = _check_kernel(kernel)
    h = _check_bandwidth(bandwidth)
    cell = float(cell)
    if not (cell > 0 and math.isfinite(cell)):
        raise ValueError("cell must be a positive number of metres")
    if not MIN_BANDWIDTH_CELLS * cell <= h <= MAX_BANDWIDTH_CELLS * cell:
        from hotspots.errors import UserError
        raise UserError(f"[analysis] bandwidth_m = {h:g} is outside the limits for {cell:g} m cells: at least "
                        f"{MIN_BANDWIDTH_CELLS:g} cell ({MIN_BANDWIDTH_CELLS * cell:g} m) and at most "
                        f"{MAX_BANDWIDTH_CELLS} cells ({MAX_BANDWIDTH_CELLS * cell:g} m).")
    nx, ny = int(nx), int(ny)
    if nx < 1 or ny < 1:
        raise ValueError("nx and ny must be at least 1")
    if method not in ("auto", "fft", "direct"):
        raise ValueError("method must be 'auto', 'fft' or 'direct'")
    x, y, w = _as_points(x, y, w)
    x0, y0 = float(x0), float(y0)
    if workers is None:
        workers = -1
    if x.size == 0:
        return np.zeros((ny, nx))

    R = _support(kernel, h)
    f = _fine_factor(kernel, h, cell)

    def lattice_nodes(f):
        q = math.ceil(R / (cell / f))
        return ((nx - 1) * f + 2 * q + 5) * ((ny - 1) * f + 2 * q + 5)

    while f > 1 and lattice_nodes(f) > _MAX_FINE_NODES:
        f -= 1                      # bound memory; the repair step keeps accuracy
    if method == "auto":
        # Rough costs in seconds, measured on a 2-core machine: direct ~ 22 ns
        # per point and centre it reaches; fft ~ 15 single-precision real FFTs
        # of the lattice (~4.5 ns x L log2 L in all) plus ~60 ns per point.
        n_centres = math.pi * (R / cell) ** 2 + 4 * R / cell + 1
        offsets = (2 * math.ceil(R / cell) + 3) ** 2
        cost_direct = 22e-9 * x.size * n_centres + 2e-9 * nx * ny * offsets
        L = lattice_nodes(f)
        cost_fft = 4.5e-9 * L * math.log2(L) + 60e-9 * x.size
        method = "direct" if cost_direct < cost_fft else "fft"
    if not distinct:
        x, y, w = _merge_identical(x, y, w)
    if method == "direct":
        return _grid_direct(x, y, w, x0, y0, cell, nx, ny, h, kernel)

    dens, bound = _grid_fft(x, y, w, x0, y0, cell, nx, ny, h, kernel, f, workers)
    if repair:
        top = dens.max()
        maybe_big = dens + bound >= _REPAIR_FLOOR * top
        loose = bound > _REPAIR_TOL * (dens - bound)
        bad = maybe_big & loose
        if bad.any():
            dens[bad] = _exact_at_cells(x, y, w, x0, y0, cell, h, kernel, bad)
    if (w >= 0).all():
        # below the single-precision FFT noise floor (measured ~1e-7 of the
        # maximum): report 0, so cells no kernel reaches are exactly 0, never
        # tiny negative numbers
        dens[dens < _FFT_FUZZ * dens.max()] = 0.0
    return dens


# --------------------------------------------------------------------------- bandwidth
def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Lower weighted median: the smallest value whose cumulative weight >= half."""
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(weights[order])
    k = int(np.searchsorted(cw, 0.5 * cw[-1], side="left"))
    return float(v[min(k, v.size - 1)])


def choose_bandwidth(x, y, w=None, cell=None) -> tuple[float, str]:
    """Default bandwidth: ArcGIS Pro's spatial variant of Silverman's rule of thumb.

    ::

        SearchRadius = 0.9 * min(SD, sqrt(1 / ln 2) * Dm) * n ** -0.2

    * mean centre ``(X, Y)`` = weighted mean of the points;
    * ``SD`` (standard distance) =
      ``sqrt(sum w ((x - X)^2 + (y - Y)^2) / sum w)``;
    * ``Dm`` = weighted median of the distances to the mean centre (the
      smallest distance at which the cumulative weight reaches half the total);
    * ``n`` = sum of the weights (the point count when unweighted), as ArcGIS
      does with a population field.

    This is the rule ArcGIS's Kernel Density tool documents for its default
    search radius (ArcMap 10.2.1 onwards and ArcGIS Pro, "How Kernel Density
    works"). As ArcGIS warns, weights much larger than 1 inflate ``n`` and so
    shrink the radius. If ``Dm`` is 0 (half the weight at one location, e.g. many
    incidents geocoded to one address) ``SD`` alone is used and the text says
    so. If ``cell`` is given and the bandwidth comes out smaller than it, the
    text carries a warning (the surface will be spiky/undersmoothed).

    Fallback: with fewer than two points, all points at one location, or no
    weight, the rule is undefined. With ``cell`` given the bandwidth is then
    ``FALLBACK_CELLS`` (3) cells and the text says why; without ``cell`` a
    ``ValueError`` is raised.

    Returns
    -------
    (bandwidth_m, how_chosen)
    """
    x, y, w = _as_points(x, y, w)
    if (w < 0).any():
        raise ValueError("weights must be non-negative")
    n = float(w.sum())
    why = ("fewer than 2 points" if x.size < 2 else "the weights sum to zero" if n <= 0 else "")
    if not why:
        mx = float(np.dot(w, x) / n)
        my = float(np.dot(w, y) / n)
        dx, dy = x - mx, y - my
        d2 = dx * dx + dy * dy
        sd = math.sqrt(float(np.dot(w, d2)) / n)
        dm = _weighted_median(np.sqrt(d2), w)
        if sd <= 0:
            why = "all points are at the same location"
    if why:
        if cell is None:
            raise ValueError(f"choose_bandwidth: {why}, no bandwidth can be derived")
        bw = FALLBACK_CELLS * float(cell)
        return bw, (f"Bandwidth {bw:,.0f} m: {FALLBACK_CELLS:g} cells of {float(cell):,.0f} m, the fallback, because "
                    f"ArcGIS Pro's spatial Silverman rule is undefined here ({why}; n = {x.size:,}).")
    k = math.sqrt(1.0 / math.log(2.0))
    note = ""
    if dm > 0:
        spread = min(sd, k * dm)
        which = "standard distance" if sd <= k * dm else "sqrt(1/ln2) x median distance"
    else:
        spread = sd
        which = "standard distance"
        note = (" The median distance was 0 (half the weight at one location), so the "
                "standard distance alone was used.")
    bw = 0.9 * spread * n ** -0.2
    how = (f"Bandwidth {bw:,.0f} m from ArcGIS Pro's spatial Silverman rule "
           f"0.9 x min(SD, sqrt(1/ln2) x Dm) x n^-0.2 with SD = {sd:,.0f} m, "
           f"Dm = {dm:,.0f} m, n = {n:,.6g} (limited by the {which}).{note}")
    if cell is not None and bw < float(cell):
        how += (f" WARNING: the bandwidth is smaller than the {float(cell):,.0f} m cell, "
                f"so the surface will be undersmoothed; consider a bandwidth of at least "
                f"one or two cells.")
    if cell is not None and not MIN_BANDWIDTH_CELLS * cell <= bw <= MAX_BANDWIDTH_CELLS * cell:
        bw = min(max(bw, MIN_BANDWIDTH_CELLS * cell), MAX_BANDWIDTH_CELLS * cell)
        how += (f" Brought to {bw:,.0f} m, within the limits of {MIN_BANDWIDTH_CELLS:g} to "
                f"{MAX_BANDWIDTH_CELLS} cells.")
    return bw, how
