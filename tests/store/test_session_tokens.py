"""Session tokens live in the store (hashes only) and survive a restart of `serve`."""

from __future__ import annotations

from pathlib import Path

from exchange.sessions import SessionTokens, token_hash
from exchange.store import Store
from exchange.testing import Probe, Schemas

from .scenario import instruments

S = Schemas()


async def test_issued_tokens_are_committed_and_revoked_ones_deleted(db_url: str) -> None:
    store = Store(db_url, mode="durable")
    store.recover(instruments())
    assert store.load_session_tokens() == []
    tokens = SessionTokens()
    tokens.on_issue.append(store.save_session_token)
    tokens.on_revoke.append(store.delete_session_tokens)
    try:
        kept, rec = await tokens.issue_saved(7, ttl_s=600, label="<b>Zoë</b>")
        gone, _ = await tokens.issue_saved(7)
        other = Store(db_url, mode="durable")  # another process, while the first still runs
        try:
            stored = {r.token_hash: r for r in other.load_session_tokens()}
        finally:
            other.close_sync()
        assert set(stored) == {token_hash(kept), token_hash(gone)}
        assert stored[token_hash(kept)] == rec
        assert tokens.revoke(gone)
        await store.flush()
        await store.call(lambda conn: None)  # the delete is behind this on the writer
        again = SessionTokens()
        again.load(store.load_session_tokens())
        assert again.verify(kept) == 7 and again.verify(gone) is None
    finally:
        store.close_sync()


async def test_tokens_survive_a_restart_of_serve(tmp_path: Path) -> None:
    from exchange.stack import ServeOptions, Stack, start_stack, stop_stack
    from exchange.store.serving import install

    db = f"sqlite:///{tmp_path / 'x.db'}"

    async def boot() -> tuple[Stack, Store]:
        opts = ServeOptions(port=0, clock="stepped", admin_token="adm", tick_interval=None)
        store = install(opts, db)
        return await start_stack(opts), store

    stack, store = await boot()
    try:
        async with Probe(stack.url, S) as admin:
            await admin.call("session.logon", adminToken="adm")
            acct = await admin.call("admin.createAccount", deposit="1000")
            kept = await admin.call("admin.createSession", account=acct["account"])
            dead = await admin.call("admin.createSession", account=acct["account"])
            assert await admin.call("session.revoke", token=dead["token"]) == {"revoked": 1}
    finally:
        await stop_stack(stack)
        await store.close(stack.exchange)

    stack, store = await boot()
    try:
        async with Probe(stack.url, S) as user:
            res = await user.call("session.logon", token=kept["token"])
            assert res["account"] == acct["account"]
            assert res["expiresAt"] == kept["expiresAt"]
            assert (await user.call("account.status"))["account"] == acct["account"]
            assert await user.error("session.logon", token=dead["token"]) == -2015
    finally:
        await stop_stack(stack)
        await store.close(stack.exchange)
    assert not S.failures, S.failures
