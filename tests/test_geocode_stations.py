"""Station names as partners type them, against the real TfL stations file.

The labelled set below was written by hand from the station names of
``examples/london_city_fringe/data/buildings/tfl_stations_20220221.csv``, the way an
emergency department receptionist, a youth worker or a council officer types a place into a
free-text box: bare names (many stations are also district names), operator suffixes
(LU, NR, DLR, LO), "St" for Street and Saint, missing apostrophes, "&" and "and", "stn",
"tube", "o/s", lower and upper case, common short forms. It is not derived from the
partner data generator nor from the rules in ``hotspots/load/geocode.py`` /
``data_schemas/gazetteer.json``. Texts naming no station are labelled ``None``: any match is
wrong.

A match is correct when it lands within 250 m of the labelled station. Precision = correct /
matched, recall = correct / labelled with a station. The gazetteer is the example
partnership's own: the streets of the police.uk data, the stations and the schools.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests import partners as P

STATIONS = P.DATA / "buildings" / "tfl_stations_20220221.csv"

# (what the partner typed, the station it means as the TfL file names it, or None)
LABELLED = [
    # bare names, many also districts or streets
    ("Angel", "Angel"), ("angel", "Angel"), ("outside Angel", "Angel"), ("ANGEL TUBE", "Angel"),
    ("Borough", "Borough"), ("borough stn", "Borough"),
    ("Temple", "Temple"), ("temple station", "Temple"),
    ("Bank", "Bank and Monument"), ("Monument", "Bank and Monument"), ("bank station", "Bank and Monument"),
    ("Bank/Monument", "Bank and Monument"), ("Bank & Monument tube", "Bank and Monument"),
    ("Aldgate", "Aldgate"), ("aldgate tube", "Aldgate"), ("Aldgate East", "Aldgate East"),
    ("ALDGATE EAST STATION", "Aldgate East"),
    ("Moorgate", "Moorgate"), ("moorgate stn", "Moorgate"),
    ("Holborn", "Holborn"), ("Holborn tube station", "Holborn"),
    ("Whitechapel", "Whitechapel"), ("whitechapel station", "Whitechapel"),
    ("Farringdon", "Farringdon"), ("Farringdon Stn", "Farringdon"),
    ("Barbican", "Barbican"), ("barbican tube", "Barbican"),
    ("Embankment", "Embankment"), ("embankment tube", "Embankment"),
    ("Southwark", "Southwark"), ("southwark tube", "Southwark"),
    ("Bermondsey", "Bermondsey"), ("Hoxton", "Hoxton"), ("hoxton overground", "Hoxton"),
    ("Haggerston", "Haggerston"), ("Wapping", "Wapping"), ("wapping station", "Wapping"),
    ("Rotherhithe", "Rotherhithe"), ("Euston", "Euston LU"), ("Waterloo", "Waterloo LU"),
    ("Victoria", "Victoria LU"), ("victoria station", "Victoria LU"),
    ("Stepney Green", "Stepney Green"), ("Camden Town", "Camden Town"), ("camden town tube", "Camden Town"),
    ("Covent Garden", "Covent Garden"), ("covent garden station", "Covent Garden"),
    ("Tower Hill", "Tower Hill"), ("tower hill tube", "Tower Hill"), ("Canada Water", "Canada Water"),
    ("Surrey Quays", "Surrey Quays"), ("Cambridge Heath", "Cambridge Heath"), ("Chalk Farm", "Chalk Farm"),
    # operator and mode suffixes
    ("Liverpool Street NR", "Liverpool Street NR"), ("Liverpool St LU", "Liverpool Street LU"),
    ("liverpool st station", "Liverpool Street LU"), ("LIVERPOOL ST STN", "Liverpool Street LU"),
    ("Shadwell DLR", "Shadwell DLR"), ("Shadwell LO", "Shadwell LO"), ("shadwell station", "Shadwell LO"),
    ("Euston NR", "Euston NR"), ("Euston LU", "Euston LU"), ("euston station", "Euston LU"),
    ("Waterloo LU", "Waterloo LU"), ("waterloo stn", "Waterloo LU"),
    ("Bethnal Green LO", "Bethnal Green LO"), ("Bethnal Green LU", "Bethnal Green LU"),
    ("bethnal green tube", "Bethnal Green LU"),
    ("Blackfriars LU", "Blackfriars LU"), ("blackfriars station", "Blackfriars LU"),
    ("Cannon Street LU", "Cannon Street LU"), ("cannon st stn", "Cannon Street LU"),
    ("London Bridge LU", "London Bridge LU"), ("london bridge station", "London Bridge LU"),
    ("London Bridge NR", "London Bridge LU"),
    ("Charing Cross LU", "Charing Cross LU"), ("charing x station", "Charing Cross LU"),
    ("Elephant & Castle LU", "Elephant & Castle LU"), ("Elephant and Castle", "Elephant & Castle LU"),
    ("elephant and castle tube", "Elephant & Castle LU"), ("Victoria LU", "Victoria LU"),
    ("Tower Gateway DLR", "Tower Gateway"), ("Wapping LO", "Wapping"), ("Hoxton LO", "Hoxton"),
    # St for Street and Saint, apostrophes, '&' and 'and'
    ("Bond St", "Bond Street"), ("bond st tube", "Bond Street"), ("Goodge St", "Goodge Street"),
    ("goodge st stn", "Goodge Street"), ("Warren St", "Warren Street"), ("warren st tube", "Warren Street"),
    ("Great Portland St", "Great Portland Street"), ("gt portland st station", "Great Portland Street"),
    ("Old St stn", "Old Street"), ("old street station", "Old Street"), ("Old St tube", "Old Street"),
    ("St Pauls", "St. Paul's"), ("St. Paul's station", "St. Paul's"), ("st pauls tube", "St. Paul's"),
    ("ST PAULS STN", "St. Paul's"),
    ("St James Park", "St. James's Park"), ("St James's Park station", "St. James's Park"),
    ("st jamess park tube", "St. James's Park"),
    ("Regents Park", "Regent's Park"), ("regents park station", "Regent's Park"),
    ("Caledonian Rd & Barnsbury", "Caledonian Road & Barnsbury"),
    ("caledonian road and barnsbury station", "Caledonian Road & Barnsbury"),
    ("Shoreditch High St", "Shoreditch High Street"), ("shoreditch high st overground", "Shoreditch High Street"),
    ("Euston Sq", "Euston Square"), ("euston square tube", "Euston Square"),
    ("Leicester Sq", "Leicester Square"), ("leicester sq station", "Leicester Square"),
    ("Russell Sq", "Russell Square"), ("russell square tube", "Russell Square"),
    ("Sloane Sq", "Sloane Square"), ("Tottenham Ct Rd", "Tottenham Court Road"),
    ("tottenham court rd station", "Tottenham Court Road"), ("TCR", "Tottenham Court Road"),
    ("Chancery Ln", "Chancery Lane"), ("chancery lane tube", "Chancery Lane"),
    ("Hyde Park Corner", "Hyde Park Corner"), ("Oxford Circus", "Oxford Circus"),
    ("oxford circus tube", "Oxford Circus"), ("Piccadilly Circus", "Piccadilly Circus"),
    ("picadilly circus", "Piccadilly Circus"), ("Mansion House", "Mansion House"),
    ("mansion house tube", "Mansion House"), ("Mornington Cres", "Mornington Crescent"),
    ("Lambeth North", "Lambeth North"), ("Green Park", "Green Park"), ("green park tube", "Green Park"),
    ("Westminster", "Westminster"), ("westminster tube", "Westminster"),
    ("Camden Rd", "Camden Road"), ("camden road station", "Camden Road"), ("London Fields", "London Fields"),
    # King's Cross St. Pancras as people write it
    ("Kings Cross", "King's Cross St. Pancras"), ("King's Cross", "King's Cross St. Pancras"),
    ("kings x", "King's Cross St. Pancras"), ("Kings X station", "King's Cross St. Pancras"),
    ("KINGS CROSS ST PANCRAS", "King's Cross St. Pancras"), ("St Pancras", "King's Cross St. Pancras"),
    ("kings cross tube", "King's Cross St. Pancras"),
    # with the usual words around them
    ("o/s Angel tube", "Angel"), ("outside liverpool st station", "Liverpool Street LU"),
    ("nr Old St station", "Old Street"), ("on the platform at Bank", "Bank and Monument"),
    ("ticket hall, Moorgate", "Moorgate"), ("bus stop outside Aldgate East", "Aldgate East"),
    ("in Farringdon station", "Farringdon"), ("at Whitechapel stn", "Whitechapel"),
    ("near Borough tube", "Borough"), ("outside Euston", "Euston LU"),
    # naming no station: any match is wrong
    ("by the bank", None), ("at the bank", None), ("home", None), ("friends house", None),
    ("in the park", None), ("victoria park", None), ("school", None), ("at a party", None),
    ("angel lane", None), ("bank holiday party", None), ("don't know", None), ("the temple", None),
    ("on the bus", None), ("at the station", None), ("police station", None),
]

# Written after the station rules were made on LABELLED, before they were run on it: the rules never saw it.
HELD_OUT = [
    ("Monument stn", "Bank and Monument"), ("MONUMENT", "Bank and Monument"), ("at Bank tube", "Bank and Monument"),
    ("Temple tube", "Temple"), ("o/s Temple", "Temple"), ("Barbican LU", "Barbican"), ("Moorgate LU", "Moorgate"),
    ("Aldgate LU", "Aldgate"), ("Whitechapel LO", "Whitechapel"), ("Whitechapel Elizabeth line", "Whitechapel"),
    ("Farringdon Elizabeth Line", "Farringdon"), ("Farringdon NR", "Farringdon"),
    ("Liverpool St Elizabeth line", "Liverpool Street LU"), ("Canada Water LO", "Canada Water"),
    ("Surrey Quays LO", "Surrey Quays"), ("Rotherhithe LO", "Rotherhithe"), ("Haggerston LO", "Haggerston"),
    ("Cambridge Heath NR", "Cambridge Heath"), ("London Fields NR", "London Fields"), ("Camden Rd LO", "Camden Road"),
    ("Caledonian Rd and Barnsbury", "Caledonian Road & Barnsbury"),
    ("Kings Cross St Pancras tube", "King's Cross St. Pancras"), ("Kings X St Pancras", "King's Cross St. Pancras"),
    ("kingscross", "King's Cross St. Pancras"), ("St Pancras International", "King's Cross St. Pancras"),
    ("Elephant", "Elephant & Castle LU"), ("Elephant and Castle station", "Elephant & Castle LU"),
    ("Lambeth Nth", "Lambeth North"), ("Tower Hill station", "Tower Hill"), ("Tower Gateway", "Tower Gateway"),
    ("Mansion Hse", "Mansion House"), ("Chalk Farm tube", "Chalk Farm"),
    ("Mornington Crescent tube", "Mornington Crescent"), ("Goodge Street station", "Goodge Street"),
    ("Warren Street tube", "Warren Street"), ("Euston Square station", "Euston Square"),
    ("Regent's Park tube", "Regent's Park"), ("St Jamess Park", "St. James's Park"),
    ("St. James Park tube", "St. James's Park"), ("Oxford Circ", "Oxford Circus"),
    ("Leicester Square tube", "Leicester Square"), ("Covent Gdn", "Covent Garden"), ("Holborn station", "Holborn"),
    ("Chancery Lane station", "Chancery Lane"), ("Russell Sq station", "Russell Square"),
    ("Old Street roundabout", "Old Street"), ("Shoreditch High Street station", "Shoreditch High Street"),
    ("Hoxton station", "Hoxton"), ("Wapping tube", "Wapping"), ("Stepney Green tube", "Stepney Green"),
    ("Bethnal Green", "Bethnal Green LU"), ("Bethnal Grn", "Bethnal Green LU"), ("Southwark station", "Southwark"),
    ("Borough LU", "Borough"), ("London Bridge", "London Bridge LU"), ("Cannon St", "Cannon Street LU"),
    ("Blackfriars", "Blackfriars LU"), ("Charing Cross", "Charing Cross LU"), ("Waterloo station", "Waterloo LU"),
    ("Victoria stn", "Victoria LU"), ("Green Park station", "Green Park"), ("Hyde Park Corner tube", "Hyde Park Corner"),
    ("Sloane Square station", "Sloane Square"), ("Embankment station", "Embankment"),
    ("Westminster station", "Westminster"), ("Angel station", "Angel"), ("Euston mainline", "Euston NR"),
    ("outside the bank", None), ("at the angel pub", None), ("borough market", None), ("bank account", None),
    ("my house", None), ("canada", None), ("london", None), ("westminster council offices", None),
    ("holborn library", None),
]


def _stations() -> pd.DataFrame:
    st = pd.read_csv(STATIONS, dtype={"NAME": str}, encoding="utf-8-sig")
    return st.drop_duplicates("NAME").set_index("NAME")[["EASTING", "NORTHING"]]


@pytest.fixture(scope="module")
def geocoder(tmp_path_factory):
    """The example partnership's geocoder: police.uk street names, stations, schools, postcodes."""
    from hotspots.config import load_config
    from hotspots.load.geocode import build_geocoder
    from hotspots.load.mapping import street_points_from
    from hotspots.load.readers import read_source
    from hotspots.load.spec import resolve_schema

    cfg = load_config(P.partner_config(tmp_path_factory.mktemp("stations"), sources=("ed",)))
    streets = []
    for src in cfg.sources:
        schema = resolve_schema(src.schema, cfg.base)
        if src.schema.startswith("police_uk"):
            for path in src.files(cfg.base):
                streets.append(street_points_from(read_source(path, schema["reader"]).rows, schema))
    return build_geocoder(cfg, streets, need_postcodes=True)


def measure(geocoder, labelled=LABELLED) -> dict:
    """precision, recall, and the rows, of a labelled set."""
    st = _stations()
    texts = pd.Series([t for t, _ in labelled])
    got = geocoder.geocode_text(texts)
    truth = [lab for _, lab in labelled]
    tx = np.array([st.at[lab, "EASTING"] if lab else np.nan for lab in truth], dtype=float)
    ty = np.array([st.at[lab, "NORTHING"] if lab else np.nan for lab in truth], dtype=float)
    matched = (got["level"] != "unmatched").to_numpy()
    d = np.hypot(got["x"].to_numpy(float) - tx, got["y"].to_numpy(float) - ty)
    correct = matched & (d <= 250)
    labelled = np.array([lab is not None for lab in truth])
    rows = got.assign(text=texts, label=truth, d=d, correct=correct)
    return {"precision": correct.sum() / max(matched.sum(), 1), "recall": correct.sum() / labelled.sum(),
            "matched": int(matched.sum()), "correct": int(correct.sum()), "labelled": int(labelled.sum()),
            "false": rows[matched & ~correct], "missed": rows[labelled & ~matched], "rows": rows}


def test_the_labelled_names_are_real_stations():
    names = set(_stations().index)
    assert {lab for _, lab in LABELLED + HELD_OUT if lab} <= names
    assert (len(LABELLED), sum(lab is None for _, lab in LABELLED)) == (168, 15)
    assert (len(HELD_OUT), sum(lab is None for _, lab in HELD_OUT)) == (76, 9)


def test_station_names_as_partners_write_them(geocoder):
    """Before the station rules: precision 1.000, recall 0.771 (118 of 153; every bare one-word name,
    'LU'/'LO'/'NR' suffixes, 'charing x', 'gt portland st', 'TCR' missed). After: 1.000 and 1.000."""
    m = measure(geocoder)
    print(f"\nprecision {m['precision']:.3f} recall {m['recall']:.3f} ({m['correct']} of {m['labelled']} labelled, "
          f"{m['matched']} matched)")
    print("wrong:", m["false"][["text", "name", "label", "d"]].to_string())
    print("missed:", m["missed"][["text", "label"]].to_string())
    assert m["precision"] >= 0.99 and m["recall"] >= 0.99
    assert not m["rows"].loc[m["rows"]["label"].isna(), "level"].ne("unmatched").any()   # 15 texts naming none


def test_a_bare_district_name_is_the_wider_place_a_suffix_the_station(geocoder):
    got = geocoder.geocode_text(pd.Series(["Angel", "Angel tube", "Euston NR", "by the bank", "Bank", "the temple"]))
    assert list(got["level"]) == ["place", "place", "place", "unmatched", "place", "unmatched"]
    assert list(got["location_precision_m"].iloc[:3]) == [400.0, 100.0, 100.0]
    assert got["name"].iloc[4] == "Bank and Monument" and got["location_precision_m"].iloc[4] == 400.0


def test_held_out_station_names(geocoder):
    m = measure(geocoder, HELD_OUT)
    print(f"\nheld out: precision {m['precision']:.3f} recall {m['recall']:.3f} ({m['correct']} of {m['labelled']} "
          f"labelled, {m['matched']} matched)")
    print("wrong:", m["false"][["text", "name", "label", "d"]].to_string())
    print("missed:", m["missed"][["text", "label"]].to_string())
    # Before the station rules: precision 0.980, recall 0.716 (48 of 67). After: 0.984 and 0.910 (61 of 67):
    # missed 'kingscross', 'Lambeth Nth', 'Mansion Hse', 'Oxford Circ', 'Bethnal Grn'; wrong: 'Old Street
    # roundabout' placed on Old Street (the street's median, 348 m from the station).
    assert m["precision"] >= 0.98 and m["recall"] >= 0.90
    assert not m["rows"].loc[m["rows"]["label"].isna(), "level"].ne("unmatched").any()


# Streets and schools, written by hand the same way from the police.uk street names of the example's City
# of London data and the London Schools Atlas names; measured, not tuned (no rule was changed for them).
STREETS = [
    ("Cheapside", "Cheapside"), ("outside 10 cheapside", "Cheapside"), ("Queen Victoria St", "Queen Victoria Street"),
    ("queen victoria st nr the bank", "Queen Victoria Street"), ("Gracechurch St", "Gracechurch Street"),
    ("Leadenhall St", "Leadenhall Street"), ("LEADENHALL STREET", "Leadenhall Street"), ("Fleet St", "Fleet Street"),
    ("fleet street by the tesco", "Fleet Street"), ("Aldersgate St", "Aldersgate Street"),
    ("London Wall", "London Wall"), ("london wall car park", "London Wall"), ("Ludgate Hill", "Ludgate Hill"),
    ("King William St", "King William Street"), ("K William St", "King William Street"),
    ("Old Broad St", "Old Broad Street"), ("Houndsditch", "Houndsditch"), ("houndsditch o/s the bar", "Houndsditch"),
    ("Great Tower St", "Great Tower Street"), ("Gt Tower St", "Great Tower Street"), ("Golden Ln", "Golden Lane"),
    ("St Mary Axe", "St Mary Axe"), ("st mary axe (gherkin)", "St Mary Axe"), ("Wormwood St", "Wormwood Street"),
    ("Fetter Ln", "Fetter Lane"), ("Eastcheap", "Eastcheap"), ("Artillery Ln", "Artillery Lane"),
    ("Mansell St", "Mansell Street"), ("Aldgate High St", "Aldgate High Street"), ("Bow Ln", "Bow Lane"),
    ("Gresham St", "Gresham Street"), ("Watling St", "Watling Street"), ("Eldon St", "Eldon Street"),
    ("Fish St Hill", "Fish Street Hill"), ("Ropemaker St", "Ropemaker Street"), ("Camomile St", "Camomile Street"),
    ("Devonshire Sq", "Devonshire Square"), ("Warwick Ln", "Warwick Lane"), ("Carthusian St", "Carthusian Street"),
    ("Pepys St", "Pepys Street"), ("Finch Ln", "Finch Lane"), ("Mincing Ln", "Mincing Lane"),
]
SCHOOLS = [
    ("Prior Weston school", "Prior Weston Primary School and Children's Centre"),
    ("Prior Weston Primary", "Prior Weston Primary School and Children's Centre"),
    ("St Lukes C of E primary", "St Luke's CofE Primary School"), ("St Luke's CE Primary School", "St Luke's CofE Primary School"),
    ("Central Foundation Boys School", "Central Foundation Boys' School"),
    ("City of London School for Girls", "City of London School for Girls"),
    ("Sir John Cass school", "Sir John Cass's Foundation Primary School"),
    ("Sir John Cass Foundation Primary", "Sir John Cass's Foundation Primary School"),
    ("Clerkenwell Parochial school", "Clerkenwell Parochial CofE Primary School"), ("Haggerston School", "Haggerston School"),
    ("Virginia Primary", "Virginia Primary School"), ("St Monicas RC primary", "St Monica's Roman Catholic Primary School"),
    ("Randal Cremer school", "Randal Cremer Primary School"), ("Elizabeth Garrett Anderson school", "Elizabeth Garrett Anderson School"),
    ("Stewart Headlam primary", "Stewart Headlam Primary School"), ("Thomas Buxton primary school", "Thomas Buxton Primary School"),
    ("Osmani school", "Osmani Primary School"), ("outside Hermitage primary", "Hermitage Primary School"),
    ("Bigland Green primary", "Bigland Green Primary School"), ("Canon Barnett primary", "Canon Barnett Primary School"),
    ("Columbia primary school", "Columbia Primary School"), ("Christ Church CofE school", "Christ Church CofE School"),
    ("Argyle primary school", "Argyle Primary School"), ("outside Argyle school", "Argyle Primary School"),
    ("Edith Neville school", "Edith Neville Primary School"), ("Regent High School", "Regent High School"),
    ("St Pauls Cathedral School", "St Paul's Cathedral School"),
    ("St Aloysius RC junior school", "St Aloysius Roman Catholic Junior School"),
]


def _street_points() -> pd.DataFrame:
    import glob
    files = sorted(glob.glob(str(P.DATA / "city_street" / "*-street.csv")))
    df = pd.concat([pd.read_csv(f, usecols=["Location", "Longitude", "Latitude"]) for f in files]).dropna()
    df["name"] = df["Location"].str.replace("On or near ", "", regex=False)
    from pyproj import Transformer
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True).transform(df["Longitude"].to_numpy(),
                                                                                     df["Latitude"].to_numpy())
    return df.assign(E=x, N=y).groupby("name")[["E", "N"]].median()


def _measure_at(geocoder, labelled, where: pd.DataFrame) -> dict:
    texts = pd.Series([t for t, _ in labelled])
    got = geocoder.geocode_text(texts)
    tx = np.array([where.at[lab, "E"] for _, lab in labelled], dtype=float)
    ty = np.array([where.at[lab, "N"] for _, lab in labelled], dtype=float)
    matched = (got["level"] != "unmatched").to_numpy()
    correct = matched & (np.hypot(got["x"].to_numpy(float) - tx, got["y"].to_numpy(float) - ty) <= 250)
    return {"precision": correct.sum() / max(matched.sum(), 1), "recall": correct.sum() / len(labelled),
            "rows": got.assign(text=texts, correct=correct)}


def test_street_and_school_names_as_partners_write_them(geocoder):
    streets = _street_points()
    schools = pd.read_csv(P.DATA / "buildings" / "all_schools_xy_2016.csv", dtype=str, encoding="latin-1")
    schools = schools.drop_duplicates("SCHOOL_NAM").set_index("SCHOOL_NAM")[["EASTING", "NORTHING"]].astype(float)
    schools.columns = ["E", "N"]
    st = _measure_at(geocoder, STREETS, streets)
    sc = _measure_at(geocoder, SCHOOLS, schools)
    print(f"\nstreets: precision {st['precision']:.3f} recall {st['recall']:.3f}; "
          f"schools: precision {sc['precision']:.3f} recall {sc['recall']:.3f}")
    for m in (st, sc):
        r = m["rows"]
        print(r.loc[~r["correct"], ["text", "level", "name"]].to_string())
    # Measured: streets 0.949 / 0.881 (Fleet Street is long: its median is over 250 m from the City's
    # points; London Wall's points spread over 500 m, so it is left out as ambiguous; 'K William St').
    # Schools 1.000 / 0.679 before the short-name rule, 1.000 / 1.000 after (the rule was made on this set).
    assert st["precision"] >= 0.94 and st["recall"] >= 0.88
    assert sc["precision"] == 1.0 and sc["recall"] == 1.0


# Written after the short-name rule was made on SCHOOLS, before it was run on these.
SCHOOLS_HELD_OUT = [
    ("St Josephs primary", "St Josephs Primary School"), ("Hanover school", "Hanover Primary School"),
    ("Moreland primary", "Moreland Primary School"), ("Winton school", "Winton Primary School"),
    ("St Peter and Paul RC primary", "St Peter and St Paul RC Primary School"), ("Hague primary", "Hague Primary School"),
    ("Lawdale school", "Lawdale Junior School"), ("Shapla school", "Shapla Primary School"),
    ("Kobi Nazrul primary", "Kobi Nazrul Primary School"), ("William Davis school", "William Davis Primary School"),
    ("St Annes catholic primary", "St Anne's Catholic Primary School"),
    ("English Martyrs RC school", "English Martyrs Roman Catholic Primary School"),
    ("St Matthias school", "St Matthias Church of England Primary School"), ("Sebright school", "Sebright School"),
    ("Thomas Fairchild school", "Thomas Fairchild Community School"), ("London Nautical", "London Nautical School"),
    ("City of London School", "City of London School"), ("Dallington school", "Dallington School"),
    ("Charterhouse Sq school", "Charterhouse Square School"), ("Ebrahim Academy", "Ebrahim Academy"),
    ("school", None), ("outside the school", None), ("primary school gates", None), ("at college", None),
]


def test_held_out_school_names(geocoder):
    schools = pd.read_csv(P.DATA / "buildings" / "all_schools_xy_2016.csv", dtype=str, encoding="latin-1")
    schools = schools.drop_duplicates("SCHOOL_NAM").set_index("SCHOOL_NAM")[["EASTING", "NORTHING"]].astype(float)
    schools.columns = ["E", "N"]
    texts = pd.Series([t for t, _ in SCHOOLS_HELD_OUT])
    got = geocoder.geocode_text(texts)
    lab = [lab for _, lab in SCHOOLS_HELD_OUT]
    tx = np.array([schools.at[x, "E"] if x else np.nan for x in lab])
    ty = np.array([schools.at[x, "N"] if x else np.nan for x in lab])
    matched = (got["level"] != "unmatched").to_numpy()
    correct = matched & (np.hypot(got["x"].to_numpy(float) - tx, got["y"].to_numpy(float) - ty) <= 250)
    n_lab = sum(x is not None for x in lab)
    precision, recall = correct.sum() / max(matched.sum(), 1), correct.sum() / n_lab
    print(f"\nschools held out: precision {precision:.3f} recall {recall:.3f} ({correct.sum()} of {n_lab}, "
          f"{matched.sum()} matched)")
    print(got.assign(text=texts, label=lab)[~correct][["text", "level", "name", "label"]].to_string())
    # Before the short-name rule 1.000 / 0.500 (10 of 20); after 1.000 / 0.850 (17 of 20): missed 'St Peter and Paul RC primary', 'English Martyrs RC school' (the file
    # writes Roman Catholic in full there, "rc" is not dropped from the text) and 'London Nautical' (no
    # school word); none of the 4 texts naming no school matched.
    assert precision == 1.0 and recall >= 0.85
    assert not matched[[x is None for x in lab]].any()
