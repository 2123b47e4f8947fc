"""Shared fixtures: the bundled example, analysed once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "london_city_fringe"


@pytest.fixture(scope="session")
def example_config():
    from hotspots.config import load_config
    return load_config(EXAMPLE / "partnership.toml")


@pytest.fixture(scope="session")
def example_result(example_config):
    from hotspots.pipeline import analyse
    return analyse(example_config)


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory):
    """The demo run through the CLI once: (exit code, stdout, out folder)."""
    import contextlib
    import io

    from hotspots.cli import main
    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out)])
    return code, buf.getvalue(), out
