"""Session tokens: issue, verify, expiry, revocation, bounds, and over the wire."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from exchange.core.errors import Code
from exchange.sessions import MAX_TTL_S, SessionTokens, token_hash
from exchange.testing import ApiCallError, Probe, Schemas, fund_accounts, running_stack

S = Schemas()


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_issue_verify_and_only_the_hash_is_kept() -> None:
    tokens = SessionTokens(clock=Clock())
    tok = tokens.issue(7, label="alice")
    assert tok.startswith("mcs_") and len(tok) == 47
    assert tokens.verify(tok) == 7
    [rec] = tokens.records()
    assert rec.token_hash == token_hash(tok) and rec.account == 7 and rec.label == "alice"
    assert tok not in repr(rec)
    assert tokens.issue(7) != tok  # random, never derived
    tokens._check()


@pytest.mark.parametrize("bad", ["", "mcs_nope", "x" * 500, None, 5, ["mcs_"]])
def test_wrong_tokens_are_refused(bad: Any) -> None:
    tokens = SessionTokens()
    tokens.issue(1)
    assert tokens.verify(bad) is None
    assert tokens.revoke(bad) is False


def test_expiry() -> None:
    clock = Clock()
    tokens = SessionTokens(clock=clock)
    short = tokens.issue(1, ttl_s=60)
    default = tokens.issue(1)
    clock.t += 59.9
    assert tokens.verify(short) == 1
    clock.t += 0.1
    assert tokens.verify(short) is None  # expiry is exclusive: dead at ttl
    assert tokens.verify(default) == 1
    clock.t += tokens.default_ttl_s
    assert tokens.verify(default) is None
    assert len(tokens) == 0  # expired records are dropped when seen
    tokens._check()


def test_bad_ttl_or_label_is_refused_and_changes_nothing() -> None:
    tokens = SessionTokens()
    for kw in ({"ttl_s": 0}, {"ttl_s": MAX_TTL_S + 1}, {"label": "x" * 65}):
        with pytest.raises(ValueError):
            tokens.issue(1, **kw)  # type: ignore[arg-type]
    assert len(tokens) == 0


def test_revoke_one_and_all_of_an_account() -> None:
    revoked: list[str] = []
    tokens = SessionTokens(clock=Clock())
    tokens.on_revoke.append(lambda recs: revoked.extend(r.token_hash for r in recs))
    a1, a2, b = tokens.issue(1), tokens.issue(1), tokens.issue(2)
    assert tokens.revoke(a1) is True
    assert tokens.revoke(a1) is False
    assert tokens.verify(a1) is None and tokens.verify(a2) == 1
    assert tokens.revoke_account(1) == 1
    assert tokens.verify(a2) is None and tokens.verify(b) == 2
    assert tokens.revoke_account(1) == 0
    assert revoked == [token_hash(a1), token_hash(a2)]
    tokens._check()


def test_an_account_keeps_at_most_max_per_account_tokens() -> None:
    tokens = SessionTokens(max_per_account=3, clock=Clock())
    toks = [tokens.issue(1) for _ in range(5)]
    assert [tokens.verify(t) for t in toks] == [None, None, 1, 1, 1]
    tokens._check()


def test_sweep_drops_expired_records() -> None:
    clock = Clock()
    tokens = SessionTokens(sweep_every=10, clock=clock)
    for _ in range(5):
        tokens.issue(1, ttl_s=60)
    clock.t += 61
    for _ in range(5):
        tokens.issue(2)
    assert len(tokens) == 5  # the 10th issue swept the five dead ones
    tokens._check()


def test_load_restores_live_records_only() -> None:
    clock = Clock()
    a = SessionTokens(clock=clock)
    live, dying = a.issue(1), a.issue(2, ttl_s=60)
    clock.t += 120
    b = SessionTokens(clock=clock)
    b.load(a.records())
    assert b.verify(live) == 1 and b.verify(dying) is None
    b._check()


async def test_a_token_whose_save_fails_is_withdrawn() -> None:
    tokens = SessionTokens()

    def failing(rec: object) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        fut.set_exception(OSError("database gone"))
        return fut

    tokens.on_issue.append(failing)
    with pytest.raises(OSError, match="database gone"):
        await tokens.issue_saved(3)
    assert tokens.records() == []


# ---------------------------------------------------------------- over the wire


async def test_token_logon_acts_as_the_account() -> None:
    async with running_stack() as stack:
        async with Probe(stack.url, S) as admin, Probe(stack.url, S) as user:
            await admin.call("session.logon", adminToken=stack.admin_token)
            [acct] = await fund_accounts(admin, 1)
            made = await admin.call("admin.createSession", account=acct["account"], label="Zoë")
            res = await user.call("session.logon", token=made["token"])
            assert res["account"] == acct["account"] and res["label"] == "Zoë"
            assert res["expiresAt"] == made["expiresAt"]
            status = await user.call("account.status")
            assert status["account"] == acct["account"]
            await user.call("subscribe", streams=["account"])
            placed = await user.call(
                "order.place", symbol="BTCUSDT", side="BUY", type="LIMIT",
                quantity="0.010", price="49000", timeInForce="GTC",
            )  # fmt: skip
            assert placed["status"] == "NEW"
            # a token cannot mint tokens
            assert await user.error("session.create") == Code.INVALID_KEY_OR_PERMISSION
        assert not S.failures, S.failures


async def test_session_create_from_an_api_key_logon() -> None:
    async with running_stack() as stack:
        async with Probe(stack.url, S) as admin, Probe(stack.url, S) as keyed:
            await admin.call("session.logon", adminToken=stack.admin_token)
            [acct] = await fund_accounts(admin, 1)
            assert await keyed.error("session.create") == Code.INVALID_KEY_OR_PERMISSION
            await keyed.logon(acct["apiKey"], acct["secret"])
            made = await keyed.call("session.create", ttl=600, label="browser")
            assert made["account"] == acct["account"] and made["label"] == "browser"
            async with Probe(stack.url, S) as browser:
                res = await browser.call("session.logon", token=made["token"])
                assert res["account"] == acct["account"]
            assert await keyed.error("session.create", ttl=10) == Code.INVALID_PARAMETER
            assert await keyed.error("session.create", label="a\nb") == Code.INVALID_PARAMETER
        assert not S.failures, S.failures


async def test_wrong_token_and_mixed_params_are_refused() -> None:
    async with running_stack() as stack:
        async with Probe(stack.url, S) as p:
            assert await p.error("session.logon", token="mcs_" + "A" * 43) == -2015
            assert await p.error("session.logon", token="x", apiKey="y") == Code.UNKNOWN_PARAM
            assert await p.error("session.logon", token=5) == Code.INVALID_PARAMETER
            assert (await p.call("session.status"))["account"] is None
            assert await p.error("account.status") == -2015
            assert await p.error("admin.createSession", account=1) == -2015
        assert not S.failures, S.failures


async def test_admin_create_session_needs_a_known_account() -> None:
    async with running_stack() as stack:
        async with Probe(stack.url, S) as admin:
            await admin.call("session.logon", adminToken=stack.admin_token)
            assert await admin.error("admin.createSession", account=99) == Code.UNKNOWN_ACCOUNT
        assert len(stack.server.api.sessions) == 0


async def test_revocation_ends_the_logon() -> None:
    async with running_stack() as stack:
        async with (
            Probe(stack.url, S) as admin,
            Probe(stack.url, S) as user,
            Probe(stack.url, S) as other,
        ):
            await admin.call("session.logon", adminToken=stack.admin_token)
            [acct] = await fund_accounts(admin, 1)
            n = acct["account"]
            t1 = (await admin.call("admin.createSession", account=n))["token"]
            t2 = (await admin.call("admin.createSession", account=n))["token"]
            await user.call("session.logon", token=t1)
            await user.call("subscribe", streams=["account"])
            # anyone holding a token may revoke it
            assert await other.call("session.revoke", token=t1) == {"revoked": 1}
            assert await other.call("session.revoke", token=t1) == {"revoked": 0}
            assert "account" not in (await user.call("session.status"))["streams"]
            assert await user.error("account.status") == -2015
            assert await user.error("session.logon", token=t1) == -2015
            # revoking one's own token logs out
            await user.call("session.logon", token=t2)
            assert await user.call("session.revoke") == {"revoked": 1}
            assert (await user.call("session.status"))["account"] is None
            assert await user.error("session.revoke") == Code.MANDATORY_PARAM_MISSING
            # the admin revokes all of an account's tokens
            t3 = (await admin.call("admin.createSession", account=n))["token"]
            await user.call("session.logon", token=t3)
            res = await admin.call("admin.revokeSessions", account=n)
            assert res == {"account": n, "revoked": 1}
            assert await user.error("openOrders.status") == -2015
        assert not S.failures, S.failures


async def test_an_expired_token_ends_the_logon_at_the_next_request() -> None:
    clock = Clock(1_700_000_000.0)
    tokens = SessionTokens(clock=clock)
    async with running_stack() as stack:
        stack.server.api.sessions = tokens
        tokens.on_revoke.append(stack.server.api._tokens_revoked)
        async with Probe(stack.url, S) as admin, Probe(stack.url, S) as user:
            await admin.call("session.logon", adminToken=stack.admin_token)
            [acct] = await fund_accounts(admin, 1)
            tok = (await admin.call("admin.createSession", account=acct["account"], ttl=60))[
                "token"
            ]
            await user.call("session.logon", token=tok)
            await user.call("account.status")
            clock.t += 60
            with pytest.raises(ApiCallError) as e:
                await user.call("account.status")
            assert e.value.code == -2015 and "expired" in e.value.msg["error"]["msg"]
            assert (await user.call("session.status"))["account"] is None
        assert not S.failures, S.failures
