"""What the client's methods return and raise: `ApiError`, `ConnectionLost`, the typed
results (`TypedDict`s of the wire's JSON), and `dec`, the one way a decimal parameter is
sent. No I/O; used by `clients.client` and `clients.admin`."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

Num = Decimal | str | int


class ApiError(Exception):
    """An error answer from the server."""

    def __init__(self, code: int, msg: str, status: int = 400, method: str = "") -> None:
        super().__init__(f"{code}: {msg}" + (f" ({method})" if method else ""))
        self.code = code
        self.msg = msg
        self.status = status
        self.method = method


class ConnectionLost(ConnectionError):
    """The connection dropped while a request was in flight."""


class Order(TypedDict, total=False):
    orderId: int
    clientOrderId: str | None
    symbol: str
    side: str
    type: str
    timeInForce: str
    price: str
    origQty: str
    executedQty: str
    remainingQty: str
    avgPrice: str
    stopPrice: str
    reduceOnly: bool
    status: str
    fills: list[list[str]]
    ts: int


class Position(TypedDict, total=False):
    symbol: str
    positionAmt: str
    entryPrice: str
    markPrice: str
    liquidationPrice: str
    bankruptcyPrice: str
    isolatedMargin: str
    leverage: int
    notional: str  # signed size × mark price
    entryNotional: str  # signed size × entry price (the open cost)
    unrealizedProfit: str
    maintMargin: str
    marginRatio: str
    realizedPnl: str


class AccountStatus(TypedDict):
    account: int
    balances: list[dict[str, str]]
    positions: list[Position]


class NewAccount(TypedDict):
    account: int
    apiKey: str
    secret: str


class Depth(TypedDict):
    symbol: str
    bookSeq: int
    bids: list[list[str]]  # [price, qty], best first
    asks: list[list[str]]
    ts: int


class Ticker(TypedDict):
    type: str
    symbol: str
    mark: str
    index: str
    last: str
    fundingRate: str
    nextFundingTs: int
    ts: int
    status: str  # TRADING | HALTED
    bestBid: str | None
    bestAsk: str | None


class Canceled(TypedDict):
    symbol: str
    canceled: int


class LeverageSet(TypedDict):
    symbol: str
    leverage: int


class MarginAdjusted(TypedDict):
    symbol: str
    amount: str
    type: int  # 1 added, 2 removed
    isolatedMargin: str | None


class ServerTime(TypedDict):
    serverTime: int  # wall clock, ms
    engineTime: int  # engine time, ns
    clock: str  # realtime | stepped


def dec(v: Num) -> str:
    """A decimal parameter as the wire wants it: a plain decimal string."""
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, bool):
        raise TypeError("a decimal, not a bool")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"use Decimal, str or int for decimals, not {type(v).__name__}")
