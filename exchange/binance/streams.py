"""Binance USDⓈ-M WebSocket streams on the HTTP server (aiohttp).

Paths: `/ws/<stream>[/<stream>…]` and `/stream?streams=a/b` (combined: each message
wrapped as `{"stream", "data"}`), the same under `/public/` and `/market/` (what
ccxt.pro's URL rewriting produces: `/public/ws/0`, `/market/ws/1`), and the user data
stream at `/private/ws?listenKey=K` (or `/ws/<listenKey>`). Every connection also takes
`{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": N}`
and answers `{"result": null, "id": N}` (errors `{"error": {"code", "msg"}, "id"}`).

Routing is per event batch of the runtime (one engine turn): a depth diff per batch and
symbol covering its book updates `U..u` with `pu = U − 1` (numbering has no gaps, so a
client that sees `pu` ≠ its last `u` knows it missed something and resyncs from
`/fapi/v1/depth`, whose `lastUpdateId` is the same numbering). `@depth@100ms` and
`@depth@500ms` are accepted and sent as they happen (nothing is sampled), as are
`@markPrice@1s` and `@forceOrder` (every liquidation, which Binance does not offer).
Each connection has a bounded outbox; one that lets it fill is closed, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web
from pydantic_core import to_json

from exchange.binance import formats as F
from exchange.binance import streamformats as S
from exchange.binance.ledger import OrderRecord, ms
from exchange.core import events as E
from exchange.protocol.fanout import MARGIN_CALL_RATIO, MARGIN_CALL_REARM

_STREAM = re.compile(
    r"(?P<sym>[a-z0-9]{1,32})@(?P<kind>depth(?P<levels>5|10|20)?(?:@(?:0|100|250|500)ms)?|"
    r"aggTrade|trade|markPrice(?:@1s)?|bookTicker|kline_(?P<iv>[0-9]+[mhdw])|forceOrder|"
    r"ticker|miniTicker)\Z"
)
_ALL = frozenset(("!forceOrder@arr", "!markPrice@arr", "!markPrice@arr@1s", "!bookTicker",
                  "!ticker@arr", "!miniTicker@arr"))  # fmt: skip
_LISTEN_KEY = re.compile(r"[0-9a-f]{64}\Z")


def parse_stream(name: str, symbols: dict[str, str]) -> tuple[str, str, str] | None:
    """(symbol or "!", kind, name) for a valid stream name of a known symbol, else None."""
    if name in _ALL:
        return "!", name, name
    m = _STREAM.match(name)
    if m is None:
        return None
    sym = symbols.get(m["sym"])
    if sym is None:
        return None
    kind = m["kind"]
    if m["iv"] is not None and m["iv"] not in F.INTERVALS_MS:
        return None
    return sym, kind, name


class Conn:
    def __init__(self, hub: StreamHub, ws: web.WebSocketResponse, combined: bool, account: int | None, listen_key: str | None) -> None:  # fmt: skip
        self.hub = hub
        self.ws = ws
        self.combined = combined
        self.account = account
        self.listen_key = listen_key
        self.streams: set[str] = set()
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.dead = False

    def send(self, stream: str, text: str) -> None:
        if self.dead:
            return
        if len(self.outbox) >= self.hub.gw.config.max_outbox:
            self.hub.slow_dropped += 1
            self.kill()
            return
        self.outbox.append(
            '{"stream":"' + stream + '","data":' + text + "}" if self.combined else text
        )
        self.wake.set()

    def reply(self, obj: dict[str, Any]) -> None:
        if not self.dead:
            self.outbox.append(json.dumps(obj, separators=(",", ":")))
            self.wake.set()

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.outbox.clear()
        self.wake.set()
        self.hub.drop(self)
        task = asyncio.ensure_future(self.ws.close(code=1008, message=b"slow consumer"))
        self.hub.background.add(task)
        task.add_done_callback(self.hub.background.discard)

    async def write_loop(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not self.dead:
                if not self.outbox:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                await self.ws.send_str(self.outbox.popleft())


class StreamHub:
    """Subscriptions and the per-batch routing of events to them."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self.conns: set[Conn] = set()
        self.topics: dict[str, set[Conn]] = {}
        self.by_symbol: dict[str, dict[str, str]] = {}  # symbol → name → kind
        self.accounts: dict[int, set[Conn]] = {}
        self.background: set[asyncio.Future[Any]] = set()
        self._called: set[tuple[int, str]] = set()
        self.messages = 0
        self.slow_dropped = 0

    def symbols(self) -> dict[str, str]:
        return {s.lower(): s for s in self.gw.exchange.instruments}

    # ---------------------------------------------------------------- subscriptions

    def subscribe(self, c: Conn, names: list[str]) -> str | None:
        """Subscribe `c` to every name, or to none and return the error text."""
        syms = self.symbols()
        parsed = []
        for n in names:
            p = parse_stream(n, syms) if type(n) is str else None
            if p is None:
                return f"Invalid request: unknown stream '{str(n)[:64]}'"
            parsed.append(p)
        if len(c.streams | {p[2] for p in parsed}) > self.gw.config.max_streams:
            return f"Invalid request: at most {self.gw.config.max_streams} streams per connection"
        for sym, kind, name in parsed:
            c.streams.add(name)
            self.topics.setdefault(name, set()).add(c)
            self.by_symbol.setdefault(sym, {})[name] = kind
        return None

    def unsubscribe(self, c: Conn, names: list[str]) -> None:
        for n in names:
            if type(n) is str and n in c.streams:
                c.streams.discard(n)
                subs = self.topics.get(n)
                if subs is not None:
                    subs.discard(c)
                    if not subs:
                        del self.topics[n]
                        for m in self.by_symbol.values():
                            m.pop(n, None)

    def drop(self, c: Conn) -> None:
        self.unsubscribe(c, list(c.streams))
        self.conns.discard(c)
        if c.account is not None:
            s = self.accounts.get(c.account)
            if s is not None:
                s.discard(c)
                if not s:
                    del self.accounts[c.account]

    async def close_all(self) -> None:
        """Close every stream connection (clients reconnect and resync)."""
        for c in list(self.conns):
            c.dead = True
            c.wake.set()
            self.drop(c)
            with contextlib.suppress(Exception):
                await c.ws.close(code=1001, message=b"going away")

    def listen_key_expired(self, key: str) -> None:
        for c in list(self.conns):
            if c.listen_key == key:
                c.send(
                    "",
                    to_json(
                        {"e": "listenKeyExpired", "E": ms(self.gw.exchange.now), "listenKey": key}
                    ).decode(),
                )
                c.dead = True
                self.drop(c)

    async def listen_key_closed(self, key: str) -> None:
        for c in list(self.conns):
            if c.listen_key == key:
                c.dead = True
                self.drop(c)
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1000, message=b"listenKey closed")

    # ---------------------------------------------------------------- routing

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        subs = self.topics.get(name)
        if subs:
            text = to_json(data).decode()
            for c in list(subs):
                c.send(name, text)
                self.messages += 1

    def route(self, batch: list[E.Event]) -> None:
        if self.topics:
            self._route_market(batch)
        if self.accounts:
            self._route_user(batch)

    def _route_market(self, batch: list[E.Event]) -> None:
        ex = self.gw.exchange
        inst_of = ex.instruments
        books: dict[str, list[Any]] = {}
        traded: set[str] = set()
        for ev in batch:
            t = type(ev)
            if t is E.BookUpdated:
                if ev.symbol in self.by_symbol:  # type: ignore[attr-defined]
                    books.setdefault(ev.symbol, []).append(ev)  # type: ignore[attr-defined]
            elif t is E.OrderFilled:
                sym = ev.symbol  # type: ignore[attr-defined]
                names = self.by_symbol.get(sym)
                if names:
                    traded.add(sym)
                    low = sym.lower()
                    if low + "@trade" in names:
                        self._emit(low + "@trade", S.trade(inst_of[sym], ev))  # type: ignore[arg-type]
                    if low + "@aggTrade" in names:
                        self._emit(low + "@aggTrade", S.agg_trade(inst_of[sym], ev))  # type: ignore[arg-type]
            elif t is E.MarkPriceChanged:
                sym = ev.symbol  # type: ignore[attr-defined]
                data = None
                for name in (sym.lower() + "@markPrice", sym.lower() + "@markPrice@1s", "!markPrice@arr", "!markPrice@arr@1s"):  # fmt: skip
                    if name in self.topics:
                        data = data or S.mark_price(inst_of[sym], ev)  # type: ignore[arg-type]
                        self._emit(name, [data] if name[0] == "!" else data)  # type: ignore[arg-type]
            elif t is E.PositionLiquidated:
                sym = ev.symbol  # type: ignore[attr-defined]
                for name in (sym.lower() + "@forceOrder", "!forceOrder@arr"):
                    if name in self.topics:
                        self._emit(name, S.force_order(inst_of[sym], ev))  # type: ignore[arg-type]
        for sym, evs in books.items():
            self._book(inst_of[sym], evs)
        for sym in traded:
            self._after_trades(inst_of[sym])

    def _book(self, inst: Any, evs: list[E.BookUpdated]) -> None:
        names = self.by_symbol.get(inst.symbol, {})
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for ev in evs:
            bids.update(ev.bids)
            asks.update(ev.asks)
        last = evs[-1]
        diff = None
        ex = self.gw.exchange
        for name, kind in list(names.items()):
            if kind.startswith("depth"):
                lv = kind[5:].split("@")[0]
                if lv:
                    b, a = ex.depth(inst.symbol, int(lv))
                    self._emit(name, S.partial_depth(inst, last.book_seq, b, a, last.ts))
                else:
                    diff = diff or S.depth_update(inst, evs[0].book_seq, last.book_seq, bids, asks, last.ts)  # fmt: skip
                    self._emit(name, diff)
            elif kind == "bookTicker":
                b, a = ex.depth(inst.symbol, 1)
                self._emit(name, S.book_ticker(inst, last.book_seq, b[0] if b else None, a[0] if a else None, last.ts))  # fmt: skip

    def _after_trades(self, inst: Any) -> None:
        names = self.by_symbol.get(inst.symbol, {})
        ledger, ex = self.gw.ledger, self.gw.exchange
        t24 = None
        for name, kind in list(names.items()):
            if kind.startswith("kline_"):
                iv = kind[6:]
                iv_ms = F.INTERVALS_MS[iv]
                now = ms(ex.now)
                rows = ledger.klines(inst.symbol, iv_ms, now - iv_ms, now, 1)
                if rows:
                    self._emit(name, S.kline(inst, iv, rows[-1], iv_ms, ex.now))
            elif kind in ("ticker", "miniTicker"):
                if t24 is None:
                    now = ms(ex.now)
                    c = ledger.candles.get(inst.symbol)
                    rows = c.range(now - 86_400_000 + 60_000, now) if c is not None else []
                    ts = ledger.trades.get(inst.symbol)
                    ids = (ts[0].trade_id, ts[-1].trade_id) if ts else (0, 0)
                    t24 = F.ticker_24h(inst, rows, ids, now, ex.market_view(inst.symbol).last)
                    if ts:
                        t24["lastQty"] = F._l(inst, ts[-1].qty)
                self._emit(name, S.ticker(t24, ex.now, kind == "miniTicker"))

    # ---------------------------------------------------------------- user data

    def _user(self, account: int, data: dict[str, Any]) -> None:
        conns = self.accounts.get(account)
        if conns:
            text = to_json(data).decode()
            for c in list(conns):
                c.send(c.listen_key or "", text)
                self.messages += 1

    def _route_user(self, batch: list[E.Event]) -> None:
        accounts, ledger, ex = self.accounts, self.gw.ledger, self.gw.exchange
        inst_of = ex.instruments
        changed: dict[int, tuple[str, dict[str, E.PositionChanged], dict[str, Any], int]] = {}
        liq_sides = {ev.liquidation_id: ev.side for ev in batch if type(ev) is E.PositionLiquidated}  # type: ignore[attr-defined]
        for ev in batch:
            t = type(ev)
            if t is E.OrderFilled:
                self._fills(ev)  # type: ignore[arg-type]
            elif t in _ORDER_X:
                acct = ev.account  # type: ignore[attr-defined]
                if acct in accounts:
                    rec = ledger.orders.get(ev.order_id)  # type: ignore[attr-defined]
                    if rec is not None:
                        x = _ORDER_X[t]
                        status = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED"}.get(x)
                        if t is E.OrderAccepted:
                            status = "NEW"
                        self._user(acct, S.order_update(inst_of[rec.symbol], rec, x, ev.ts, status=status))  # fmt: skip
            elif t is E.PositionLiquidated:
                self._liquidated(ev)  # type: ignore[arg-type]
            elif t is E.PositionAutoDeleveraged:
                acct = ev.account  # type: ignore[attr-defined]
                if acct in accounts:
                    inst = inst_of[ev.symbol]  # type: ignore[attr-defined]
                    side = "BUY" if liq_sides.get(ev.liquidation_id) == "LONG" else "SELL"  # type: ignore[attr-defined]
                    rec = _synthetic(ev, "adl_autoclose", side, ev.price, ev.qty)  # type: ignore[attr-defined]
                    self._user(acct, S.order_update(inst, rec, "CALCULATED", ev.ts, last=(ev.price, ev.qty), realized=ev.realized_pnl))  # type: ignore[attr-defined]  # fmt: skip
            if t in _REASON:
                acct = ev.account  # type: ignore[attr-defined]
                if acct in accounts:
                    reason, pos, bal, ts = changed.get(acct, (_REASON[t], {}, {}, ev.ts))
                    if reason == "ORDER" and _REASON[t] != "ORDER":
                        reason = _REASON[t]
                    if t is E.PositionChanged:
                        pos[ev.symbol] = ev  # type: ignore[attr-defined]
                    elif t is E.BalanceChanged:
                        bal[ev.asset] = ev  # type: ignore[attr-defined]
                    changed[acct] = (reason, pos, bal, ev.ts)
            if t is E.PositionChanged and ev.account in accounts:  # type: ignore[attr-defined]
                self._margin_check(ev.symbol, ev.ts, [ev.account])  # type: ignore[attr-defined]
            elif t is E.MarkPriceChanged:
                self._margin_check(ev.symbol, ev.ts, list(accounts))  # type: ignore[attr-defined]
        for acct, (reason, pos, bal, ts) in changed.items():
            view = ex.account_view(acct)
            wallets: dict[str, int] = {}
            if view is not None:
                for b in view.balances:
                    wallets[b.asset] = b.available + b.reserved
                for p in view.positions:
                    q = inst_of[p.symbol].quote_asset
                    wallets[q] = wallets.get(q, 0) + p.margin
            B = [
                {"a": a, "wb": F._q(wallets.get(a, ev.available + ev.reserved)),
                 "cw": F._q(ev.available + ev.reserved), "bc": "0"}
                for a, ev in bal.items()
            ]  # fmt: skip
            P = [S.position_entry(inst_of[s], ev, ledger.marks.get(s, 0)) for s, ev in pos.items()]
            self._user(acct, S.account_update(reason, ts, B, P))

    def _fills(self, ev: E.OrderFilled) -> None:
        ledger, inst = self.gw.ledger, self.gw.exchange.instruments[ev.symbol]
        for acct, oid, fee, maker in ((ev.taker_account, ev.taker_order_id, ev.taker_fee, False),
                                      (ev.maker_account, ev.maker_order_id, ev.maker_fee, True)):  # fmt: skip
            if acct in self.accounts:
                rec = ledger.orders.get(oid)
                if rec is not None:
                    at = next((a for a in reversed(ledger.account_trades.get(acct, ())) if a.trade_id == ev.trade_id and a.order_id == oid), None)  # fmt: skip
                    self._user(acct, S.order_update(
                        inst, rec, "TRADE", ev.ts, last=(ev.price, ev.qty), fee=fee, maker=maker,
                        trade_id=ev.trade_id, realized=at.realized if at is not None else 0,
                        status="FILLED" if (ev.maker_remaining if maker else ev.taker_remaining) == 0 else "PARTIALLY_FILLED",
                    ))  # fmt: skip

    def _liquidated(self, ev: E.PositionLiquidated) -> None:
        rest = ev.fund_takeover_qty + ev.adl_qty
        if ev.account in self.accounts and rest:
            inst = self.gw.exchange.instruments[ev.symbol]
            side = "SELL" if ev.side == "LONG" else "BUY"
            rec = _synthetic(ev, f"autoclose-{ev.liquidation_id}", side, ev.bankruptcy_price, rest)
            self._user(ev.account, S.order_update(inst, rec, "CALCULATED", ev.ts, last=(ev.bankruptcy_price, rest)))  # fmt: skip

    def _margin_check(self, symbol: str, ts: int, accounts: list[int]) -> None:
        ex = self.gw.exchange
        for acct in accounts:
            view = ex.account_view(acct)
            pos = next((p for p in view.positions if p.symbol == symbol), None) if view else None
            key = (acct, symbol)
            if pos is None or pos.margin_ratio < MARGIN_CALL_REARM:
                self._called.discard(key)
                continue
            if pos.margin_ratio < MARGIN_CALL_RATIO or key in self._called:
                continue
            self._called.add(key)
            cw = sum(b.available + b.reserved for b in view.balances)  # type: ignore[union-attr]
            self._user(acct, S.margin_call(ex.instruments[symbol], pos, cw, ts))


def _synthetic(ev: Any, client_id: str, side: str, price: int, qty: int) -> OrderRecord:
    """The order record Binance shows for a liquidation or ADL close (x = CALCULATED)."""
    return OrderRecord(ev.liquidation_id, ev.account, ev.symbol, client_id, side, "LIQUIDATION",
                       "IOC", price, qty, 0, True, "FILLED", ev.ts, ev.ts, qty, qty * price)  # fmt: skip


_ORDER_X = {
    E.OrderAccepted: "NEW",
    E.OrderCanceled: "CANCELED",
    E.OrderExpired: "EXPIRED",
    E.OrderAmended: "AMENDMENT",
}
_REASON = {
    E.PositionChanged: "ORDER",
    E.BalanceChanged: "ORDER",
    E.FundsDeposited: "DEPOSIT",
    E.FundsWithdrawn: "WITHDRAW",
    E.FundingPaid: "FUNDING_FEE",
    E.IsolatedMarginChanged: "MARGIN_TRANSFER",
    E.PositionLiquidated: "ORDER",
}


# ---------------------------------------------------------------------- the handler


def add_routes(app: web.Application, gw: Any) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve(gw, request)

    for prefix in ("", "/public", "/market", "/private"):
        app.router.add_get(prefix + "/ws", handle)
        app.router.add_get(prefix + "/ws/{tail:.*}", handle)
        app.router.add_get(prefix + "/stream", handle)


async def serve(gw: Any, request: web.Request) -> web.StreamResponse:
    hub: StreamHub = gw.streams
    path = request.path
    combined = path.endswith("/stream")
    names: list[str] = []
    if combined:
        names = [n for n in request.query.get("streams", "").split("/") if n]
    elif "/ws/" in path:
        names = [n for n in path.split("/ws/", 1)[1].split("/") if n]
    key = request.query.get("listenKey")
    keys = [n for n in names if _LISTEN_KEY.match(n)]
    if keys and key is None:
        key = keys[0]
    names = [n for n in names if not _LISTEN_KEY.match(n) and not n.isdigit()]
    account = None
    if key is not None:
        account = gw.listen_keys.account(key)
        if account is None:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)  # fmt: skip
    elif path.startswith("/private"):
        return web.json_response({"code": -1102, "msg": "Mandatory parameter 'listenKey' was not sent."}, status=400)  # fmt: skip
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    c = Conn(hub, ws, combined, account, key)
    hub.conns.add(c)
    if account is not None:
        hub.accounts.setdefault(account, set()).add(c)
    if names:
        err = hub.subscribe(c, names)
        if err is not None:
            await ws.close(code=1008, message=err[:120].encode())
            hub.drop(c)
            return ws
    writer = asyncio.create_task(c.write_loop())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                c.reply(
                    {"error": {"code": 3, "msg": "Invalid JSON: send text frames."}, "id": None}
                )
                continue
            _control(hub, c, msg.data)
    finally:
        c.dead = True
        c.wake.set()
        hub.drop(c)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


def _control(hub: StreamHub, c: Conn, text: str) -> None:
    try:
        req = json.loads(text)
    except ValueError:
        c.reply({"error": {"code": 3, "msg": "Invalid JSON: could not parse the message."}, "id": None})  # fmt: skip
        return
    rid = req.get("id") if isinstance(req, dict) else None
    if not isinstance(req, dict) or not (rid is None or type(rid) in (int, str)):
        c.reply({"error": {"code": 2, "msg": "Invalid request: a JSON object with method, params and id."}, "id": None})  # fmt: skip
        return
    method, params = req.get("method"), req.get("params", [])
    if method == "LIST_SUBSCRIPTIONS":
        c.reply({"result": sorted(c.streams), "id": rid})
        return
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        c.reply({"result": None if method == "SET_PROPERTY" else False, "id": rid})
        return
    if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or type(params) is not list:
        c.reply({"error": {"code": 2, "msg": "Invalid request: method must be SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS with a list of params."}, "id": rid})  # fmt: skip
        return
    if method == "SUBSCRIBE":
        err = hub.subscribe(c, params)
        if err is not None:
            c.reply({"error": {"code": 2, "msg": err}, "id": rid})
            return
    else:
        hub.unsubscribe(c, params)
    c.reply({"result": None, "id": rid})
