"""Simulated partner extracts for the City of London and fringe example partnership.

Emergency department (ED), youth offending service (YOS) and community intelligence records
are never public, so this module simulates them: seeded, in the formats the partners really
send, around real London geography (OS Code-Point Open postcodes, TfL stations, London
Schools Atlas schools and the street names police.uk publishes for the City of London).

Files written into ``out_dir``:

- ``ed_istv_assaults.csv``: NHS emergency department assault extract after ISB 1594
  "Information Sharing to Tackle Violence" (arrival and assault date/time, location type,
  free-text assault location as a receptionist types it, weapon / method), UTF-8 with BOM
  and CRLF line ends, as Excel's "CSV UTF-8" writes it. It carries patient columns
  (``Patient_Age_Band``, ``Patient_Sex``, ``Patient_Ethnic_Category``) that an allow-list
  loader must drop.
- ``yos_referrals.xlsx``: youth offending service referral log, one sheet ``Referrals``,
  two title rows and a blank row above the header (the header is on sheet row 4).
- ``community_intel.csv``: community intelligence / community reports graded 3x5x2, located
  by OS grid reference, postcode or lon/lat (one of them per row), with a ``Narrative``.
- ``community_intel_legacy_5x5x5.csv``: a small legacy export graded 5x5x5 (cp1252, CRLF).
- ``truth.csv``: for every data row of every file, the true location (BNG), what the location
  text refers to, the planted pattern and the dirt planted in it. Only tests read it.

Planted patterns (the reason the data exist):

- ``hospital_hotspot``: ED assaults around Shoreditch High Street station, where the police
  data bundled with the example (City of London Police and six Met wards) record almost
  nothing: only a hospital-weighted map shows it. Its monthly rate rises over the period.
- ``anecdotal_hotspot``: community reports and youth worker concerns around Hoxton station:
  visible only when anecdotal sources carry weight.
- ``duplicate_of_police``: ED assaults that are the same incidents as City of London Police
  "Violence and sexual offences" records (same month, within 100 m).
- ``background``: everything else.

Run ``python examples/generate_partner_data.py --out DIR --seed 2018``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from pyproj import Transformer

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_london_dir() -> Path:
    """The shared real-data folder: beside the repository (as in CI), else the workplace copy."""
    for candidate in (REPO_ROOT.parent / "shared" / "data" / "london",
                      Path("/work/shared/data/london")):
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared" / "data" / "london"


SHARED_LONDON = _shared_london_dir()
DEFAULT_POSTCODES = SHARED_LONDON / "postcodes" / "codepoint_open_2014_08"
DEFAULT_STATIONS = SHARED_LONDON / "key_buildings" / "london" / "tfl_stations_20220221.csv"
DEFAULT_SCHOOLS = SHARED_LONDON / "key_buildings" / "london" / "all_schools_xy_2016.csv"
DEFAULT_POLICE = SHARED_LONDON / "police_uk" / "city_of_london" / "street"

ED_FILE = "ed_istv_assaults.csv"
YOS_FILE = "yos_referrals.xlsx"
CI_FILE = "community_intel.csv"
LEGACY_FILE = "community_intel_legacy_5x5x5.csv"
MISSING_FILE = "missing_episodes.csv"
CHILDREN_HOMES_FILE = "childrens_homes_SIMULATED.csv"
CARE_HOMES_FILE = "cqc_care_homes_SIMULATED.csv"
TRUTH_FILE = "truth.csv"

# The study area: the City of London and its fringe (Holborn, King's Cross, Clerkenwell,
# Bunhill, Shoreditch, Hoxton, Spitalfields, Aldgate, Whitechapel), BNG metres.
STUDY_BBOX = (529000.0, 180000.0, 534800.0, 183600.0)
PERIOD_START = np.datetime64("2017-12-01")
PERIOD_END = np.datetime64("2019-11-30")

HOSPITAL_HOTSPOT_STATION = "Shoreditch High Street"
ANECDOTAL_HOTSPOT_STATION = "Hoxton"
HOTSPOT_SD_M = {"hospital_hotspot": 100.0, "anecdotal_hotspot": 110.0}
DUPLICATE_MAX_OFFSET_M = 60.0

# Base sizes at n_scale = 1.
# The legacy export is drawn over the whole period and kept to 2018 (about 80 rows).
N_ED, N_YOS, N_CI, N_LEGACY = 1500, 300, 600, 150
N_ED_HOTSPOT_SHARE, N_CI_HOTSPOT_SHARE, N_LEGACY_HOTSPOT_SHARE = 0.15, 0.25, 0.25
N_ED_DUPLICATES = 22
# Children's homes (simulated, never a real address): one planted home with exploitation
# concerns and missing-from-care episodes around it, one quiet one, four others.
EXPLOITATION_HOME_NEAR = (531300.0, 183300.0)   # west of Angel station, Islington
PLANTED_RADIUS_M = 200.0
N_YOS_PLANTED, N_MISSING, N_MISSING_PLANTED = 30, 160, 45
N_ED_EXACT_REPEATS = 5

ED_COLUMNS = [
    "ED_Attendance_Ref", "Provider_Code", "Arrival_Date", "Arrival_Time", "Arrival_Mode",
    "Patient_Age_Band", "Patient_Sex", "Patient_Ethnic_Category", "Assault_Date",
    "Assault_Time", "Assault_Location_Type", "Assault_Location_Free_Text", "Assault_Weapon",
]
YOS_COLUMNS = [
    "Referral ID", "Referral Date", "Young Person Initials", "DOB", "Gender", "Home Postcode",
    "Incident Postcode", "Concern Type", "Role", "Risk Rating", "Referring Agency", "Notes",
]
YOS_TITLE_ROWS = 3  # title, extract note, blank: the header is on sheet row 4
CI_COLUMNS = [
    "Intel_Ref", "Report_Date", "Report_Type", "Submitting_Agency", "Category", "Source_Eval",
    "Intel_Eval", "Handling", "Handling_Conditions", "Grid_Ref", "Postcode", "Lon", "Lat",
    "Narrative",
]
LEGACY_COLUMNS = [
    "URN", "Date_Recorded", "Source_Grade", "Intel_Grade", "Handling_Code", "Location",
    "Subject", "Intelligence_Text",
]
TRUTH_COLUMNS = [
    "file", "row", "record_id", "pattern", "easting", "northing", "location_kind",
    "target_name", "target_easting", "target_northing", "police_crime_id", "true_date",
    "true_time", "dirt",
]

# Personal or free-text columns that real extracts carry and no loader may keep.
NEVER_SURVIVE = {
    ED_FILE: ["ED_Attendance_Ref", "Patient_Age_Band", "Patient_Sex", "Patient_Ethnic_Category",
              "Assault_Location_Free_Text"],
    YOS_FILE: ["Young Person Initials", "DOB", "Gender", "Home Postcode", "Notes"],
    CI_FILE: ["Narrative"],
    LEGACY_FILE: ["Intelligence_Text"],
    MISSING_FILE: ["Child Ref", "Missing From", "Placement Postcode", "Notes"],
    CHILDREN_HOMES_FILE: ["Address Line 1", "Registered Manager", "Notes"],
}
MISSING_COLUMNS = [
    "Episode ID", "Child Ref", "Date Missing", "Date Returned", "Missing From", "Placement Postcode",
    "Last Seen Location", "Last Seen Postcode", "Risk Grading", "Exploitation Concern",
    "Return Interview", "Notes",
]
CHILDREN_HOMES_COLUMNS = [
    "URN", "Setting Name", "Provision Type", "Sector", "Registered Places", "Address Line 1",
    "Postcode", "Easting", "Northing", "Local Authority", "Registered Manager", "Ofsted Rating", "Notes",
]
CQC_COLUMNS = ["name", "cqc_id", "type", "address", "postcode", "telephone", "website", "provider",
               "inspection_date", "cqc_webpage", "area_name", "area_code", "lon", "lat"]

MAX_POSTCODES_PER_POINT = 8
CODEPOINT_COLUMNS = ["Postcode", "Positional_quality_indicator", "Eastings", "Northings"]

# police.uk snap-point labels that are not streets.
POLICE_GENERIC_LOCATIONS = {
    "No Location", "Supermarket", "Nightclub", "Police Station", "Parking Area",
    "Pedestrian Subway", "Shopping Area", "Hospital", "Petrol Station", "Place Of Worship",
    "Sports/Recreation Area", "Theatre/Concert Hall", "Conference/Exhibition Centre",
    "Bus/Coach Station", "Ferry Terminal", "Further/Higher Educational Building",
    "Park/Open Space", "Airport/Airfield", "Prison", "Hotel", "Bridge",
}

# Day-of-week (Monday first), month and hour weights: violence peaks at night and weekends.
DOW_WEIGHTS = np.array([0.80, 0.78, 0.85, 0.95, 1.30, 1.65, 1.35])
MONTH_WEIGHTS = np.array([0.90, 0.85, 0.95, 1.00, 1.05, 1.10, 1.15, 1.05, 1.00, 1.00, 0.95, 1.10])
ED_HOUR_WEIGHTS = np.array([9, 8.5, 7, 5, 3.5, 2.2, 1.4, 1.2, 1.5, 2, 2.5, 3, 3.5, 3.5, 3.5, 4,
                            4.5, 5, 5.5, 6, 6.5, 7.5, 8.5, 9.5], dtype=float)

_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
_TO_WGS84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)


# --------------------------------------------------------------------------- reference data
@dataclass
class Reference:
    """Real places the simulated records are put on (all coordinates BNG metres)."""

    postcodes: pd.DataFrame   # postcode ("EC2M 7PY"), area ("EC"), x, y
    all_postcodes: set        # every postcode read, compact upper case (for invalid ones)
    stations: pd.DataFrame    # name, x, y, tube (bool)
    schools: pd.DataFrame     # name, x, y
    streets: pd.DataFrame     # name (as police.uk spells it), x, y, n
    police: pd.DataFrame      # crime_id, month, crime_type, street, x, y (in the study area)


def _as_files(path: Path | str | Sequence[Path | str] | None, pattern: str) -> list[Path]:
    if path is None:
        return []
    if isinstance(path, (str, Path)):
        p = Path(path)
        if p.is_dir():
            return sorted(f for f in p.glob(pattern) if not f.name.startswith("Code-Point"))
        return [p]
    files: list[Path] = []
    for item in path:
        files.extend(_as_files(item, pattern))
    return files


def _in_bbox(x, y, margin: float = 0.0):
    x0, y0, x1, y1 = STUDY_BBOX
    return (x >= x0 - margin) & (x <= x1 + margin) & (y >= y0 - margin) & (y <= y1 + margin)


def format_postcode(raw: str) -> str:
    """'EC1A1AA' or 'E1  0AA' -> 'EC1A 1AA' / 'E1 0AA'."""
    s = re.sub(r"\s+", "", str(raw)).upper()
    return f"{s[:-3]} {s[-3:]}"


def _read_postcodes(path) -> tuple[pd.DataFrame, set]:
    files = _as_files(path, "*.csv")
    if not files:
        raise FileNotFoundError(f"no Code-Point Open CSV found at {path}")
    frames = []
    for f in files:
        df = pd.read_csv(f, header=None, usecols=[0, 1, 2, 3], names=CODEPOINT_COLUMNS,
                         dtype={"Postcode": str})
        frames.append(df)
    cp = pd.concat(frames, ignore_index=True)
    every = set(cp["Postcode"].str.replace(" ", "", regex=False).str.upper())
    # Quality 10 is "within the building of the matched address"; coarser ones (a few large-user
    # postcodes placed kilometres away) would put incidents in the wrong place.
    cp = cp[(cp["Positional_quality_indicator"] == 10) & (cp["Eastings"] > 0)]
    cp = cp[_in_bbox(cp["Eastings"], cp["Northings"])]
    out = pd.DataFrame({
        "postcode": [format_postcode(p) for p in cp["Postcode"]],
        "x": cp["Eastings"].astype(float).to_numpy(),
        "y": cp["Northings"].astype(float).to_numpy(),
    })
    # Hundreds of large-user postcodes share one point (867 at the Mount Pleasant sorting
    # office): addresses of mail, not places where incidents happen.
    shared = out.groupby(["x", "y"])["postcode"].transform("size")
    out = out[shared <= MAX_POSTCODES_PER_POINT].reset_index(drop=True)
    out["area"] = out["postcode"].str.extract(r"^([A-Z]+)", expand=False)
    out = out.drop_duplicates("postcode").sort_values("postcode").reset_index(drop=True)
    if out.empty:
        raise ValueError(f"no postcodes inside the study area in {path}")
    return out, every


def _read_stations(path) -> pd.DataFrame:
    st = pd.read_csv(path)
    st = st[_in_bbox(st["EASTING"], st["NORTHING"], margin=300)]
    names = st["NAME"].astype(str).str.replace(r"\s+(LU|NR)$", "", regex=True).str.strip()
    out = pd.DataFrame({
        "name": names.to_numpy(),
        "x": st["EASTING"].astype(float).to_numpy(),
        "y": st["NORTHING"].astype(float).to_numpy(),
        "tube": (st.get("London Underground", pd.Series("", index=st.index))
                 .astype(str).str.strip().str.lower() == "yes").to_numpy(),
    })
    return out.drop_duplicates("name").sort_values("name").reset_index(drop=True)


def _read_schools(path) -> pd.DataFrame:
    if path is None or not Path(path).exists():
        return pd.DataFrame(columns=["name", "x", "y"])
    try:
        sc = pd.read_csv(path)
    except UnicodeDecodeError:
        sc = pd.read_csv(path, encoding="cp1252")
    sc = sc[_in_bbox(sc["EASTING"], sc["NORTHING"])]
    out = pd.DataFrame({
        "name": sc["SCHOOL_NAM"].astype(str).str.strip().to_numpy(),
        "x": sc["EASTING"].astype(float).to_numpy(),
        "y": sc["NORTHING"].astype(float).to_numpy(),
    })
    return out.drop_duplicates("name").sort_values("name").reset_index(drop=True)


def _read_police(paths) -> pd.DataFrame:
    files = _as_files(paths, "*.csv")
    cols = ["crime_id", "month", "crime_type", "street", "x", "y"]
    if not files:
        return pd.DataFrame(columns=cols)
    frames = [pd.read_csv(f, usecols=["Crime ID", "Month", "Longitude", "Latitude", "Location",
                                      "Crime type"]) for f in files]
    po = pd.concat(frames, ignore_index=True).dropna(subset=["Longitude", "Latitude"])
    x, y = _TO_BNG.transform(po["Longitude"].to_numpy(float), po["Latitude"].to_numpy(float))
    out = pd.DataFrame({
        "crime_id": po["Crime ID"].fillna("").astype(str).to_numpy(),
        "month": po["Month"].astype(str).to_numpy(),
        "crime_type": po["Crime type"].astype(str).to_numpy(),
        "street": po["Location"].fillna("").astype(str)
                  .str.replace(r"^On or near\s+", "", regex=True).to_numpy(),
        "x": x, "y": y,
    })
    return out[_in_bbox(out["x"], out["y"])].reset_index(drop=True)


def _street_gazetteer(police: pd.DataFrame, streets: list[str] | None) -> pd.DataFrame:
    """Street names with one coordinate each: the median of their police.uk snap points."""
    cols = ["name", "x", "y", "n"]
    if police.empty:
        if streets:
            warnings.warn("streets given but no police.uk CSVs to place them: street texts skipped")
        return pd.DataFrame(columns=cols)
    p = police[(police["street"] != "")
               & ~police["street"].isin(POLICE_GENERIC_LOCATIONS)
               & ~police["street"].str.contains("/", regex=False)
               & ~police["street"].str.match(r"^[AB]\d+$")]
    g = p.groupby("street").agg(x=("x", "median"), y=("y", "median"), n=("x", "size"),
                                sx=("x", "std"), sy=("y", "std")).reset_index()
    # A name whose snap points are far apart is ambiguous: no single place to put it.
    g = g[(g["sx"].fillna(0) <= 150) & (g["sy"].fillna(0) <= 150)]
    g = g.rename(columns={"street": "name"})[cols]
    if streets is not None:
        wanted = {s.strip().lower() for s in streets}
        missing = wanted - set(g["name"].str.lower())
        if missing:
            warnings.warn(f"streets not found in the police.uk data, skipped: {sorted(missing)}")
        g = g[g["name"].str.lower().isin(wanted)]
    return g.sort_values("name").reset_index(drop=True)


def load_reference(postcodes_csv, stations_csv, schools_csv, police_csvs,
                   streets: list[str] | None = None) -> Reference:
    """Read the real reference files the simulated records are placed on."""
    pcs, every = _read_postcodes(postcodes_csv)
    police = _read_police(police_csvs)
    return Reference(postcodes=pcs, all_postcodes=every, stations=_read_stations(stations_csv),
                     schools=_read_schools(schools_csv),
                     streets=_street_gazetteer(police, streets), police=police)


# --------------------------------------------------------------------------- small helpers
def _nearest(px, py, ex, ey, chunk: int = 256):
    """Index of and distance to the nearest of points (ex, ey) for each (px, py)."""
    px, py = np.atleast_1d(np.asarray(px, float)), np.atleast_1d(np.asarray(py, float))
    ex, ey = np.asarray(ex, float), np.asarray(ey, float)
    idx = np.zeros(len(px), dtype=int)
    dist = np.full(len(px), np.inf)
    if len(ex) == 0:
        return idx, dist
    for s in range(0, len(px), chunk):
        d2 = (px[s:s + chunk, None] - ex[None, :]) ** 2 + (py[s:s + chunk, None] - ey[None, :]) ** 2
        i = d2.argmin(axis=1)
        idx[s:s + chunk] = i
        dist[s:s + chunk] = np.sqrt(d2[np.arange(len(i)), i])
    return idx, dist


def bng_to_gridref(e: float, n: float, digits: int = 10) -> tuple[str, float, float]:
    """OS grid reference ('TQ 33555 82248') and the centre of the square it denotes."""
    e100k, n100k = int(e // 100000), int(n // 100000)
    l1 = (19 - n100k) - (19 - n100k) % 5 + (e100k + 10) // 5
    l2 = (19 - n100k) * 5 % 25 + e100k % 5
    l1 += l1 > 7  # the grid skips the letter I
    l2 += l2 > 7
    half = digits // 2
    res = 10 ** (5 - half)
    ee, nn = int((e % 100000) // res), int((n % 100000) // res)
    ref = f"{chr(65 + l1)}{chr(65 + l2)} {ee:0{half}d} {nn:0{half}d}"
    return ref, e100k * 100000 + ee * res + res / 2, n100k * 100000 + nn * res + res / 2


def _pick(rng, options: Sequence, weights: Sequence[float] | None = None):
    if weights is None:
        return options[int(rng.integers(len(options)))]
    w = np.asarray(weights, float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def _typo(rng, s: str) -> str:
    letters = [i for i, c in enumerate(s) if c.isalpha()]
    if len(letters) < 4:
        return s
    i = letters[int(rng.integers(1, len(letters) - 1))]
    op = int(rng.integers(3))
    if op == 0 and i + 1 < len(s):   # swap with the next character
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if op == 1:                      # drop
        return s[:i] + s[i + 1:]
    return s[:i] + s[i] + s[i:]      # double


def _case(rng, s: str, lower: float = 0.35, upper: float = 0.12) -> str:
    r = rng.random()
    if r < lower:
        return s.lower()
    if r < lower + upper:
        return s.upper()
    return s


def _disk(rng, n: int, radius: float):
    r = radius * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    return r * np.cos(a), r * np.sin(a)


_DAYS = np.arange(PERIOD_START, PERIOD_END + 1, dtype="datetime64[D]")
_DAY_DOW = (_DAYS.astype(np.int64) + 3) % 7            # 1970-01-01 was a Thursday
_DAY_MONTH = _DAYS.astype("datetime64[M]").astype(np.int64) % 12
_DAY_MONTH_INDEX = (_DAYS.astype("datetime64[M]")
                    - PERIOD_START.astype("datetime64[M]")).astype(int)


def _sample_days(rng, n: int, ramp: float = 0.0, month: str | None = None) -> np.ndarray:
    """Days in the period weighted to weekends and summer; ramp > 0 makes later months busier."""
    w = DOW_WEIGHTS[_DAY_DOW] * MONTH_WEIGHTS[_DAY_MONTH]
    w = w * (1.0 + ramp * _DAY_MONTH_INDEX / max(_DAY_MONTH_INDEX.max(), 1))
    if month is not None:
        w = w * (_DAYS.astype("datetime64[M]") == np.datetime64(month, "M"))
    return _DAYS[rng.choice(len(_DAYS), size=n, p=w / w.sum())]


def _to_date(d64) -> dt.date:
    return dt.date.fromisoformat(str(np.datetime64(d64, "D")))


def _dmy(d: dt.date) -> str:
    return d.strftime("%d/%m/%Y")


# --------------------------------------------------------------------------- location texts
def _postcode_text(rng, pc: str) -> str:
    return _pick(rng, [pc, pc.replace(" ", ""), pc.lower(), pc.lower().replace(" ", ""),
                       f"nr {pc}", f"{pc} (approx)", pc.replace(" ", "  ")],
                 [45, 15, 15, 7, 8, 5, 5])


def _station_alias(rng, name: str) -> str:
    aliases = {
        "King's Cross St. Pancras": ["Kings Cross", "King's Cross", "kings X", "St Pancras"],
        "Bank and Monument": ["Bank", "Monument", "Bank"],
        "Shoreditch High Street": ["Shoreditch High St", "Shoreditch High Street", "Shoreditch"],
        "Liverpool Street": ["Liverpool St", "Liverpool Street", "Liverpool st"],
        "Tottenham Court Road": ["Tottenham Court Rd", "TCR", "Tottenham Court Road"],
    }.get(name)
    if aliases:
        return _pick(rng, aliases)
    return _pick(rng, [name, name.replace("Street", "St").replace("Road", "Rd"),
                       name.replace("'", "").replace(".", "")])


def _station_text(rng, name: str, tube: bool, loc_type: str) -> str:
    s = _station_alias(rng, name)
    kind = "tube" if tube else "overground"
    if loc_type == "Public transport":
        templates = [f"{s} station", f"{s} stn", f"on platform at {s}", f"{s} {kind} station",
                     f"on the escalator {s} stn", f"bus stop by {s} stn", f"ticket hall {s}"]
    else:
        templates = [f"outside {s} station", f"outside {s} {kind}", f"{s} stn", f"nr {s} station",
                     f"bus stop by {s} stn", f"{s} station"]
    return _pick(rng, templates)


def _street_alias(rng, name: str) -> str:
    s = re.sub(r"'S\b", "'s", name)
    r = rng.random()
    if r < 0.35:
        s = s.replace(" Street", " St").replace(" Road", " Rd").replace(" Lane", " Ln")
    elif r < 0.45:
        s = s.replace("'", "")
    return s


def _street_text(rng, name: str, loc_type: str) -> str:
    s = _street_alias(rng, name)
    if loc_type == "Licensed premises":
        templates = [f"outside pub on {s}", f"bar on {s}", f"club on {s}", f"{s} outside the pub",
                     f"smoking area pub {s}"]
    elif loc_type == "Shop":
        templates = [f"{s} nr the Tesco", f"outside Sainsburys {s}", f"in shop on {s}",
                     f"{s} by the cashpoint", f"Pret on {s}"]
    elif loc_type == "Public transport":
        templates = [f"bus stop {s}", f"on bus on {s}", f"bus stop on {s}"]
    else:
        templates = [s, s, f"on {s}", f"corner of {s}", f"alley off {s}", f"{s} outside Pret",
                     f"{s} nr the Tesco", f"in the street - {s}", f"{s} near McDonalds"]
    return _pick(rng, templates)


def _place_text(rng, name: str) -> str:
    s = (name.replace("Church of England", "CofE").replace("Roman Catholic", "RC")
         .replace(" Primary School", " primary").replace(" School", " school"))
    return _pick(rng, [f"outside {s}", s, f"nr {s} gates", f"{s} playground", f"at {s}"])


JUNK_HOME = ["home", "at home", "HOME", "own home", "friends house", "partners flat", "his flat",
             "home address", "at a house party"]
JUNK_OTHER = ["", "", "", "dont know", "unknown", "UNKNOWN", "n/k", "pt unable to say",
              "pt refused", "outside", "street", "in the street", "on the bus", "nightclub",
              "pub", "party", "at work", "not stated", "?", "see notes", "can't remember",
              "central london", "the city", "walking home"]


# --------------------------------------------------------------------------- ED (ISTV)
ED_LOCATION_TYPES = ["Street/road", "Licensed premises", "Home", "Public transport", "Other",
                     "Park/open space", "Shop", "School/college", ""]
ED_LOCATION_TYPE_W = {
    "background": [40, 18, 12, 8, 7, 4, 4, 2, 5],
    "hospital_hotspot": [45, 20, 2, 22, 4, 2, 3, 0, 2],
    "duplicate_of_police": [60, 25, 0, 5, 5, 0, 5, 0, 0],
}
# location kind given location type (postcode, station, street, place, junk)
ED_KIND_W = {
    "Street/road": [30, 5, 45, 0, 20], "Licensed premises": [35, 0, 35, 0, 30],
    "Home": [15, 0, 0, 0, 85], "Public transport": [5, 65, 15, 0, 15],
    "Other": [40, 5, 20, 0, 35], "Park/open space": [50, 0, 20, 0, 30],
    "Shop": [30, 0, 50, 0, 20], "School/college": [15, 0, 0, 70, 15], "": [30, 5, 20, 0, 45],
}
ED_HOTSPOT_KIND_W = [35, 35, 10, 0, 20]
KINDS = ["postcode", "station", "street", "place", "junk"]
ED_MAX_DIST = {"station": 350.0, "street": 200.0, "place": 250.0, "postcode": 250.0}
ED_WEAPONS = ["Body part (hit/punch/kick)", "Knife/sharp object", "Blunt object", "Glass/bottle",
              "Other", "Not known", ""]
ED_WEAPON_W = {"background": [55, 8, 7, 8, 6, 13, 3], "hospital_hotspot": [45, 20, 8, 12, 4, 9, 2],
               "duplicate_of_police": [60, 8, 8, 10, 4, 10, 0]}
AGE_BANDS = ["10-14", "15-19", "20-24", "25-29", "30-34", "35-44", "45-54", "55-64", "65+"]
AGE_W = [4, 22, 24, 17, 11, 12, 6, 3, 1]
ETHNIC_CODES = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S",
                "Z", "99"]
IMPOSSIBLE_DATES = ["31/02/2019", "30/02/2018", "31/04/2019", "31/06/2018", "29/02/2019",
                    "00/03/2018", "31/09/2018", "32/01/2019"]


def _ed_text(rng, kind: str, loc_type: str, ref: Reference,
             ix: int) -> tuple[str, str, float, float]:
    """(free text, target name, target x, target y) for one location kind."""
    if kind == "postcode":
        r = ref.postcodes.iloc[ix]
        return _postcode_text(rng, r.postcode), r.postcode, r.x, r.y
    if kind == "station":
        r = ref.stations.iloc[ix]
        text = _station_text(rng, r["name"], bool(r.tube), loc_type)
        return text, r["name"], r.x, r.y
    if kind == "street":
        r = ref.streets.iloc[ix]
        return _street_text(rng, r["name"], loc_type), r["name"], r.x, r.y
    if kind == "place":
        r = ref.schools.iloc[ix]
        return _place_text(rng, r["name"]), r["name"], r.x, r.y
    text = _pick(rng, JUNK_HOME) if loc_type == "Home" else _pick(rng, JUNK_OTHER)
    return text, "", np.nan, np.nan


def _background_points(rng, n: int, ref: Reference, police_types: Sequence[str],
                       police_share: float, area_w: dict[str, float], police_sd: float,
                       postcode_sd: float):
    """True incident points: around police.uk snap points of some crime types, or postcodes."""
    pol = ref.police[ref.police["crime_type"].isin(police_types)]
    from_police = rng.random(n) < (police_share if len(pol) else 0.0)
    x, y = np.empty(n), np.empty(n)
    k = int(from_police.sum())
    if k:
        j = rng.integers(len(pol), size=k)
        x[from_police] = pol["x"].to_numpy()[j] + rng.normal(0, police_sd, k)
        y[from_police] = pol["y"].to_numpy()[j] + rng.normal(0, police_sd, k)
    k = n - k
    w = ref.postcodes["area"].map(area_w).fillna(1.0).to_numpy()
    j = rng.choice(len(ref.postcodes), size=k, p=w / w.sum())
    x[~from_police] = ref.postcodes["x"].to_numpy()[j] + rng.normal(0, postcode_sd, k)
    y[~from_police] = ref.postcodes["y"].to_numpy()[j] + rng.normal(0, postcode_sd, k)
    return x, y


def _station_xy(ref: Reference, name: str) -> tuple[float, float]:
    hit = ref.stations[ref.stations["name"] == name]
    if hit.empty:
        raise ValueError(f"station {name!r} (a planted hotspot centre) not in the stations file")
    return float(hit["x"].iloc[0]), float(hit["y"].iloc[0])


def _ed_records(rng, n_scale: float, ref: Reference, hosp_xy) -> tuple[list[dict], int]:
    """True places and times of the ED assaults, sorted by arrival; and how many to repeat."""
    n_total = max(int(round(N_ED * n_scale)), 10)
    n_hot = max(int(round(n_total * N_ED_HOTSPOT_SHARE)), 3)
    viol = ref.police[(ref.police["crime_type"] == "Violence and sexual offences")
                      & (ref.police["crime_id"] != "")]
    n_dup = min(max(int(round(N_ED_DUPLICATES * n_scale)), 1), len(viol))
    n_rep = max(int(round(N_ED_EXACT_REPEATS * n_scale)), 1)
    n_bg = n_total - n_hot - n_dup - n_rep

    recs: list[dict] = []
    # background
    bx, by = _background_points(rng, n_bg, ref, ["Violence and sexual offences", "Robbery",
                                                 "Public order"], 0.55,
                                {"EC": 0.8, "WC": 1.0, "E": 1.3, "N": 1.2}, 60.0, 25.0)
    days = _sample_days(rng, n_bg)
    for i in range(n_bg):
        recs.append({"pattern": "background", "x": bx[i], "y": by[i], "day": days[i]})
    # hospital-only hotspot, rising over the period
    hx = hosp_xy[0] + rng.normal(0, HOTSPOT_SD_M["hospital_hotspot"], n_hot)
    hy = hosp_xy[1] + rng.normal(0, HOTSPOT_SD_M["hospital_hotspot"], n_hot)
    days = _sample_days(rng, n_hot, ramp=2.0)
    for i in range(n_hot):
        recs.append({"pattern": "hospital_hotspot", "x": hx[i], "y": hy[i], "day": days[i]})
    # the same incidents as police-recorded violence: same month, within 100 m
    picks = viol.sort_values("crime_id").iloc[np.sort(rng.choice(len(viol), n_dup, replace=False))]
    dx, dy = _disk(rng, n_dup, DUPLICATE_MAX_OFFSET_M)
    for i, (_, p) in enumerate(picks.iterrows()):
        recs.append({"pattern": "duplicate_of_police", "x": p.x + dx[i], "y": p.y + dy[i],
                     "day": _sample_days(rng, 1, month=p.month)[0], "police": p})

    xs = np.array([r["x"] for r in recs])
    ys = np.array([r["y"] for r in recs])
    near = {
        "postcode": _nearest(xs, ys, ref.postcodes["x"], ref.postcodes["y"]),
        "station": _nearest(xs, ys, ref.stations["x"], ref.stations["y"]),
        "street": _nearest(xs, ys, ref.streets["x"], ref.streets["y"]),
        "place": _nearest(xs, ys, ref.schools["x"], ref.schools["y"]),
    }
    street_index = {s: i for i, s in enumerate(ref.streets["name"])}

    for k, r in enumerate(recs):
        pattern = r["pattern"]
        loc_type = _pick(rng, ED_LOCATION_TYPES, ED_LOCATION_TYPE_W[pattern])
        if pattern == "hospital_hotspot":
            kind = _pick(rng, KINDS, ED_HOTSPOT_KIND_W)
            if kind == "junk" and loc_type == "Home":
                loc_type = "Street/road"
        else:
            kind = _pick(rng, KINDS, ED_KIND_W[loc_type])
        ix = -1
        if pattern == "duplicate_of_police" and kind in ("street", "station", "place", "junk"):
            # the patient names the street the police snapped the crime to, when it is one
            ix = street_index.get(r["police"].street, -1)
            kind = "street" if ix >= 0 else "postcode"
        if kind in ("station", "street", "place") and ix < 0:
            i, d = near[kind][0][k], near[kind][1][k]
            if d <= ED_MAX_DIST[kind]:
                ix = int(i)
            else:
                kind = "postcode"
        if kind == "postcode":
            ix = int(near["postcode"][0][k])
            if near["postcode"][1][k] > ED_MAX_DIST["postcode"]:
                kind = "junk"  # nowhere near an address: the patient cannot name one
        text, target, tx, ty = _ed_text(rng, kind, loc_type, ref, ix)
        dirt = []
        if kind in ("station", "street", "place") and rng.random() < 0.07:
            text = _typo(rng, text)
            dirt.append("typo")
        if kind != "postcode":
            text = _case(rng, text)
        r.update(loc_type=loc_type, kind=kind, text=text, target=target, tx=tx, ty=ty, dirt=dirt)

        # assault time, then arrival after a delay (skewed: most within two hours)
        hour = int(rng.choice(24, p=ED_HOUR_WEIGHTS / ED_HOUR_WEIGHTS.sum()))
        if pattern == "hospital_hotspot" and rng.random() < 0.6:
            hour = int(_pick(rng, [21, 22, 23, 0, 1, 2, 3]))
        assault = dt.datetime.combine(_to_date(r["day"]), dt.time(hour, int(rng.integers(60))))
        delay = min(rng.lognormal(np.log(50), 0.8), 14 * 60)
        r["assault"] = assault
        r["arrival"] = assault + dt.timedelta(minutes=float(delay))
    recs.sort(key=lambda r: (r["arrival"], r["x"]))
    return recs, n_rep


def _ed_rows(rng, recs: list[dict], n_rep: int, seed: int) -> tuple[list[list[str]], list[dict]]:
    n = len(recs)
    rows, truth = [], []
    for i, r in enumerate(recs):
        ref_hash = hashlib.sha256(f"istv:{seed}:{i}".encode()).hexdigest()[:16].upper()
        arr, ass = r["arrival"], r["assault"]
        row = {
            "ED_Attendance_Ref": ref_hash,
            "Provider_Code": _pick(rng, ["R1H", "RRV"], [60, 40]),
            "Arrival_Date": _dmy(arr.date()),
            "Arrival_Time": arr.strftime("%H:%M"),
            "Arrival_Mode": _pick(rng, ["Walk in", "Ambulance", "Police", "Other", ""],
                                  [45, 38, 8, 4, 5]),
            "Patient_Age_Band": _pick(rng, AGE_BANDS, AGE_W),
            "Patient_Sex": _pick(rng, ["Male", "Female", "Not known"], [74, 24, 2]),
            "Patient_Ethnic_Category": _pick(rng, ETHNIC_CODES),
            "Assault_Date": _dmy(ass.date()),
            "Assault_Time": ass.strftime("%H:%M"),
            "Assault_Location_Type": r["loc_type"],
            "Assault_Location_Free_Text": r["text"],
            "Assault_Weapon": _pick(rng, ED_WEAPONS, ED_WEAPON_W[r["pattern"]]),
        }
        dirt = list(r["dirt"])
        u = rng.random()
        if u < 0.06 and r["pattern"] != "duplicate_of_police":
            row["Assault_Date"] = ""
            dirt.append("blank_assault_date")
        u = rng.random()
        if u < 0.07:
            row["Assault_Time"] = ""
            dirt.append("blank_assault_time")
        elif u < 0.12:
            row["Assault_Time"] = _pick(rng, ["unknown", "UNK", "Unknown", "n/k", "?"])
            dirt.append("unknown_assault_time")
        if rng.random() < 0.10 and row["Assault_Location_Type"]:
            row["Assault_Location_Type"] = row["Assault_Location_Type"].lower()
            dirt.append("lower_case_type")
        if rng.random() < 0.05 and row["Assault_Location_Type"]:
            row["Assault_Location_Type"] += " "
            dirt.append("trailing_space")
        if rng.random() < 0.06 and row["Assault_Location_Free_Text"]:
            row["Assault_Location_Free_Text"] += _pick(rng, [" ", "  ", "   "])
            dirt.append("trailing_space")
        if rng.random() < 0.005:
            row["Arrival_Time"] = ""
            dirt.append("blank_arrival_time")
        rows.append(row)
        truth.append({
            "file": ED_FILE, "record_id": ref_hash, "pattern": r["pattern"],
            "easting": r["x"], "northing": r["y"], "location_kind": r["kind"],
            "target_name": r["target"], "target_easting": r["tx"], "target_northing": r["ty"],
            "police_crime_id": r["police"].crime_id if "police" in r else "",
            "true_date": ass.date().isoformat(), "true_time": ass.strftime("%H:%M"), "dirt": dirt,
        })

    # Row-level dirt, on rows whose dates the duplicate check does not rely on.
    eligible = np.array([i for i in range(n) if truth[i]["pattern"] != "duplicate_of_police"])

    def take(k):
        k = min(k, len(eligible))
        return rng.choice(eligible, size=k, replace=False)

    for i in take(max(3, round(n * 0.004))):
        col = _pick(rng, ["Assault_Date", "Assault_Date", "Arrival_Date"])
        rows[i][col] = _pick(rng, IMPOSSIBLE_DATES)
        truth[i]["dirt"].append(f"impossible_date:{col}")
    for i in take(max(2, round(n * 0.003))):
        if rng.random() < 0.6:
            a, b = "Arrival_Date", "Arrival_Time"
        else:
            a, b = "Assault_Date", "Assault_Time"
        rows[i][a], rows[i][b] = rows[i][b], rows[i][a]
        truth[i]["dirt"].append(f"swapped:{a}:{b}")
    for i in take(max(3, round(n * 0.005))):
        if re.fullmatch(r"\d\d/\d\d/\d{4}", rows[i]["Assault_Date"]):
            rows[i]["Assault_Date"] = rows[i]["Assault_Date"][:6] + rows[i]["Assault_Date"][8:]
            truth[i]["dirt"].append("two_digit_year")
    for i in take(max(1, round(n * 0.0015))):
        if re.fullmatch(r"\d\d/\d\d/\d{4}", rows[i]["Assault_Date"]):
            d = rows[i]["Assault_Date"]
            rows[i]["Assault_Date"] = d[:8] + d[9] + d[8]  # 2019 -> 2091
            truth[i]["dirt"].append("year_typo")
    for i in take(2):
        t = rows[i]["Assault_Location_Free_Text"].rstrip() or "outside"
        rows[i]["Assault_Location_Free_Text"] = t + "\npt says approx"
        truth[i]["dirt"].append("embedded_newline")

    # The same attendance exported twice (a classic extract fault), right after the first.
    reps = sorted(take(n_rep).tolist(), reverse=True)
    for i in reps:
        rows.insert(i + 1, dict(rows[i]))
        t = dict(truth[i])
        t["dirt"] = list(truth[i]["dirt"]) + ["exact_repeat_of_previous_row"]
        truth.insert(i + 1, t)

    out = [[row[c] for c in ED_COLUMNS] for row in rows]
    return out, truth


# --------------------------------------------------------------------------- YOS
CONCERNS = ["Serious youth violence", "Knife carrying", "Criminal exploitation", "County lines",
            "Robbery", "Gang association"]
CONCERN_W = [25, 18, 15, 12, 15, 15]
AGENCIES = ["Police", "School", "Children's Social Care", "Emergency Department", "Youth service",
            "Parent/carer", "Other"]
AGENCY_W = [35, 15, 15, 8, 12, 5, 10]
YOS_NOTES = ["Seen by duty officer", "Allocated to case worker", "Awaiting strategy meeting",
             "Referred to Early Help", "NFA - engaged with youth club", "Joint visit with police",
             "MASH referral made", "Parent informed", "", ""]


def _bad_postcode(rng, ref: Reference) -> str:
    for _ in range(50):
        r = rng.random()
        if r < 0.35:
            return _pick(rng, ["N/K", "NFA", "TBC", "unknown", "-", "not given", "0"])
        if r < 0.6:
            return _pick(rng, ["E1", "EC1", "N1", "E2", "EC2", "WC1", "EC1V", "E1 6"])
        if r < 0.8:
            pc = ref.postcodes["postcode"].iloc[int(rng.integers(len(ref.postcodes)))]
            return pc.replace("0", "O", 1) if "0" in pc else pc[:-1] + "?"
        out = _pick(rng, ["E1", "E2", "EC1V", "EC2A", "N1", "WC1X"])
        inw = f"{rng.integers(10)}{_pick(rng, list('ZZXQ'))}{_pick(rng, list('ZZXQ'))}"
        cand = f"{out} {inw}"
        if cand.replace(" ", "") not in ref.all_postcodes:
            return cand
    return "N/K"


def _yos_postcode_text(rng, pc: str) -> str:
    r = rng.random()
    if r < 0.50:
        return pc
    if r < 0.65:
        return pc.replace(" ", "")
    if r < 0.80:
        return pc.lower()
    if r < 0.88:
        return pc[:1] + pc[1:].lower()   # "Ec1v 9nr"
    if r < 0.95:
        return pc + " "
    return pc.lower().replace(" ", "")


def _yos_rows(rng, n_scale: float, ref: Reference):
    n = max(int(round(N_YOS * n_scale)), 5)
    w = ref.postcodes["area"].map({"EC": 0.3, "WC": 0.8, "E": 2.0, "N": 1.8}).fillna(1.0).to_numpy()
    j = rng.choice(len(ref.postcodes), size=n, p=w / w.sum())
    days = np.sort(_sample_days(rng, n))
    rows, truth = [], []
    for i in range(n):
        pc = ref.postcodes.iloc[j[i]]
        x = pc.x + rng.normal(0, 30)
        y = pc.y + rng.normal(0, 30)
        d = _to_date(days[i])
        dirt = []
        r = rng.random()
        if r < 0.85:
            ref_date: object = dt.datetime.combine(d, dt.time())
        else:
            ref_date = _pick(rng, [d.strftime("%d/%m/%Y"), d.strftime("%d.%m.%y"),
                                   d.strftime("%d-%b-%Y"), f"{d.day} {d:%B %Y}"])
            dirt.append("text_date")
        age_days = int(rng.integers(10 * 365, 18 * 365))
        dob = dt.datetime.combine(d - dt.timedelta(days=age_days), dt.time())
        r = rng.random()
        if r < 0.85:
            incident, kind, target, tx, ty = _yos_postcode_text(rng, pc.postcode), "postcode", \
                pc.postcode, pc.x, pc.y
            if incident != pc.postcode:
                dirt.append("postcode_format")
        elif r < 0.95:
            incident, kind, target, tx, ty = _bad_postcode(rng, ref), "junk", "", np.nan, np.nan
            dirt.append("invalid_postcode")
        else:
            incident, kind, target, tx, ty = None, "junk", "", np.nan, np.nan
            dirt.append("blank_postcode")
        risk = _pick(rng, ["Red", "Amber", "Green", None], [20, 45, 30, 5])
        if risk is None:
            dirt.append("blank_risk")
        elif rng.random() < 0.10:
            risk = _pick(rng, [risk.lower(), risk.upper(), risk + " "])
            dirt.append("risk_case_or_space")
        role = _pick(rng, ["Victim", "Perpetrator", "At risk"], [35, 35, 30])
        if rng.random() < 0.08:
            role = _pick(rng, [role.lower(), role.upper()])
            dirt.append("role_case")
        home = ref.postcodes["postcode"].iloc[int(rng.choice(len(ref.postcodes), p=w / w.sum()))]
        rid = f"YJ{d:%y}-{i + 1:04d}"
        rows.append([
            rid, ref_date,
            f"{chr(65 + int(rng.integers(26)))}.{chr(65 + int(rng.integers(26)))}.",
            dob, _pick(rng, ["M", "F", "M", "M"]), home, incident,
            _pick(rng, CONCERNS, CONCERN_W), role, risk, _pick(rng, AGENCIES, AGENCY_W),
            _pick(rng, YOS_NOTES) or None,
        ])
        truth.append({
            "file": YOS_FILE, "record_id": rid, "pattern": "background", "easting": x,
            "northing": y, "location_kind": kind, "target_name": target, "target_easting": tx,
            "target_northing": ty, "police_crime_id": "", "true_date": d.isoformat(),
            "true_time": "", "dirt": dirt,
        })
    return rows, truth


def _write_xlsx(path: Path, rows: list[list]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    ws = wb.active
    ws.title = "Referrals"
    ws.append(["Youth Justice Service - Referrals log (OFFICIAL-SENSITIVE)"])
    ws.append(["Extract 02/12/2019 - referrals received 01/12/2017 to 30/11/2019"])
    ws.append([])
    ws.append(YOS_COLUMNS)
    ws["A1"].font = Font(bold=True, size=14)
    for cell in ws[YOS_TITLE_ROWS + 1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    date_cols = [YOS_COLUMNS.index("Referral Date") + 1, YOS_COLUMNS.index("DOB") + 1]
    for r in range(YOS_TITLE_ROWS + 2, YOS_TITLE_ROWS + 2 + len(rows)):
        for c in date_cols:
            cell = ws.cell(row=r, column=c)
            if isinstance(cell.value, dt.datetime):
                cell.number_format = "dd/mm/yyyy"
    for col, width in zip("ABCDEFGHIJKL", [12, 14, 10, 12, 8, 12, 16, 24, 12, 11, 22, 32]):
        ws.column_dimensions[col].width = width
    fixed = dt.datetime(2019, 12, 2, 9, 0, 0)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "YJS Data Team"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).save()
    # Re-zip with fixed member timestamps so the same seed gives the same bytes.
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(2019, 12, 2, 9, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))


# --------------------------------------------------------------------------- community intel
CI_CATEGORIES = ["Drug dealing", "Weapons", "Gang activity", "Youth violence", "ASB/intimidation",
                 "Criminal exploitation", "Robbery"]
CI_CATEGORY_W = {"background": [30, 10, 12, 14, 22, 6, 6],
                 "anecdotal_hotspot": [30, 14, 24, 12, 14, 4, 2]}
REPORT_TYPES = ["community report", "youth worker concern", "intelligence"]
REPORT_TYPE_W = {"background": [50, 25, 25], "anecdotal_hotspot": [55, 35, 10]}
AGENCY_BY_TYPE = {
    "community report": (["Community safety team", "Housing", "Crimestoppers", "Resident",
                          "Councillor"],
                         [35, 25, 15, 20, 5]),
    "youth worker concern": (["Youth service", "Detached youth work", "School", "Voluntary sector"],
                             [40, 25, 20, 15]),
    "intelligence": (["Neighbourhood policing team", "Gangs unit", "British Transport Police",
                      "Community safety team"], [50, 25, 15, 10]),
}
# 3x5x2 gradings by report type: source 1/2/3, intelligence A-E
SOURCE_W = {"community report": [10, 70, 20], "youth worker concern": [45, 50, 5],
            "intelligence": [50, 40, 10]}
INTEL_W = {"community report": [5, 10, 40, 40, 5], "youth worker concern": [25, 35, 30, 8, 2],
           "intelligence": [30, 35, 25, 7, 3]}
HANDLING_CONDITIONS = ["Not to be shared outside the CSP without originator consent",
                       "Police and YOS only", "Sanitise before onward disclosure",
                       "Do not action without reference to the originator"]
LOCATION_KIND_W = {"community report": [15, 60, 20, 5], "youth worker concern": [35, 40, 20, 5],
                   "intelligence": [60, 20, 17, 3]}  # grid_ref, postcode, lonlat, none
NARRATIVE = {
    "Drug dealing": ["Residents report dealing from a car parked {place} most evenings, lots of "
                     "short visits.", "Young people seen handing small packages to adults {place}.",
                     "Caller says cannabis smell and groups waiting {place} after dark."],
    "Weapons": ["Youth worker told that a knife is being stashed in bushes {place}.",
                "Report of a young male showing a blade to others {place}.",
                "Concern that boys are carrying weapons for protection {place}."],
    "Gang activity": ["Group of 8-10 youths in face coverings gathering {place}, intimidating "
                      "passers by.", "Graffiti tags and postcode rivalry videos filmed {place}.",
                      "Older males on mopeds collecting young people {place}."],
    "Youth violence": ["Fight between two groups of teenagers {place}, one injured.",
                       "Pupils say a boy was chased and punched {place} after school.",
                       "Youth worker concern about planned fight {place} at the weekend."],
    "ASB/intimidation": ["Residents feel unsafe walking {place}: groups blocking the path.",
                         "Repeated reports of youths throwing items at buses {place}.",
                         "Shopkeeper reports intimidation by teenagers {place}."],
    "Criminal exploitation": ["Concern a 14 year old is being used to run drugs from {place}.",
                              "Young person missing from home seen {place} with older males."],
    "Robbery": ["Phone snatches by youths on bikes {place}.",
                "Young people robbed of trainers {place}, not reported to police."],
}
HOTSPOT_PLACES = ["near Hoxton station", "on Hoxton Street", "by the market on Hoxton Street",
                  "on the estate behind Hoxton station", "on Kingsland Road near Hoxton station",
                  "in the park near Hoxton Street"]


def _describe_place(ref: Reference, x: float, y: float) -> str:
    i, d = _nearest([x], [y], ref.stations["x"], ref.stations["y"])
    if d[0] < 250:
        return f"near {ref.stations['name'].iloc[i[0]]} station"
    i, d = _nearest([x], [y], ref.streets["x"], ref.streets["y"])
    if d[0] < 150:
        return f"on {re.sub(chr(39) + 'S', chr(39) + 's', ref.streets['name'].iloc[i[0]])}"
    i, d = _nearest([x], [y], ref.schools["x"], ref.schools["y"])
    if d[0] < 200:
        return f"near {ref.schools['name'].iloc[i[0]]}"
    return "on the estate"


def _ci_points(rng, n_scale: float, base: int, hotspot_share: float, ref: Reference, anec_xy):
    n = max(int(round(base * n_scale)), 5)
    n_hot = max(int(round(n * hotspot_share)), 2)
    n_bg = n - n_hot
    bx, by = _background_points(rng, n_bg, ref, ["Drugs", "Anti-social behaviour",
                                                 "Possession of weapons"], 0.30,
                                {"EC": 0.5, "WC": 0.7, "E": 1.5, "N": 1.5}, 80.0, 40.0)
    sd = HOTSPOT_SD_M["anecdotal_hotspot"]
    hx = anec_xy[0] + rng.normal(0, sd, n_hot)
    hy = anec_xy[1] + rng.normal(0, sd, n_hot)
    recs = [{"pattern": "background", "x": bx[i], "y": by[i]} for i in range(n_bg)]
    recs += [{"pattern": "anecdotal_hotspot", "x": hx[i], "y": hy[i]} for i in range(n_hot)]
    days = np.concatenate([_sample_days(rng, n_bg), _sample_days(rng, n_hot, ramp=1.0)])
    for r, d in zip(recs, days):
        r["day"] = d
    recs.sort(key=lambda r: (r["day"], r["x"]))
    return recs


def _gridref_text(rng, x: float, y: float) -> tuple[str, str, float, float, list]:
    digits = int(_pick(rng, [10, 8, 6], [40, 40, 20]))
    ref, cx, cy = bng_to_gridref(x, y, digits)
    text, dirt = ref, []
    r = rng.random()
    if r < 0.15:
        text = ref.replace(" ", "")
        dirt.append("gridref_no_spaces")
    elif r < 0.22:
        text = ref.lower()
        dirt.append("gridref_lower")
    return text, ref, cx, cy, dirt


def _ci_rows(rng, recs: list[dict], ref: Reference):
    rows, truth = [], []
    pc_ix, _ = _nearest([r["x"] for r in recs], [r["y"] for r in recs],
                        ref.postcodes["x"], ref.postcodes["y"])
    seq: dict[int, int] = {}
    for k, r in enumerate(recs):
        pattern = r["pattern"]
        d = _to_date(r["day"])
        seq[d.year] = seq.get(d.year, 0) + 1
        rid = f"CR-{d.year}-{seq[d.year]:05d}"
        rtype = _pick(rng, REPORT_TYPES, REPORT_TYPE_W[pattern])
        agencies, aw = AGENCY_BY_TYPE[rtype]
        cat = _pick(rng, CI_CATEGORIES, CI_CATEGORY_W[pattern])
        src = str(_pick(rng, ["1", "2", "3"], SOURCE_W[rtype]))
        intel = _pick(rng, list("ABCDE"), INTEL_W[rtype])
        handling = _pick(rng, ["P", "C"], [88, 12])
        cond = ""
        dirt: list[str] = []
        if handling == "C" and rng.random() < 0.6:
            cond = _pick(rng, HANDLING_CONDITIONS)
        elif handling == "C":
            dirt.append("handling_C_without_conditions")
        row = dict.fromkeys(CI_COLUMNS, "")
        row.update(Intel_Ref=rid, Report_Type=rtype, Submitting_Agency=_pick(rng, agencies, aw),
                   Category=cat, Source_Eval=src, Intel_Eval=intel, Handling=handling,
                   Handling_Conditions=cond)
        row["Report_Date"] = d.isoformat() if rng.random() < 0.6 else _dmy(d)
        lk = _pick(rng, ["grid_ref", "postcode", "lonlat", "junk"], LOCATION_KIND_W[rtype])
        target, tx, ty = "", np.nan, np.nan
        if lk == "grid_ref":
            text, target, tx, ty, extra = _gridref_text(rng, r["x"], r["y"])
            row["Grid_Ref"] = text
            dirt += extra
        elif lk == "postcode":
            pc = ref.postcodes.iloc[pc_ix[k]]
            row["Postcode"] = _pick(rng, [pc.postcode, pc.postcode.replace(" ", ""),
                                          pc.postcode.lower()], [75, 15, 10])
            target, tx, ty = pc.postcode, pc.x, pc.y
        elif lk == "lonlat":
            lon, lat = _TO_WGS84.transform(r["x"], r["y"])
            places = int(_pick(rng, [6, 5, 4], [70, 20, 10]))
            row["Lon"], row["Lat"] = f"{lon:.{places}f}", f"{lat:.{places}f}"
            tx, ty = _TO_BNG.transform(float(row["Lon"]), float(row["Lat"]))
            target = f"{row['Lat']},{row['Lon']}"
        else:
            dirt.append("no_location")
        place = _pick(rng, HOTSPOT_PLACES) if pattern == "anecdotal_hotspot" \
            else _describe_place(ref, r["x"], r["y"])
        row["Narrative"] = _pick(rng, NARRATIVE[cat]).format(place=place)
        rows.append(row)
        truth.append({
            "file": CI_FILE, "record_id": rid, "pattern": pattern, "easting": r["x"],
            "northing": r["y"], "location_kind": lk, "target_name": target, "target_easting": tx,
            "target_northing": ty, "police_crime_id": "", "true_date": d.isoformat(),
            "true_time": "", "dirt": dirt,
        })

    n = len(rows)
    used: set[int] = set()

    def take(k, needs: str | None = None):
        """k rows not yet dirtied (with a value in column ``needs``, if given)."""
        pool = [i for i in range(n) if i not in used and (needs is None or rows[i][needs])]
        chosen = rng.choice(pool, size=min(k, len(pool)), replace=False).tolist() if pool else []
        used.update(chosen)
        return chosen

    def unlocate(i, tag):
        truth[i].update(location_kind="junk", target_name="", target_easting=np.nan,
                        target_northing=np.nan)
        truth[i]["dirt"].append(tag)

    for i in take(max(2, round(n * 0.005)), "Lon"):      # latitude and longitude swapped
        rows[i]["Lon"], rows[i]["Lat"] = rows[i]["Lat"], rows[i]["Lon"]
        truth[i]["dirt"].append("swapped_lon_lat")
    for i in take(max(1, round(n * 0.003)), "Lon"):      # a phone app's 0,0
        rows[i]["Lon"], rows[i]["Lat"] = "0", "0"
        unlocate(i, "zero_lon_lat")
    for i in take(max(2, round(n * 0.005)), "Grid_Ref"):  # malformed grid references
        g = rows[i]["Grid_Ref"].replace(" ", "")
        rows[i]["Grid_Ref"] = g[:-1] if len(g) > 6 else "TQ"
        unlocate(i, "malformed_grid_ref")
    for i in take(max(2, round(n * 0.01)), "Postcode"):  # invalid postcodes
        rows[i]["Postcode"] = _bad_postcode(rng, ref)
        unlocate(i, "invalid_postcode")
    for i in take(max(1, round(n * 0.005))):
        rows[i]["Report_Date"] = ""
        truth[i]["dirt"].append("blank_report_date")
    for i in take(max(2, round(n * 0.008))):
        rows[i]["Intel_Eval"] = rows[i]["Intel_Eval"].lower()
        truth[i]["dirt"].append("lower_case_grade")
    for i in take(max(1, round(n * 0.005))):
        rows[i]["Source_Eval"] = ""
        truth[i]["dirt"].append("blank_source_eval")
    for i in take(max(1, round(n * 0.005))):
        rows[i]["Handling"] = ""
        rows[i]["Handling_Conditions"] = ""
        truth[i]["dirt"] = [d for d in truth[i]["dirt"] if d != "handling_C_without_conditions"]
        truth[i]["dirt"].append("blank_handling")
    for i in take(max(2, round(n * 0.01))):
        rows[i]["Category"] += " "
        truth[i]["dirt"].append("trailing_space")
    return [[row[c] for c in CI_COLUMNS] for row in rows], truth


LEGACY_SUBJECTS = {"Drug dealing": "DRUGS - SUPPLY", "Weapons": "WEAPONS", "Gang activity": "GANGS",
                   "Youth violence": "VIOLENCE", "ASB/intimidation": "ASB",
                   "Criminal exploitation": "CSE/CCE", "Robbery": "ROBBERY"}


def _legacy_rows(rng, recs: list[dict], ref: Reference):
    rows, truth = [], []
    pc_ix, _ = _nearest([r["x"] for r in recs], [r["y"] for r in recs],
                        ref.postcodes["x"], ref.postcodes["y"])
    for k, r in enumerate(recs):
        d = _to_date(r["day"])
        rid = f"INT/{d:%y}/{k + 1:05d}"
        cat = _pick(rng, CI_CATEGORIES, CI_CATEGORY_W[r["pattern"]])
        dirt: list[str] = []
        if rng.random() < 0.55:
            pc = ref.postcodes.iloc[pc_ix[k]]
            loc, kind, target, tx, ty = pc.postcode, "postcode", pc.postcode, pc.x, pc.y
        else:
            loc, target, tx, ty, dirt = _gridref_text(rng, r["x"], r["y"])
            kind = "grid_ref"
        if rng.random() < 0.04:
            loc, kind, target, tx, ty = "", "junk", "", np.nan, np.nan
            dirt.append("no_location")
        place = _pick(rng, HOTSPOT_PLACES) if r["pattern"] == "anecdotal_hotspot" \
            else _describe_place(ref, r["x"], r["y"])
        text = _pick(rng, NARRATIVE[cat]).format(place=place)
        if cat == "Drug dealing" and rng.random() < 0.5:
            text += " Deals of £10-£20 mentioned."
        rows.append([rid, d.strftime("%d/%m/%y"), _pick(rng, list("ABCDE"), [10, 30, 35, 20, 5]),
                     str(_pick(rng, [1, 2, 3, 4, 5], [10, 30, 35, 18, 7])),
                     str(_pick(rng, [1, 2, 3, 4, 5], [50, 15, 15, 12, 8])),
                     loc, LEGACY_SUBJECTS[cat], text])
        truth.append({
            "file": LEGACY_FILE, "record_id": rid, "pattern": r["pattern"], "easting": r["x"],
            "northing": r["y"], "location_kind": kind, "target_name": target, "target_easting": tx,
            "target_northing": ty, "police_crime_id": "", "true_date": d.isoformat(),
            "true_time": "", "dirt": dirt,
        })
    return rows, truth


# --------------------------------------------------------------------------- writing
# --------------------------------------------------------------------------- children's homes, care homes, missing episodes
HOME_NAMES = ["Willow House", "Beech Lodge", "Rowan Court", "Alder House", "Hazel Lodge", "Elm View"]
CARE_HOME_NAMES = ["Lavender Court Care Home", "St Clement's Nursing Home", "Moorfields Residential Home",
                   "Canal View Care Centre", "Aldgate House Care Home"]
SIM = " (simulated)"
RISK_GRADINGS = ["High", "Medium", "Low", "No Apparent Risk"]
RISK_GRADING_W = [15, 45, 30, 10]
PLACEMENTS = ["Children's home", "Foster placement", "Family home", "Supported accommodation"]
LAST_SEEN = ["High street", "Park", "Station", "Shopping centre", "Friend's address", "Fast food outlet",
             "Bus stop", "Not known"]


def _local_authority(pc: str) -> tuple[str, str]:
    """A plausible local authority (name, code) for a postcode of the example area (simulated records only)."""
    district = pc.split(" ")[0]
    if district.startswith("EC"):
        return "City of London", "E09000001"
    if district.startswith("WC"):
        return "Camden", "E09000007"
    if district in ("N1", "N5", "N7", "EC1V"):
        return "Islington", "E09000019"
    if district in ("E1", "E1W", "E3", "E14"):
        return "Tower Hamlets", "E09000030"
    return "Hackney", "E09000012"


def _near_postcodes(ref: Reference, x: float, y: float, radius: float) -> pd.DataFrame:
    d = np.hypot(ref.postcodes["x"] - x, ref.postcodes["y"] - y)
    return ref.postcodes[d <= radius].reset_index(drop=True)


def _home_sites(rng, ref: Reference, busy_x: np.ndarray, busy_y: np.ndarray) -> pd.DataFrame:
    """Six children's home sites at real postcode centroids: the planted one (the postcode nearest
    EXPLOITATION_HOME_NEAR), the quiet one (the postcode with the fewest simulated and police records
    within 500 m, away from the edges and more than 500 m from a station), four others drawn at random at least 400 m from both."""
    pcs = ref.postcodes
    d0 = np.hypot(pcs["x"] - EXPLOITATION_HOME_NEAR[0], pcs["y"] - EXPLOITATION_HOME_NEAR[1])
    planted = pcs.iloc[int(np.argmin(d0.to_numpy()))]
    x0, y0, x1, y1 = STUDY_BBOX
    inner = pcs[(pcs["x"] > x0 + 800) & (pcs["x"] < x1 - 800) & (pcs["y"] > y0 + 800) & (pcs["y"] < y1 - 800)]
    inner = inner[np.hypot(inner["x"] - planted.x, inner["y"] - planted.y) > 1000]
    # Stations draw incidents (and the Met data, not read here, records them): a quiet home is away from them.
    st_d = np.hypot(inner["x"].to_numpy()[:, None] - ref.stations["x"].to_numpy()[None, :],
                    inner["y"].to_numpy()[:, None] - ref.stations["y"].to_numpy()[None, :]).min(axis=1)
    inner = inner[st_d > 500]
    near = np.array([int((np.hypot(busy_x - px, busy_y - py) <= 500).sum()) for px, py in
                     zip(inner["x"].to_numpy(), inner["y"].to_numpy())])
    quiet = inner.iloc[int(np.argmin(near))]
    others = []
    order = rng.permutation(len(pcs))
    for k in order:
        c = pcs.iloc[int(k)]
        taken = [planted, quiet] + others
        if all(np.hypot(c.x - t.x, c.y - t.y) > 400 for t in taken):
            others.append(c)
        if len(others) == 4:
            break
    sites = [planted, quiet] + others
    roles = ["exploitation_home", "quiet_home"] + ["background_home"] * 4
    return pd.DataFrame({"postcode": [s.postcode for s in sites], "x": [float(s.x) for s in sites],
                         "y": [float(s.y) for s in sites], "pattern": roles,
                         "name": [n + SIM for n in HOME_NAMES]})


def _children_homes_rows(rng, homes: pd.DataFrame, ref: Reference):
    """A children's services export of its registered children's homes (the analyst's copy)."""
    rows, truth = [], []
    for i, h in enumerate(homes.itertuples()):
        la, _ = _local_authority(h.postcode)
        street = ref.streets.iloc[int(np.argmin(np.hypot(ref.streets["x"] - h.x, ref.streets["y"] - h.y)))]["name"] \
            if len(ref.streets) else "High Street"
        e, n = f"{h.x:.0f}", f"{h.y:.0f}"
        pc = h.postcode
        dirt = []
        if i == 3:           # one row without a grid reference: located by its postcode
            e = n = ""
            dirt.append("no_grid_reference")
        if i == 4:
            pc = pc.lower()
            dirt.append("postcode_case")
        rows.append([f"SC{480100 + 37 * i:06d}", h.name, "Children's home",
                     _pick(rng, ["Local authority", "Private", "Voluntary"], [3, 5, 2]),
                     int(rng.integers(2, 7)), f"{int(rng.integers(2, 120))} {street}", pc, e, n, la,
                     f"{_pick(rng, ['J.', 'S.', 'A.', 'M.'])} {_pick(rng, ['Okafor', 'Patel', 'Byrne', 'Hughes'])}",
                     _pick(rng, ["Good", "Outstanding", "Requires improvement to be good"], [6, 2, 2]),
                     _pick(rng, ["", "Solo placement", "Emergency beds", ""])])
        truth.append({"file": CHILDREN_HOMES_FILE, "record_id": rows[-1][0], "pattern": h.pattern,
                      "easting": h.x, "northing": h.y, "location_kind": "home", "target_name": h.name,
                      "target_easting": h.x, "target_northing": h.y, "police_crime_id": "", "true_date": "",
                      "true_time": "", "dirt": dirt})
    return rows, truth


def _care_homes_rows(rng, ref: Reference, avoid: pd.DataFrame):
    """Care homes in the CQC register's local open-data format (the columns of the real register's
    extracts), at real postcode centroids; names and ids are simulated."""
    rows, truth = [], []
    used: list[tuple[float, float]] = [(float(a), float(b)) for a, b in zip(avoid["x"], avoid["y"])]
    for i, name in enumerate(CARE_HOME_NAMES):
        for _ in range(200):
            c = ref.postcodes.iloc[int(rng.integers(len(ref.postcodes)))]
            if all(np.hypot(c.x - a, c.y - b) > 300 for a, b in used):
                break
        used.append((float(c.x), float(c.y)))
        lon, lat = _TO_WGS84.transform(float(c.x), float(c.y))
        la, code = _local_authority(c.postcode)
        kind = _pick(rng, ["Residential homes", "Nursing homes"], [6, 4])
        cid = f"SIM-{1000 + i}"
        rows.append([name + SIM, cid, kind, f"{int(rng.integers(1, 90))} Example Street,London", c.postcode,
                     "NA", "NA", f"Simulated Care Provider {i + 1} Ltd",
                     (dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300)))).isoformat(),
                     "NA", la, code, f"{lon:.6f}", f"{lat:.6f}"])
        truth.append({"file": CARE_HOMES_FILE, "record_id": cid, "pattern": "care_home", "easting": c.x,
                      "northing": c.y, "location_kind": "lonlat", "target_name": name + SIM,
                      "target_easting": c.x, "target_northing": c.y, "police_crime_id": "", "true_date": "",
                      "true_time": "", "dirt": []})
    return rows, truth


def _yos_planted_rows(rng, ref: Reference, home, first_number: int):
    """Youth offending service referrals for criminal exploitation and county lines around the
    planted children's home, in the referral log's own format (appended to the log)."""
    pcs = _near_postcodes(ref, home.x, home.y, PLANTED_RADIUS_M)
    days = np.sort(_sample_days(rng, N_YOS_PLANTED, ramp=0.5))
    rows, truth = [], []
    for i in range(N_YOS_PLANTED):
        pc = pcs.iloc[int(rng.integers(len(pcs)))]
        d = _to_date(days[i])
        rid = f"YJ{d:%y}-{first_number + i:04d}"
        dob = dt.datetime.combine(d - dt.timedelta(days=int(rng.integers(13 * 365, 17 * 365))), dt.time())
        rows.append([rid, dt.datetime.combine(d, dt.time()),
                     f"{chr(65 + int(rng.integers(26)))}.{chr(65 + int(rng.integers(26)))}.", dob,
                     _pick(rng, ["M", "F"]), home.postcode, pc.postcode,
                     _pick(rng, ["Criminal exploitation", "County lines"], [6, 4]),
                     _pick(rng, ["At risk", "Victim"], [7, 3]), _pick(rng, ["Red", "Amber"], [7, 3]),
                     _pick(rng, ["Children's Social Care", "Police", "Youth service"]),
                     _pick(rng, ["Strategy meeting held", "NRM referral made", "MASH referral made", ""]) or None])
        truth.append({"file": YOS_FILE, "record_id": rid, "pattern": "exploitation_home", "easting": pc.x,
                      "northing": pc.y, "location_kind": "postcode", "target_name": pc.postcode,
                      "target_easting": pc.x, "target_northing": pc.y, "police_crime_id": "",
                      "true_date": d.isoformat(), "true_time": "", "dirt": []})
    return rows, truth


def _missing_rows(rng, ref: Reference, homes: pd.DataFrame):
    """A missing children episodes export (children's services and police, Philomena-protocol style):
    one row per episode with the last-seen postcode and the service's own risk grading; the placement
    postcode, child reference and notes are personal and never read."""
    planted = homes[homes["pattern"] == "exploitation_home"].iloc[0]
    near = _near_postcodes(ref, planted.x, planted.y, PLANTED_RADIUS_M)
    w = ref.postcodes["area"].map({"EC": 0.3, "WC": 0.8, "E": 2.0, "N": 1.8}).fillna(1.0).to_numpy()
    n = N_MISSING + N_MISSING_PLANTED
    planted_mask = np.zeros(n, dtype=bool)
    planted_mask[rng.choice(n, N_MISSING_PLANTED, replace=False)] = True
    days = np.sort(_sample_days(rng, n))
    rows, truth = [], []
    for i in range(n):
        d = _to_date(days[i])
        hour, minute = int(rng.integers(14, 24)) if rng.random() < 0.8 else int(rng.integers(0, 14)), \
            int(rng.integers(60))
        if planted_mask[i]:
            pc = near.iloc[int(rng.integers(len(near)))]
            placement, from_pc, pattern = "Children's home", planted.postcode, "exploitation_home"
            grading = _pick(rng, RISK_GRADINGS, [45, 40, 15, 0])
            concern = _pick(rng, ["Y", "Y", "N"])
        else:
            pc = ref.postcodes.iloc[int(rng.choice(len(ref.postcodes), p=w / w.sum()))]
            placement = _pick(rng, PLACEMENTS, [2, 3, 4, 1])
            other = homes[homes["pattern"] != "exploitation_home"]
            from_pc = (other["postcode"].iloc[int(rng.integers(len(other)))] if placement == "Children's home"
                       else ref.postcodes["postcode"].iloc[int(rng.integers(len(ref.postcodes)))])
            pattern = "background"
            grading = _pick(rng, RISK_GRADINGS, RISK_GRADING_W)
            concern = _pick(rng, ["Y", "N", "N", "N"])
        dirt = []
        if rng.random() < 0.05:
            grading = "Med"           # a level the mapping does not define: thresholds.csv flags it
            dirt.append("undefined_grading")
        elif rng.random() < 0.04:
            grading = None
            dirt.append("blank_grading")
        back = d + dt.timedelta(days=int(rng.integers(0, 4)))
        rows.append([f"MC{d:%y}{i + 1:04d}", f"CH{int(rng.integers(10000, 99999))}",
                     f"{d:%d/%m/%Y} {hour:02d}:{minute:02d}", f"{back:%d/%m/%Y}", placement, from_pc,
                     _pick(rng, LAST_SEEN), pc.postcode, grading, concern, _pick(rng, ["Offered", "Accepted",
                                                                                       "Declined", ""]),
                     _pick(rng, ["Returned of own accord", "Found by police", "Located at friend's address", ""])])
        truth.append({"file": MISSING_FILE, "record_id": rows[-1][0], "pattern": pattern, "easting": pc.x,
                      "northing": pc.y, "location_kind": "postcode", "target_name": pc.postcode,
                      "target_easting": pc.x, "target_northing": pc.y, "police_crime_id": "",
                      "true_date": d.isoformat(), "true_time": f"{hour:02d}:{minute:02d}", "dirt": dirt})
    return rows, truth


def _write_csv(path: Path, header: list[str], rows: list[list], encoding: str,
               newline: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, lineterminator=newline)
        w.writerow(header)
        w.writerows(rows)


def _truth_frame(truth: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(truth)
    df["row"] = df.groupby("file").cumcount() + 1
    df["dirt"] = df["dirt"].map(lambda d: ";".join(d))
    for c in ["easting", "northing", "target_easting", "target_northing"]:
        df[c] = df[c].astype(float).round(1)
    return df[TRUTH_COLUMNS]


def generate(out_dir: Path, seed: int = 2018, n_scale: float = 1.0,
             postcodes_csv: Path | Sequence[Path] = DEFAULT_POSTCODES,
             stations_csv: Path = DEFAULT_STATIONS,
             streets: list[str] | None = None,
             schools_csv: Path | None = DEFAULT_SCHOOLS,
             police_csvs: Path | Sequence[Path] | None = DEFAULT_POLICE) -> dict:
    """Write the simulated partner extracts and their truth table into ``out_dir``.

    ``postcodes_csv`` is a Code-Point Open CSV (no header), a folder of them, or a list;
    ``police_csvs`` a police.uk street CSV, a folder of monthly ones, or a list (street names
    and their snap points, and the violent crimes the planted ED duplicates copy; None plants
    no duplicates and no street texts); ``streets`` restricts the street names used to those
    listed (names as police.uk spells them, without "On or near"); ``schools_csv`` is the
    London Schools Atlas CSV (named places; None for none).

    Returns a dict: ``files`` (name -> {path, rows, columns}), ``truth`` (path),
    ``patterns`` (hospital_hotspot / anecdotal_hotspot centres and sizes, duplicate count),
    ``never_survive`` (name -> columns a loader must drop), ``yos_header_row`` (1-based).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = load_reference(postcodes_csv, stations_csv, schools_csv, police_csvs, streets)
    hosp_xy = _station_xy(ref, HOSPITAL_HOTSPOT_STATION)
    anec_xy = _station_xy(ref, ANECDOTAL_HOTSPOT_STATION)
    # One independent stream per file: changing one file's generator leaves the others alone.
    ss_ed, ss_yos, ss_ci, ss_legacy, ss_homes, ss_missing = np.random.SeedSequence(seed).spawn(6)

    rng = np.random.default_rng(ss_ed)
    ed_recs, n_rep = _ed_records(rng, n_scale, ref, hosp_xy)
    ed_rows, ed_truth = _ed_rows(rng, ed_recs, n_rep, seed)
    _write_csv(out_dir / ED_FILE, ED_COLUMNS, ed_rows, "utf-8-sig", "\r\n")

    rng = np.random.default_rng(ss_yos)
    yos_rows, yos_truth = _yos_rows(rng, n_scale, ref)

    rng = np.random.default_rng(ss_ci)
    ci_rows, ci_truth = _ci_rows(rng, _ci_points(rng, n_scale, N_CI, N_CI_HOTSPOT_SHARE, ref,
                                                  anec_xy), ref)
    _write_csv(out_dir / CI_FILE, CI_COLUMNS, ci_rows, "utf-8", "\n")

    rng = np.random.default_rng(ss_legacy)
    legacy_recs = [r for r in _ci_points(rng, n_scale, N_LEGACY, N_LEGACY_HOTSPOT_SHARE, ref,
                                         anec_xy) if r["day"] <= np.datetime64("2018-12-31")]
    legacy_rows, legacy_truth = _legacy_rows(rng, legacy_recs, ref)
    _write_csv(out_dir / LEGACY_FILE, LEGACY_COLUMNS, legacy_rows, "cp1252", "\r\n")

    # Children's homes (simulated), the planted exploitation concerns and missing episodes, care homes.
    rng = np.random.default_rng(ss_homes)
    busy = pd.DataFrame(ed_truth + yos_truth + ci_truth + legacy_truth)[["easting", "northing"]].dropna()
    busy_x = np.concatenate([busy["easting"].to_numpy(float), ref.police["x"].to_numpy(float)])
    busy_y = np.concatenate([busy["northing"].to_numpy(float), ref.police["y"].to_numpy(float)])
    homes = _home_sites(rng, ref, busy_x, busy_y)
    home_rows, home_truth = _children_homes_rows(rng, homes, ref)
    _write_csv(out_dir / CHILDREN_HOMES_FILE, CHILDREN_HOMES_COLUMNS, home_rows, "utf-8-sig", "\r\n")
    care_rows, care_truth = _care_homes_rows(rng, ref, homes)
    _write_csv(out_dir / CARE_HOMES_FILE, CQC_COLUMNS, care_rows, "utf-8", "\n")
    planted_home = homes[homes["pattern"] == "exploitation_home"].iloc[0]
    more_yos, more_yos_truth = _yos_planted_rows(rng, ref, planted_home, len(yos_rows) + 1)
    _write_xlsx(out_dir / YOS_FILE, yos_rows + more_yos)
    yos_truth = yos_truth + more_yos_truth
    rng = np.random.default_rng(ss_missing)
    missing_rows, missing_truth = _missing_rows(rng, ref, homes)
    _write_csv(out_dir / MISSING_FILE, MISSING_COLUMNS, missing_rows, "utf-8-sig", "\r\n")

    truth = _truth_frame(ed_truth + yos_truth + ci_truth + legacy_truth + missing_truth + home_truth + care_truth)
    truth.to_csv(out_dir / TRUTH_FILE, index=False, lineterminator="\n")

    counts = truth.groupby("file").size().to_dict()
    columns = {ED_FILE: ED_COLUMNS, YOS_FILE: YOS_COLUMNS, CI_FILE: CI_COLUMNS,
               LEGACY_FILE: LEGACY_COLUMNS, MISSING_FILE: MISSING_COLUMNS,
               CHILDREN_HOMES_FILE: CHILDREN_HOMES_COLUMNS, CARE_HOMES_FILE: CQC_COLUMNS}
    by_pattern = truth.groupby("pattern").size().to_dict()
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "files": {name: {"path": str(out_dir / name), "rows": int(counts.get(name, 0)),
                         "columns": list(cols)} for name, cols in columns.items()},
        "truth": str(out_dir / TRUTH_FILE),
        "yos_header_row": YOS_TITLE_ROWS + 1,
        "never_survive": NEVER_SURVIVE,
        "patterns": {
            "hospital_hotspot": {"place": f"{HOSPITAL_HOTSPOT_STATION} station",
                                 "easting": hosp_xy[0], "northing": hosp_xy[1],
                                 "sd_m": HOTSPOT_SD_M["hospital_hotspot"], "files": [ED_FILE],
                                 "rows": int(by_pattern.get("hospital_hotspot", 0))},
            "anecdotal_hotspot": {"place": f"{ANECDOTAL_HOTSPOT_STATION} station",
                                  "easting": anec_xy[0], "northing": anec_xy[1],
                                  "sd_m": HOTSPOT_SD_M["anecdotal_hotspot"],
                                  "files": [CI_FILE, LEGACY_FILE],
                                  "rows": int(by_pattern.get("anecdotal_hotspot", 0))},
            "exploitation_home": {"place": f"{planted_home['name']} (children's home)",
                                  "easting": float(planted_home["x"]), "northing": float(planted_home["y"]),
                                  "radius_m": PLANTED_RADIUS_M, "files": [YOS_FILE, MISSING_FILE],
                                  "rows": int(by_pattern.get("exploitation_home", 0)) - 1},
            "quiet_home": {"place": f"{homes['name'].iloc[1]} (children's home)",
                           "easting": float(homes["x"].iloc[1]), "northing": float(homes["y"].iloc[1]),
                           "files": [], "rows": 0},
            "duplicate_of_police": {"rows": int(by_pattern.get("duplicate_of_police", 0)),
                                    "max_offset_m": DUPLICATE_MAX_OFFSET_M,
                                    "police_crime_type": "Violence and sexual offences"},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write simulated ED (ISTV), YOS and community "
                                            "intelligence extracts around real London geography.")
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "london_city_fringe" / "data"
                   / "partners",
                   help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=2018, help="random seed (default: %(default)s)")
    p.add_argument("--n-scale", type=float, default=1.0, help="multiply row counts (default: 1)")
    p.add_argument("--postcodes", type=Path, default=DEFAULT_POSTCODES,
                   help="Code-Point Open CSV or folder of them")
    p.add_argument("--stations", type=Path, default=DEFAULT_STATIONS, help="TfL stations CSV")
    p.add_argument("--schools", type=Path, default=DEFAULT_SCHOOLS, help="London Schools Atlas CSV")
    p.add_argument("--police", type=Path, default=DEFAULT_POLICE,
                   help="police.uk street CSV or folder of monthly CSVs")
    a = p.parse_args(argv)
    info = generate(a.out, seed=a.seed, n_scale=a.n_scale, postcodes_csv=a.postcodes,
                    stations_csv=a.stations, schools_csv=a.schools, police_csvs=a.police)
    for name, f in info["files"].items():
        print(f"{f['rows']:6d} rows  {f['path']}")
    print(f"truth: {info['truth']}")
    for name, pat in info["patterns"].items():
        where = f" around {pat['place']} ({pat['easting']:.0f}, {pat['northing']:.0f})" \
            if "place" in pat else ""
        print(f"{name}: {pat['rows']} rows{where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
