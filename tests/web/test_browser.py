"""The web app in Debian's Chromium: what a person sees after accounts trade, log on,
place and cancel orders, get rejected, and watch an index crash cascade."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from .conftest import Web, open_page, shoot
from .scenario import SYM, crash, crash_setup, token_for, traders, two_trade

XSS = '<img src=x onerror="window.__xss=1">'


async def until(page: Any, js: str, timeout: float = 10.0) -> Any:
    # as a function: the page's CSP forbids eval of a string
    return await page.wait_for_function(f"() => ({js})", timeout=timeout * 1000)


async def logon(page: Any, web: Web, token: str) -> None:
    await page.goto(web.base + "/#trade")
    await page.wait_for_selector("#conn.open")
    await page.fill("#logon-token", token)
    await page.click("#logon-form button")
    await page.wait_for_selector("#trading:not([hidden])")


def clean(web: Web) -> None:
    favicon = [p for p in web.problems if "favicon" in p]
    assert not [p for p in web.problems if p not in favicon], web.problems


async def test_the_market_screen_shows_the_book_and_trades(web: Web, browser: Any) -> None:
    page = await open_page(browser, web)
    await two_trade(web)
    await until(page, "document.querySelectorAll('#trades tr:not([hidden])').length >= 2")
    tape = await page.inner_text("#trades")
    assert "50010.00" in tape and "49990.00" in tape  # the taker's buy and sell
    # the book stream merges 100 ms of deltas: it may arrive after the trades, so wait for
    # the book after them (the level the taker bought from), not for one quoted before
    await until(page, "document.querySelector('#book-asks').textContent.includes('0.300')")
    asks = await page.inner_text("#book-asks")
    bids = await page.inner_text("#book-bids")
    assert "50020.00" in asks and "0.300" in asks  # 0.5 less the 0.2 bought at 50010
    assert "49980.00" in bids and "49990.00" in bids
    bar = await page.eval_on_selector("#book-bids .row .bar", "e => e.style.width")
    assert bar.endswith("%") and float(bar[:-1]) > 0
    await until(page, "document.querySelector('#t-mark').textContent !== '–'")
    assert await page.inner_text("#status") == "TRADING"
    assert await page.inner_text("#conn") == "live"
    await until(page, "document.querySelector('#price-chart .main-svg') !== null")
    # the chart grows as marks arrive (one a second from the ticker poll at least): its
    # series are extended in place, and plotly redraws them only when told they changed
    await until(
        page,
        "document.querySelectorAll('#price-chart .scatterlayer .trace:first-child .point').length >= 3",
    )
    await shoot(page, "market")
    await web.admin.call("admin.halt", symbol=SYM)
    await until(page, "document.querySelector('#status').textContent === 'HALTED'")
    clean(web)


async def test_a_gap_in_the_book_resyncs_from_a_snapshot(web: Web, browser: Any) -> None:
    page = await open_page(browser, web)
    [mk] = await traders(web, 1)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="1",
                  price="49000", timeInForce="GTC")  # fmt: skip
    await until(page, "document.querySelector('#book-bids').textContent.includes('49000.00')")
    # the page misses a delta (as after a lost message): it must resubscribe
    await page.evaluate("() => { window.__mc.app.market.bookSeq -= 1; }")
    await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="1",
                  price="48900", timeInForce="GTC")  # fmt: skip
    await until(page, "window.__mc.app.market.resyncs === 1 && !window.__mc.app.market.resyncing")
    await until(page, "document.querySelector('#book-bids').textContent.includes('48900.00')")
    clean(web)


async def test_a_logged_on_browser_places_sees_and_cancels_an_order(web: Web, browser: Any) -> None:
    [me] = await traders(web, 1)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account, "alice"))  # type: ignore[arg-type]
    assert "alice" in await page.inner_text("#who")
    await page.fill("#f-price", "49000")
    await page.fill("#f-qty", "0.010")
    await page.fill("#f-cid", "my-first")
    await page.click("#f-submit")
    await page.wait_for_selector("#open-orders tr[data-order-id]")
    row = await page.inner_text("#open-orders")
    assert "my-first" in row and "49000.00" in row and "NEW" in row
    [order] = await me.call("openOrders.status")
    assert order["clientOrderId"] == "my-first"
    # amend: a new price from the row's inputs
    await page.fill("#open-orders tr[data-order-id] input >> nth=0", "48500")
    await page.click("#open-orders tr[data-order-id] button:text('Amend')")
    await until(page, "document.querySelector('#open-orders').textContent.includes('48500.00')")
    await page.fill("#f-cid", "")
    await page.fill("#f-qty", "1000")  # notional in USDT: 1000 / 49000 → 0.020 BTC
    await page.select_option("#f-unit", "quote")
    await page.click("#f-submit")
    await until(page, "document.querySelectorAll('#open-orders tr[data-order-id]').length === 2")
    assert "0.020" in await page.inner_text("#open-orders")
    await shoot(page, "trade-open-orders")
    for _ in range(2):
        await page.click("#open-orders tr[data-order-id] button:text('Cancel') >> nth=0")
        await page.wait_for_timeout(200)
    await until(
        page, "document.querySelector('#open-orders').textContent.includes('No open orders')"
    )
    assert await me.call("openOrders.status") == []
    clean(web)


async def test_the_leverage_field_shows_the_accounts_leverage(web: Web, browser: Any) -> None:
    mk, me = await traders(web, 2)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    await me.call("leverage.set", symbol=SYM, leverage=20)
    await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.010",
                  price="50000", timeInForce="GTC")  # fmt: skip
    await me.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.010")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account))  # type: ignore[arg-type]
    await until(page, "document.querySelector('#f-lev').value === '20'")
    # what the user types stays until it is set
    await page.fill("#f-lev", "7")
    await page.wait_for_timeout(1500)
    assert await page.input_value("#f-lev") == "7"
    clean(web)


async def test_a_stop_order_shows_no_price_and_offers_no_amend(web: Web, browser: Any) -> None:
    [me] = await traders(web, 1)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account))  # type: ignore[arg-type]
    await page.select_option("#f-type", "STOP_MARKET")
    await page.check("input[name=side][value=SELL]")
    await page.fill("#f-stop", "45000")
    await page.fill("#f-qty", "0.010")
    await page.click("#f-submit")
    await page.select_option("#f-type", "LIMIT")
    await page.check("input[name=side][value=BUY]")
    await page.fill("#f-price", "49000")
    await page.click("#f-submit")
    await until(page, "document.querySelectorAll('#open-orders tr[data-order-id]').length === 2")
    stop = page.locator("#open-orders tr", has_text="STOP_MARKET")
    cells = await stop.locator("td").all_inner_texts()
    assert cells[4] == "–" and cells[5] == "45000.00"  # price, stop
    assert await stop.locator("button:text('Amend')").count() == 0
    limit = page.locator("#open-orders tr", has_text="LIMIT")
    cells = await limit.locator("td").all_inner_texts()
    assert cells[4] == "49000.00" and cells[5] == "–"
    assert await limit.locator("button:text('Amend')").count() == 1
    clean(web)


async def test_rejections_show_their_code_next_to_the_field(web: Web, browser: Any) -> None:
    [me] = await traders(web, 1)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account))  # type: ignore[arg-type]
    await page.fill("#f-price", "49000.05")  # not a multiple of the 0.10 tick
    await page.fill("#f-qty", "0.010")
    await page.click("#f-submit")
    err = page.locator('#ticket .err[data-for="price"]')
    await err.wait_for()
    assert (await err.inner_text()).startswith("-4014")
    await page.fill("#f-price", "49000")
    await page.fill("#f-qty", "0.0105")  # not a multiple of the step
    await page.click("#f-submit")
    qerr = page.locator('#ticket .err[data-for="quantity"]')
    await qerr.wait_for()
    assert (await qerr.inner_text()).startswith("-1111") or (await qerr.inner_text()).startswith(
        "-4023"
    )
    assert await err.inner_text() == ""  # the old one is gone
    await page.fill("#f-qty", "900")  # far more than the bracket or the margin allows
    await page.click("#f-submit")
    await until(
        page,
        "/^-(2019|2027|4005):/.test(document.querySelector('#ticket .err[data-for=quantity]').textContent)",
    )
    await page.fill("#f-lev", "500")
    await page.click("#lev-form button")
    lerr = page.locator('#lev-form .err[data-for="leverage"]')
    await lerr.wait_for()
    assert (await lerr.inner_text()).startswith("-")
    await shoot(page, "trade-rejected")
    clean(web)


@pytest.mark.mark_method("last")
async def test_an_index_crash_shows_the_feed_the_cascade_tree_and_the_ladder(
    web: Web, browser: Any
) -> None:
    page = await open_page(browser, web, "/#liquidations")
    mk, longs = await crash_setup(web)
    # before the crash: the ladder shows the longs' buckets below the mark (polled: wait
    # for the poll after the last long opened)
    view = web.stack.exchange.liquidation_ladder(SYM, 15)
    want = sum(b.positions for b in view.longs + view.shorts)
    # 15 buckets cover ±1.5 % of the mark (the last trade, 50,000): the 30x..50x longs
    assert view.long_positions == len(longs) and want >= len(longs) // 2
    await until(
        page,
        "[...document.querySelectorAll('#ladder .row[data-positions]')]"
        f".reduce((a, r) => a + Number(r.dataset.positions), 0) === {want}",
    )
    rows = await page.eval_on_selector_all("#ladder .row[data-positions]", "r => r.length")
    assert rows >= 3
    # the positions beyond the 15 buckets are counted in a row of their own at each end
    beyond = await page.eval_on_selector_all(
        "#ladder .row.beyond .q",
        "qs => qs.map((q) => Number(q.textContent.match(/[(](\\d+)[)]$/)[1]))",
    )
    assert sum(beyond) == view.long_positions + view.short_positions - want
    await shoot(page, "ladder")
    await crash(web)
    await until(page, "Number(document.querySelector('#cascade-tree').dataset.generations) > 1")
    # renders are coalesced: wait for the frame that shows every liquidation received
    await until(
        page,
        "document.querySelectorAll('#feed tr:not([hidden])').length === window.__mc.app.liqs.total",
    )
    n = await page.evaluate("() => window.__mc.app.liqs.total")
    assert n >= 4
    feed = await page.inner_text("#feed")
    assert "LONG" in feed and "book" in feed
    assert int(await page.eval_on_selector("#cascade-tree", "e => e.dataset.edges")) >= 1
    gens = await page.eval_on_selector_all("#cascade-tree .gen", "g => g.length")
    assert gens > 1
    await until(
        page, "document.querySelector('#cascade-summary').textContent.includes('Insurance fund')"
    )
    await page.wait_for_timeout(1200)  # one more ladder poll: the liquidated longs are gone
    await shoot(page, "liquidations")
    clean(web)


@pytest.mark.mark_method("last")
async def test_the_ladder_splits_the_bucket_holding_the_mark_at_the_mark(
    web: Web, browser: Any
) -> None:
    """Shorts liquidate above the mark and longs below it, so the bucket the mark lies in
    shows on both sides of the mark line: each half is labelled from the mark (it showed
    the whole bucket's range twice)."""
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    mk, tk = await traders(web, 2)
    await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.1",
                  price="50030", timeInForce="GTC")  # fmt: skip
    await tk.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.1")
    page = await open_page(browser, web, "/#liquidations")
    await until(
        page, "document.querySelector('#ladder .row.mark')?.textContent === 'mark 50030.00'"
    )
    labels = await page.eval_on_selector_all(
        "#ladder .row:not(.beyond):not(.mark) .p", "ps => ps.map((p) => p.textContent)"
    )
    assert len(labels) == len(set(labels)), labels
    assert any(t.startswith("50030.00–") for t in labels), labels
    assert any(t.endswith("–50030.00") for t in labels), labels
    clean(web)


async def test_user_text_renders_as_text(web: Web, browser: Any) -> None:
    [me] = await traders(web, 1)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account, XSS))  # type: ignore[arg-type]
    assert XSS in await page.inner_text("#who")  # the nickname, shown verbatim
    assert await page.locator("#who img").count() == 0
    # a client order id the server refuses is echoed back in the message: still text
    await page.fill("#f-price", "49000")
    await page.fill("#f-qty", "0.010")
    await page.fill("#f-cid", "<b>x</b>")
    await page.click("#f-submit")
    err = page.locator('#ticket .err[data-for="newClientOrderId"]')
    await err.wait_for()
    assert (await err.inner_text()).startswith("-4015")
    # an unknown method's name comes back inside the error message
    msg = await page.evaluate("m => window.__mc.conn.call(m).catch(e => e.msg)", XSS)
    assert XSS[:20] in msg
    await page.evaluate(
        "m => { const el = document.querySelector('#ticket .err[data-for=_form]'); el.textContent = m; }",
        msg,
    )
    await asyncio.sleep(0.2)
    assert await page.evaluate("() => window.__xss") is None
    assert await page.locator("#screen-trade img").count() == 0
    await shoot(page, "xss-as-text")
    clean(web)


async def test_the_position_shows_prices_and_the_margin_ratio_bar(web: Web, browser: Any) -> None:
    mk, me = await traders(web, 2)
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="1",
                  price="50000", timeInForce="GTC")  # fmt: skip
    await me.call("leverage.set", symbol=SYM, leverage=50)
    await me.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.1")
    page = await open_page(browser, web)
    await logon(page, web, await token_for(web, me.account))  # type: ignore[arg-type]
    await until(
        page, "document.querySelector('#position').textContent.includes('Liquidation price')"
    )
    text = await page.inner_text("#position")
    for word in (
        "Entry price",
        "Mark price",
        "Liquidation price",
        "Bankruptcy price",
        "Unrealized PnL",
        "Realized PnL",
    ):
        assert word in text
    assert "50000.00" in text
    await web.admin.call("admin.setIndex", symbol=SYM, price="49240")  # liquidation at ~49196
    await until(page, "document.querySelector('#ratio-fill').classList.contains('danger')", 15)
    await page.fill("#f-margin", "200")
    await page.click("#margin-form button[data-type='1']")
    await until(page, "!document.querySelector('#ratio-fill').classList.contains('danger')", 15)
    pos = await me.call("account.status")
    assert Decimal(pos["positions"][0]["isolatedMargin"]) > 200
    await shoot(page, "trade-position")
    clean(web)
