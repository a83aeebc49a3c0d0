"""Database URLs and table names the CLI needs before any database code is imported
(SQLModel and SQLAlchemy take most of a second to import; `margincall --help` must not
pay for them)."""

from __future__ import annotations

DEFAULT_DB_URL = "sqlite:///data/margincall.db"

#: The tables `margincall export` writes (`tables.EXPORTABLE` checks it is the same list).
EXPORTABLE_NAMES = (
    "journal",
    "journal_dropped",
    "projection_state",
    "accounts",
    "api_keys",
    "session_tokens",
    "instruments",
    "orders",
    "order_updates",
    "rejections",
    "fills",
    "positions",
    "balances",
    "liquidations",
    "auto_deleverages",
    "cascades",
    "funding_payments",
    "funding_settlements",
    "insurance_fund",
    "transfers",
    "mark_prices",
)


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for `url`: a plain path means a SQLite file; `postgresql://`
    and `postgres://` mean psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{url}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
