"""`python -m bench web --json`: the web app in headless Chromium, subscribed to every
stream of BTCUSDT (book, trades, mark, liquidations, status, cascades), while the
server runs one 10,000-position liquidation cascade (the set-up of `bench cascade`,
then a 30 % index shock through the admin API).

Figures:

- `messages`: stream messages the page received;
- `seconds_behind_at_end`: from the moment the server has answered the shock (the
  cascade is over on the server) until the page has *rendered* the last public event
  of it (its coalesced renderer's `lastRenderedSeq` reaches that event's seq);
- `longest_frame_ms`: the longest main-thread task the page ran (Chromium's Long Tasks
  API, which reports tasks over 50 ms, and the app's own longest render);
- the same-run baseline: `baseline_seconds_behind`, how long a bare Python WebSocket
  client subscribed to the same streams on the native port took to *receive* that
  last event — the floor any page is measured against.

Aims: behind ≤ 1 s, longest frame ≤ 200 ms. Needs Debian's /usr/bin/chromium and the
`playwright` package (never downloads a browser).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

SYMBOL = "BTCUSDT"
CHROMIUM = Path("/usr/bin/chromium")
STREAMS = [f"{k}.{SYMBOL}" for k in ("book", "trades", "mark", "liquidations", "status")] + [
    "cascades"
]


async def _run(n: int, chromium: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from bench.cascade import START, build
    from exchange.protocol.formatter import Formatter
    from exchange.server import ServerConfig
    from exchange.testing import Probe, running_stack
    from exchange.web.app import setup

    ex = build(n, "index")
    # one cascade batch is ~100k stream messages at once: the default outbox (10,000)
    # would close every subscriber of everything as a slow consumer before it could read
    cfg = ServerConfig(rate_limit=None, max_outbox=1_000_000)
    async with running_stack(exchange=ex, clock="stepped", config=cfg, http_setup=[setup]) as st:
        assert st.http is not None
        last_public = 0
        sub = st.runtime.subscribe("bench-web", 1_000_000)

        async def watch() -> None:
            nonlocal last_public
            async for batch in sub:
                for ev in batch:
                    if Formatter.stream_of(ev) is not None:
                        last_public = max(last_public, ev.seq)

        watcher = asyncio.create_task(watch())
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), headless=True)
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(f"{st.http.url}/#liquidations")
            await page.wait_for_selector("#conn.open", timeout=30_000)
            await page.wait_for_function("() => window.__mc.app.market.bookSeq > 0")
            await page.evaluate(
                """() => {
                  window.__longest = 0;
                  new PerformanceObserver((l) => {
                    for (const e of l.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
                  }).observe({ type: "longtask" }); // from now on: the cascade, not the page's start-up
                }"""
            )
            async with Probe(st.url) as admin, Probe(st.url) as floor:
                await admin.call("session.logon", adminToken=st.admin_token)
                await floor.call("subscribe", streams=STREAMS)
                await asyncio.sleep(0.5)
                floor_seen = 0
                floor_at = 0.0

                async def read_floor() -> None:
                    nonlocal floor_seen, floor_at
                    while True:
                        await floor.stream_event.wait()
                        floor.stream_event.clear()
                        for name in list(floor.streams):
                            for m in floor.drain(name):
                                if isinstance(m, dict) and m.get("seq", 0) > floor_seen:
                                    floor_seen, floor_at = m["seq"], time.monotonic()

                reader = asyncio.create_task(read_floor())
                import aiohttp

                bridge_seen = 0
                bridge_at = 0.0
                hs = aiohttp.ClientSession()
                bws = await hs.ws_connect(f"{st.http.url}/api/ws", max_msg_size=1 << 24)
                await bws.send_json(
                    {"id": 1, "method": "subscribe", "params": {"streams": STREAMS}}
                )

                async def read_bridge() -> None:
                    nonlocal bridge_seen, bridge_at
                    import json as _j

                    async for m in bws:
                        d = _j.loads(m.data).get("data")
                        if isinstance(d, dict) and d.get("seq", 0) > bridge_seen:
                            bridge_seen, bridge_at = d["seq"], time.monotonic()

                breader = asyncio.create_task(read_bridge())
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                await admin.call("admin.setIndex", symbol=SYMBOL, price=str(START * 7 // 100))
                t_end = time.monotonic()
                while len(sub):
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                target = last_public
                reached = None
                while time.monotonic() - t_end < 120:
                    rendered = await page.evaluate("() => window.__mc.stats.lastRenderedSeq")
                    if rendered >= target:
                        reached = time.monotonic()
                        break
                    await asyncio.sleep(0.02)
                while floor_seen < target and time.monotonic() - t_end < 120:
                    await asyncio.sleep(0.01)
                while bridge_seen < target and time.monotonic() - t_end < 120:
                    await asyncio.sleep(0.01)
                reader.cancel()
                breader.cancel()
                await bws.close()
                await hs.close()
                page_stats = await page.evaluate(
                    """() => ({ messages: window.__mc.conn.messages, frames: window.__mc.stats.frames,
                               render: window.__mc.stats.longestFrameMs, longtask: window.__longest,
                               liqs: window.__mc.app.liqs.total, slowest: window.__mc.stats.slowest, handle: window.__mc.conn.handleMs, renderTotal: window.__mc.stats.renderMs })"""
                )
                server_stats = st.server.stats()
            await browser.close()
        watcher.cancel()
    behind = (reached - t_end) if reached is not None else None
    return {
        "bench": "web",
        "positions": n,
        "liquidations_on_page": page_stats["liqs"],
        "messages": page_stats["messages"],
        "frames": page_stats["frames"],
        "cascade_server_seconds": round(t_end - t0, 3),
        "seconds_behind_at_end": round(behind, 3) if behind is not None else None,
        "longest_frame_ms": round(max(page_stats["render"], page_stats["longtask"]), 1),
        "longest_render_ms": round(page_stats["render"], 1),
        "baseline_seconds_behind": round(max(0.0, floor_at - t_end), 3),
        "handling_ms_total": round(page_stats["handle"]),
        "rendering_ms_total": round(page_stats["renderTotal"]),
        "slowest_views_ms": page_stats["slowest"],
        "bridge_seconds_behind": round(max(0.0, bridge_at - t_end), 3),
        "slow_consumers_dropped": server_stats["slowConsumersDropped"],
        "aim": {"seconds_behind_at_end": 1.0, "longest_frame_ms": 200},
    }


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    n = getattr(args, "positions", None) or 10_000
    chromium = Path(getattr(args, "chromium", None) or CHROMIUM)
    if not chromium.exists():
        return {"bench": "web", "error": f"no Chromium at {chromium} (apt-get install chromium)"}
    return asyncio.run(_run(n, chromium))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--positions", type=int, default=10_000)
    p.add_argument("--chromium", default=str(CHROMIUM))
