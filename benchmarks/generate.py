"""Seeded synthetic partnerships for the benchmarks: 10 k, 100 k, 1 M (and 10 M) incidents.

A made-up partnership around inner London (British National Grid 525,000-540,000 E,
175,000-188,000 N), written in the formats partners really send, so that the benchmark
runs the real loaders:

- ``police/<YYYY-MM>/<YYYY-MM>-metropolitan-street.csv`` and ``...-city-of-london-street.csv``:
  police.uk street-level crime CSVs (WGS84 lon/lat, month-only dates, the real columns and a
  realistic London category mix; anti-social behaviour has no Crime ID; about 1.2 % of rows
  have no location; a few strays far away in other cities; crimes near the City's edge
  published by both forces with the same Crime ID). Locations are snapped to a jittered
  lattice of about 8,300 snap points, as police.uk shares anonymised map points.
- ``police/<YYYY-MM>/<YYYY-MM>-metropolitan-stop-and-search.csv``: police.uk stop and
  search (ISO timestamps, a quarter without location).
- ``partners/council_log.csv``: a council partner log in easting/northing (EPSG:27700),
  UK day-first dates, a free-text column, some rows outside the study period, some
  without location, some of an unknown type, some impossible dates
  (schema: ``benchmarks/schemas/council_partner_en.json``, location kind ``en``).
- ``partners/community_reports.csv``: graded (3x5x2) community reports in lon/lat with
  minute timestamps (schema: ``benchmarks/schemas/community_reports_lonlat.json``).
- ``buildings/key_buildings.csv``: generic points (``name``, ``type``, ``easting``, ``northing``).
- ``boundaries/boundaries.gpkg`` (EPSG:27700): layer ``lad`` (four districts with wavy
  borders and a small "City" district carved out of them) and layer ``ward`` (the
  districts cut by a 4 x 3 block pattern), so hotspots straddle boundaries.
- ``partnership.toml``: the config; ``generator.json``: seed, size and row counts.

Spatial pattern: a mixture of 36 Gaussian hotspots (sigma 120-700 m, some rising, some
falling over the 24 months), a broad Gaussian centred on the middle, and a uniform
background; each source mixes them differently. The geography (hotspots, snap points,
boundaries) depends on the seed only, not on the size, so sizes are comparable.

Usage: ``python benchmarks/generate.py --sizes 10k,100k,1m [--seed 2024] [--out benchmarks/out]``.
Deterministic: the same seed and size give byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from pyproj import Transformer

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
DEFAULT_SEED = 2024
GENERATOR_VERSION = 1

X0, X1 = 525_000.0, 540_000.0
Y0, Y1 = 175_000.0, 188_000.0
FIRST_YEAR, MONTHS = 2022, 24
SNAP_TARGET = 8_000           # about this many snap points over the extent
N_HOTSPOTS = 36

# Share of the incidents per source.
SHARES = {"police_street": 0.70, "stop_search": 0.10, "council": 0.14, "community": 0.06}

# police.uk crime types with a London-like mix: (background share, share inside hotspots).
POLICE_TYPES = {
    "Anti-social behaviour": (0.24, 0.20),
    "Violence and sexual offences": (0.21, 0.27),
    "Other theft": (0.12, 0.10),
    "Vehicle crime": (0.09, 0.04),
    "Burglary": (0.07, 0.04),
    "Theft from the person": (0.04, 0.07),
    "Shoplifting": (0.05, 0.06),
    "Criminal damage and arson": (0.05, 0.04),
    "Public order": (0.04, 0.05),
    "Drugs": (0.025, 0.05),
    "Robbery": (0.02, 0.04),
    "Bicycle theft": (0.02, 0.02),
    "Other crime": (0.01, 0.01),
    "Possession of weapons": (0.005, 0.01),
}
OUTCOMES = ["Investigation complete; no suspect identified", "Unable to prosecute suspect",
            "Under investigation", "Status update unavailable", "Court result unavailable",
            "Local resolution", "Offender given a caution", "Awaiting court outcome",
            "Further investigation is not in the public interest"]
STRAY_PLACES = [(-2.2426, 53.4808), (-1.8904, 52.4862), (-3.1791, 51.4816), (-1.5491, 53.8008),
                (-0.1372, 50.8225), (-1.2577, 51.7520), (-2.5879, 51.4545), (1.2974, 52.6309)]
STREET_A = ["High", "Church", "Station", "Mill", "Park", "Victoria", "Albert", "King", "Queen",
            "Market", "Bridge", "Chapel", "Mount", "Castle", "Garden", "Union", "Canal", "Cross",
            "Wharf", "Green", "Abbey", "Orchard", "Elm", "Cedar", "Trinity", "Tower", "Well"]
STREET_B = ["Street", "Road", "Lane", "Place", "Square", "Walk", "Row", "Yard", "Court", "Mews",
            "Terrace", "Gardens", "Way", "Close", "Hill"]
PLACES = ["Supermarket", "Petrol Station", "Nightclub", "Parking Area", "Sports/Recreation Area",
          "Shopping Area", "Further/Higher Educational Building", "Hospital", "Pedestrian Subway",
          "Theatre/Concert Hall", "Bus/Coach Station", "Conference/Exhibition Centre"]
BOROUGHS = ["Northbank", "Eastgate", "Southwark Reach", "Westmere"]
CITY_NAME = "City of Synthetica"


def parse_size(text: str) -> int:
    """'10k' -> 10_000, '1m' -> 1_000_000, '2500' -> 2500."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def month_label(m: np.ndarray | int) -> str:
    m = int(m)
    return f"{FIRST_YEAR + (m // 12)}-{m % 12 + 1:02d}"


# --------------------------------------------------------------------------- geography
@dataclass
class Geography:
    """Everything that depends on the seed only: hotspots, snap lattice, names, boundaries."""
    centres: np.ndarray      # (K, 2)
    sigmas: np.ndarray       # (K,)
    trends: np.ndarray       # (K,) relative change over the period, -0.7..0.9
    snap_step: float
    jitter: np.ndarray       # (ny, nx, 2) offset of each snap point from its lattice node
    node_location: np.ndarray  # (ny*nx,) "On or near ..." text per snap point
    lsoa_code: np.ndarray
    lsoa_name: np.ndarray
    city: object             # shapely polygon of the City district (and City police area)

    @property
    def shape(self) -> tuple[int, int]:
        return self.jitter.shape[:2]


def make_geography(seed: int) -> Geography:
    import shapely
    rng = np.random.default_rng([seed, 7])
    k = N_HOTSPOTS
    centres = np.column_stack([rng.uniform(X0 + 700, X1 - 700, k), rng.uniform(Y0 + 700, Y1 - 700, k)])
    centres[:4] = [[532_300, 181_300], [531_000, 180_200], [533_600, 182_600], [530_400, 183_900]]
    sigmas = np.exp(rng.uniform(np.log(120), np.log(700), k))
    trends = rng.uniform(-0.7, 0.9, k)
    step = math.sqrt((X1 - X0) * (Y1 - Y0) / SNAP_TARGET)
    nx = int(math.ceil((X1 - X0) / step)) + 1
    ny = int(math.ceil((Y1 - Y0) / step)) + 1
    jitter = rng.uniform(-0.3 * step, 0.3 * step, size=(ny, nx, 2))
    streets = np.array([f"{a} {b}" for a in STREET_A for b in STREET_B], dtype=object)
    names = streets[rng.integers(0, len(streets), ny * nx)]
    place = rng.random(ny * nx) < 0.12
    names[place] = np.array(PLACES, dtype=object)[rng.integers(0, len(PLACES), int(place.sum()))]
    node_location = np.array(["On or near " + s for s in names], dtype=object)
    # LSOA-like 500 m blocks.
    bx, by = int(math.ceil((X1 - X0) / 500)) + 1, int(math.ceil((Y1 - Y0) / 500)) + 1
    nb = bx * by
    codes = np.array([f"E0103{i:04d}" for i in rng.permutation(nb)], dtype=object)
    bor = np.array(BOROUGHS, dtype=object)[rng.integers(0, 4, nb)]
    lsoa_name = np.array([f"{b} {i % 60 + 1:03d}{'ABCDE'[i % 5]}" for i, b in enumerate(bor)], dtype=object)
    city = shapely.Polygon([(531_150, 180_650), (532_300, 180_450), (533_500, 180_800), (533_750, 181_500),
                            (533_200, 182_000), (532_000, 181_950), (531_200, 181_600)])
    return Geography(centres, sigmas, trends, step, jitter, node_location, codes, lsoa_name, city)


def boundaries(geo: Geography):
    """(lad, ward) GeoDataFrames in EPSG:27700 with a ``name`` field."""
    import geopandas as gpd
    import shapely
    bx0, by0, bx1, by1 = X0 - 1_000, Y0 - 1_000, X1 + 1_000, Y1 + 1_000
    ys = np.linspace(by0, by1, 120)
    xs = np.linspace(bx0, bx1, 120)
    vx = 532_000 + 600 * np.sin(ys / 1_500.0)          # a wavy north-south border
    hy = 181_000 + 500 * np.sin(xs / 2_000.0 + 1.0)    # a wavy east-west border (a river)
    west = shapely.Polygon([(bx0, by0), *zip(vx, ys), (bx0, by1)])
    south = shapely.Polygon([(bx0, by0), *zip(xs, hy), (bx1, by0)])
    box = shapely.box(bx0, by0, bx1, by1)
    east, north = box.difference(west), box.difference(south)
    parts = [north.intersection(west), north.intersection(east), south.intersection(east), south.intersection(west)]
    parts = [p.difference(geo.city) for p in parts]
    lad = gpd.GeoDataFrame({"name": BOROUGHS + [CITY_NAME], "code": [f"E0900{i:04d}" for i in range(1, 6)]},
                           geometry=parts + [geo.city], crs="EPSG:27700")
    wards = []
    cols, rows = np.linspace(bx0, bx1, 5), np.linspace(by0, by1, 4)
    for _, d in lad.iterrows():
        k = 0
        for i in range(4):
            for j in range(3):
                piece = d.geometry.intersection(shapely.box(cols[i], rows[j], cols[i + 1], rows[j + 1]))
                if piece.area > 50_000:
                    k += 1
                    wards.append({"name": f"{d['name']} ward {k}", "lad": d["name"], "geometry": piece})
    ward = gpd.GeoDataFrame(wards, geometry="geometry", crs="EPSG:27700")
    return lad, ward


def _month_probs(trend: float) -> np.ndarray:
    t = np.arange(MONTHS)
    p = (1 + trend * (t - (MONTHS - 1) / 2) / ((MONTHS - 1) / 2)) * (1 + 0.15 * np.sin(2 * np.pi * (t - 3) / 12))
    p = np.clip(p, 0.05, None)
    return p / p.sum()


def sample_points(rng: np.random.Generator, geo: Geography, n: int, mix: np.ndarray):
    """n points from the mixture ``mix`` (K hotspot weights, then broad, then uniform).

    Returns x, y (inside the extent), month index 0..23 and the component (-1 broad,
    -2 uniform, else the hotspot), in random order.
    """
    k = len(geo.sigmas)
    counts = rng.multinomial(n, mix / mix.sum())
    xs, ys, ms, cs = [], [], [], []
    flat = np.full(MONTHS, 1.0 / MONTHS)
    for c, m in enumerate(counts):
        if m == 0:
            continue
        if c < k:
            cx, cy, s = geo.centres[c, 0], geo.centres[c, 1], geo.sigmas[c]
            probs = _month_probs(geo.trends[c])
        elif c == k:
            cx, cy, s, probs = 532_500.0, 181_500.0, 4_000.0, flat
        else:
            cx = cy = s = None
            probs = flat
        if s is None:
            x, y = rng.uniform(X0, X1, m), rng.uniform(Y0, Y1, m)
        else:
            x, y = rng.normal(cx, s, m), rng.normal(cy, s, m)
            bad = (x < X0) | (x >= X1) | (y < Y0) | (y >= Y1)
            while bad.any():  # redraw the tails that leave the extent
                nb = int(bad.sum())
                x[bad], y[bad] = rng.normal(cx, s, nb), rng.normal(cy, s, nb)
                bad = (x < X0) | (x >= X1) | (y < Y0) | (y >= Y1)
        xs.append(x)
        ys.append(y)
        ms.append(rng.choice(MONTHS, size=m, p=probs))
        cs.append(np.full(m, c if c < k else (-1 if c == k else -2)))
    order = rng.permutation(n)
    return (np.concatenate(xs)[order], np.concatenate(ys)[order], np.concatenate(ms)[order],
            np.concatenate(cs)[order])


def source_mix(rng: np.random.Generator, hot_share: float, broad: float, concentration: float = 1.0):
    w = rng.dirichlet(np.full(N_HOTSPOTS, concentration)) * hot_share
    return np.concatenate([w, [broad, 1.0 - hot_share - broad]])


def snap(geo: Geography, x: np.ndarray, y: np.ndarray):
    """Snap points to the nearest lattice node and move them to that node's snap point."""
    ny, nx = geo.shape
    ix = np.clip(np.rint((x - X0) / geo.snap_step).astype(np.int64), 0, nx - 1)
    iy = np.clip(np.rint((y - Y0) / geo.snap_step).astype(np.int64), 0, ny - 1)
    j = geo.jitter[iy, ix]
    return X0 + ix * geo.snap_step + j[:, 0], Y0 + iy * geo.snap_step + j[:, 1], iy * nx + ix


def lsoa_index(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    bx = int(math.ceil((X1 - X0) / 500)) + 1
    cx = np.clip(((x - X0) // 500).astype(np.int64), 0, bx - 1)
    cy = np.clip(((y - Y0) // 500).astype(np.int64), 0, int(math.ceil((Y1 - Y0) / 500)))
    return cy * bx + cx


_TO_WGS84 = None


def to_lonlat(x: np.ndarray, y: np.ndarray):
    global _TO_WGS84
    if _TO_WGS84 is None:
        _TO_WGS84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
    return _TO_WGS84.transform(x, y)


def hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 64-character hex strings (police.uk Crime IDs), as a bytes array (dtype S64)."""
    raw = rng.integers(0, 256, size=n * 32, dtype=np.uint8).tobytes()
    return np.frombuffer(raw.hex().encode("ascii"), dtype="S64")


def write_csv(path: Path, columns: dict) -> int:
    """Write columns (numpy arrays / lists; None or NaN = blank) as an unquoted CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, col in columns.items():
        if isinstance(col, np.ndarray) and col.dtype.kind == "f":
            arrays[name] = pa.array(col, mask=np.isnan(col))
        elif isinstance(col, np.ndarray) and col.dtype.kind == "S":
            arrays[name] = pa.array(col).cast(pa.string())
        else:
            arrays[name] = pa.array(col)
    table = pa.table(arrays)
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
    return table.num_rows


def pick(rng: np.random.Generator, values, n: int, p=None) -> np.ndarray:
    arr = np.array(values, dtype=object)
    if p is None:
        return arr[rng.integers(0, len(arr), n)]
    p = np.asarray(p, float)
    return arr[rng.choice(len(arr), size=n, p=p / p.sum())]


def _fmt_ll(v: np.ndarray, decimals: int = 6) -> np.ndarray:
    return np.round(v, decimals)


# --------------------------------------------------------------------------- sources
def police_street(rng, geo, n, out: Path) -> dict:
    import shapely
    mix = source_mix(rng, 0.50, 0.25, 0.6)
    x, y, month, comp = sample_points(rng, geo, n, mix)
    sx, sy, node = snap(geo, x, y)
    types = np.array(list(POLICE_TYPES), dtype=object)
    bg = np.array([v[0] for v in POLICE_TYPES.values()])
    hot = np.array([v[1] for v in POLICE_TYPES.values()])
    ctype = np.empty(n, dtype=object)
    is_hot = comp >= 0
    ctype[is_hot] = types[rng.choice(len(types), int(is_hot.sum()), p=hot / hot.sum())]
    ctype[~is_hot] = types[rng.choice(len(types), int((~is_hot).sum()), p=bg / bg.sum())]
    asb = ctype == "Anti-social behaviour"
    outcome = np.full(n, "", dtype=object)
    outcome[~asb] = pick(rng, OUTCOMES, int((~asb).sum()))
    lon, lat = to_lonlat(sx, sy)
    lon, lat = _fmt_ll(lon), _fmt_ll(lat)
    location = geo.node_location[node]
    li = lsoa_index(sx, sy)
    lcode, lname = geo.lsoa_code[li], geo.lsoa_name[li]
    in_city = shapely.contains_xy(geo.city, sx, sy)
    # No location (police.uk publishes such rows with blank coordinates).
    noloc = rng.random(n) < 0.012
    lon[noloc] = np.nan
    lat[noloc] = np.nan
    location = np.where(noloc, "No Location", location)
    lcode = np.where(noloc, "", lcode)
    lname = np.where(noloc, "", lname)
    # A few strays far away (a record from another force's area, a mistyped location).
    n_stray = max(3, n // 50_000)
    stray = rng.choice(np.nonzero(~noloc)[0], n_stray, replace=False)
    places = np.array(STRAY_PLACES)[rng.integers(0, len(STRAY_PLACES), n_stray)]
    lon[stray] = _fmt_ll(places[:, 0] + rng.normal(0, 0.01, n_stray))
    lat[stray] = _fmt_ll(places[:, 1] + rng.normal(0, 0.01, n_stray))
    # Crimes near the City's edge are also published by the other force (same Crime ID).
    near = (~asb) & (~noloc) & shapely.contains_xy(geo.city.buffer(300), sx, sy) & \
        ~shapely.contains_xy(geo.city.buffer(-300), sx, sy)
    dup = near & (rng.random(n) < 0.3)
    rows = {"metropolitan": 0, "city-of-london": 0}
    files = 0
    by_month = np.argsort(month, kind="stable")
    bounds = np.searchsorted(month[by_month], np.arange(MONTHS + 1))
    for m in range(MONTHS):
        idx = by_month[bounds[m]:bounds[m + 1]]
        label = month_label(m)
        ids = np.zeros(len(idx), dtype="S64")        # blank for anti-social behaviour
        crime = ~asb[idx]
        ids[crime] = hex_ids(rng, int(crime.sum()))
        for force, name, sel in (("metropolitan", "Metropolitan Police Service", ~in_city[idx] | dup[idx]),
                                 ("city-of-london", "City of London Police", in_city[idx] | dup[idx])):
            j = idx[sel]
            if force == "city-of-london" and len(j) == 0:
                continue
            rows[force] += write_csv(out / "police" / label / f"{label}-{force}-street.csv", {
                "Crime ID": ids[sel], "Month": np.full(len(j), label, dtype=object),
                "Reported by": np.full(len(j), name, dtype=object), "Falls within": np.full(len(j), name, dtype=object),
                "Longitude": lon[j], "Latitude": lat[j], "Location": location[j], "LSOA code": lcode[j],
                "LSOA name": lname[j], "Crime type": ctype[j], "Last outcome category": outcome[j],
                "Context": np.full(len(j), "", dtype=object)})
            files += 1
    return {"files": files, "rows": rows["metropolitan"] + rows["city-of-london"], "rows_by_force": rows,
            "no_location": int(noloc.sum()), "strays": int(n_stray), "published_twice": int(dup.sum())}


def stop_search(rng, geo, n, out: Path) -> dict:
    mix = source_mix(rng, 0.6, 0.2, 0.4)
    x, y, month, _ = sample_points(rng, geo, n, mix)
    sx, sy, _ = snap(geo, x, y)
    lon, lat = to_lonlat(sx, sy)
    lon, lat = _fmt_ll(lon), _fmt_ll(lat)
    noloc = rng.random(n) < 0.25
    lon[noloc] = np.nan
    lat[noloc] = np.nan
    secs = rng.integers(0, 28 * 86_400, n)
    obj = pick(rng, ["Controlled drugs", "Offensive weapons", "Stolen goods", "Articles for use in criminal damage",
                     "Firearms", "Anything to threaten or harm anyone"], n, [0.6, 0.15, 0.1, 0.07, 0.02, 0.06])
    leg = np.where(obj == "Controlled drugs", "Misuse of Drugs Act 1971 (section 23)",
                   "Police and Criminal Evidence Act 1984 (section 1)").astype(object)
    files = rows = 0
    by_month = np.argsort(month, kind="stable")
    bounds = np.searchsorted(month[by_month], np.arange(MONTHS + 1))
    for m in range(MONTHS):
        j = by_month[bounds[m]:bounds[m + 1]]
        j = j[np.argsort(secs[j], kind="stable")]
        label = month_label(m)
        base = np.datetime64(label + "-01T00:00:00")
        stamps = np.datetime_as_string(base + secs[j].astype("timedelta64[s]"), unit="s")
        k = len(j)
        rows += write_csv(out / "police" / label / f"{label}-metropolitan-stop-and-search.csv", {
            "Type": pick(rng, ["Person search", "Vehicle search", "Person and Vehicle search"], k, [0.8, 0.05, 0.15]),
            "Date": np.char.add(stamps.astype(str), "+00:00").astype(object),
            "Part of a policing operation": pick(rng, ["False", ""], k, [0.3, 0.7]),
            "Policing operation": np.full(k, "", dtype=object),
            "Latitude": lat[j], "Longitude": lon[j],
            "Gender": pick(rng, ["Male", "Female", "Other"], k, [0.88, 0.11, 0.01]),
            "Age range": pick(rng, ["10-17", "18-24", "25-34", "over 34", ""], k, [0.15, 0.35, 0.25, 0.2, 0.05]),
            "Self-defined ethnicity": pick(rng, ["White - English/Welsh/Scottish/Northern Irish/British",
                                                 "Black/African/Caribbean/Black British - Any other Black/African/Caribbean background",
                                                 "Asian/Asian British - Any other Asian background",
                                                 "Other ethnic group - Not stated", ""], k),
            "Officer-defined ethnicity": pick(rng, ["White", "Black", "Asian", "Other", ""], k),
            "Legislation": leg[j], "Object of search": obj[j],
            "Outcome": pick(rng, ["A no further action disposal", "Arrest", "Community resolution",
                                  "Penalty Notice for Disorder", "Khat or Cannabis warning", "Summons / charged by post"],
                            k, [0.7, 0.13, 0.07, 0.02, 0.06, 0.02]),
            "Outcome linked to object of search": pick(rng, ["True", "False", ""], k, [0.2, 0.5, 0.3]),
            "Removal of more than just outer clothing": pick(rng, ["False", "True", ""], k, [0.9, 0.02, 0.08])})
        files += 1
    return {"files": files, "rows": rows, "no_location": int(noloc.sum())}


COUNCIL_TYPES = {"Youth violence": 0.12, "Assault reported to staff": 0.05, "ASB - nuisance": 0.30,
                 "ASB - rowdy behaviour": 0.15, "Criminal damage": 0.14, "Drug paraphernalia found": 0.10,
                 "Weapon found": 0.04, "Exploitation concern": 0.05, "Gang activity": 0.05}
NOTES = ["Reported by caretaker", "Residents complained about noise late at night", "Follow-up visit arranged",
         "Group of young people gathering by the bins", "CCTV requested", "Referred to youth service",
         "Graffiti tag reported", "Needles found in stairwell", ""]


def council(rng, geo, n, out: Path) -> dict:
    mix = source_mix(rng, 0.45, 0.25, 0.8)
    x, y, month, _ = sample_points(rng, geo, n, mix)
    # The extract runs a month either side of the study period: those rows are filtered.
    shift = rng.choice([-1, 0, 1], size=n, p=[0.015, 0.97, 0.015])
    month = month + np.where(shift < 0, -1 - month, 0) + np.where(shift > 0, MONTHS - month, 0)
    day = rng.integers(1, 29, n)
    yy = FIRST_YEAR + np.floor_divide(month, 12)
    mm = np.mod(month, 12) + 1
    date = np.char.add(np.char.add(np.char.add(np.char.zfill(day.astype(str), 2), "/"),
                                   np.char.add(np.char.zfill(mm.astype(str), 2), "/")), yy.astype(str)).astype(object)
    e = np.rint(x)
    nrt = np.rint(y)
    coarse = rng.random(n) < 0.3                  # geocoded to a building: 10 m
    e[coarse] = np.rint(e[coarse] / 10) * 10
    nrt[coarse] = np.rint(nrt[coarse] / 10) * 10
    noloc = rng.random(n) < 0.01
    e[noloc] = np.nan
    nrt[noloc] = np.nan
    types = pick(rng, list(COUNCIL_TYPES), n, list(COUNCIL_TYPES.values()))
    unknown = rng.random(n) < 0.003
    types[unknown] = "Other"
    bad_date = rng.choice(n, max(1, n // 20_000), replace=False)
    date[bad_date] = "31/02/2023"
    write_csv(out / "partners" / "council_log.csv", {
        "Ref": np.char.add("CSL-", np.char.zfill(np.arange(1, n + 1).astype(str), 8)).astype(object),
        "Date": date, "Type": types, "Risk": pick(rng, ["Low", "Medium", "High"], n, [0.5, 0.35, 0.15]),
        "Easting": e, "Northing": nrt, "Notes": pick(rng, NOTES, n)})
    return {"files": 1, "rows": n, "no_location": int(noloc.sum()), "outside_period": int((shift != 0).sum()),
            "unknown_type": int(unknown.sum()), "bad_dates": len(bad_date)}


REPORT_SUBJECTS = {"Drug dealing": 0.35, "Weapons seen": 0.08, "Gang activity": 0.15,
                   "Exploitation of young people": 0.07, "Fighting": 0.1, "Nuisance youths": 0.25}


def community(rng, geo, n, out: Path) -> dict:
    mix = source_mix(rng, 0.55, 0.15, 0.3)
    x, y, month, _ = sample_points(rng, geo, n, mix)
    lon, lat = to_lonlat(x + rng.normal(0, 25, n), y + rng.normal(0, 25, n))
    secs = rng.integers(0, 28 * 86_400 // 60, n) * 60
    base = np.array([np.datetime64(month_label(m) + "-01T00:00:00") for m in range(MONTHS)])
    stamps = np.datetime_as_string(base[month] + secs.astype("timedelta64[s]"), unit="s").astype(object)
    order = np.argsort(stamps, kind="stable")
    write_csv(out / "partners" / "community_reports.csv", {
        "Report ID": np.char.add("CR", np.char.zfill(np.arange(1, n + 1).astype(str), 8)).astype(object),
        "Received": stamps[order], "Subject": pick(rng, list(REPORT_SUBJECTS), n, list(REPORT_SUBJECTS.values())),
        "Source evaluation": pick(rng, ["1", "2", "3"], n, [0.3, 0.5, 0.2]),
        "Intelligence assessment": pick(rng, ["A", "B", "C", "D", "E"], n, [0.15, 0.3, 0.3, 0.2, 0.05]),
        "Latitude": _fmt_ll(lat[order], 5), "Longitude": _fmt_ll(lon[order], 5),
        "Narrative": pick(rng, ["Seen from window", "Told by a neighbour", "Group on bikes in the evenings",
                                "Cars stopping briefly", "Young people look scared", ""], n)})
    return {"files": 1, "rows": n}


def key_buildings(rng, geo, out: Path, n: int = 400) -> dict:
    types = ["school", "station", "care_home", "youth_centre", "hostel"]
    near = rng.random(n) < 0.4
    x, y = rng.uniform(X0, X1, n), rng.uniform(Y0, Y1, n)
    h = rng.integers(0, N_HOTSPOTS, int(near.sum()))
    x[near] = geo.centres[h, 0] + rng.normal(0, 300, len(h))
    y[near] = geo.centres[h, 1] + rng.normal(0, 300, len(h))
    t = pick(rng, types, n, [0.35, 0.15, 0.2, 0.15, 0.15])
    name = np.array([f"Synthetic {tt.replace('_', ' ')} {i + 1}" for i, tt in enumerate(t)], dtype=object)
    write_csv(out / "buildings" / "key_buildings.csv",
              {"name": name, "type": t, "easting": np.rint(x), "northing": np.rint(y)})
    return {"files": 1, "rows": n}


CONFIG = """# Synthetic partnership for benchmarks (benchmarks/generate.py, seed {seed}, size {label}).
# Generated: do not edit; regenerate with python benchmarks/generate.py --sizes {label}.

[study]
name = "Synthetic partnership ({label} incidents)"
start = "{start}"
end = "{end}"
# No `area`: the study area is derived from the data (strays are rejected).

[[sources]]
id = "met_police"
path = "police/*/*-metropolitan-street.csv"
schema = "police_uk_street"
evidence = "recorded_crime"
legal_basis = "Synthetic open data"

[[sources]]
id = "city_police"
path = "police/*/*-city-of-london-street.csv"
schema = "police_uk_street"
evidence = "recorded_crime"
coverage = "{city}"
legal_basis = "Synthetic open data"

[[sources]]
id = "met_stop_search"
path = "police/*/*-metropolitan-stop-and-search.csv"
schema = "police_uk_stop_search"

[[sources]]
id = "council"
path = "partners/council_log.csv"
schema = "{schemas}/council_partner_en.json"
evidence = "partner_record"
weight = 1.0
handling = "P"

[[sources]]
id = "community"
path = "partners/community_reports.csv"
schema = "{schemas}/community_reports_lonlat.json"
evidence = "community_report"
handling = "P"

[[boundaries]]
id = "lad"
path = "boundaries/boundaries.gpkg"
layer = "lad"
name_field = "name"

[[boundaries]]
id = "ward"
path = "boundaries/boundaries.gpkg"
layer = "ward"
name_field = "name"

[[key_buildings]]
id = "key_buildings"
path = "buildings/key_buildings.csv"
schema = "generic_points"
radius_m = [100, 250, 500]

[weights]
community_report = 0.3

[analysis]
cell_size_m = 100
fdr_alpha = 0.05
seed = 1

[outputs]
tiers = ["partner"]
"""


def generate(n: int, out_root: Path = DEFAULT_OUT, seed: int = DEFAULT_SEED, quiet: bool = False) -> dict:
    """Write the partnership of ``n`` incidents into ``out_root/<label>/``; returns its summary."""
    label = size_label(n)
    out = out_root / label
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    geo = make_geography(seed)
    counts = {k: int(round(n * v)) for k, v in SHARES.items()}
    counts["police_street"] += n - sum(counts.values())
    summary = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": n, "label": label, "sources": {}}
    makers = {"police_street": police_street, "stop_search": stop_search, "council": council, "community": community}
    for i, (name, fn) in enumerate(makers.items()):
        rng = np.random.default_rng([seed, n, i])
        summary["sources"][name] = fn(rng, geo, counts[name], out)
    summary["key_buildings"] = key_buildings(np.random.default_rng([seed, 99]), geo, out)
    lad, ward = boundaries(geo)
    os.environ.setdefault("OGR_CURRENT_DATE", "2024-01-01T00:00:00.000Z")  # byte-identical GeoPackages
    (out / "boundaries").mkdir()
    lad.to_file(out / "boundaries" / "boundaries.gpkg", layer="lad", driver="GPKG")
    ward.to_file(out / "boundaries" / "boundaries.gpkg", layer="ward", driver="GPKG")
    summary["boundaries"] = {"lad": len(lad), "ward": len(ward)}
    (out / "partnership.toml").write_text(CONFIG.format(seed=seed, label=label, start=month_label(0),
                                                        end=month_label(MONTHS - 1), city=CITY_NAME,
                                                        schemas=Path(os.path.relpath(HERE / "schemas", out)).as_posix()), encoding="utf-8")
    summary["rows_written"] = sum(s["rows"] for s in summary["sources"].values())
    summary["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "generator.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if not quiet:
        print(f"{label}: {summary['rows_written']:,} rows in {sum(s['files'] for s in summary['sources'].values())} "
              f"files, {summary['bytes'] / 1e6:,.1f} MB, {summary['seconds']} s -> {out}")
    return summary


def is_current(out_root: Path, n: int, seed: int) -> bool:
    """True when ``out_root/<label>`` holds data generated with this seed and generator version."""
    meta = out_root / size_label(n) / "generator.json"
    try:
        m = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return m.get("seed") == seed and m.get("generator_version") == GENERATOR_VERSION and m.get("size") == n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10k,100k,1m", help="comma-separated sizes, e.g. 10k,100k,1m,10m")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="root folder (default benchmarks/out)")
    args = ap.parse_args(argv)
    for s in args.sizes.split(","):
        generate(parse_size(s), args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
