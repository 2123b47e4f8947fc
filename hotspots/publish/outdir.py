"""The output folder: checked before anything is read, locked, written whole or not at all.

A run never writes into ``--out`` directly. The steps, in order:

1. ``check(out, cfg, kind)``, before any input is read (the CLI calls it first;
   ``publish`` calls it again):

   - ``out`` is not an existing file, and its parent can be created and written
     (a real probe: a temporary folder is made and removed);
   - an existing, non-empty ``out`` is replaced only when hotspots wrote it
     (its ``manifest.json`` says so) for the same kind of run: a folder of
     someone else's files is never deleted, and an agency's own run (records
     that may not be shared), the shared run and an evaluation never replace
     one another (``kind``: ``shared``, ``agency:<source id>``, ``evaluation``);
   - ``out`` does not overlap an input (``input_paths``: every source glob,
     mapping and schema file, boundary, key-building and postcode path, and the
     config itself, all resolved): it holds no file an input path names, lies
     inside no input folder, and no glob can reach into it with a name that a
     run writes there (``OUTPUT_FILES``), so that a later run cannot read
     ``rejects.csv`` or ``areas.csv`` back as police data.

2. ``locked(out)``: an exclusive lock file ``.<name>.lock`` beside ``out``
   (``O_CREAT | O_EXCL``, holding ``pid host``), removed at the end; a lock whose
   process is dead is stale and taken over; a live one is a ``UserError`` for the
   second run. Re-entrant within one process (the CLI holds it from the check to
   the end of ``publish``, and ``publish`` takes it again).

3. ``staged(out, kind)``: every output is written into a hidden temporary folder
   beside ``out`` (same file system); only when all are written is it swapped in
   (Linux: one atomic ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames,
   with an instant where ``out`` is absent but never a mix) and the previous
   folder removed. Files of earlier runs therefore never survive (a
   ``map-public.html`` from a run with a public tier is gone after a
   partner-only run), and a run killed while publishing leaves the previous
   output whole, its manifest checksums matching. Leftover temporary folders of
   dead runs are removed by the next run on the same folder.

``writing(out, kind)`` is 2 and 3 together.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import glob
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

from hotspots.errors import UserError
from hotspots.load.ledger import HotspotsWarning

MANIFEST = "manifest.json"

# Every file a run, an agency run or an evaluation writes (relative to --out). The overlap check
# tests source globs against these names: a new output file must be added here (a test checks it).
OUTPUT_FILES = (
    "rejects.csv", "areas.csv", "buildings.csv", "building_types.csv", "sensitivity.csv",
    "sensitivity_regions.csv", "thresholds.csv", "evaluation.csv", "coverage.png", MANIFEST, "map.html", "map-public.html",
    "briefing.html", "briefing-public.html", "briefing.pdf", "briefing-public.pdf", "hotspots.gpkg",
    "cells.geojson", "regions.geojson", "clusters.geojson",
    "public/hotspots.gpkg", "public/cells.geojson", "public/regions.geojson", "public/clusters.geojson",
    "public/areas.csv",
)

# Config keys that name input files, wherever they appear (a ``schema`` only when it is a path).
PATH_KEYS = ("path", "mapping", "schema", "postcodes", "coverage_path")

_MAGIC = re.compile(r"[*?[]")


# ----------------------------------------------------------------------------- what a folder holds
def signature(kind: str) -> dict:
    """The ``written_by`` entry of a manifest: how a later run knows this folder is hotspots' own."""
    from hotspots import __version__
    return {"tool": "hotspots", "version": __version__, "run": kind}


def owner(folder: Path) -> str | None:
    """The kind of run that wrote ``folder`` (``shared``, ``agency:<id>``, ``evaluation``), or None
    when its ``manifest.json`` is missing, unreadable or not written by hotspots."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    mark = manifest.get("written_by")
    if isinstance(mark, dict) and mark.get("tool") == "hotspots" and isinstance(mark.get("run"), str):
        return mark["run"]
    # Manifests written before ``written_by`` existed: a run's manifest records the hotspots version.
    if isinstance(manifest.get("versions"), dict) and "hotspots" in manifest["versions"] and "outputs" in manifest:
        agency = manifest.get("agency") or ""
        return f"agency:{agency}" if agency else "shared"
    return None


def describe(kind: str) -> str:
    if kind.startswith("agency:"):
        return f"agency '{kind[7:]}''s own run (records that may not be shared)"
    return {"shared": "a shared run", "evaluation": "an evaluation"}.get(kind, kind)


def safe_name(text: str) -> str:
    """``text`` usable as one folder name (source ids come from the config)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text)).lstrip(".") or "_"


# ----------------------------------------------------------------------------- inputs of a config
def input_paths(cfg) -> list[tuple[str, str]]:
    """(label, path or glob as written) of every input ``cfg`` names, the config file included."""
    found = [("the config file", str(cfg.path))]

    def add(where: str, key: str, value) -> None:
        for text in ([value] if isinstance(value, str) else value if isinstance(value, list) else []):
            if not isinstance(text, str) or not text:
                continue
            if key == "schema" and not ("/" in text or "\\" in text or text.lower().endswith(".json")):
                continue     # a built-in schema name, not a file
            found.append((f"{where} {key}", text))

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in PATH_KEYS:
                    add(where, key, value)
                elif isinstance(value, dict):
                    walk(value, f"{where} {key}" if where else f"[{key}]")
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, dict):
                            ident = item.get("id")
                            label = f"{where} {key}" if where else f"[[{key}]]"
                            walk(item, f"{label} '{ident}'" if isinstance(ident, str) else label)

    walk(cfg.raw if isinstance(cfg.raw, dict) else {}, "")
    return found


def _pattern_parts(base: Path, text: str) -> tuple[tuple[str, ...], bool]:
    """The resolved components of a path or glob (its literal head resolved), and whether it is a glob."""
    parts = Path(os.path.abspath(Path(base) / text)).parts
    first = next((i for i, p in enumerate(parts) if _MAGIC.search(p)), len(parts))
    head = Path(*parts[:first]).resolve()
    return head.parts + parts[first:], first < len(parts)


def _part_matches(name: str, pattern: str) -> bool:
    if _MAGIC.search(pattern):
        return fnmatch.fnmatch(name, pattern)
    return os.path.normcase(name) == os.path.normcase(pattern)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _files_in(folder: Path, limit: int = 10_000) -> list[str]:
    names = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            names.append(Path(root, f).relative_to(folder).as_posix())
            if len(names) >= limit:
                return names
    return names


def _overlap(out: Path, label: str, text: str, base: Path) -> str | None:
    """Why the input ``text`` overlaps the output folder ``out`` (resolved), or None."""
    parts, is_glob = _pattern_parts(base, text)
    if not is_glob:
        path = Path(*parts)
        if _inside(path, out):
            return f"{label} '{text}' is inside the output folder"
        if path in out.parents:
            return f"the output folder is inside {label} '{text}'"
        return None
    for hit in glob.glob(str(Path(base) / text)):
        if _inside(Path(hit).resolve(), out):
            return f"the output folder holds {hit}, an input of {label} '{text}'"
    head = out.parts
    if len(head) >= len(parts) or not all(_part_matches(n, p) for n, p in zip(head, parts)):
        return None
    rest = parts[len(head):]
    candidates = list(OUTPUT_FILES) + (_files_in(out) if out.is_dir() else [])
    for name in candidates:
        pieces = name.split("/")
        if len(pieces) == len(rest) and all(_part_matches(n, p) for n, p in zip(pieces, rest)):
            return (f"{label} '{text}' would match {out / name} (written by this run) and read it "
                    "back as input on the next run")
    return None


# ----------------------------------------------------------------------------- the up-front check
def check(out: str | Path, cfg=None, kind: str = "shared") -> Path:
    """Refuse, before anything is read, an output folder that cannot or must not be written.

    Returns ``out`` resolved. Raises ``UserError`` naming the folder and, for an overlap, the
    config key and the path or glob at fault. See the module docstring for each rule.
    """
    given = str(out)
    out = Path(out).expanduser().resolve()
    if out.parent == out:
        raise UserError(f"the output folder cannot be the root of a drive ({given}).",
                        hint="Choose a new or empty folder with --out.")
    with contextlib.suppress(OSError):
        if _inside(Path.cwd().resolve(), out):
            raise UserError(f"the output folder {out} is the current folder or contains it: a run replaces its "
                            "output folder whole.", hint="Choose a new or empty folder with --out.")
    if out.exists() and not out.is_dir():
        raise UserError(f"the output folder {out} is an existing file, not a folder.",
                        hint="Choose a new or empty folder with --out.")
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"the output folder {out} cannot be created: {existing} is a file.",
                        hint="Choose another folder with --out.")
    try:
        probe = tempfile.mkdtemp(prefix=".hotspots-probe-", dir=existing)
        os.rmdir(probe)
    except OSError as exc:
        raise UserError(f"the output folder {out} cannot be written: creating a folder in {existing} failed "
                        f"({exc.strerror or exc}).",
                        hint="Choose a folder you can write to with --out.") from None
    if cfg is not None:
        for label, text in input_paths(cfg):
            why = _overlap(out, label, text, cfg.base)
            if why:
                raise UserError(f"the output folder {out} overlaps the inputs: {why}.", file=str(cfg.path),
                                hint="Choose an output folder (--out) outside the input folders that no source "
                                     "glob can reach, or make the glob narrower (e.g. data/city/*-street.csv).")
    if out.is_dir():
        _check_replaceable(out, kind)
    return out


def _check_replaceable(out: Path, kind: str) -> None:
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise UserError(f"the output folder {out} cannot be read ({exc.strerror or exc}).",
                        hint="Choose another folder with --out.") from None
    if empty:
        return
    was = owner(out)
    if was is None:
        raise UserError(f"the output folder {out} already holds files that hotspots did not write (it has no "
                        "hotspots manifest.json); a run replaces its output folder whole, so it will not use "
                        "this one.", hint="Choose a new or empty folder with --out.")
    if was != kind:
        raise UserError(f"the output folder {out} holds the outputs of {describe(was)}; {describe(kind)} "
                        "will not replace them.",
                        hint="Choose another folder with --out (each kind of run has its own default), "
                             "or delete that folder first.")


# ----------------------------------------------------------------------------- the lock
_held: dict[Path, int] = {}


def lock_path(out: Path) -> Path:
    out = Path(out).resolve()
    return out.parent / f".{out.name}.lock"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":   # os.kill(pid, 0) would terminate the process on Windows
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)   # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259                             # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(lock: Path) -> tuple[int, str] | None:
    """(pid, host) written in a lock file, or None when it is empty or unreadable."""
    try:
        text = lock.read_text(encoding="utf-8").split()
        return int(text[0]), text[1] if len(text) > 1 else ""
    except (OSError, ValueError, IndexError):
        return None


def _stale(lock: Path) -> bool:
    holder = _holder(lock)
    if holder is None:
        # Being written this instant, or left empty by a crash: stale once it is a few seconds old.
        try:
            return time.time() - lock.stat().st_mtime > 10
        except OSError:
            return True
    pid, host = holder
    if host and host != socket.gethostname():
        return False   # another machine's run (a shared drive): cannot tell, assume it is alive
    return pid == os.getpid() or not _pid_alive(pid)   # our own pid here: left by an earlier process


def _acquire(lock: Path, out: Path) -> None:
    stamp = f"{os.getpid()} {socket.gethostname()}\n"
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if attempt == 0 and _stale(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            holder = _holder(lock)
            who = f"process {holder[0]}" + (f" on {holder[1]}" if holder[1] else "") if holder else "another run"
            raise UserError(f"another hotspots run ({who}) is writing the output folder {out}: two runs cannot "
                            f"write one folder.", file=str(lock),
                            hint="Wait for it to finish, or choose another --out. If no run is active, "
                                 "delete the lock file.") from None
        except OSError as exc:
            raise UserError(f"cannot create the lock file for the output folder {out} "
                            f"({exc.strerror or exc}).", file=str(lock),
                            hint="Choose a folder you can write to with --out.") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(stamp)
        return


@contextlib.contextmanager
def locked(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of output folder ``out`` (re-entrant within this process)."""
    out = Path(out).resolve()
    lock = lock_path(out)
    if _held.get(lock):
        _held[lock] += 1
        try:
            yield lock
        finally:
            _held[lock] -= 1
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    _acquire(lock, out)
    _held[lock] = 1
    try:
        yield lock
    finally:
        _held.pop(lock, None)
        holder = _holder(lock)
        if holder and holder[0] == os.getpid():
            with contextlib.suppress(OSError):
                lock.unlink()


# ----------------------------------------------------------------------------- write, then swap
def _scratch(out: Path, what: str) -> Path:
    return out.parent / f".{out.name}.hotspots-{what}-{os.getpid()}-{secrets.token_hex(4)}"


def _remove_leftovers(out: Path) -> None:
    """Temporary folders of runs on ``out`` that died (their pid is in the name)."""
    pattern = re.compile(re.escape(f".{out.name}.hotspots-") + r"(tmp|old)-(\d+)-[0-9a-f]{8}$")
    for entry in out.parent.iterdir():
        m = pattern.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and (
                int(m.group(2)) == os.getpid() or not _pid_alive(int(m.group(2)))):
            shutil.rmtree(entry, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def not_written(folder: Path) -> list[str]:
    """The files in ``folder`` (a previous output) that its manifest does not list: put there by
    someone else (an analyst's notes), they go with the folder when a run replaces it."""
    try:
        listed = {str(o.get("path")) for o in json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["outputs"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    listed.add(MANIFEST)
    return [name for name in _files_in(folder) if name not in listed]


def _swap_in(tmp: Path, out: Path, kind: str) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    _check_replaceable(out, kind)   # again, under the lock: never delete a folder that is not ours
    others = not_written(out)
    if others:
        # The folder is replaced whole (never half written), so what the run did not write goes with it:
        # said, not done silently (hostile audit: an analyst's meeting notes in it vanished without a word).
        warnings.warn(f"{len(others):,} file(s) in {out} that the previous run did not write were removed with "
                      f"its outputs: {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}. The output "
                      "folder is replaced whole by each run: keep other files elsewhere.", HotspotsWarning,
                      stacklevel=2)
    if _exchange(tmp, out):
        _remove_previous(tmp, out)   # now the previous output
        return
    old = _scratch(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)   # put the previous output back
        raise
    _remove_previous(old, out)


def _remove_previous(folder: Path, out: Path) -> None:
    """Delete the previous output, swapped out to ``folder``; where some of it cannot be deleted (a file
    held open, a read-only mount), say where it is: a hidden folder of partner-tier outputs left with
    no word until the next run would outlive what the analyst meant to replace."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():
        warnings.warn(f"the previous outputs in {out} could not all be deleted after the new ones replaced "
                      f"them: what is left is in the hidden folder {folder}. Delete it by hand (it may hold "
                      "partner-tier outputs); the next run on this folder tries again.", HotspotsWarning,
                      stacklevel=3)


@contextlib.contextmanager
def staged(out: str | Path, kind: str = "shared") -> Iterator[Path]:
    """A temporary folder to write every output into; swapped in for ``out`` when the block ends
    without an error, removed (leaving ``out`` as it was) when it raises. Call under ``locked``."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tmp = _scratch(out, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        try:
            _swap_in(tmp, out, kind)
        except OSError as exc:
            raise UserError(f"the new outputs could not replace the output folder {out} ({exc.strerror or exc}); "
                            "it is left as it was.", hint="Close any program using a file in it, or choose "
                                                          "another folder with --out.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def writing(out: str | Path, kind: str = "shared") -> Iterator[Path]:
    """``locked`` and ``staged`` together: yields the temporary folder to write into."""
    with locked(out), staged(out, kind) as tmp:
        yield tmp
