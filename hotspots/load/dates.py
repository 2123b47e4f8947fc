"""Dates and times of incidents: one column, or a date and a time column, in the formats a partner writes.

``parse_when(raw, spec)`` reads the schema's ``date`` entry:

- ``column``: the date column; ``formats`` (a list of strftime formats tried in
  order, first that parses wins) or ``format`` (one format, or "ISO8601" for
  stamped UTC times, converted to UK clock time);
  Every date-only format is also tried with a time after it (``" %H:%M"``,
  ``" %H:%M:%S"``, ``"T%H:%M:%S"``; ``with_times``), after the formats as
  written: a council log's ``03/07/2018 14:25`` reads as 3 July 2018, 14:25
  with the base formats, day first as UK partners write.
- ``precision``: "month", "day" or "minute" (the finest the source gives);
  at "day" without a ``time_column``, a row whose date cell carries a time of
  day other than midnight is "minute" (a time of 00:00 is a spreadsheet's
  date without time, and stays "day");
- ``time_column`` and ``time_formats``: when a time is given the precision is
  minute, when it is blank or unknown ("UNK", "n/k", "?") the whole day;
- ``fallback``: ``{"column", "time_column", "hours_before", "note"}``: when
  the date is blank, the incident happened within ``hours_before`` hours before
  this one (an emergency department's arrival time): the window is that span
  and the precision "day"; each such row gets the ``note`` in the ledger.
- ``earliest``: the earliest plausible date (default 1990-01-01); dates after
  today are rejected too (a year typed 2091 for 2019).

It returns one row per input row: ``occurred_from``, ``occurred_to``,
``date_precision``, and ``reason`` / ``columns`` (why a row is rejected, and
which columns) and ``note``. Reasons: "no date", "unparseable date",
"impossible date" (a date shape that is no calendar day, such as 31/02/2019),
"date in the future", "date before <earliest>", "date and time swapped". A
reason never quotes the cell: a date column may hold free text.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.load.readers import pick

_TIME_SHAPE = r"\d{1,2}[:.]\d{2}(:\d{2})?"
_DATE_SHAPE = r"\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}"
_DATE_TIME_SHAPE = _DATE_SHAPE + r"([ T]" + _TIME_SHAPE + ")?"
DEFAULT_TIME_FORMATS = ["%H:%M", "%H:%M:%S", "%H.%M", "%H%M"]
# Time cells that say the time is not known: the whole day, with no word. Any other cell the time
# formats cannot read is the whole day too, with a note (``TIME_UNREAD``) the load turns into a warning.
UNKNOWN_TIMES = {"unk", "unknown", "n/k", "nk", "not known", "?", "n/a", "na", "-", "--"}
TIME_UNREAD = "time not read: the whole day"


def _once_per_value(parse, text: pd.Series, formats: list[str]) -> pd.Series:
    """``parse(text, formats)``, parsing each distinct value once when there are few (police.uk's months,
    a log's days, times of day): the 10 M benchmark council log's 1.4 M dates, 4.7 s -> 1.0 s under the
    profiler. The same values either way."""
    codes, values = pd.factorize(text)
    if len(values) >= len(text) // 4:
        return parse(text, formats)
    parsed = parse(pd.Series(values, dtype=text.dtype), formats).to_numpy()
    # Code -1 is a missing cell: NaT, as parsing it gives.
    return pd.Series(np.append(parsed, np.array(["NaT"], dtype=parsed.dtype))[codes], index=text.index,
                     dtype=parsed.dtype)


def parse_date_text(text: pd.Series, formats: list[str]) -> pd.Series:
    """Each value parsed with the first of ``formats`` that reads it (NaT when none does).

    "ISO8601" reads stamped times (police.uk stop and search) and gives UK
    clock time: profiles by hour need local time, not UTC.
    """
    return _once_per_value(_parse_dates, text, formats)


def _parse_dates(text: pd.Series, formats: list[str]) -> pd.Series:
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = out.isna() & (text != "")
        if not todo.any():
            break
        if fmt == "ISO8601":
            # A stamped time (Z or an offset) is an instant: UK clock time at it. A time without one is
            # already clock time as written, and a date alone is that date: read as UTC, a summer
            # '2019-05-06' became 01:00 and '2019-06-01T22:00:00' 23:00.
            cells = text[todo]
            stamped = cells.str.contains(_OFFSET, regex=True)
            ts = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[ns]")
            if stamped.any():
                ts[stamped] = _iso(cells[stamped], utc=True)
            if (~stamped).any():
                ts[~stamped] = _iso(cells[~stamped], utc=False)
        else:
            ts = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        # A year pandas' nanoseconds cannot hold (31/12/9999, a "no end date" placeholder; 0018, a typo)
        # is no date here, so the row is rejected as one (hostile audit: it stopped the whole run).
        ts = ts.where((ts >= pd.Timestamp.min) & (ts <= pd.Timestamp.max))
        out[todo] = ts.astype("datetime64[ns]")
    return out


def _iso(cells: pd.Series, utc: bool) -> pd.Series:
    """ISO 8601 cells as UK clock time (NaT where unread). pandas raises for a whole column, not coerces,
    when one cell gives a year before 1 ('-1', a null code) or an offset the stamped pattern does not see
    ('20180105T1000Z', '2018-01-05T10Z' among times without one: "Mixed timezones"): the run stopped with
    an internal error. Then each cell is read alone, a stamped one at its UK clock time."""
    def clock(ts: pd.Series) -> pd.Series:
        return ts.dt.tz_convert("Europe/London").dt.tz_localize(None) if ts.dt.tz is not None else ts
    try:
        return clock(pd.to_datetime(cells, format="ISO8601", errors="coerce", utc=utc)).astype("datetime64[ns]")
    except (ValueError, OverflowError):     # OutOfBoundsDatetime is a ValueError
        pass
    out = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[ns]")
    for k, cell in cells.items():
        try:
            out[k] = clock(pd.to_datetime(pd.Series([cell]), format="ISO8601", errors="coerce", utc=utc)).iloc[0]
        except (ValueError, OverflowError):
            pass
    return out


# An ISO 8601 time that says its offset from UTC: hh:mm[:ss[.f]] then Z, +01:00, +0100 or -05.
ISO_STAMPED_TIME = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)"
_OFFSET = ISO_STAMPED_TIME + "$"


def parse_time_text(text: pd.Series, formats: list[str]) -> pd.Series:
    """Times of day as Timedeltas (NaT when blank or not a time: "UNK", "n/k", "?")."""
    return _once_per_value(_parse_times, text, formats)


def _parse_times(text: pd.Series, formats: list[str]) -> pd.Series:
    out = pd.Series(pd.NaT, index=text.index, dtype="timedelta64[ns]")
    for fmt in formats:
        todo = out.isna() & (text != "")
        if not todo.any():
            break
        ts = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        out[todo] = (ts - ts.dt.normalize()).astype("timedelta64[ns]")
    return out


_TIME_SUFFIXES = (" %H:%M", " %H:%M:%S", "T%H:%M:%S")


def with_times(formats: list[str]) -> list[str]:
    """``formats`` as written, then each date-only one with a time after it (``_TIME_SUFFIXES``)."""
    extra = [f + t for f in formats if f != "ISO8601" and "%H" not in f and "%d" in f for t in _TIME_SUFFIXES]
    return list(dict.fromkeys([*formats, *extra]))


def _formats(spec: dict) -> list[str]:
    fmts = spec.get("formats") or [spec.get("format", "ISO8601")]
    return with_times([fmts] if isinstance(fmts, str) else list(fmts))


def parse_when(raw: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """See the module docstring."""
    idx = raw.index
    formats = _formats(spec)
    precision = spec.get("precision", "day")
    tformats = spec.get("time_formats", DEFAULT_TIME_FORMATS)
    dcol, tcol = spec["column"], spec.get("time_column")
    cols_dt = dcol + (f",{tcol}" if tcol else "")
    d, t = pick(raw, dcol), pick(raw, tcol)
    out = pd.DataFrame({"occurred_from": pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]"),
                        "occurred_to": pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]"),
                        "date_precision": precision if precision == "month" else "day",
                        "reason": "", "columns": "", "note": ""}, index=idx)
    reason = np.full(len(idx), "", dtype=object)
    columns = np.full(len(idx), "", dtype=object)

    def reject(mask, why: str, cols: str):
        """Reject the rows of ``mask`` not yet rejected."""
        new = np.asarray(mask, dtype=bool) & (reason == "")
        if new.any():
            reason[new] = why
            columns[new] = cols

    def bad_date(text: pd.Series, parsed: pd.Series, mask, cols):
        failed = mask & parsed.isna()
        if failed.any():
            shaped = text.str.fullmatch(_DATE_TIME_SHAPE).fillna(False).astype(bool)
            reject(failed & shaped, "impossible date", cols)
            reject(failed, "unparseable date", cols)

    day = parse_date_text(d, formats)
    if tcol:
        # A time where the date should be, and a date where the time should be: columns swapped.
        swapped = d.str.fullmatch(_TIME_SHAPE).fillna(False).astype(bool) & \
            t.str.fullmatch(_DATE_SHAPE).fillna(False).astype(bool)
        reject(swapped, "date and time swapped", cols_dt)
    fb = spec.get("fallback")
    blank = d == ""
    if fb is None:
        reject(blank, "no date", dcol)
    bad_date(d, day, ~blank, dcol)
    start = day.copy()
    if precision == "month":
        start = day.dt.to_period("M").dt.start_time
        end = start + pd.offsets.MonthBegin(1) - pd.Timedelta(seconds=1)
    elif precision == "day" or not tcol:
        if precision == "minute" and not tcol:   # one column holding date and time
            end = day.copy()
            out["date_precision"] = "minute"
        else:
            start = day.dt.normalize()
            end = start + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
            if not tcol:   # a time written in the date cell ("03/07/2018 14:25"); 00:00 is no time
                timed = (day.notna() & (day != start)).to_numpy()
                start, end = start.where(~timed, day), end.where(~timed, day)
                out.loc[timed, "date_precision"] = "minute"
    else:
        tod = parse_time_text(t, tformats)
        timed = tod.notna()
        # '12:30pm', '25:61': a time the formats do not read is the whole day, said (it was silent).
        unread = (~timed & (d != "") & (t != "") & ~t.str.lower().isin(UNKNOWN_TIMES)).to_numpy()
        out.loc[unread, "note"] = TIME_UNREAD
        columns[unread & (reason == "")] = tcol
        start = day.dt.normalize()
        end = start + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
        start = start.where(~timed, start + tod)
        end = end.where(~timed, start)
        out.loc[timed, "date_precision"] = "minute"
    out["occurred_from"], out["occurred_to"] = start.astype("datetime64[ns]"), end.astype("datetime64[ns]")

    if fb is not None:
        # No date of its own: the incident happened at most `hours_before` before the fallback time.
        fcol, ftcol = fb["column"], fb.get("time_column")
        fcols = fcol + (f",{ftcol}" if ftcol else "")
        fd, ft = pick(raw, fcol), pick(raw, ftcol)
        use = blank & (reason == "")
        reject(use & (fd == ""), "no date", f"{dcol},{fcol}")
        if ftcol:
            fswap = fd.str.fullmatch(_TIME_SHAPE).fillna(False).astype(bool) & \
                ft.str.fullmatch(_DATE_SHAPE).fillna(False).astype(bool)
            reject(use & fswap, "date and time swapped", fcols)
        fday = parse_date_text(fd, _formats(fb) if ("formats" in fb or "format" in fb) else formats)
        bad_date(fd, fday, use & (fd != ""), fcol)
        ftod = parse_time_text(ft, fb.get("time_formats", tformats)) if ftcol else \
            pd.Series(pd.NaT, index=idx, dtype="timedelta64[ns]")
        before = pd.Timedelta(hours=float(fb.get("hours_before", 24)))
        # Without a time, the fallback is the end of its day.
        fend = (fday.dt.normalize() + ftod).where(ftod.notna(), fday.dt.normalize() + pd.Timedelta(days=1)
                                                  - pd.Timedelta(seconds=1))
        ok = use & (reason == "")
        out.loc[ok, "occurred_to"] = fend[ok]
        out.loc[ok, "occurred_from"] = fend[ok] - before
        out.loc[ok, "date_precision"] = "day"
        out.loc[ok, "note"] = fb.get("note", f"{dcol} blank: {fcol} used")

    # Plausible dates only: a typo'd year lands decades away.
    earliest = pd.Timestamp(spec.get("earliest", "1990-01-01"))
    today = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
    which = pd.Series(dcol, index=idx).where(d != "", (fb or {}).get("column", dcol))
    for col in which.unique():
        m = which == col
        reject(m & (out["occurred_from"] >= today), "date in the future", col)
        reject(m & (out["occurred_to"] < earliest), f"date before {earliest:%Y-%m-%d}", col)
    bad = reason != ""
    # Object arrays, as ``map_rows`` reads them (not made Arrow strings and back).
    out["reason"], out["columns"] = (pd.Series(v, index=idx, dtype=object) for v in (reason, columns))
    if bad.any():
        out.loc[bad, ["occurred_from", "occurred_to"]] = pd.NaT
        out.loc[bad, "note"] = ""
    return out
