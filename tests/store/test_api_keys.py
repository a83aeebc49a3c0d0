"""An API key the admin API hands out is already durable: its hash is committed before
`KeyStore.issue_saved` returns, so a crash right after the answer cannot lose it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest

from exchange.auth import KeyStore, key_hash
from exchange.store import Store

from .scenario import instruments


async def test_an_issued_key_is_committed_before_it_is_handed_out(db_url: str) -> None:
    store = Store(db_url, mode="durable")
    store.recover(instruments())
    assert store.load_api_keys() == []
    keys = KeyStore()
    keys.on_issue.append(store.save_api_key)
    try:
        # the journal writer is busy for a while: the save queues behind that work
        busy = asyncio.ensure_future(store.call(lambda conn: time.sleep(0.3)))
        await asyncio.sleep(0)  # let it reach the writer's queue first
        api_key, _ = await keys.issue_saved(7)
        # a second process opening the same database now (the first may die at any moment)
        other = Store(db_url, mode="durable")
        try:
            stored = other.load_api_keys()
        finally:
            other.close_sync()
        assert [(r.key_hash, r.account) for r in stored] == [(key_hash(api_key), 7)]
        await busy
    finally:
        store.close_sync()


async def test_a_key_whose_save_fails_is_withdrawn_and_never_handed_out() -> None:
    keys = KeyStore()

    def failing_save(record: object) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        fut.set_exception(OSError("database gone"))
        return fut

    keys.on_issue.append(failing_save)
    with pytest.raises(OSError, match="database gone"):
        await keys.issue_saved(3)
    assert keys.records() == []
