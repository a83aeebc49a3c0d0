"""Python client for margincall: `Client` (asyncio), `SyncClient` (blocking), example bots."""

from .client import (
    AccountStatus,
    ApiError,
    Client,
    ConnectionLost,
    LocalBook,
    Order,
    Position,
    Stream,
    SyncClient,
)

__all__ = [
    "AccountStatus",
    "ApiError",
    "Client",
    "ConnectionLost",
    "LocalBook",
    "Order",
    "Position",
    "Stream",
    "SyncClient",
]
