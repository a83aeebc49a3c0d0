"""The classroom's HTTP side: its pages and its small JSON API, under ``/class/``.

Registered on the exchange's HTTP server (`setup(app, stack, holder)`, an
``http_setup`` hook); `holder["cs"]` is the running `ClassStack` once the game is open
(requests before that get 503).

Students (no key to copy): ``POST /class/api/join {code, nickname, team?}`` and
``POST /class/api/rejoin {rejoin}`` answer ``{student, nickname, account, token,
rejoin?, wsUrl}``: a session token for the WebSocket API (`session.logon {token}`) and,
on a first join, the rejoin secret the tab keeps in sessionStorage. Both are limited
per client address (a token bucket: `JOIN_BURST` at once, `JOIN_RATE` a second after).
``GET /class/api/me`` (``Authorization: Bearer <session token>``) is the student's own
row and rank, the top of the board if revealed, and the game's status;
``POST /class/api/apikey`` gives an API key and secret for the student's own account.
A session token only ever names its own account: nothing here takes an account id.

Instructor: every ``/class/api/admin/...`` needs the admin token in ``X-Admin-Token``.
Errors are ``{"code": ..., "msg": ...}`` with a 4xx status, as in the rest of the API.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web

from .controller import GameError

STATIC = Path(__file__).resolve().parent / "static"
JOIN_BURST = 30.0
JOIN_RATE = 1.0  # per second per address
MAX_BODY = 256 * 1024
PAGES = {
    "/class/": "join.html",
    "/class/play": "play.html",
    "/class/console": "console.html",
    "/class/debrief": "debrief.html",
}


class _Buckets:
    """Token buckets per client address; bounded (oldest addresses forgotten)."""

    def __init__(self, burst: float, rate: float, limit: int = 10_000) -> None:
        self.burst, self.rate, self.limit = burst, rate, limit
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> bool:
        now = time.monotonic()
        tokens, stamp = self.state.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        ok = tokens >= 1.0
        self.state[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self.state) > self.limit:
            self.state.pop(next(iter(self.state)))
        return ok


def _err(status: int, code: int | str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def setup(app: web.Application, stack: Any, holder: dict[str, Any]) -> None:
    buckets = _Buckets(JOIN_BURST, JOIN_RATE)

    def cs() -> Any:
        c = holder.get("cs")
        if c is None:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"code": -1000, "msg": "The game is starting."}),
                content_type="application/json",
            )
        return c

    async def body(request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_BODY, actual_size=request.content_length
            )
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"code": -1130, "msg": "The body must be a JSON object."}),
                content_type="application/json",
            )
        return data

    def limited(request: web.Request) -> bool:
        return not buckets.take(request.remote or "?")

    def student_of(request: web.Request) -> tuple[Any, Any]:
        """(class stack, the student whose session token this is) or 401."""
        c = cs()
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        account = c.server.api.sessions.verify(token) if token else None
        members = c.classroom.roster.accounts().get(account) if account is not None else None
        if not members:
            raise web.HTTPUnauthorized(
                text=json.dumps({"code": -2015, "msg": "Join the game first."}),
                content_type="application/json",
            )
        return c, members

    def admin(request: web.Request) -> Any:
        c = cs()
        if not c.server.api.admin.check(request.headers.get("X-Admin-Token", "")):
            raise web.HTTPUnauthorized(
                text=json.dumps({"code": -2015, "msg": "The instructor's admin token is needed."}),
                content_type="application/json",
            )
        return c

    async def welcome(c: Any, student: Any, secret: str | None) -> web.Response:
        token, _ = await c.server.api.sessions.issue_saved(
            student.account, label=f"class:{student.id}"
        )
        out = {
            "student": student.id,
            "nickname": student.nickname,
            "team": student.team,
            "account": student.account,
            "token": token,
            "wsUrl": c.page_ws_url,
        }
        if secret is not None:
            out["rejoin"] = secret
        return web.json_response(out)

    async def join(request: web.Request) -> web.Response:
        if limited(request):
            return _err(429, -1015, "Too many attempts from this address; wait a little.")
        c = cs()
        data = await body(request)
        code = data.get("code")
        if not isinstance(code, str) or not hmac.compare_digest(
            code.strip().upper().encode(), c.classroom.join_code.encode()
        ):
            return _err(400, "bad_code", "That join code is not this game's.")
        try:
            student, secret = await c.classroom.join(data.get("nickname"), data.get("team"))
        except GameError as e:
            return _err(400, e.code, e.msg)
        return await welcome(c, student, secret)

    async def rejoin(request: web.Request) -> web.Response:
        if limited(request):
            return _err(429, -1015, "Too many attempts from this address; wait a little.")
        c = cs()
        data = await body(request)
        try:
            student = c.classroom.rejoin(data.get("rejoin"))
        except GameError as e:
            return _err(400 if e.code != "kicked" else 403, e.code, e.msg)
        return await welcome(c, student, None)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(cs().classroom.status())

    async def me(request: web.Request) -> web.Response:
        c, members = student_of(request)
        g = c.classroom
        board, scope = g.shown_board()
        account = members[0].account
        mine = next((r for r in board if r["account"] == account), None)
        top = [_public_row(r) for r in board[:5]] if g.revealed else []
        return web.json_response(
            {
                "status": g.status(),
                "me": {"account": account, "names": [m.nickname for m in members]},
                "row": None if mine is None else _public_row(mine) | _own(mine),
                "top": top,
                "of": len(board),
                "scope": scope,
            }
        )

    async def apikey(request: web.Request) -> web.Response:
        c, members = student_of(request)
        key, secret = await c.server.api.keys.issue_saved(members[0].account)
        return web.json_response({"account": members[0].account, "apiKey": key, "secret": secret})

    # ------------------------------------------------------------------ instructor

    async def overview(request: web.Request) -> web.Response:
        c = admin(request)
        g = c.classroom
        board, scope = g.shown_board()
        return web.json_response(
            {
                "status": g.status(),
                "joinCode": g.join_code,
                "joinUrl": c.join_url,
                "leaderboard": board,
                "leaderboardScope": scope,
                "students": g.danger_table(),
                "wsUrl": c.ws_url,
            }
        )

    async def guarded(coro: Any) -> web.Response:
        try:
            await coro
        except GameError as e:
            return _err(400, e.code, e.msg)
        return web.json_response({"ok": True})

    async def action(request: web.Request) -> web.Response:
        c = admin(request)
        a = (await body(request)).get("action")
        if a not in ("start", "pause", "resume", "next_round", "end_round", "finish"):
            return _err(400, -1130, "action: start, pause, resume, next_round or finish")
        return await guarded(c.classroom.act(a))

    async def shock(request: web.Request) -> web.Response:
        c = admin(request)
        data = await body(request)
        try:
            size = Decimal(str(data.get("size")))
            over = float(data.get("over", 0))
        except (InvalidOperation, TypeError, ValueError):
            return _err(400, -1130, "size: a percentage; over: seconds")
        if not size.is_finite():
            return _err(400, -1130, "size: a percentage")
        return await guarded(c.classroom.shock(size, over))

    async def headline(request: web.Request) -> web.Response:
        c = admin(request)
        return await guarded(c.classroom.headline(str((await body(request)).get("text", ""))))

    async def hold(request: web.Request) -> web.Response:
        c = admin(request)
        data = await body(request)
        return await guarded(c.classroom.hold(str(data.get("symbol")), bool(data.get("held"))))

    async def reveal(request: web.Request) -> web.Response:
        c = admin(request)
        return await guarded(c.classroom.reveal(bool((await body(request)).get("revealed"))))

    async def student_action(request: web.Request) -> web.Response:
        c = admin(request)
        data = await body(request)
        sid, what = data.get("student"), data.get("action")
        g = c.classroom
        if what == "kick":
            return await guarded(g.kick(sid))
        if what in ("freeze", "unfreeze"):
            return await guarded(g.freeze(sid, what == "freeze"))
        return _err(400, -1130, "action: freeze, unfreeze or kick")

    async def roster(request: web.Request) -> web.Response:
        c = admin(request)
        text = await request.text()
        if len(text) > MAX_BODY:
            return _err(413, -1130, "The roster is too large.")
        try:
            slips, already = await c.classroom.import_roster(text)
        except GameError as e:
            return _err(400, e.code, e.msg)
        return web.json_response(
            {
                "joinUrl": c.join_url,
                "slips": [
                    {"nickname": s.nickname, "team": s.team, "personalCode": secret}
                    for s, secret in slips
                ],
                # on the roster again but given a slip before: no second account (and
                # no new code: a personal code is shown once, only its hash is kept)
                "alreadyHad": [s.nickname for s in already],
            }
        )

    async def debrief(request: web.Request) -> web.Response:
        c = admin(request)
        from .debrief import live_debrief

        return web.json_response(live_debrief(c))

    async def export(request: web.Request) -> web.Response:
        c = admin(request)
        from .debrief import ExportError, export_table

        q = request.query
        try:
            data, ctype, name = await export_table(
                c, q.get("table", ""), q.get("round", ""), q.get("format", "csv")
            )
        except ExportError as e:
            return _err(400, -1130, str(e))
        return web.Response(
            body=data,
            content_type=ctype,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def ws_bridge(request: web.Request) -> web.WebSocketResponse:
        """The WebSocket API on the pages' own origin (the CSP allows no other): the same
        protocol `Session` as the native server, its per-connection rate limit and a
        bounded outbox (a reader that stops reading is closed, never waited for)."""
        from exchange.protocol.session import Session
        from exchange.protocol.wire import error_text
        from exchange.server import TokenBucket

        c = cs()
        cfg = c.server.config
        ws = web.WebSocketResponse(max_msg_size=cfg.max_size, heartbeat=20.0)
        await ws.prepare(request)
        outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=cfg.max_outbox)

        def sink(text: str) -> None:
            try:
                outbox.put_nowait(text)
            except asyncio.QueueFull:
                session.close()
                asyncio.ensure_future(ws.close(code=1008, message=b"slow consumer"))

        session = Session(c.server.api, sink)
        rate = cfg.rate_limit
        bucket = TokenBucket(rate, cfg.rate_burst or 2 * rate) if rate else None

        async def writer() -> None:
            while not ws.closed:
                await ws.send_str(await outbox.get())

        task = asyncio.create_task(writer())
        try:
            async for msg in ws:
                if msg.type != web.WSMsgType.TEXT:
                    break
                if bucket is not None and not bucket.take():
                    await ws.send_str(error_text(None, -1015, "Too many requests.", 429))
                    continue
                await ws.send_str(await session.handle_text(msg.data))
        finally:
            session.close()
            task.cancel()
        return ws

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / PAGES[request.path])

    async def plotly(request: web.Request) -> web.FileResponse:
        from .debrief import plotly_js

        return web.FileResponse(plotly_js())

    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/class/static/plotly.min.js", plotly)
    app.router.add_static("/class/static/", STATIC, show_index=False)
    r = app.router
    r.add_get("/class/ws", ws_bridge)
    r.add_post("/class/api/join", join)
    r.add_post("/class/api/rejoin", rejoin)
    r.add_get("/class/api/status", status)
    r.add_get("/class/api/me", me)
    r.add_post("/class/api/apikey", apikey)
    r.add_get("/class/api/admin/overview", overview)
    r.add_post("/class/api/admin/action", action)
    r.add_post("/class/api/admin/shock", shock)
    r.add_post("/class/api/admin/headline", headline)
    r.add_post("/class/api/admin/hold", hold)
    r.add_post("/class/api/admin/reveal", reveal)
    r.add_post("/class/api/admin/student", student_action)
    r.add_post("/class/api/admin/roster", roster)
    r.add_get("/class/api/admin/debrief", debrief)
    r.add_get("/class/api/admin/export", export)


def _public_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "rank": r["rank"],
        "name": r["name"],
        "returnPct": r["returnPct"],
        "liquidations": r["liquidations"],
    }


def _own(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "equity": str(Decimal(r["equity"]) / 10**8),
        "maxDrawdownPct": r["maxDrawdownPct"],
        "adlHits": r["adlHits"],
        "fees": str(Decimal(r["fees"]) / 10**8),
        "volume": str(Decimal(r["volume"]) / 10**8),
        "score": r["score"],
    }
