"""Errors as Binance sends them: `{"code": -NNNN, "msg": "..."}` with its HTTP status.

Codes are the core's (`exchange.core.errors.Code`, the same the native API uses) plus the
few that exist only at this edge (`EXTRA`). Statuses: 401 for a key that is missing,
malformed or unknown, 429 over the weight limit (with `Retry-After`), 503 when the store
cannot commit, 500 for a server bug, 400 for everything else (Binance's choice too:
-1021 and -1022 are 400 there).
"""

from __future__ import annotations

from exchange.core.errors import MESSAGES, Code

TOO_MUCH_WEIGHT = -1003
INVALID_INTERVAL = -1120
LISTEN_KEY_UNKNOWN = -1125
NO_NEED_TO_CHANGE_MARGIN_TYPE = -4046
ORDER_TYPE_NEEDS_ALGO = -4120
NOT_FOUND = -5000  # margincall's: an unknown path under /fapi

EXTRA: dict[int, str] = {
    TOO_MUCH_WEIGHT: "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    INVALID_INTERVAL: "Invalid interval.",
    LISTEN_KEY_UNKNOWN: "This listenKey does not exist.",
    NO_NEED_TO_CHANGE_MARGIN_TYPE: "No need to change margin type.",
    ORDER_TYPE_NEEDS_ALGO: "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
    NOT_FOUND: "Unknown endpoint.",
}

_STATUS = {
    int(Code.INVALID_KEY_OR_PERMISSION): 401,
    -2014: 401,
    int(Code.TOO_MANY_REQUESTS): 429,
    TOO_MUCH_WEIGHT: 429,
    int(Code.STORE_UNAVAILABLE): 503,
    int(Code.UNKNOWN): 500,
    NOT_FOUND: 404,
}


class BinanceError(Exception):
    """An error answer; `status` defaults by code (see the module docstring)."""

    def __init__(self, code: int, msg: str | None = None, status: int | None = None) -> None:
        code = int(code)
        if msg is None:
            c = Code(code) if code in Code._value2member_map_ else None
            msg = MESSAGES[c] if c is not None else EXTRA.get(code, "Error.")
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status if status is not None else _STATUS.get(code, 400)

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}
