"""The command line: parse arguments, call the pipeline, print a summary.

Exit codes: 0 success, 1 user error (one paragraph naming file, row and
column; no traceback unless --debug), 2 usage error (argparse).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
import traceback
import warnings
from pathlib import Path

from hotspots import __version__
from hotspots.errors import UserError

_default_showwarning = warnings.showwarning
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "london_city_fringe" / "partnership.toml"


def _example_config() -> Path:
    if EXAMPLE.is_file():
        return EXAMPLE
    raise UserError("the bundled example is not installed with this copy of hotspots.",
                    hint="Run 'hotspots demo' from a clone of the repository (make demo).")


def _print_accounting(summary, out=None) -> None:
    out = out or sys.stdout
    cols = ["source_id", "files", "rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]
    heads = ["source", "files", "read", "loaded", "filtered", "rejected"]
    widths = [max([len(h), *(len(f"{v:,}" if isinstance(v, int) else str(v)) for v in summary[c])])
              for h, c in zip(heads, cols)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths))), file=out)
    for rec in summary.to_dict(orient="records"):
        cells = [str(rec[cols[0]]).ljust(widths[0])]
        cells += [f"{int(rec[c]):,}".rjust(w) for c, w in zip(cols[1:], widths[1:])]
        print("  ".join(cells), file=out)
        if rec.get("top_reject_reasons"):
            print(f"    top reject reasons: {rec['top_reject_reasons']}", file=out)
        if rec.get("top_filter_reasons"):
            print(f"    top filter reasons: {rec['top_filter_reasons']}", file=out)


def default_out_folder(shared: Path, agency: str | None) -> Path:
    """An agency's own run never defaults to the shared run's folder: ``<shared>-agency-<source id>``."""
    if not agency:
        return shared
    from hotspots.publish.outdir import safe_name
    return shared.with_name(f"{shared.name}-agency-{safe_name(agency)}")


def cmd_run(args, config: Path | None = None, default_out: Path | None = None) -> int:
    from hotspots.config import load_config
    from hotspots.pipeline import analyse, publish
    from hotspots.progress import Progress
    from hotspots.publish import outdir

    cfg = load_config(config or args.config)
    agency = getattr(args, "agency", None)
    if agency and agency not in {src.id for src in cfg.sources}:
        raise UserError(f"--agency '{agency}' is not a source id of the config "
                        f"({', '.join(src.id for src in cfg.sources)}).", file=str(cfg.path))
    out = Path(args.out) if args.out else default_out_folder(default_out or cfg.base / "output", agency)
    # The output folder is checked and locked before any input is read, not found wrong after the analysis.
    kind = f"agency:{agency}" if agency else "shared"
    outdir.check(out, cfg, kind)
    pdf = bool(getattr(args, "pdf", False))
    if pdf:
        from hotspots.publish.briefing import chromium
        if chromium() is None:
            raise UserError("--pdf prints the briefing with Chromium, which is not installed here "
                            "(apt-get install chromium). Run without --pdf: briefing.html prints from any browser.")
    progress = Progress()
    try:
        with outdir.locked(out), _load_options(args, cfg, out, demo=config is not None) as load:
            pending: list = []
            result = analyse(cfg, progress, agency=agency, load=load, pending=pending)
            with progress.step("publish"):
                paths = publish(result, out, pdf=pdf)
            for wait in pending:        # the files' cache entries, written while the run went on
                wait()
    finally:
        progress.close()
    _print_accounting(result.ledger.summary(result.accounting))
    from hotspots.load.geocode import describe_rates
    for line in describe_rates(result.extra.get("geocoding", {})):
        print(line)
    link = result.extra.get("linkage") or {}
    if link:
        print(f"probable duplicates across agencies: {link.get('linked', 0):,} linked and counted once "
              f"(within {link.get('distance_m')} m, {link.get('days')} day(s) or the same month where dates are monthly)")
    for reason, n in (result.extra.get("held_back") or {}).items():
        print(f"held back from shared outputs: {n:,} ({reason})")
    p = result.parameters
    print(f"\ncell size {p['cell_size_m']['value']:g} m ({p['cell_size_m']['how']}); "
          f"neighbourhood {p['neighbour_distance_m']['value']:.0f} m; FDR alpha {p['fdr_alpha']['value']:g}")
    s = {"cells": result.grid.n, "hot": int((result.cells['gi_class'] >= 2).sum()),
         "regions": len(result.regions),
         "cross": int(result.regions['cross_boundary'].sum()) if len(result.regions) else 0}
    risk = int((result.incidents["weight"].to_numpy() > 0).sum())
    # Stop and search, context layers and weight-0 records are kept but are not risk (the briefing's count).
    print(f"{len(result.incidents):,} records ({risk:,} counted as risk) on {s['cells']:,} cells: "
          f"{s['hot']} hot cells (95 %+, FDR), "
          f"{s['regions']} hotspot regions, {s['cross']} crossing a boundary.")
    print(f"outputs in {paths['out']}")
    for key, path in paths.items():
        tier = f"{agency}'s own run, not for sharing" if agency else f"{key.rsplit('_', 1)[-1]} tier"
        if key.startswith("map_"):
            print(f"map ({tier}): {path}")
        elif key.startswith("briefing_"):
            print(f"briefing ({tier}{', PDF' if 'pdf' in key else ''}): {path}")
    return 0


@contextlib.contextmanager
def _load_options(args, cfg, out: Path, demo: bool = False):
    """The load stage's options from --fresh and --scheduler (a Dask client open for the run).

    The reusable incidents go to .hotspots-cache/ beside the config (beside the output for the
    demo, whose config lives in the package), never inside the output folder, replaced whole."""
    from hotspots.load import LoadOptions, cache

    fresh = bool(getattr(args, "fresh", False))
    folder = cache.cache_dir(out.resolve().parent if demo else cfg.base)
    if folder is not None:
        resolved = out.resolve()
        if folder == resolved or resolved in folder.parents or folder in resolved.parents:
            raise UserError(f"the output folder {out} and the cache folder {folder} overlap: the output "
                            "folder is replaced whole by each run.",
                            hint="Choose another --out, or set HOTSPOTS_CACHE to a folder outside it.")
    scheduler = _scheduler(args, cfg)
    if not scheduler:
        yield dataclasses.replace(LoadOptions.for_run(fresh=fresh), cache=folder)
        return
    from hotspots.distributed import connect
    with connect(scheduler) as client:
        yield dataclasses.replace(LoadOptions.for_run(fresh=fresh, client=client), cache=folder)


def _scheduler(args, cfg) -> str | None:
    """The Dask scheduler of this run: --scheduler, else the config's ``[engine] scheduler``;
    None for this machine's processes (``--scheduler none`` overrides the config's)."""
    chosen = getattr(args, "scheduler", None) or cfg.raw.get("engine", {}).get("scheduler")
    return None if not chosen or chosen == "none" else str(chosen)


def cmd_run_many(args) -> int:
    """Every config as one task on the cluster; each writes what 'hotspots run CONFIG' writes."""
    from hotspots.distributed import connect, run_many

    configs = [Path(c).resolve() for c in args.configs]
    for c in configs:
        if not c.is_file():
            raise UserError("the config file does not exist.", file=str(c))
    outs = {}
    for c in configs:
        if c.parent in outs:
            raise UserError(f"two configs in one folder ({outs[c.parent].name} and {c.name}) would both write "
                            "output/ beside them.", file=str(c),
                            hint="Run them with 'hotspots run CONFIG --out DIR', or keep one config per folder.")
        outs[c.parent] = c
    failed = 0
    with connect(args.scheduler) as client:
        for res in run_many(client, configs, fresh=args.fresh):
            print(f"==> {res['config']}: {'done' if res['code'] == 0 else 'FAILED'}")
            print(res["stdout"], end="")
            if res["stderr"]:
                print(res["stderr"], end="", file=sys.stderr)
            failed += res["code"] != 0
    print(f"\n{len(configs) - failed} of {len(configs)} configs done" + (f", {failed} failed." if failed else "."))
    return 1 if failed else 0


def cmd_demo(args) -> int:
    return cmd_run(args, config=_example_config(), default_out=Path.cwd() / "hotspots-demo")


def cmd_validate(args) -> int:
    import pandas as pd

    from hotspots.config import load_config
    from hotspots.load import load_sources

    out = Path(args.rejects) if getattr(args, "rejects", None) else None
    if out is not None:
        if out.suffix.lower() != ".csv" or out.is_dir():
            raise UserError("--rejects names the CSV file to write (FILE.csv).", file=str(out))
        if not out.parent.is_dir():     # said before the load, not after it
            raise UserError("--rejects names a file in a folder that does not exist.", file=str(out))
        if out.exists() and not _written_rejects(out):
            # Only a rejects file is replaced: never a partner's extract, a building list or a boundary file.
            raise UserError("--rejects names a file that exists and is not a rejects file: it would be "
                            "overwritten.", file=str(out),
                            hint="Write the rejects to a file of their own, e.g. --rejects rejects.csv.")
    cfg = load_config(args.config)
    if "public" in cfg.tiers:
        from hotspots.tiers import check_public
        check_public(cfg)
    # What run checks before analysing: the boundary layers, the study area's names, each source's
    # declared coverage or coverage polygon file; then the records that may not be shared are held
    # back as run holds them.
    from hotspots import attribute, governance
    from hotspots.coverage import coverage_polygon, coverage_units, declared_areas
    boundaries = attribute.read_boundaries(cfg)
    if cfg.area:
        attribute.study_area_from_layer(boundaries, cfg.area, cfg.area_names, str(cfg.path))
    coverage_units(cfg)     # [analysis] coverage_units_path, read as run reads it (validate passed a file run refused)
    for src in cfg.sources:
        if src.coverage:
            declared_areas(cfg, boundaries, src)
        elif src.options.get("coverage_path"):
            coverage_polygon(cfg, src)
    loaded = load_sources(cfg, keep_going=True)
    incidents, _ = governance.split_shared(loaded.incidents, cfg, loaded.ledger)
    acc = loaded.ledger.accounting(incidents)
    if cfg.key_buildings:
        from hotspots.load.buildings import load_buildings
        try:
            acc = pd.concat([acc, load_buildings(cfg, loaded.ledger)[1]], ignore_index=True)
        except UserError as exc:
            loaded.ledger.failures["key_buildings"] = str(exc)
    grid_problem = None
    if len(incidents):
        try:
            _check_grid(cfg, incidents, boundaries)
        except UserError as exc:
            grid_problem = str(exc)
    _print_accounting(loaded.ledger.summary(acc))
    print("\n(These are the counts run makes, except that validate does not clip the records to the study area: "
          "run may reject more rows, as 'outside study area'.)")
    if out is not None:
        # Every rejected row, as run writes them (never whole rows): an analyst onboarding a partner reads
        # them without running the analysis (a user audit: only the top three reasons were shown).
        from hotspots.publish.exports import write_csv
        try:
            write_csv(loaded.ledger.rejects, out)
        except OSError as exc:
            raise UserError(f"the rejects cannot be written ({exc.strerror}).", file=str(out)) from None
        print(f"\n{len(loaded.ledger.rejects):,} rejected rows written to {out}")
    for sid, message in loaded.ledger.failures.items():
        print(f"\nsource '{sid}' FAILED: {message}")
    if grid_problem:
        print(f"\nthe analysis would FAIL: {grid_problem}")
    return 1 if loaded.ledger.failures or grid_problem else 0


def _written_rejects(path: Path) -> bool:
    """Whether ``path`` is a rejects file (its header is ``REJECT_COLUMNS``), which --rejects may replace."""
    from hotspots.load.ledger import REJECT_COLUMNS
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.readline().rstrip("\r\n") == ",".join(REJECT_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def _check_grid(cfg, incidents, boundaries) -> None:
    """The grid run would lay over these incidents, and its Gi* neighbourhood, within their limits
    (``hotspots.grid``): a cell size too small for the study area is found by validate, not by run."""
    from hotspots import grid as gridmod
    from hotspots.pipeline import choose_study_area

    class _Uncounted:           # the strays run rejects are not validate's to count
        def reject(self, *args, **kwargs):
            pass

    area, cell, _, _ = choose_study_area(cfg, incidents, boundaries, _Uncounted())
    grid = gridmod.build_grid(area, cell, str(cfg.analysis.get("cell_shape", "square")))
    gridmod.check_neighbour_distance(float(cfg.analysis.get("neighbour_distance_m", grid.touch_distance)),
                                     grid.cell, grid.n)


def _months(text: str, flag: str):
    """'2018-01:2018-12' -> (start, exclusive end)."""
    from hotspots.config import _period
    parts = str(text).split(":")
    if len(parts) != 2:
        raise UserError(f"{flag} '{text}' should be START:END, e.g. 2018-01:2018-12.")
    return _period(parts[0], flag, None, False)[0], _period(parts[1], flag, None, True)[0]


def cmd_evaluate(args) -> int:
    from hotspots.config import load_config
    from hotspots.evaluate import FORMULAS
    from hotspots.pipeline import evaluate_holdout
    from hotspots.progress import Progress
    from hotspots.publish import outdir

    cfg = load_config(args.config)
    # Its own folder by default: an evaluation replaces its output folder whole, never a run's.
    out = Path(args.out) if args.out else cfg.base / "output-evaluation"
    train, test = _months(args.train, "--train"), _months(args.test, "--test")
    outdir.check(out, cfg, "evaluation")
    progress = Progress()
    try:
        with outdir.locked(out):
            table = evaluate_holdout(cfg, train, test, out, progress)
    finally:
        progress.close()
    shown = table.copy()
    shown["coverage"] = (shown["coverage"] * 100).map(lambda v: f"{v:g} %")
    print(shown[["method", "coverage", "hit_rate", "pai", "pei", "rri"]].to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(FORMULAS)
    print(f"wrote {out / 'evaluation.csv'} and {out / 'coverage.png'}")
    return 0


def _show_schema(name: str, config: str | None) -> int:
    """``hotspots schemas NAME``: one schema (built in, or a JSON path) in full, its notes first."""
    import textwrap

    from hotspots.schema import building_schema, builtin_schemas, source_schema

    base = Path(config).resolve().parent if config else Path.cwd()
    kind = "buildings" if name in builtin_schemas("buildings") else "incidents"
    spec = building_schema(name, base) if kind == "buildings" else source_schema(name, base)
    what = "key-building schema" if kind == "buildings" else "source schema"
    print(f"{what} '{spec.get('name', name)}': {spec.get('title', '')}")
    if spec.get("extends"):
        print(f"extends '{spec['extends']}': the keys below are laid over it (hotspots schemas {spec['extends']})")
    for key in ("description", "notes", "reference"):
        if spec.get(key):
            print(f"\n{key}:")
            print(textwrap.fill(str(spec[key]), width=100, initial_indent="  ", subsequent_indent="  "))
    print("\nin full:")
    print(json.dumps(spec, indent=2, ensure_ascii=False))
    print("\nThe mapping format: docs/mappings.md.")
    return 0


def cmd_schemas(args) -> int:
    from hotspots.schema import builtin_schemas, source_schema

    name = getattr(args, "name", None)
    if name and name.lower().endswith(".toml") and not args.config:
        args.config, name = name, None     # 'hotspots schemas CONFIG.toml' lists the config's schemas
    if name:
        return _show_schema(name, args.config)
    print("built-in source schemas:")
    for name, path in builtin_schemas().items():
        print(f"  {name:24s} {source_schema(name).get('title', '')}")
    print("built-in key building schemas:")
    for name, path in builtin_schemas("buildings").items():
        print(f"  {name:24s} {json.loads(path.read_text(encoding='utf-8')).get('title', '')}")
    if args.config:
        from hotspots.config import load_config
        cfg = load_config(args.config)
        own = sorted({s.schema for s in cfg.sources if s.schema not in builtin_schemas()})
        if own:
            print(f"schemas of {cfg.path.name}:")
            for name in own:
                print(f"  {name:24s} {source_schema(name, cfg.base).get('title', '')}")
    return 0


def cmd_draft_mapping(args) -> int:
    """``hotspots draft-mapping FILE``: the drafted mapping as JSON (to --out, else to standard output)."""
    from hotspots.draft import draft_mapping

    draft = draft_mapping(args.file, sheet=args.sheet)
    config = draft.mapping["_draft"]["config"]
    if args.out:
        # The config lines kept in the file name the mapping as written (--out), as the lines printed do: the
        # file said schema = "<name>.json" while the terminal said the --out name.
        config[:] = [line.replace(f'"{draft.mapping["name"]}.json"', f'"{Path(args.out).name}"') for line in config]
    text = json.dumps(draft.mapping, indent=2, ensure_ascii=False) + "\n"
    report = sys.stdout if args.out else sys.stderr
    print("\n".join(draft.summary), file=report)
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError("the mapping file exists already: hotspots does not overwrite it "
                        "(an analyst's edits would be lost).", file=str(out), hint="Use --force, or another --out.")
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"the mapping cannot be written ({exc.strerror}).", file=str(out)) from None
    print(f"\nwrote {out}: fill each TODO, add the source to the config, e.g.", file=report)
    print("\n".join("  " + line for line in config), file=report)
    print("then run 'hotspots validate CONFIG.toml'. The format: docs/mappings.md.", file=report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotspots", description="Multi-agency violence hotspot analysis: "
                                     "load partner data, weight it, find hotspots across boundaries, publish maps.")
    parser.add_argument("--version", action="version", version=f"hotspots {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the bundled City of London example and write all outputs")
    p.add_argument("--out", help="output folder (default: hotspots-demo/ in the current folder; "
                                 "hotspots-demo-agency-SOURCE/ with --agency)")
    p.add_argument("--agency", help="an agency's own run of the example (a source id); see 'run --agency'")
    p.add_argument("--pdf", action="store_true", help="also print each briefing to PDF (needs Chromium)")
    _engine_arguments(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run the pipeline on a config")
    p.add_argument("config", help="the partnership's TOML config")
    p.add_argument("--out", help="output folder, replaced whole by the run (default: output/ beside the config; "
                                 "output-agency-SOURCE/ with --agency)")
    p.add_argument("--agency", help="an agency's own run (a source id): also uses its records whose handling "
                                    "code keeps them within the agency; the outputs are not for sharing")
    p.add_argument("--pdf", action="store_true", help="also print each briefing to PDF (needs Chromium)")
    _engine_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("run-many", help="run many partnerships' configs on a Dask cluster, one task per config")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="TOML configs; each writes output/ beside it")
    p.add_argument("--scheduler", required=True, metavar="ADDRESS",
                   help="a Dask scheduler (tcp://host:8786), or 'local' for a cluster on this machine's cores")
    p.add_argument("--fresh", action="store_true", help="read every file again, ignoring reusable incidents")
    p.set_defaults(func=cmd_run_many)

    p = sub.add_parser("validate", help="load and check every source without analysing")
    p.add_argument("config", help="the partnership's TOML config")
    p.add_argument("--rejects", metavar="FILE.csv",
                   help="also write every rejected row (source_id, file, row, reason, columns), as run's rejects.csv")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("evaluate", help="fit on some months, score on the next: hit rate, PAI, PEI, RRI")
    p.add_argument("config", help="the partnership's TOML config")
    p.add_argument("--train", required=True, help="training months, e.g. 2018-01:2018-12")
    p.add_argument("--test", required=True, help="test months, e.g. 2019-01:2019-03")
    p.add_argument("--out", help="output folder (default: output-evaluation/ beside the config)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("schemas", help="list the source schemas available, or show one in full with its notes")
    p.add_argument("name", nargs="?", help="a schema to show in full (built-in name or a JSON path); "
                                            "a CONFIG.toml here lists that config's schemas too")
    p.add_argument("--config", help="also list the schemas this config uses (paths resolve beside it)")
    p.set_defaults(func=cmd_schemas)
    p = sub.add_parser("draft-mapping", help="read a partner's file and draft its mapping (TODOs for the analyst)")
    p.add_argument("file", help="the partner's file: CSV, Excel, GeoJSON, GeoPackage or JSON")
    p.add_argument("--sheet", help="Excel: the sheet to read (default: the one with the most rows)")
    p.add_argument("--out", help="write the mapping JSON here (default: print it)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_draft_mapping)
    for name, action in sub.choices.items():
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show a traceback on errors")
    return parser


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    reuse = p.add_mutually_exclusive_group()
    reuse.add_argument("--reuse", dest="fresh", action="store_false", default=False,
                       help="reuse the normalised incidents of files loaded before with the same mapping and "
                            "config (the default; kept in .hotspots-cache/ beside the config)")
    reuse.add_argument("--fresh", dest="fresh", action="store_true",
                       help="read, map and geocode every file again, ignoring (and refreshing) the reusable incidents")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="load the files on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' "
                        "for a cluster on this machine's cores; the outputs are the same. Default: the config's "
                        "[engine] scheduler; 'none' loads in this machine's processes whatever the config says")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """hotspots' own warnings (an empty file, ...) as one line for the analyst, not a Python warning; a
    library's (pandas, pyogrio, numpy, ...) as one line naming the library, its source line only with --debug."""
    from hotspots.load.ledger import HotspotsWarning
    if issubclass(category, HotspotsWarning):
        print(f"hotspots: warning: {message}", file=sys.stderr)
    elif _DEBUG:
        _default_showwarning(message, category, filename, lineno, file, line)
    else:
        text = " ".join(str(message).split())
        print(f"hotspots: warning from {_library(filename)}: {text}", file=sys.stderr)


_DEBUG = False      # set by _main from --debug: library warnings as Python prints them


def _library(filename: str) -> str:
    """The package a warning came from (``.../site-packages/pyogrio/raw.py`` -> pyogrio), else its file's name."""
    parts = Path(str(filename)).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return Path(parts[parts.index(marker) + 1]).stem
    return "hotspots" if "hotspots" in parts else Path(str(filename)).stem or "Python"


#: Characters a terminal acts on, shown as escapes instead: C0 controls but tab, newline and carriage
#: return (a progress bar's), DEL, C1 controls and the bidirectional overrides and isolates.
_CONTROLS = {c: f"\\u{c:04x}"       # as JSON writes them: draft-mapping's JSON on stdout stays JSON
             for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
             if c not in (0x09, 0x0A, 0x0D)}


def printable(text: str) -> str:
    """``text`` with the control characters a terminal would act on shown as escapes (``\\u001b``)."""
    return text.translate(_CONTROLS)


class _Printable:
    """A text stream that writes through ``printable``: text quoted from a partner's file (a header, a
    category, a file name) reaches the terminal as text, never as escape sequences that retitle the
    window, clear warnings off the screen or write the clipboard (hostile audit)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Printable(sys.stdout), _Printable(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    global _DEBUG
    _DEBUG = bool(getattr(args, "debug", False))
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"hotspots: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hotspots: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure still reaches the user as one paragraph
        if args.debug:
            raise
        print(f"hotspots: internal error ({type(exc).__name__}: {exc}). This is a bug in hotspots; "
              f"run again with --debug for the traceback and report it.", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous


def entry() -> None:
    """The ``hotspots`` command (and ``python -m hotspots``): ``main``, then out without the
    interpreter's teardown when nothing is left to clean up (every output written and closed, no
    other thread, no child process, no profiler or tracer waiting to write its data at exit, as
    ``python -m cProfile`` or coverage have): freeing the run's tables object by object took 0.6-0.7 s
    of the 10 k and 1 M benchmark runs. ``main`` itself returns, for callers in Python."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import multiprocessing
    if (threading.active_count() == 1 and not multiprocessing.active_children()
            and sys.getprofile() is None and sys.gettrace() is None):
        os._exit(code)
    sys.exit(code)
