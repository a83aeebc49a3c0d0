"""Backends for the store's tests: every test that takes `db_url` runs on SQLite (a file
in a temporary directory) and on PostgreSQL (a fresh schema per test, dropped after).

PostgreSQL is `MARGINCALL_TEST_PG` or postgresql+psycopg://postgres@127.0.0.1:5432/test.
When it cannot be reached the PostgreSQL cases are skipped with the reason, except under
CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("MARGINCALL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@cache
def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def require_pg() -> None:
    problem = pg_problem()
    if problem is None:
        return
    msg = f"PostgreSQL at {PG_URL} unreachable: {problem}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg} (CI=true: the PostgreSQL tests may not skip)")
    pytest.skip(msg)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_pg()
    schema = f"mc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/store.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url
