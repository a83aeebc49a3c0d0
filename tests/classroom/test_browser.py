"""The whole game in a real Chromium: an instructor page and two student pages.

Both students join with the code and trade with each other; the instructor fires a
crash and one student is liquidated and sees it on the trading screen; the
leaderboard counts it; the console shows the web app's market screen (ticker, book,
trades) and its liquidation screen (the feed, the cascade tree); the server is killed
during the round and both pages come back to the same accounts; pause stops trading with a clear message; the round ends; the
debrief and the exports contain the liquidation. Screenshots go to
test-artifacts/classroom/.

Debian's chromium is driven through Playwright's `executable_path` (no browser
download). Without it the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.classroom.helpers import ADMIN, ROOT, Server, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "classroom"
GAME = """
name = "Browser game"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "index"
[liquidation]
insurance_fund = "100000"
[[rounds]]
name = "The crash"
duration = "10m"
clock_speed = 10
[rounds.scenario]
headlines = [{ at = "1s", text = "Markets open: good luck!" }]
[[rounds]]
name = "After"
duration = "1m"
"""


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("the playwright package is missing on CI (pip install -e '.[test]')")
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")


async def join(page, base: str, code: str, nickname: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/class/")
    await page.fill("#code", code)
    await page.fill("#nickname", nickname)
    await page.click("#go")
    await page.wait_for_url(f"{base}/class/play")
    from playwright.async_api import expect

    await expect(page.locator("#conn")).to_have_text("connected")


async def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@dataclass
class Classroom:
    """A game server and a Chromium, for one test."""

    srv: Server
    base: str  # the HTTP server's root URL
    ws_url: str
    browser: Any


@asynccontextmanager
async def classroom_in_chromium(tmp_path: Path, game_text: str) -> AsyncIterator[Classroom]:
    """`class run` of `game_text` in a subprocess and a Chromium; both stopped on exit."""
    _chromium_or_skip()
    from playwright.async_api import async_playwright

    game = tmp_path / "game.toml"
    game.write_text(game_text)
    ws_port, http_port = free_port(), free_port()
    srv = Server(game, tmp_path / "game.db", ws_port, http_port)
    srv.start()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        yield Classroom(srv, f"http://127.0.0.1:{http_port}", f"ws://127.0.0.1:{ws_port}", browser)
    finally:
        await browser.close()
        await pw.stop()
        srv.stop()


async def new_pages(browser: Any, n: int) -> tuple[list[Any], list[str]]:
    """`n` pages, each in a context of its own (a person of its own), and the list their
    uncaught page errors are collected in."""
    errors: list[str] = []
    pages = []
    for _ in range(n):
        page = await (await browser.new_context()).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        pages.append(page)
    return pages, errors


async def console_login(page: Any, base: str) -> str:
    """Open the console with the admin token; the game's join code."""
    from playwright.async_api import expect

    await page.goto(f"{base}/class/console")
    await page.fill("#token", ADMIN)
    await page.click("#login button")
    await expect(page.locator("#join-code")).not_to_have_text("––––––")
    return (await page.locator("#join-code").text_content() or "").strip()


@pytest.mark.slow
async def test_the_whole_game_in_chromium(tmp_path: Path) -> None:
    _chromium_or_skip()
    from playwright.async_api import async_playwright, expect

    game = tmp_path / "game.toml"
    game.write_text(GAME)
    ws_port, http_port = free_port(), free_port()
    srv = Server(game, tmp_path / "game.db", ws_port, http_port)
    base = f"http://127.0.0.1:{http_port}"
    srv.start()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        (teacher, ada, bob), errors = await new_pages(browser, 3)
        # the instructor opens the console with the admin token and reads the join code
        code = await console_login(teacher, base)
        assert len(code) == 6
        await join(ada, base, code, "Ada")
        await join(bob, base, code, "<b onclick=x>Bob</b>")
        await expect(bob.locator("#me")).to_have_text("<b onclick=x>Bob</b>")
        await expect(teacher.locator("#board")).to_contain_text("<b onclick=x>Bob</b>")
        await shot(teacher, "01-console-lobby")
        # in the lobby trading is closed, with the reason on screen
        await expect(ada.locator("#banner")).to_contain_text("Waiting for the instructor")
        await teacher.click("button[data-action=start]")
        await expect(ada.locator("#banner")).to_have_text("")
        await expect(ada.locator("#headlines")).to_contain_text("Markets open")
        # Bob offers 0.5 BTC at 50,000; Ada buys it at market with 50x leverage
        await ada.fill("#leverage", "50")
        await ada.click("#set-leverage")
        await expect(ada.locator("#activity")).to_contain_text("Leverage 50x")
        await bob.fill("#qty", "0.500")
        await bob.fill("#price", "50000")
        await bob.click("#sell")
        await expect(bob.locator("#orders")).to_contain_text("SELL")
        # the console shows the web app's market screen: the ticker, Bob's offer in the
        # book, and the symbol picker offers the game's instruments
        await expect(teacher.locator("#t-mark")).to_have_text("50,000.00")
        await expect(teacher.locator("#book-asks .row", has_text="50000.00")).to_contain_text(
            "0.500"
        )
        assert await teacher.locator("#symbol option").all_text_contents() == ["BTCUSDT"]
        await expect(teacher.locator("#status")).to_have_text("TRADING")
        await ada.select_option("#type", "MARKET")
        await ada.fill("#qty", "0.500")
        await ada.click("#buy")
        await expect(ada.locator("#pos-qty")).to_have_text("0.500")
        await expect(bob.locator("#pos-qty")).to_have_text("-0.500")
        await expect(teacher.locator("#trades tr:not([hidden])").first).to_contain_text("50000.00")
        await expect(teacher.locator("#book-asks .row", has_text="50000.00")).to_have_count(0)
        await shot(ada, "02-student-long")
        # the server dies during the round; both pages come back to the same accounts
        srv.kill()
        await expect(ada.locator("#conn")).not_to_have_text("connected")
        srv.start()
        for p in (ada, bob):
            await expect(p.locator("#conn")).to_have_text("connected", timeout=20_000)
        await expect(ada.locator("#pos-qty")).to_have_text("0.500", timeout=10_000)
        await expect(bob.locator("#pos-qty")).to_have_text("-0.500")
        # a page opened afresh shows the position's leverage, not its field's default of 10
        await ada.reload()
        await expect(ada.locator("#pos-qty")).to_have_text("0.500", timeout=10_000)
        await expect(ada.locator("#leverage")).to_have_value("50")
        await expect(teacher.locator("#state")).to_have_text("running", timeout=10_000)
        # the console's market views reconnect by themselves (their feed is live: what
        # passed while disconnected is not in it, and it says so)
        await expect(teacher.locator("#conn")).to_have_text("live", timeout=20_000)
        await expect(teacher.locator("#feed-count")).to_contain_text("reconnected")
        # the crash: −5 % at once liquidates a 50x long
        await teacher.fill("#shock-size", "-5")
        await teacher.fill("#shock-over", "0")
        await teacher.click("#shock button")
        await expect(ada.locator("#liq-banner")).to_contain_text(
            "You were liquidated", timeout=10_000
        )
        await expect(ada.locator("#pos-qty")).to_have_text("0")
        await shot(ada, "03-student-liquidated")
        # the leaderboard counts it (students see their rank; the console sees everything)
        await expect(ada.locator("#liqs")).to_have_text("1", timeout=10_000)
        await expect(
            teacher.locator("#board tr", has_text="Ada").locator("td").nth(5)
        ).to_have_text("1")
        # the console's liquidation screen (reconnected by itself after the restart) has
        # Ada's liquidation in its feed, at the crash's mark, and its cascade as a tree
        feed = teacher.locator("#feed tr:not([hidden])")
        await expect(feed).to_have_count(1, timeout=10_000)
        await expect(feed.first).to_contain_text("LONG")
        await expect(feed.first).to_contain_text("0.500")
        await expect(feed.first).to_contain_text("47500.00")
        await expect(teacher.locator("#feed-count")).to_contain_text("1 received")
        await expect(teacher.locator("#liq-fund")).to_have_text("100,000.00 USDT")
        await expect(teacher.locator("#cascade-tree .node")).to_have_count(1)
        await expect(teacher.locator("#cascade-summary")).to_contain_text("Liquidations")
        await expect(teacher.locator("#price-chart .main-svg").first).to_be_attached()
        await shot(teacher, "04-console-after-crash")
        # the students table speaks units (0.500 BTCUSDT, 52,290.9), not lots and ticks
        import re

        await expect(
            teacher.locator("#students tr", has_text="Bob").locator("td").nth(1)
        ).to_have_text(re.compile(r"^-?\d+\.\d{3} BTCUSDT$"))
        # and both tables fit inside their panels
        for table in ("#board", "#students"):
            inner = await teacher.locator(table).bounding_box()
            panel = await teacher.locator(f"section:has({table})").bounding_box()
            assert inner and panel and inner["x"] + inner["width"] <= panel["x"] + panel["width"]
        # pause: orders are refused, with the reason on screen
        await teacher.click("button[data-action=pause]")
        await expect(bob.locator("#banner")).to_contain_text("paused by the instructor")
        await bob.select_option("#type", "LIMIT")
        await bob.fill("#qty", "0.010")
        await bob.fill("#price", "47000")
        await bob.click("#buy")
        await expect(bob.locator("#order-error")).to_contain_text("-9005")
        await shot(bob, "05-student-paused")
        await teacher.click("button[data-action=resume]")
        await expect(bob.locator("#banner")).to_have_text("")
        # the instructor ends the round
        await teacher.click("button[data-action=next_round]")
        await expect(ada.locator("#banner")).to_contain_text("round is over")
        await expect(teacher.locator("#state")).to_have_text("round over")
        # the debrief shows the liquidation with its trigger mark
        async with teacher.expect_popup() as popup:
            await teacher.click("#open-debrief")
        debrief = await popup.value
        # plotly.js is 4.8 MB: on a loaded machine the report takes a while to draw
        await expect(debrief.locator("#rounds")).to_contain_text(
            "Liquidations suffered", timeout=30_000
        )
        await expect(debrief.locator("#rounds table").nth(1)).to_contain_text("Ada")
        await expect(debrief.locator("#rounds table").nth(1)).to_contain_text("47500")
        await expect(debrief.locator(".js-plotly-plot").first).to_be_visible()
        await shot(debrief, "06-debrief")
        assert not errors, errors
    except BaseException:
        srv.stop()  # a failure above must not leave the server running
        raise
    finally:
        await browser.close()
        await pw.stop()
    # the exports contain it too
    try:
        async with aiohttp.ClientSession(headers={"X-Admin-Token": ADMIN}) as s:
            async with s.get(f"{base}/class/api/admin/export?table=liquidations&round=1") as r:
                text = await r.text()
            assert r.status == 200 and "Ada" in text and ",47500.00," in text
            async with s.get(f"{base}/class/api/admin/export?table=leaderboard&round=1") as r:
                board = await r.text()
            assert "Ada" in board
    finally:
        srv.stop()


@pytest.mark.slow
async def test_the_students_book_and_tape(tmp_path: Path) -> None:
    """The play page shows the best levels of the book (resting orders' price and size,
    the best bid and ask highlighted) and the trades tape; clicking a level puts its price
    in the order ticket, and the price field follows the mark only until then."""
    import re

    from playwright.async_api import expect

    async with classroom_in_chromium(tmp_path, GAME) as room:
        base, browser = room.base, room.browser
        (teacher, ada, bob), errors = await new_pages(browser, 3)
        code = await console_login(teacher, base)
        await join(ada, base, code, "Ada")
        await join(bob, base, code, "Bob")
        await teacher.click("button[data-action=start]")
        await expect(ada.locator("#banner")).to_have_text("")
        # an untouched price field follows the mark: −1 % moves it from 50000 to 49500
        price = ada.locator("#price")
        await expect(price).to_have_value("50000.00")
        await teacher.fill("#shock-size", "-1")
        await teacher.fill("#shock-over", "0")
        await teacher.click("#shock button")
        await expect(ada.locator("#mark")).to_have_text("49500.00", timeout=10_000)
        await expect(price).to_have_value("49500.00")
        # Bob rests an offer and a bid; Ada's book shows both, the best of each highlighted
        for side, qty, px in (("#sell", "0.500", "50100"), ("#buy", "0.200", "49900")):
            await bob.fill("#qty", qty)
            await bob.fill("#price", px)
            await bob.click(side)
        await expect(bob.locator("#orders tr")).to_have_count(2)
        best_ask = ada.locator("#book-asks tr.best")
        best_bid = ada.locator("#book-bids tr.best")
        await expect(best_ask.locator("td")).to_have_text(["50100.00", "0.500"])
        await expect(best_bid.locator("td")).to_have_text(["49900.00", "0.200"])
        await expect(ada.locator("#book-asks tr.level")).to_have_count(1)
        await expect(ada.locator("#book-spread")).to_have_text("spread 200.00")
        # clicking a level puts its price in the ticket (a limit order at that price)
        await ada.select_option("#type", "MARKET")
        await best_bid.click()
        await expect(price).to_have_value("49900.00")
        await expect(ada.locator("#type")).to_have_value("LIMIT")
        # Ada buys 0.1 at market: the tape shows the trade in the taker's colour, and the
        # offer left in the book is smaller
        await ada.select_option("#type", "MARKET")
        await ada.fill("#qty", "0.100")
        await ada.click("#buy")
        trade = ada.locator("#trades tr").first
        await expect(trade.locator("td").nth(1)).to_have_text("50100.00")
        await expect(trade.locator("td").nth(2)).to_have_text("0.100")
        await expect(trade).to_have_class(re.compile(r"\bbuy\b"))
        await expect(ada.locator("#trades tr")).to_have_count(1)
        await expect(ada.locator("#last")).to_have_text("50100.00")
        await expect(best_ask.locator("td")).to_have_text(["50100.00", "0.400"])
        await shot(ada, "07-student-book-and-tape")
        # a price the student picked stays when the mark moves
        await teacher.click("#shock button")
        await expect(ada.locator("#mark")).not_to_have_text("49500.00", timeout=10_000)
        await expect(price).to_have_value("49900.00")
        assert not errors, errors


SYMBOLS_GAME = """
name = "Two symbols"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
[[instruments]]
symbol = "ETHUSDT"
initial_index = "3000"
[[rounds]]
duration = "10m"
"""


@pytest.mark.slow
async def test_the_console_offers_the_games_symbols(tmp_path: Path) -> None:
    """The console's symbol picker lists the game's instruments (not one an operator
    added to the exchange), and switching it moves the mounted views to that symbol."""
    from playwright.async_api import expect

    from exchange.testing import Probe

    async with classroom_in_chromium(tmp_path, SYMBOLS_GAME) as room:
        base, browser = room.base, room.browser
        async with Probe(room.ws_url) as adm:
            await adm.call("session.logon", adminToken=ADMIN)
            sol = {
                "symbol": "SOLUSDT", "base_asset": "SOL", "tick_size": "0.01", "step_size": "0.1",
                "max_qty": "100000", "max_leverage": 20, "min_notional": "5",
                "brackets": [{"cap": "1000000", "max_leverage": 20, "mmr": "0.01"}],
            }  # fmt: skip
            await adm.call("admin.addInstrument", instrument=sol)
            info = await adm.call("exchangeInfo")
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        (teacher,), errors = await new_pages(browser, 1)
        await console_login(teacher, base)
        await expect(teacher.locator("#t-mark")).to_have_text("50,000.00")
        options = teacher.locator("#symbol option")
        await expect(options).to_have_count(2)
        assert await options.all_text_contents() == ["BTCUSDT", "ETHUSDT"]
        await teacher.select_option("#symbol", "ETHUSDT")
        await expect(teacher.locator("#t-mark")).to_have_text("3,000.00")
        await expect(teacher.locator("#ladder .row.mark")).to_contain_text("3000")
        await expect(teacher.locator("#status")).to_have_text("HALTED")  # the lobby
        assert not errors, errors


@pytest.mark.slow
async def test_the_console_freezes_and_kicks_a_student(tmp_path: Path) -> None:
    """The students table's buttons work: freeze, then kick (the kick button was always
    disabled: `disabled: null` was written as the attribute disabled="null")."""
    from playwright.async_api import expect

    async with classroom_in_chromium(tmp_path, GAME) as room:
        base, browser = room.base, room.browser
        teacher = await (await browser.new_context()).new_page()
        cy = await (await browser.new_context()).new_page()
        code = await console_login(teacher, base)
        await join(cy, base, code, "Cy")
        kick = teacher.locator("#students button", has_text="kick Cy")
        await expect(kick).to_be_enabled()
        await teacher.locator("#students button", has_text="freeze Cy").click()
        await expect(teacher.locator("#students button", has_text="unfreeze Cy")).to_be_visible()
        await teacher.locator("#students button", has_text="kick Cy").click()
        kicked = teacher.locator("#students button", has_text="kicked")
        await expect(kicked).to_be_visible()
        await expect(kicked).to_be_disabled()
        assert await teacher.text_content("#action-error") == ""
        # the kicked student's page says so and stops asking for a new token (each ask
        # spends the join rate limit of the address, shared with the class behind a NAT)
        asks: list[str] = []
        cy.on("request", lambda r: asks.append(r.url) if r.url.endswith("/rejoin") else None)
        await cy.reload()
        await expect(cy.locator("#banner")).to_contain_text("removed")
        await cy.wait_for_timeout(3000)
        assert len(asks) == 1, asks


CONSOLE_GAME = """
name = "Console game"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "index"
[join]
teams = true
[[rounds]]
name = "Trade"
duration = "10m"
clock_speed = 10
[[rounds]]
name = "Ended at once"
duration = "10m"
"""


@pytest.mark.slow
async def test_the_console_reads_right_from_the_lobby_to_game_over(tmp_path: Path) -> None:
    """The console in every state: the halt button says what it does (Halt / Resume
    SYMBOL) and is disabled with no round in play; a roster imported twice makes no
    duplicate student and says who already had slips; a team's freeze and kick buttons
    are named after the team and act on every member; at game over the leaderboard is
    the whole game's (round 1's winner, though round 2 was ended at once) and the clock
    says "game over", not the seconds the last round had left."""
    import asyncio

    from playwright.async_api import expect

    from exchange.testing import Probe

    async with classroom_in_chromium(tmp_path, CONSOLE_GAME) as room:
        base, browser = room.base, room.browser
        (teacher,), errors = await new_pages(browser, 1)
        await console_login(teacher, base)
        state = teacher.locator("#state")
        await expect(state).to_have_text("lobby")
        halt = teacher.locator("#symbols button")
        await expect(halt).to_have_text("Halt BTCUSDT")
        await expect(halt).to_be_disabled()
        await expect(teacher.locator("#symbols")).to_contain_text("halted until the game starts")
        # the roster, imported twice: the second click makes nothing new and says so
        await teacher.fill("#roster", "nickname,team\nBea,\nCy,red\nDee,red\n")
        await teacher.click("#import")
        await expect(teacher.locator("#roster-note")).to_have_text("3 new slips.")
        slips = teacher.locator("#slips .slip strong")
        await expect(slips).to_have_count(3)
        codes = await slips.all_text_contents()
        await teacher.click("#import")
        await expect(teacher.locator("#roster-note")).to_contain_text(
            "0 new slips. 3 already had slips (Bea, Cy, Dee)"
        )
        assert await slips.all_text_contents() == codes  # the slips made first stay on screen
        await expect(teacher.locator("#students tr")).to_have_count(2)  # Bea and Team RED
        await expect(teacher.locator("#board tr")).to_have_count(2)
        team = teacher.locator("#students tr", has_text="Team RED")
        await expect(team.locator("button")).to_have_text(["freeze Team RED", "kick Team RED"])
        await shot(teacher, "30-console-lobby-roster-twice")
        # freezing the team freezes each member (a member alone would freeze them all)
        await team.locator("button").first.click()
        await expect(team.locator("button").first).to_have_text("unfreeze Team RED")
        frozen: list[bool] = []
        async with aiohttp.ClientSession(headers={"X-Admin-Token": ADMIN}) as s:
            for _ in range(50):  # one request per member: the second may still be on its way
                async with s.get(f"{base}/class/api/admin/overview") as r:
                    ov = await r.json()
                [row] = [r for r in ov["students"] if r["name"] == "Team RED"]
                frozen = [m["frozen"] for m in row["students"]]
                if all(frozen):
                    break
                await asyncio.sleep(0.1)
        assert frozen == [True, True]
        await team.locator("button").first.click()
        await expect(team.locator("button").first).to_have_text("freeze Team RED")
        # a round in play: halt and resume
        await teacher.click("button[data-action=start]")
        await expect(state).to_have_text("running")
        await expect(halt).to_be_enabled()
        await halt.click()
        await expect(halt).to_have_text("Resume BTCUSDT")
        await expect(teacher.locator("#symbols")).to_contain_text("halted by you")
        await expect(teacher.locator("#status")).to_have_text("HALTED")
        await shot(teacher, "31-console-halted-by-you")
        await halt.click()
        await expect(halt).to_have_text("Halt BTCUSDT")
        await expect(teacher.locator("#symbols")).to_contain_text("trading")
        await expect(teacher.locator("#status")).to_have_text("TRADING")
        # Bea sells 0.1 BTC to Team RED (Cy's slip); +5 % at once: Team RED wins round 1
        async with aiohttp.ClientSession() as s:
            tokens = []
            for code in codes[:2]:
                async with s.post(f"{base}/class/api/rejoin", json={"rejoin": code}) as r:
                    tokens.append((await r.json())["token"])
        async with (
            Probe(room.ws_url) as bea,
            Probe(room.ws_url) as cy,
        ):
            await bea.call("session.logon", token=tokens[0])
            await cy.call("session.logon", token=tokens[1])
            await bea.call(
                "order.place", symbol="BTCUSDT", side="SELL", type="LIMIT", quantity="0.1",
                price="50000", timeInForce="GTC",
            )  # fmt: skip
            await cy.call(
                "order.place", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.1"
            )
        await teacher.fill("#shock-size", "5")
        await teacher.fill("#shock-over", "0")
        await teacher.click("#shock button")
        await expect(teacher.locator("#t-mark")).to_have_text("52,500.00")
        # round 1 ends early, round 2 is ended at once: its own board is all zeros
        await teacher.click("button[data-action=next_round]")
        await expect(state).to_have_text("round over")
        await expect(teacher.locator("#clock")).to_have_text("")
        await expect(halt).to_be_disabled()
        await teacher.click("button[data-action=next_round]")
        await expect(state).to_have_text("running")
        await expect(teacher.locator("#clock")).to_contain_text("s left")
        await teacher.click("button[data-action=finish]")
        await expect(state).to_have_text("game over")
        await expect(teacher.locator("#clock")).to_have_text("game over")
        await expect(teacher.locator("#board-title")).to_have_text(
            "Final standings: the whole game"
        )
        async with (
            aiohttp.ClientSession(headers={"X-Admin-Token": ADMIN}) as s,
            s.get(f"{base}/class/api/admin/overview") as r,
        ):
            final = (await r.json())["leaderboard"]
        assert [r["name"] for r in final] == ["Team RED", "Bea"]
        assert float(final[0]["returnPct"]) > 2 and float(final[1]["returnPct"]) < -2
        board = teacher.locator("#board tr")
        for i, r in enumerate(final):
            await expect(board.nth(i).locator("td").nth(1)).to_have_text(r["name"])
            await expect(board.nth(i).locator("td").nth(3)).to_have_text(r["returnPct"])
        await expect(halt).to_have_text("Halt BTCUSDT")
        await expect(halt).to_be_disabled()
        await expect(teacher.locator("#symbols")).to_contain_text("closed: the game is over")
        await shot(teacher, "32-console-game-over")
        assert not errors, errors
