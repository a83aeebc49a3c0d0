"""The web app in a real browser: Debian's Chromium driven by Playwright.

No browser is ever downloaded: Playwright launches /usr/bin/chromium (or
$MARGINCALL_CHROMIUM) through `executable_path`. Without it these tests skip with the
reason, except under CI=true, where they fail instead. Screenshots go to
test-artefacts/web/ (gitignored).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exchange.testing import Probe, Schemas, running_stack

CHROMIUM = Path(os.environ.get("MARGINCALL_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "web"
S = Schemas()


def instruments() -> list[Any]:
    """The shipped instruments, BTCUSDT marked by Binance's median method, so an index
    crash moves the mark and liquidation fills move it further (a cascade)."""
    from dataclasses import replace

    from exchange.config import load_instruments

    return [
        replace(i, mark_method="median") if i.symbol == "BTCUSDT" else i for i in load_instruments()
    ]


def need_chromium() -> None:
    why = None
    if not CHROMIUM.exists():
        why = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            why = "the playwright package is not installed (pip install -e '.[test]')"
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {why}")
    pytest.skip(f"browser tests skipped: {why}")


@dataclass
class Web:
    stack: Any
    base: str  # http://127.0.0.1:PORT
    admin: Probe
    problems: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.stack.url


@pytest.fixture
async def web() -> AsyncIterator[Web]:
    need_chromium()
    from exchange.web.app import setup

    # stepped: engine time moves only with commands, so the crash scenarios are exact
    async with (
        running_stack(
            instruments(), clock="stepped", start_ts=time.time_ns(), http_setup=[setup]
        ) as stack,
        Probe(stack.url, S) as admin,
    ):
        await admin.call("session.logon", adminToken=stack.admin_token)
        yield Web(stack, stack.http_url, admin)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            await b.close()


async def open_page(browser: Any, web: Web, path: str = "/") -> Any:
    """A page on the app, recording console errors and CSP violations in web.problems."""
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page.on(
        "console",
        lambda m: web.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: web.problems.append(f"page error: {e}"))
    await page.goto(web.base + path)
    await page.wait_for_selector("#conn.open", timeout=15_000)
    return page


async def shoot(page: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
