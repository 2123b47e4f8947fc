"""Dates as partners write them: day-first UK dates with a time in the same cell read with the base formats."""
import json
from pathlib import Path

import pandas as pd

from hotspots.load.dates import parse_when, with_times

ROOT = Path(__file__).resolve().parent.parent
BASE = json.loads((ROOT / "data_schemas" / "partner_generic.json").read_text(encoding="utf-8"))["date"]


def _parse(values, **spec):
    raw = pd.DataFrame({"d": values})
    return parse_when(raw, {**BASE, "column": "d", **spec})


def test_day_first_date_with_time_reads_as_that_minute():
    out = _parse(["03/07/2018 14:25", "3/7/2018 09:05:30", "03-Jul-2018 23:59", "2018-07-03T14:25:00"])
    assert list(out["reason"]) == ["", "", "", ""]
    assert out.loc[0, "occurred_from"] == pd.Timestamp("2018-07-03 14:25")   # 3 July, not 7 March
    assert out.loc[1, "occurred_from"] == pd.Timestamp("2018-07-03 09:05:30")
    assert out.loc[2, "occurred_to"] == pd.Timestamp("2018-07-03 23:59")
    assert (out["occurred_from"] == out["occurred_to"]).all()
    assert list(out["date_precision"]) == ["minute"] * 4


def test_midnight_is_a_date_without_time():
    out = _parse(["03/07/2018 00:00", "2018-07-03 00:00:00", "03/07/2018"])
    assert list(out["date_precision"]) == ["day"] * 3
    assert (out["occurred_to"] - out["occurred_from"] == pd.Timedelta(days=1) - pd.Timedelta(seconds=1)).all()


def test_month_precision_keeps_months_even_with_a_time():
    out = _parse(["03/07/2018 14:25"], precision="month")
    assert out.loc[0, "date_precision"] == "month"
    assert out.loc[0, "occurred_from"] == pd.Timestamp("2018-07-01")


def test_impossible_and_unparseable_with_time_keep_their_reasons():
    out = _parse(["31/02/2018 10:00", "next tuesday", ""])
    assert list(out["reason"]) == ["impossible date", "unparseable date", "no date"]


def test_with_times_keeps_the_written_order_first():
    got = with_times(["%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "ISO8601"])
    assert got[:3] == ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "ISO8601"]
    assert "%d/%m/%Y %H:%M" in got and "%Y-%m-%d %H:%M:%S %H:%M" not in got


def test_a_long_column_of_few_values_reads_as_each_value_alone():
    """A column of few distinct values is parsed once per value (hotspots.load.dates): a 4,000-row column
    of repeated dates, times, blanks, missing cells, impossible dates and text reads, row by row, as
    the same values read as a column of their own."""
    values = ["03/07/2018 14:25", "31/02/2019", "", None, "n/k", "2018-07-03T14:25:00", "3/7/2018", "14:25",
              "01/01/2091"]
    long = [values[k % len(values)] for k in range(4000)]
    for dtype in ("str", object):
        whole = _parse(pd.Series(long, dtype=dtype), precision="minute")
        alone = pd.concat([_parse(pd.Series([v], dtype=dtype), precision="minute") for v in values],
                          ignore_index=True)
        expect = alone.iloc[[k % len(values) for k in range(4000)]].reset_index(drop=True)
        pd.testing.assert_frame_equal(whole.reset_index(drop=True), expect)


def test_an_iso8601_cell_pandas_raises_on_is_that_row_not_the_run():
    # Hostile audit: one '-1' (a null code) or one basic-format stamp ('20180105T1000Z') in an ISO 8601
    # column stopped validate and run with an internal error (OutOfBoundsDatetime; "Mixed timezones
    # detected"), pandas raising for the whole column where it coerces other bad cells.
    values = ["2018-07-05T10:00:00", "-1", "20180705T1000Z", "2018-07-05T10Z", "2018-07-05T10:00:00+01:00",
              "junk", "2018-07-05"]
    out = _parse(values, format="ISO8601", formats=None, precision="minute")
    assert list(out["reason"]) == ["", "unparseable date", "", "", "", "unparseable date", ""]
    assert list(out["occurred_from"].dropna()) == [pd.Timestamp("2018-07-05 10:00"), pd.Timestamp("2018-07-05 11:00"),
                                                   pd.Timestamp("2018-07-05 11:00"), pd.Timestamp("2018-07-05 10:00"),
                                                   pd.Timestamp("2018-07-05")]


def test_a_time_the_formats_cannot_read_is_the_whole_day_with_a_note_and_a_warning(tmp_path):
    # Hostile audit: '12:30pm', '25:61' or '24:00' in a time column loaded as the whole day with no word
    # anywhere, as blank and 'UNK' are meant to: a column of '2:30 PM' lost every hour of a partner's
    # records in silence (no peak hours, no after-school share).
    unread = "time not read: the whole day"
    out = parse_when(pd.DataFrame({"d": ["05/01/2018"] * 5, "t": ["12:30pm", "25:61", "UNK", "", "14:25"]}),
                     {**BASE, "column": "d", "time_column": "t", "precision": "minute"})
    assert list(out["date_precision"]) == ["day", "day", "day", "day", "minute"]
    assert list(out["note"]) == [unread, unread, "", "", ""] and list(out["columns"][:2]) == ["t", "t"]
    import contextlib
    import io

    from hotspots.cli import main
    (tmp_path / "log.json").write_text(json.dumps({
        "name": "log", "extends": "partner_generic", "reader": {"format": "csv"},
        "fields": {"category": {"value": "violent-crime"}},
        "date": {"column": "Date", "time_column": "Time", "precision": "minute"},
        "location": {"kind": "en", "x": "Easting", "y": "Northing"}}), encoding="utf-8")
    (tmp_path / "log.csv").write_text("Date,Time,Easting,Northing\n" + "".join(
        f"05/01/2018,{t},532{k:03d},181300\n" for k, t in enumerate(["14:25", "2:30 PM", "UNK", "2:45 PM"])),
        encoding="utf-8")
    (tmp_path / "p.toml").write_text('[study]\nstart = "2018-01"\nend = "2018-01"\n[[sources]]\nid = "log"\n'
                                     'path = "log.csv"\nschema = "log.json"\nevidence = "partner_record"\n',
                                     encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["validate", str(tmp_path / "p.toml")]) == 0
    assert (f"warning: source 'log', file {tmp_path / 'log.csv'}: 2 rows' time (column Time) is not a time the "
            "mapping reads (row 2 is the first): each is taken as the whole day") in err.getvalue()
