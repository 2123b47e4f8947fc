"""Read one partner file into a table of strings, whatever its format.

Every reader returns a DataFrame whose values are strings (empty for blank
cells) and an integer column ``_row``: the 1-based data row of the file (the
first row after the header is row 1; for JSON, the position in the array).
``read_source`` returns it with the file's whole header beside it (never in
``DataFrame.attrs``: pandas copies ``attrs`` on every operation, which made a
file of a million columns take minutes). Format quirks are handled here and
nowhere else.

A file that cannot be read as its format says (a truncated or damaged
workbook, an old ``.xls``, text in another encoding, binary junk, JSON that is
not JSON) raises a ``UserError`` naming the file. A file of more than
``MAX_COLUMNS`` columns is refused from its header line, before it is parsed.
"""
from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.frames import per_distinct

# The most columns a partner file may have. Real extracts have tens; a file of
# thousands is a wrong export or a hostile one, and costs minutes to parse.
MAX_COLUMNS = 2_000
WIDTH_BLOCK = 1 << 23       # bytes ``_widest_line`` reads at a time


class RawTable(NamedTuple):
    """A file read by ``read_source``: its rows (strings, with ``_row``), its whole header, and what the
    reader noticed that the analyst should hear of (``note``, a warning; "" when nothing)."""
    rows: pd.DataFrame
    columns: list[str]
    note: str = ""


def _check_width(path: Path, n: int) -> None:
    if n > MAX_COLUMNS:
        raise UserError(f"the file has {n:,} columns, more than the {MAX_COLUMNS:,} a partner file may have "
                        "(a wrong export, or the wrong file).", file=str(path),
                        hint="Export only the columns the mapping needs.")


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Strings, stripped, with ``_row``."""
    names, cols = list(df.columns), []
    for k in range(len(names)):
        s = df.iloc[:, k]
        # Text read as text (a CSV) is kept as it is; anything else, or a missing cell, becomes a
        # string ("" where missing) through Python objects (ten times slower, so not for every file).
        if not isinstance(s.dtype, pd.StringDtype) or s.isna().any():
            s = s.astype(object).where(s.notna(), "").astype(str)
        # Blank cells holding only spaces (a spreadsheet habit) count as blank.
        cols.append(s.str.strip())
    df = pd.DataFrame(dict(enumerate(cols)), index=df.index)
    df.columns = names
    df.insert(0, "_row", range(1, len(df) + 1))
    return df.reset_index(drop=True)


def pick(raw: pd.DataFrame, names) -> pd.Series:
    """A column of a raw table, or the first non-empty of several, as stripped strings
    ("" where absent). ``names`` is a column name, a list of names, or None."""
    names = [] if not names else [names] if isinstance(names, str) else list(names)
    out = None
    for name in reversed(names):
        if name in raw.columns:
            col = raw[name].fillna("").astype(str).str.strip()
            # The last column named, or the only one, as it is: its blanks would be filled with blanks.
            out = col if out is None else col.where(col != "", out)
    return pd.Series("", index=raw.index, dtype=str) if out is None else out


def map_few(values: pd.Series, mapping) -> pd.Series:
    """``values.map(mapping)`` for a column of few distinct values: each distinct value (a missing one
    too) mapped once, then spread over the rows by its code. The same Series, dtype included: police.uk's
    crime types and categories over a million rows, 0.24 s -> 0.11 s."""
    return per_distinct(values, lambda distinct: distinct.map(mapping))


def numbers(text: pd.Series) -> np.ndarray:
    """Floats from a text column (``pick``'s), NaN where a cell is blank or no number: as
    ``pandas.to_numeric(errors="coerce")``. Arrow's cast reads a column whose cells are all numbers or blank
    30x faster (a council log's 1.4 M eastings: 1.17 s -> 0.03 s, the same floats); a column with any
    other cell is read by pandas."""
    import pyarrow as pa
    import pyarrow.compute as pc
    try:
        cells = pa.array(text.to_numpy(object), type=pa.string()) if text.dtype == object else pa.array(text)
        blank = pc.equal(cells, "")
        return pc.cast(pc.if_else(blank, None, cells), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        text = pd.Series(text, dtype=object).astype(str)
        # Thousands separators as a spreadsheet writes them ("532,754", "1,234.5"): the digits, read.
        grouped = text.str.fullmatch(_GROUPED)
        if grouped.any():
            text = text.where(~grouped, text.str.replace(",", "", regex=False))
        return pd.to_numeric(text, errors="coerce").to_numpy(float)


# A number written with thousands separators: groups of three digits after the first one to three.
_GROUPED = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?"


def _header(spec: dict) -> int:
    """0-based header row: ``header`` (0-based, as pandas) or ``header_row`` (1-based, as a spreadsheet shows it)."""
    if "header_row" in spec:
        return int(spec["header_row"]) - 1
    return int(spec.get("header", 0))


def header_further_down(path: Path, reader: dict, names: list[str], rows: int = 30) -> int | None:
    """The row (1-based, as ``header_row`` counts) among the first ``rows`` of a CSV or a workbook's sheet
    that names at least half of ``names``, when the reader takes another row as the header; else None.
    For the message on a header that matches nothing: title rows above it ("Council ASB log", "Extract
    of ...") are the usual cause, and the fix is one key."""
    found = _top_rows(path, reader, rows)
    if found is None:
        return None
    want = set(names)
    for k, row in enumerate(found):
        if k != _header(reader) and len(want & {str(c).strip() for c in row}) * 2 >= len(want):
            return k + 1
    return None


def _top_rows(path: Path, reader: dict, rows: int) -> list[list[str]] | None:
    """The first ``rows`` non-blank rows of a CSV or a workbook's sheet as lists of cell text, numbered as
    ``header_row`` counts them; None for other formats or a file that cannot be read (its reader says why)."""
    fmt = reader.get("format", "csv")
    if fmt == "auto":
        fmt = AUTO_FORMATS.get(path.suffix.lower(), "")
    try:
        if fmt == "csv" and not _utf16(reader.get("encoding", "utf-8-sig")):
            with open(path, encoding=reader.get("encoding", "utf-8-sig"), errors="replace", newline="") as fh:
                return [row for _, row in zip(range(rows), (r for r in csv.reader(
                    fh, delimiter=reader.get("delimiter", ",")) if not _blank_record(r)))]
        if fmt == "excel":
            return pd.read_excel(path, sheet_name=reader.get("sheet", 0), header=None, nrows=rows,
                                 dtype=str).fillna("").values.tolist()
    except Exception:   # only a hint: a file that cannot be read has its own message
        return None
    return None


def _not_text(path: Path, encoding: str, exc: UnicodeDecodeError) -> UserError:
    """The message for a file that is not ``encoding`` text, naming the line and byte where it stops being so.
    The decoders' own position counts from the block they were decoding (pandas' 256 kB, Python's 8 kB):
    a cp1252 byte on line 35,001 of a 1.5 MB file was said to be 'at byte 43200'. The file is read again
    line by line to find it (one byte per line end in the encodings a CSV is read in, UTF-16 aside)."""
    where = f"at byte {exc.start}"
    if not _utf16(encoding):
        offset = 0
        with open(path, "rb") as fh:
            for line, raw in enumerate(fh, start=1):
                try:
                    raw.decode(encoding if line == 1 else encoding.replace("-sig", ""))
                except UnicodeDecodeError as bad:
                    where = f"on line {line:,}, byte {offset + bad.start:,} of the file"
                    break
                except LookupError:
                    break
                offset += len(raw)
    return UserError(f"the file is not {encoding} text ({exc.reason} {where}).", file=str(path),
                     hint="Set the schema's reader encoding (e.g. cp1252), or check that it is the right file.")


def _utf16(encoding: str) -> bool:
    return encoding.lower().replace("_", "-").startswith("utf-16")


def utf16_text(path: Path) -> UserError:
    """The message for a UTF-16 file (Excel's "Unicode text"), which it would be wrong to call binary."""
    return UserError("the file is UTF-16 text (Excel's \"Unicode text\"), not the UTF-8 the schema reads.",
                     file=str(path), hint="Save it as CSV UTF-8 (Excel: Save As > CSV UTF-8), or set the "
                                          "schema's reader encoding to \"utf-16\".")


def _nul_bytes(path: Path, nuls: int, line: int) -> UserError:
    return UserError(f"the file is CSV text but holds {nuls} NUL byte(s), a character no text has (the "
                     f"first on line {line:,}).", file=str(path),
                     hint="Remove them (an editor shows them as NUL or ^@) and save the file again, or "
                          "export it again from the partner's system.")


def _csv_header(path: Path, spec: dict) -> list[str]:
    """The header row of a CSV (the first row with ``names``), read alone: the width is
    checked before pandas parses anything, and binary junk is refused by its NUL bytes."""
    encoding = spec.get("encoding", "utf-8-sig")
    utf16 = _utf16(encoding)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not utf16 and head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise utf16_text(path)
    if not utf16 and b"\0" in head:
        # A few NUL bytes in lines of text are a damaged text file, not a binary one: say where the first is.
        nuls, line = head.count(b"\0"), head.count(b"\n", 0, head.index(b"\0")) + 1
        if nuls <= 8 and not any(b < 9 for b in head.replace(b"\0", b"\t")[:4096]):
            raise _nul_bytes(path, nuls, line)
        if head.startswith(_ZIP_MAGIC):     # an .xlsx renamed .csv (or a zip of the exports)
            raise UserError("the file is a zip archive (an Excel .xlsx workbook, or a zip of files), not CSV text.",
                            file=str(path), hint="Export the sheet as CSV from Excel, or unzip it; an .xlsx "
                                                 "workbook can also be read as it is, named .xlsx.")
        raise UserError("the file is binary, not CSV text (it holds NUL bytes).", file=str(path),
                        hint="Check that it is the right file, exported as CSV.")
    at = 0 if spec.get("names") else _header(spec)
    limit = csv.field_size_limit(1 << 24)     # a long free-text cell is no reason to fail; restored below
    try:
        with open(path, encoding=encoding, newline="") as fh:
            # Blank lines do not count, as in pandas (skip_blank_lines).
            rows = (row for row in csv.reader(fh, delimiter=spec.get("delimiter", ",")) if not _blank_record(row))
            for i, row in enumerate(rows):
                if i == at:
                    _check_width(path, len(row))
                    return row
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except csv.Error as exc:
        raise UserError(f"the CSV cannot be parsed ({exc}).", file=str(path)) from None
    finally:
        csv.field_size_limit(limit)
    return []


def _widest_line(path: Path, delimiter: str, encoding: str, at_least: int = 0) -> tuple[int, int]:
    """(1-based line number, delimiters) of the line of ``path`` holding the most delimiters,
    counted on the bytes in 8 MB blocks (vectorised: a fraction of a second per 100 MB).

    Delimiters inside quoted values count too, so this bounds a row's width from
    above: it is only used against ``MAX_COLUMNS``, far above any real row. (0, 0)
    where the delimiter is not one byte in the encoding (then pandas' own errors apply).
    ``at_least``: only lines of at least that many delimiters need counting: a block whose lines
    are all shorter than that in bytes is passed over (the 1 M benchmark's 174 MB: 0.50 s -> 0.30 s).
    """
    try:
        sep = delimiter.encode(encoding.replace("-sig", ""))
    except (UnicodeEncodeError, LookupError):
        return 0, 0
    if len(sep) != 1 or _utf16(encoding):
        return 0, 0
    best_line, best, line, carry = 0, 0, 1, 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(WIDTH_BLOCK), b""):
            arr = np.frombuffer(block, dtype=np.uint8)
            nl = np.flatnonzero(arr == 10)
            if at_least and len(nl) and carry + nl[0] < at_least and (len(nl) < 2 or np.diff(nl).max() <= at_least):
                # No line ending here can hold ``at_least`` delimiters; the one left open is carried on, counted.
                carry = int(np.count_nonzero(arr[nl[-1]:] == sep[0]))
                line += len(nl)
                continue
            ds = np.flatnonzero(arr == sep[0])
            # delimiters per line: those before each newline, less those before the previous one
            upto = np.searchsorted(ds, np.append(nl, len(arr)))
            per = np.diff(np.concatenate([[0], upto]))
            per[0] += carry
            k = int(np.argmax(per[:-1])) if len(nl) else -1
            if k >= 0 and per[k] > best:
                best, best_line = int(per[k]), line + k
            carry = int(per[-1])
            line += len(nl)
    if carry > best:
        best, best_line = carry, line
    return best_line, best


# A line holding nothing but spaces or tabs, which both CSV readers skip (pandas' skip_blank_lines): after
# a LF (LF and CR LF files), or between two CRs (CR files). Each pattern starts with its one literal byte,
# which re finds at memchr speed: one pattern with the line ends as alternatives took 0.26 s for 18 MB
# (1.6 s of the 1 M benchmark's load), these two 0.015 s.
_BLANK_LINES = (re.compile(rb"\n[ \t]*(?:\r?\n|\r)"), re.compile(rb"\r[ \t]*\r"))


def _scan(path: Path, encoding: str = "utf-8") -> tuple[bool, bool, int]:
    """One pass over the file's bytes: (an odd number of ``"``, a blank line somewhere, its lines).
    A NUL byte past the first 64 KB (``_csv_header`` looks there) fails the file as one there does.

    An odd count is a quote left open (a partner typing ``"Cafe Nero`` at the start of the last cell),
    or a literal one in an unquoted value. pyarrow reads an open quote to the end of the file as one
    value, silently (hostile audit: 598 of a police.uk month's 698 rows gone, exit 0); pandas says
    where the quote opens, and reads a literal one as pyarrow would. A blank line is skipped by both
    readers, so the rows after it need their numbers from ``_data_rows``. A UTF-16 file (two bytes a
    character) is scanned as its text in UTF-8."""
    quotes, blank, tail, last, ends = 0, False, b"", None, [0, 0]

    def found(text: bytes) -> bool:
        return any(p.search(text) is not None for p in _BLANK_LINES)

    def blocks():
        if _utf16(encoding):
            try:
                yield path.read_text(encoding=encoding).encode("utf-8")
            except (UnicodeError, LookupError):
                return      # the reader says what is wrong with the text
            return
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(1 << 24), b"")
    for block in blocks():
        if b"\0" in block and not _utf16(encoding):
            nul = block.index(b"\0")
            line = ends[0] + block.count(b"\n", 0, nul) + 1
            raise _nul_bytes(path, block.count(b"\0"), line)
        quotes += block.count(b'"')
        ends[0] += block.count(b"\n")
        ends[1] += block.count(b"\r")
        if last is not None and not blank:
            blank = found(tail + last)
            tail = last[-256:]
        last = block
    # Blank lines at the end of the file number no row: not a reason for the slower numbering (a
    # review: one trailing blank line took a 1 M-row file's read from 1.2 to 3.5 s).
    if last is not None and not blank:
        blank = found((tail + last).rstrip(b" \t\r\n"))
    # Lines: LF (or CR LF) ends, or CR ends in a CR-only file; one more when the last line has no end.
    lines = (ends[0] or ends[1]) + (last is not None and not last.endswith((b"\n", b"\r")))
    return quotes % 2 == 1, blank, lines


def _blank_record(row: list[str]) -> bool:
    """A CSV line the parsers skip: empty, or spaces and tabs alone (not ",,": a row of empty cells). The
    header's and the title rows' count must skip what they skip (a review: a line of spaces above
    ``header_row`` made the header read one row too early; the first data row then named the columns
    and was lost, with no word)."""
    return not row or (len(row) == 1 and not row[0].strip(" \t"))


def _csv_records(path: Path, spec: dict):
    """(row number, fields) of each data record after the header, by Python's csv module: numbered as a
    spreadsheet shows the rows (blank lines after the header count; they are not yielded), the header
    being the ``_header(spec)``-th non-blank record, as both readers find it. Raises what csv raises."""
    skip = -1 if spec.get("names") else _header(spec)
    at, seen = 0, 0
    limit = csv.field_size_limit(1 << 30)     # a value that took in the rest of the file is still read
    try:
        with open(path, encoding=spec.get("encoding", "utf-8-sig"), newline="") as fh:
            for row in csv.reader(fh, delimiter=spec.get("delimiter", ",")):
                empty = _blank_record(row)
                if seen <= skip:
                    seen += not empty
                    continue
                at += 1
                if not empty:
                    yield at, row
    finally:
        csv.field_size_limit(limit)


def _data_rows(path: Path, spec: dict, n: int) -> np.ndarray | None:
    """The row number of each of the ``n`` rows the readers gave, as a spreadsheet numbers them: blank
    lines after the header count (hostile audit: after two blank lines, a reject named row 59 for the
    file's row 61). None where the count does not come out at ``n`` (then the rows keep 1..n)."""
    try:
        out = [at for at, _ in _csv_records(path, spec)]
    except (csv.Error, UnicodeDecodeError, ValueError):
        return None
    return np.asarray(out, dtype=np.int64) if len(out) == n else None


def _arrow_csv(path: Path, spec: dict, file_header: list[str], keep: set[str] | None,
               odd_quotes: bool = False) -> pd.DataFrame | None:
    """The plain case of ``_read_csv`` read by pyarrow's CSV reader: the same strings as pandas' C
    parser gives below, faster (a 250,000-row police.uk street file, read alone and alternated: 0.66-1.02 s
    -> 0.23-0.52 s, the largest part of the load after the mapping). None where the file is not plain (a header row
    that is not the first, names given, an encoding other than UTF-8, a delimiter of more than one
    byte, header names blank or repeated, which pandas renames) or where pyarrow refuses it (a row
    of another width, text that is not UTF-8, a quoted value longer than a block): pandas then
    reads it, with its own messages. ``tests/test_hostile_load.py`` holds the two to the same tables."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    delimiter = spec.get("delimiter", ",")
    encoding = spec.get("encoding", "utf-8-sig").lower().replace("_", "-")
    if (spec.get("names") or _header(spec) != 0 or encoding not in ("utf-8", "utf-8-sig", "utf8")
            or len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n'
            or not file_header or "" in file_header or len(set(file_header)) != len(file_header)):
        return None
    wanted = [c for c in file_header if keep is None or c in keep]
    if not wanted or odd_quotes:
        return None
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in wanted}, include_columns=wanted,
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.column_names != wanted:
        return None
    return table.to_pandas()


def _read_csv(path: Path, spec: dict, keep: set[str] | None = None) -> RawTable:
    """A CSV file; with ``keep``, only those columns are parsed and cleaned (the rest of a
    police.uk file is never used: reading it cost half the load time at a million rows)."""
    header = _header(spec)
    names = spec.get("names")
    file_header = _csv_header(path, spec)
    encoding = spec.get("encoding", "utf-8-sig")
    line, seps = _widest_line(path, spec.get("delimiter", ","), encoding, at_least=MAX_COLUMNS)
    if seps + 1 > MAX_COLUMNS:
        raise UserError(f"line {line:,} of the file has {seps + 1:,} fields, more than the {MAX_COLUMNS:,} columns a "
                        "partner file may have (a wrong export, or the wrong file).", file=str(path),
                        hint="Export only the columns the mapping needs.")
    odd_quotes, blank, lines = _scan(path, encoding)
    df = _arrow_csv(path, spec, file_header, keep, odd_quotes)
    if df is not None:
        return RawTable(_numbered(_finish(df), path, spec, blank), file_header,
                        _line_breaks_in_values(path, spec, len(file_header), lines, len(df), blank))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding,
                         usecols=(lambda c: c in keep) if keep is not None and not names else None,
                         sep=spec.get("delimiter", ","), header=None if names else header, names=names,
                         # pandas' C parser takes only a one-byte separator (not `¬`, two bytes in UTF-8).
                         engine="python" if len(spec.get("delimiter", ",").encode("utf-8")) > 1 else "c",
                         # Rows longer than the header never turn their first fields into an index
                         # (pandas' default): that shifted every column and, at a million extra
                         # fields, built a million-level index.
                         index_col=False, skipinitialspace=False)
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"the CSV cannot be parsed ({str(exc)[:300]}).", file=str(path)) from None
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty.", file=str(path)) from None
    except ValueError as exc:    # e.g. a header row beyond the end of the file
        raise UserError(f"the CSV cannot be read ({str(exc)[:300]}).", file=str(path)) from None
    return RawTable(_numbered(_finish(df), path, spec, blank), list(names) if names else file_header,
                    _line_breaks_in_values(path, spec, len(names or file_header), lines, len(df), blank))


def _line_breaks_in_values(path: Path, spec: dict, width: int, lines: int, rows: int, blank: bool) -> str:
    """A warning where a quoted value takes in what look like whole rows (a line of it holding as many
    delimiters as the header): a quote left open there takes in the rows after it. An odd number of quotes
    goes to pandas, which names the row, but an even one reads (a review: "Cafe Nero on row 10 and "Costa
    on row 90 read 100 rows as 20, with no word). Looked for only where the file has more lines than its
    header and rows take, and no blank lines; multi-line text alone says nothing."""
    extra = lines - rows - (0 if spec.get("names") else _header(spec) + 1)
    if blank or extra <= 0 or width < 3:
        return ""
    delimiter = spec.get("delimiter", ",")
    try:
        for k, row in _csv_records(path, spec):
            if any(line.count(delimiter) >= width - 1 for value in row for line in value.splitlines()[1:]):
                return (f"row {k:,} holds a quoted value that takes in what look like whole rows: a quote "
                        f"left open there takes in the rows after it ({extra:,} line breaks lie inside "
                        "quoted values).")
    except (csv.Error, UnicodeDecodeError, ValueError):
        return ""
    return ""


def _numbered(table: pd.DataFrame, path: Path, spec: dict, blank: bool) -> pd.DataFrame:
    """``table`` with each row's number as the file shows it where blank lines were skipped."""
    rows = _data_rows(path, spec, len(table)) if blank else None
    if rows is not None:
        table["_row"] = rows
    return table


def read_csv(path: Path, spec: dict, keep: set[str] | None = None) -> pd.DataFrame:
    """A CSV file as a table of strings (see ``_read_csv``)."""
    return _read_csv(path, spec, keep).rows


def _read_json(path: Path, spec: dict) -> RawTable:
    encoding = spec.get("encoding", "utf-8")
    try:
        data = json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as exc:
        raise UserError(f"the JSON cannot be parsed ({exc.msg} at line {exc.lineno} column {exc.colno}).",
                        file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise _not_text(path, encoding, exc) from None
    # Neither is a record: arrays nested past Python's recursion limit, and an integer longer than
    # the interpreter converts (4,300 digits) raise these rather than a JSONDecodeError.
    except RecursionError:
        raise UserError("the JSON is nested too deeply to be an array of records.", file=str(path)) from None
    except ValueError as exc:   # its advice (sys.set_int_max_str_digits) is for programmers
        raise UserError(f"the JSON cannot be read ({str(exc).split(';')[0]}).", file=str(path)) from None
    record_path = spec.get("records")
    if record_path:
        # A path the file does not have is the wrong mapping or the wrong file, not a file with no rows (it
        # was taken for an empty array: "the file has no data rows" and exit 0).
        for depth, key in enumerate(record_path.split(".")):
            if not isinstance(data, dict) or key not in data:
                held = f"its keys there: {', '.join(repr(k) for k in list(data)[:10])}" if isinstance(data, dict) \
                    else f"there it holds {type(data).__name__ if data is not None else 'null'}, not an object"
                at = f"in '{'.'.join(record_path.split('.')[:depth])}'" if depth else "at its top level"
                raise UserError(f"the JSON has no key '{key}' {at}, where the mapping's reader records = "
                                f"'{record_path}' looks for the records ({held}).", file=str(path))
            data = data[key]
    if not isinstance(data, list):
        raise UserError("the JSON is not an array of records.", file=str(path))
    if not all(isinstance(rec, dict) for rec in data):
        raise UserError("the JSON array holds values that are not records (objects).", file=str(path))
    if not data:
        return RawTable(_finish(pd.DataFrame()), [])
    keys = {k for rec in data for k in rec}
    _check_width(path, len(keys))     # nested records add columns: checked again once flattened
    df = pd.json_normalize(data)
    _check_width(path, len(df.columns))
    return RawTable(_finish(df), list(df.columns))


def read_json(path: Path, spec: dict) -> pd.DataFrame:
    return _read_json(path, spec).rows


# The first bytes of a file: a .xlsx is a zip archive, an old .xls an OLE2 compound file.
_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


# An OLE2 file that holds this stream is an .xlsx encrypted with a password (MS-OFFCRYPTO), not an old .xls.
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


def _encrypted(path: Path) -> bool:
    """Whether the OLE2 compound file ``path`` names an encrypted package (its directory, read a block at a
    time: where the directory lies in the file varies)."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            if _ENCRYPTED in tail + block:
                return True
            tail = block[-len(_ENCRYPTED):]
    return False


def check_workbook(path: Path) -> None:
    """A UserError when ``path`` is not a workbook hotspots reads: password-protected, an old .xls, or not
    a zip archive at all (a password-protected .xlsx, as partners often send them, was called an old
    Excel 97-2003 workbook, to be saved as .xlsx: which it was)."""
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == _OLE2_MAGIC:
        if _encrypted(path):
            raise UserError("the workbook is encrypted (password-protected), so hotspots cannot read it.",
                            file=str(path), hint="Open it in Excel with its password and save a copy without one "
                                                 "(or export the sheet as CSV), kept as securely as the original.")
        try:
            import xlrd  # noqa: F401  (pandas reads .xls only with it)
        except ImportError:
            raise UserError("the file is an old Excel 97-2003 workbook (.xls), which hotspots does not read.",
                            file=str(path), hint="Open it in Excel or LibreOffice and save it as .xlsx or CSV.") \
                from None
    elif not magic.startswith(_ZIP_MAGIC):
        raise UserError("the file is not an Excel workbook (.xlsx): it is damaged, truncated or another format.",
                        file=str(path), hint="Save it again from Excel as .xlsx, or as CSV.")


def _read_excel(path: Path, spec: dict) -> RawTable:
    check_workbook(path)
    try:
        with pd.ExcelFile(path) as book:
            note = _sheet_note(book, spec.get("sheet"), path)
            df = pd.read_excel(book, sheet_name=spec.get("sheet", 0), header=_header(spec), dtype=str)
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError):
        raise UserError("the Excel workbook is damaged or truncated (its zip archive cannot be read).",
                        file=str(path), hint="Save it again from Excel as .xlsx, or as CSV.") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"the Excel file cannot be read ({str(exc)[:300]}).", file=str(path)) from None
    except Exception as exc:  # openpyxl and the XML parsers raise many types for a damaged sheet
        raise UserError(f"the Excel workbook is damaged: a sheet cannot be read ({type(exc).__name__}: "
                        f"{str(exc)[:200]}).", file=str(path), hint="Save it again from Excel as .xlsx, or as CSV.") \
            from None
    _check_width(path, len(df.columns))
    return RawTable(_finish(df), [str(c) for c in df.columns], note)


def _sheet_note(book: pd.ExcelFile, chosen, path: Path) -> str:
    """What the analyst should hear of the sheet read: which one, when the workbook has others and the
    mapping names none, and that it is hidden, when it is (a workbook's first sheet may be a hidden
    copy or a notes page); "" otherwise."""
    names = [str(n) for n in book.sheet_names]
    if chosen is None or isinstance(chosen, int):
        at = chosen or 0
    else:
        at = names.index(str(chosen)) if str(chosen) in names else -1
    if not 0 <= at < len(names):
        raise UserError(f"the workbook has no sheet {chosen!r} (its sheets: "
                        f"{', '.join(repr(n) for n in names)}).", file=str(path),
                        hint="Name one of them as the mapping's reader \"sheet\" (a name, or a number from 0).")
    states = [getattr(ws, "sheet_state", "visible") for ws in getattr(book.book, "worksheets", [])]
    notes = []
    if chosen is None and len(names) > 1:
        notes.append(f"the workbook has {len(names)} sheets ({', '.join(repr(n) for n in names[:6])}"
                     f"{', ...' if len(names) > 6 else ''}): the first is read (the mapping's reader names no "
                     "\"sheet\").")
    if at < len(states) and states[at] != "visible":
        notes.append(f"the sheet read, {names[at]!r}, is hidden in the workbook.")
    return " ".join(notes)


def read_excel(path: Path, spec: dict) -> pd.DataFrame:
    return _read_excel(path, spec).rows


def _read_vector(path: Path, spec: dict) -> RawTable:
    """GeoJSON / GeoPackage / shapefile of points: attributes plus ``_x``/``_y`` in the layer's CRS, and
    ``_shape``, the type of a feature that is not one point ("" for a point)."""
    import pyogrio
    import shapely
    layer, note = spec.get("layer"), ""
    try:
        if layer is None:
            # A GeoPackage of several layers (last year's beside this year's): the first is read, which is
            # said, as for a workbook's sheets (it was said only by a raw Python warning, if at all).
            names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
            if len(names) > 1:
                layer = names[0]
                note = (f"the file has {len(names)} layers ({', '.join(repr(n) for n in names[:6])}"
                        f"{', ...' if len(names) > 6 else ''}): the first is read (the mapping's reader names no "
                        "\"layer\").")
        info = pyogrio.read_info(path, layer=layer)
        _check_width(path, len(info["fields"]))
        # Date-times as the file writes them: read as datetimes, a column mixing offsets became UTC and a
        # date alone midnight UTC ('2019-05-06' -> '2019-05-06 00:00:00+00:00', 01:00 UK time in summer).
        gdf = pyogrio.read_dataframe(path, layer=layer, datetime_as_string=True)
    except UserError:
        raise
    except Exception as exc:  # pyogrio raises several error types for unreadable files
        raise UserError(f"the vector file cannot be read ({str(exc)[:300]}).", file=str(path)) from None
    geom = gdf.geometry
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    header = [str(c) for c in attrs.columns]
    ok = geom.notna() & ~geom.is_empty
    attrs["_x"] = ""
    attrs["_y"] = ""
    pts = geom[ok].representative_point()
    attrs.loc[ok, "_x"] = pts.x.map(repr)
    attrs.loc[ok, "_y"] = pts.y.map(repr)
    attrs["_crs"] = gdf.crs.to_string() if gdf.crs else ""
    # A feature that is not one point (an area, a line, several points): a source locating records by
    # their geometry rejects it (location._geometry); a key building is placed at the point above.
    single = geom.geom_type.isin(["Point", "MultiPoint"]) & (shapely.get_num_geometries(geom.values) == 1)
    attrs["_shape"] = geom.geom_type.where(ok & ~single, "")
    return RawTable(_finish(attrs), header, note)


def read_vector(path: Path, spec: dict) -> pd.DataFrame:
    return _read_vector(path, spec).rows


READERS = {"csv": _read_csv, "json": _read_json, "excel": _read_excel, "vector": _read_vector}


# The format of a file read with ``"format": "auto"`` (partner_generic), by its extension.
AUTO_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel",
                ".geojson": "vector", ".gpkg": "vector", ".shp": "vector", ".json": "json"}


def read_source(path: Path, reader: dict, keep: set[str] | None = None) -> RawTable:
    """Read ``path`` with the schema's ``reader`` entry (``format`` plus options); ``keep``
    limits a CSV to the columns a schema names (``schema_columns``). Returns the rows and
    the file's whole header (``RawTable``).

    ``"format": "auto"`` picks the reader from the file's extension (``AUTO_FORMATS``).
    """
    fmt = reader.get("format", "csv")
    if fmt == "auto":
        fmt = AUTO_FORMATS.get(path.suffix.lower(), "")
        if not fmt:
            raise UserError(f"cannot tell the format of '{path.name}' from its extension "
                            f"(known: {', '.join(AUTO_FORMATS)}).", file=str(path),
                            hint="Set the schema's reader format (csv, excel, json or vector).")
    if fmt not in READERS:
        raise UserError(f"unknown reader format '{fmt}' (have {', '.join(READERS)}).", file=str(path))
    if not path.is_file():
        if path.exists():   # a folder, a pipe or a device: nothing to read (a pipe would never end)
            raise UserError("this is not a regular file (a folder, a pipe or a device).", file=str(path),
                            hint="Point the source's path at the partner's files themselves.")
        raise UserError("the file does not exist.", file=str(path))
    if "group_row" in reader:
        return _grouped(path, reader, fmt)
    if fmt == "csv":
        # Its blank lines are skipped by the parsers; a row of empty cells (,,,) is a row, as it may hold
        # data in the columns ``keep`` left unread (a review: dropping it then lost the row uncounted).
        return _read_csv(path, reader, keep)
    table = READERS[fmt](path, reader)
    return table._replace(rows=_without_blank_rows(table.rows))


def _grouped(path: Path, reader: dict, fmt: str) -> RawTable:
    """A header of two rows (a spreadsheet's merged group labels, "Incident" over "Date" and "Time"): the
    table read with ``header_row`` as its header, each column named by the ``group_row`` label above it and
    its own, "Incident Date", "Incident Time" (a user audit: read with the group row as the header, the
    times' column was "Unnamed: 2" and the second header row a row of data). A blank group cell takes the
    label to its left while the header cell below it holds a name (a merged cell keeps its label in its
    first cell only); a column with no header cell is named by its group label alone."""
    if fmt not in ("csv", "excel"):
        raise UserError(f"the reader's group_row is read for CSV and Excel files, not '{fmt}'.", file=str(path))
    at, group = int(reader["group_row"]) - 1, _header(reader)
    if at >= group:
        raise UserError(f"the reader's group_row ({at + 1}) must be above its header_row ({group + 1}).",
                        file=str(path), hint="group_row is the row of labels over the header's names.")
    table = READERS[fmt](path, reader)      # every column: the mapping names them as combined below
    found = (_top_rows(path, {**reader, "format": fmt}, at + 1) or [])[at:at + 1]
    labels = [str(c).strip() for c in (found[0] if found else [])]
    names, out, left = table.columns, [], ""
    for k, name in enumerate(names):
        own = "" if re.fullmatch(r"Unnamed: \d+", name) else name.strip()
        label = labels[k] if k < len(labels) else ""
        left = label or (left if own else "")
        out.append(" ".join(p for p in (left, own) if p) or name)
    if len(set(out)) != len(out):
        twice = sorted({n for n in out if out.count(n) > 1})
        raise UserError(f"the two header rows give the name {twice[0]!r} to more than one column.", file=str(path),
                        hint="Check group_row and header_row, or rename a column in the file.")
    # By position: pandas names a blank header cell "Unnamed: k" where the CSV's own header reads "".
    cells = [c for c in table.rows.columns if c != "_row"]
    rows = table.rows.rename(columns=dict(zip(cells, out)))
    return RawTable(_without_blank_rows(rows) if fmt == "excel" else rows, out, table.note)


def _without_blank_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (a spreadsheet's, every column read) less those whose every cell is blank: a sheet's empty
    rows are no more rows than the blank lines both CSV readers skip, and are not counted as read. The
    rows keep their numbers (hostile audit: one space typed in A20000 of a sheet made 19,939 empty rows
    "rejected", and the source failed its loss limit)."""
    cells = [c for c in rows.columns if c != "_row"]
    blank = np.full(len(rows), bool(cells))
    for col in cells:
        blank &= rows[col].to_numpy() == ""
        if not blank.any():          # the first column usually settles it
            return rows
    return rows[~blank].reset_index(drop=True) if blank.any() else rows


def read_table(path: Path, reader: dict, keep: set[str] | None = None) -> pd.DataFrame:
    """The rows of ``read_source`` alone."""
    return read_source(path, reader, keep).rows


def schema_columns(schema: dict) -> set[str]:
    """Every string a schema mentions: a superset of the input columns it reads (a drafted mapping's
    ``_draft`` lists the columns it left out, which are not read)."""
    out: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    walk({k: v for k, v in schema.items() if k not in ("notes", "title", "description", "reference", "_draft")})
    return out
