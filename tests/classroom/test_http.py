"""The classroom over HTTP and WebSocket, in process: join flow, rejoin, isolation,
rate limits, instructor API, exports and the debrief."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from exchange.classroom import parse_game
from exchange.classroom.serving import ClassOptions, ClassStack, start_class, stop_class
from exchange.testing import Probe
from tests.classroom.helpers import GAME

ADMIN = "test-admin-token"


@contextlib.asynccontextmanager
async def class_stack(tmp_path: Path, text: str = GAME) -> AsyncIterator[ClassStack]:
    opts = ClassOptions(
        db=f"sqlite:///{tmp_path / 'game.db'}", port=0, http_port=0, admin_token=ADMIN, tick=0.05
    )
    cs = await start_class(parse_game(text), opts)
    try:
        yield cs
    finally:
        await stop_class(cs)


async def post(
    s: aiohttp.ClientSession, url: str, body: object, **headers: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with s.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def get(s: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with s.get(url, headers=headers) as r:
        return r.status, await r.json()


async def test_join_rejoin_me_and_isolation(tmp_path: Path) -> None:
    async with class_stack(tmp_path) as cs, aiohttp.ClientSession() as s:
        base = cs.http_url
        code = cs.classroom.join_code
        st, err = await post(s, f"{base}/class/api/join", {"code": "WRONG1", "nickname": "Ada"})
        assert st == 400 and err["code"] == "bad_code"
        st, ada = await post(s, f"{base}/class/api/join", {"code": code.lower(), "nickname": "Ada"})
        assert st == 200 and ada["account"] >= 1001 and ada["token"].startswith("mcs_")
        st, bob = await post(
            s, f"{base}/class/api/join", {"code": code, "nickname": "<script>x</script>"}
        )
        assert bob["nickname"] == "<script>x</script>"  # kept as text; pages render textContent
        # a reload: the rejoin secret gives a new token for the same account
        st, again = await post(s, f"{base}/class/api/rejoin", {"rejoin": ada["rejoin"]})
        assert st == 200 and again["account"] == ada["account"] and again["token"] != ada["token"]
        assert "rejoin" not in again
        st, _ = await post(s, f"{base}/class/api/rejoin", {"rejoin": "not-a-secret-at-all"})
        assert st == 400
        st, me = await get(s, f"{base}/class/api/me", Authorization=f"Bearer {ada['token']}")
        assert st == 200 and me["me"]["account"] == ada["account"] and me["row"]["rank"] in (1, 2)
        assert (await get(s, f"{base}/class/api/me"))[0] == 401
        # the session token logs on to the WebSocket API as that account, and only it
        async with Probe(cs.ws_url) as p:
            logon = await p.call("session.logon", token=ada["token"])
            assert logon["account"] == ada["account"]
            status = await p.call("account.status")
            assert status["account"] == ada["account"]
            assert await p.error("admin.account", account=bob["account"]) == -2015
        # an API key for the student's own account
        async with s.post(
            f"{base}/class/api/apikey", headers={"Authorization": f"Bearer {bob['token']}"}
        ) as r:
            key = await r.json()
        assert key["account"] == bob["account"] and key["apiKey"] and key["secret"]
        async with Probe(cs.ws_url) as p:
            assert (await p.logon(key["apiKey"], key["secret"]))["account"] == bob["account"]


async def test_join_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with class_stack(tmp_path) as cs, aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(40):
            st, _ = await post(
                s, f"{cs.http_url}/class/api/join", {"code": "AAAAAA", "nickname": "x"}
            )
            statuses.append(st)
        assert statuses[0] == 400 and statuses[-1] == 429


async def test_instructor_api_needs_the_token_and_drives_the_game(tmp_path: Path) -> None:
    async with class_stack(tmp_path) as cs, aiohttp.ClientSession() as s:
        base = f"{cs.http_url}/class/api/admin"
        assert (await get(s, f"{base}/overview"))[0] == 401
        assert (await get(s, f"{base}/overview", **{"X-Admin-Token": "nope"}))[0] == 401
        h = {"X-Admin-Token": ADMIN}
        st, ov = await get(s, f"{base}/overview", **h)
        assert (
            st == 200
            and ov["joinCode"] == cs.classroom.join_code
            and ov["status"]["state"] == "lobby"
        )
        assert (await post(s, f"{base}/action", {"action": "pause"}, **h))[0] == 400  # not running
        assert (await post(s, f"{base}/action", {"action": "start"}, **h))[0] == 200
        st, err = await post(s, f"{base}/shock", {"size": "-95", "over": 0}, **h)
        assert st == 400 and "between -90 and 90" in err["msg"]
        assert (await post(s, f"{base}/shock", {"size": "-3", "over": 1}, **h))[0] == 200
        assert (await post(s, f"{base}/headline", {"text": "Rates up"}, **h))[0] == 200
        assert (await post(s, f"{base}/hold", {"symbol": "BTCUSDT", "held": True}, **h))[0] == 200
        assert cs.runtime.exchange.markets["BTCUSDT"].halted
        async with s.post(f"{base}/roster", data="nickname\nCy\nDee\n", headers=h) as r:
            slips = (await r.json())["slips"]
        assert [x["nickname"] for x in slips] == ["Cy", "Dee"]
        st, cy = await post(
            s, f"{cs.http_url}/class/api/rejoin", {"rejoin": slips[0]["personalCode"]}
        )
        assert st == 200 and cy["nickname"] == "Cy"
        st, _ = await post(s, f"{base}/student", {"student": cy["student"], "action": "kick"}, **h)
        st, err = await post(
            s, f"{cs.http_url}/class/api/rejoin", {"rejoin": slips[0]["personalCode"]}
        )
        assert st == 403
        assert (await post(s, f"{base}/action", {"action": "next_round"}, **h))[0] == 200
        # exports of the round that ended, and the debrief data
        async with s.get(f"{base}/export?table=leaderboard&round=1&format=csv", headers=h) as r:
            assert r.status == 200 and "Cy" in await r.text()
        async with s.get(f"{base}/export?table=trades&round=1&format=parquet", headers=h) as r:
            assert r.status == 200 and (await r.read())[:4] == b"PAR1"
        async with s.get(f"{base}/export?table=secrets&round=1", headers=h) as r:
            assert r.status == 400
        st, data = await get(s, f"{base}/debrief", **h)
        assert st == 200 and data["rounds"][0]["name"] == "one"
        assert data["rounds"][0]["headlines"][-1]["text"] == "Rates up"


async def test_pages_are_served_with_the_security_headers(tmp_path: Path) -> None:
    async with class_stack(tmp_path) as cs, aiohttp.ClientSession() as s:
        for path in (
            "/class/",
            "/class/play",
            "/class/console",
            "/class/debrief",
            "/class/static/play.js",
        ):
            async with s.get(cs.http_url + path) as r:
                assert r.status == 200, path
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
                text = await r.text()
                assert "innerHTML" not in text
                # every page names its icon (else the browser's /favicon.ico is a 404)
                assert path.endswith(".js") or 'href="/static/favicon.svg"' in text, path
        async with s.get(cs.http_url + "/static/favicon.svg") as r:
            assert r.status == 200
        async with s.get(cs.http_url + "/class/static/plotly.min.js") as r:
            assert r.status == 200 and len(await r.read()) > 1_000_000
        # the console mounts the web app's views: their modules, styles and plotly come
        # from the web app's routes on the same origin, under the same policy
        async with s.get(cs.http_url + "/class/console") as r:
            page = await r.text()
        assert "<script>" not in page and "onclick=" not in page  # no inline script
        assert '<script src="/vendor/plotly.min.js" defer>' in page
        assert 'href="/static/views.css"' in page
        for path in ("/static/live.js", "/static/market.js", "/static/liquidations.js",
                     "/static/wsworker.js", "/static/views.css", "/vendor/plotly.min.js"):  # fmt: skip
            async with s.get(cs.http_url + path) as r:
                assert r.status == 200, path
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
                assert path.startswith("/vendor/") or "innerHTML" not in await r.text(), path
        async with s.get(cs.http_url + "/class/static/console.js") as r:
            assert 'from "/static/live.js"' in await r.text()
        async with s.get(cs.http_url + "/class/static/../serving.py") as r:
            assert r.status in (403, 404)


def test_the_join_url_of_a_wildcard_host_is_one_students_can_open(monkeypatch: Any) -> None:
    from exchange.classroom.serving import reachable_url

    for wild in ("http://0.0.0.0:8766", "http://[::]:8766"):
        url = reachable_url(wild)
        assert url.startswith("http://") and url.endswith(":8766")
        assert "0.0.0.0" not in url and "[::]" not in url
    for same in ("http://127.0.0.1:8766", "http://class.example:80", "http://192.0.2.7:1"):
        assert reachable_url(same) == same

    def no_route(*_: Any) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(socket.socket, "connect", no_route)
    monkeypatch.setattr(socket, "gethostname", lambda: "teacher-laptop")
    assert reachable_url("http://0.0.0.0:8766") == "http://teacher-laptop:8766"


async def test_the_console_api_after_a_double_import_and_at_game_over(tmp_path: Path) -> None:
    """A roster sent twice makes no second account (the answer names who already had a
    slip); at game over the overview's board is the whole game's and has no countdown."""
    async with class_stack(tmp_path) as cs, aiohttp.ClientSession() as s:
        base = f"{cs.http_url}/class/api/admin"
        h = {"X-Admin-Token": ADMIN}
        roster = "nickname,team\nBea,\nCy,red\n"
        async with s.post(f"{base}/roster", data=roster, headers=h) as r:
            first = await r.json()
        async with s.post(f"{base}/roster", data=roster + "Dee,\n", headers=h) as r:
            second = await r.json()
        assert [x["nickname"] for x in first["slips"]] == ["Bea", "Cy"] and first[
            "alreadyHad"
        ] == []
        assert [x["nickname"] for x in second["slips"]] == ["Dee"]
        assert second["alreadyHad"] == ["Bea", "Cy"]
        st, ov = await get(s, f"{base}/overview", **h)
        assert sorted(r["name"] for r in ov["students"]) == ["Bea", "Dee", "Team RED"]
        assert ov["leaderboardScope"] == "round"
        code = cs.classroom.join_code
        st, eve = await post(s, f"{cs.http_url}/class/api/join", {"code": code, "nickname": "Eve"})
        eve_auth = {"Authorization": f"Bearer {eve['token']}"}
        st, me = await get(s, f"{cs.http_url}/class/api/me", **eve_auth)
        assert st == 200 and me["scope"] == "round"
        st, err = await post(s, f"{base}/hold", {"symbol": "BTCUSDT", "held": True}, **h)
        assert st == 400 and "needs a round in play" in err["msg"]
        for action in ("start", "next_round", "finish"):
            assert (await post(s, f"{base}/action", {"action": action}, **h))[0] == 200
        st, ov = await get(s, f"{base}/overview", **h)
        assert ov["status"]["state"] == "game_over" and ov["status"]["secondsLeft"] is None
        assert ov["leaderboardScope"] == "game"
        assert ov["leaderboard"] == cs.classroom.game_standings()
        assert sorted(r["name"] for r in ov["leaderboard"]) == ["Bea", "Dee", "Eve", "Team RED"]
        # a student's page reads the same final standings: its rank is the whole game's
        st, me = await get(s, f"{cs.http_url}/class/api/me", **eve_auth)
        final = next(r for r in ov["leaderboard"] if r["account"] == eve["account"])
        assert me["scope"] == "game" and me["of"] == len(ov["leaderboard"])
        assert me["row"]["rank"] == final["rank"]
