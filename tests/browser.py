"""Helpers for opening generated HTML in headless Chromium with the network cut off.

Not a test module: import ``open_offline`` and ``chromium_available`` from tests.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_available() -> bool:
    """True when the system Chromium used by the browser tests is installed."""
    return os.access(CHROMIUM, os.X_OK)


@contextlib.contextmanager
def open_offline(path: str | Path, timeout_ms: int = 15_000) -> Iterator[tuple]:
    """Open a local HTML file in headless Chromium with every non-file request blocked.

    Yields ``(page, console_errors, blocked_requests)``. ``console_errors``
    collects console errors, uncaught page errors and any dialog (dialogs are
    dismissed); ``blocked_requests`` lists URLs that were aborted because they
    were neither ``file:`` nor ``data:``. Both lists keep filling while the
    ``with`` block interacts with the page.
    """
    from playwright.sync_api import sync_playwright

    console_errors: list[str] = []
    blocked: list[str] = []

    def route(route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    def on_dialog(dialog):
        console_errors.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(service_workers="block")
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: console_errors.append(f"pageerror: {e}"))
            page.on("dialog", on_dialog)
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            yield page, console_errors, blocked
        finally:
            browser.close()


def expand_layer_control(page) -> None:
    """Open the map's collapsed layer control by hovering over it, as a user would. Leaflet ignores
    clicks in the moment after the control opens, so wait that moment out."""
    page.hover(".leaflet-control-layers")
    page.wait_for_timeout(100)
