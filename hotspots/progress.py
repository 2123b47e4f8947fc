"""Progress for long steps: a tqdm bar on a terminal, silence otherwise."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Progress:
    """Reports each pipeline step; shows a bar only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, total: int | None = None):
        """``total``: how many steps are to come, when known. Without it the bar counts the steps done: a
        run's steps change with its stages (a fixed 6 read "12/6" at the end of a run of 12)."""
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.times: dict[str, float] = {}
        self._bar = None
        if self.enabled:
            from tqdm import tqdm
            self._bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False)

    @contextmanager
    def step(self, name: str):
        if self._bar is not None:
            self._bar.set_description(name)
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t, 3)
            if self._bar is not None:
                self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
