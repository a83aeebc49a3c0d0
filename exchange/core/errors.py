"""Rejection codes. Binance USDⓈ-M numbers where Binance has the same condition.

The table is the single source of truth: `docs/errors.md` is generated from it and
the protocol layer maps every rejection to `{"code": ..., "msg": ...}` through it.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Rejection codes carried by `OrderRejected` / `CommandRejected` events."""

    UNKNOWN = -1000
    TOO_MANY_REQUESTS = -1015
    TIMESTAMP_OUTSIDE_WINDOW = -1021
    BAD_SIGNATURE = -1022
    ILLEGAL_CHARS = -1100
    TOO_MANY_PARAMETERS = -1101
    MANDATORY_PARAM_MISSING = -1102
    UNKNOWN_PARAM = -1104
    BAD_PRECISION = -1111
    INVALID_TIME_IN_FORCE = -1115
    INVALID_ORDER_TYPE = -1116
    INVALID_SIDE = -1117
    BAD_SYMBOL = -1121
    INVALID_PARAMETER = -1130
    NEW_ORDER_REJECTED = -2010
    UNKNOWN_ORDER = -2011
    INVALID_KEY_OR_PERMISSION = -2015
    MARGIN_INSUFFICIENT = -2019
    REDUCE_ONLY_REJECTED = -2022
    USER_IN_LIQUIDATION = -2023
    BALANCE_INSUFFICIENT = -2024
    MAX_OPEN_ORDERS = -2025
    PRICE_LESS_THAN_ZERO = -4001
    PRICE_GREATER_THAN_MAX = -4002
    QTY_LESS_THAN_ZERO = -4003
    QTY_LESS_THAN_MIN = -4004
    QTY_GREATER_THAN_MAX = -4005
    STOP_PRICE_LESS_THAN_ZERO = -4006
    PRICE_NOT_TICK_MULTIPLE = -4014
    CLIENT_ID_INVALID = -4015
    PRICE_ABOVE_BAND = -4016
    INVALID_LEVERAGE = -4028
    ORDER_WOULD_IMMEDIATELY_TRIGGER = -2021
    QTY_NOT_STEP_MULTIPLE = -4023
    PRICE_BELOW_BAND = -4024
    MARGIN_CANNOT_BE_REMOVED = -4051
    PRICE_LESS_THAN_MIN = -4013
    MARKET_HALTED = -9005
    NO_REFERENCE_PRICE = -9006
    NOTIONAL_TOO_SMALL = -4164
    POST_ONLY_WOULD_TAKE = -5022
    FOK_WOULD_NOT_FILL = -5021
    LEVERAGE_EXCEEDS_BRACKET = -2027
    ACCOUNT_EXISTS = -9001
    UNKNOWN_ACCOUNT = -9002
    INSTRUMENT_EXISTS = -9003
    STORE_UNAVAILABLE = -9004
    ACCOUNT_FROZEN = -9007
    POSITION_LIMIT = -9008
    HTTP_NOT_FOUND = -9404
    HTTP_METHOD_NOT_ALLOWED = -9405
    HTTP_BODY_TOO_LARGE = -9413
    HTTP_BUSY = -9503


MESSAGES: dict[Code, str] = {
    Code.UNKNOWN: "An unknown error occurred.",
    Code.TOO_MANY_REQUESTS: "Too many requests.",
    Code.TIMESTAMP_OUTSIDE_WINDOW: "Timestamp for this request is outside of the recvWindow.",
    Code.BAD_SIGNATURE: "Signature for this request is not valid.",
    Code.ILLEGAL_CHARS: "Illegal characters found in a parameter.",
    Code.TOO_MANY_PARAMETERS: "Too many parameters sent for this endpoint.",
    Code.MANDATORY_PARAM_MISSING: "A mandatory parameter was not sent, was empty or malformed.",
    Code.UNKNOWN_PARAM: "An unknown parameter was sent.",
    Code.BAD_PRECISION: "Precision is over the maximum defined for this asset.",
    Code.INVALID_TIME_IN_FORCE: "Invalid timeInForce.",
    Code.INVALID_ORDER_TYPE: "Invalid orderType.",
    Code.INVALID_SIDE: "Invalid side.",
    Code.BAD_SYMBOL: "Invalid symbol.",
    Code.INVALID_PARAMETER: "Invalid data sent for a parameter.",
    Code.NEW_ORDER_REJECTED: "New order rejected.",
    Code.UNKNOWN_ORDER: "Unknown order sent.",
    Code.INVALID_KEY_OR_PERMISSION: "Invalid API-key, IP, or permissions for action.",
    Code.MARGIN_INSUFFICIENT: "Margin is insufficient.",
    Code.REDUCE_ONLY_REJECTED: "ReduceOnly Order is rejected.",
    Code.USER_IN_LIQUIDATION: "User in liquidation mode now.",
    Code.BALANCE_INSUFFICIENT: "Balance is insufficient.",
    Code.MAX_OPEN_ORDERS: "Reached max open order limit.",
    Code.PRICE_LESS_THAN_ZERO: "Price less than or equal to zero.",
    Code.PRICE_GREATER_THAN_MAX: "Price greater than max price.",
    Code.QTY_LESS_THAN_ZERO: "Quantity less than or equal to zero.",
    Code.QTY_LESS_THAN_MIN: "Quantity less than min quantity.",
    Code.QTY_GREATER_THAN_MAX: "Quantity greater than max quantity.",
    Code.STOP_PRICE_LESS_THAN_ZERO: "Stop price less than or equal to zero.",
    Code.PRICE_NOT_TICK_MULTIPLE: "Price not increased by tick size.",
    Code.CLIENT_ID_INVALID: "Client order id is not valid.",
    Code.PRICE_ABOVE_BAND: "Limit price can't be higher than the price band.",
    Code.INVALID_LEVERAGE: "Leverage is not valid.",
    Code.ORDER_WOULD_IMMEDIATELY_TRIGGER: "Order would immediately trigger.",
    Code.QTY_NOT_STEP_MULTIPLE: "Quantity not increased by step size.",
    Code.PRICE_BELOW_BAND: "Limit price can't be lower than the price band.",
    Code.MARGIN_CANNOT_BE_REMOVED: "Isolated margin cannot be removed: position would fall below initial margin or margin would include unrealized profit.",
    Code.PRICE_LESS_THAN_MIN: "Price less than min price.",
    Code.MARKET_HALTED: "The symbol is halted: no new orders or amendments.",
    Code.NO_REFERENCE_PRICE: "No mark or index price yet: market orders need a price band reference.",
    Code.NOTIONAL_TOO_SMALL: "Order's notional must be no smaller than the minimum notional.",
    Code.POST_ONLY_WOULD_TAKE: "Order would immediately match and take (post-only).",
    Code.FOK_WOULD_NOT_FILL: "FOK order would not be filled completely and was expired.",
    Code.LEVERAGE_EXCEEDS_BRACKET: "Exceeded the maximum allowable position at current leverage.",
    Code.ACCOUNT_EXISTS: "Account already exists.",
    Code.UNKNOWN_ACCOUNT: "Unknown account.",
    Code.INSTRUMENT_EXISTS: "Instrument already exists.",
    Code.STORE_UNAVAILABLE: "The store cannot commit; request refused, nothing changed.",
    Code.ACCOUNT_FROZEN: "The account is frozen by the operator: only cancels are accepted.",
    Code.POSITION_LIMIT: "The order could take the position past the account's notional limit.",
    Code.HTTP_NOT_FOUND: "No such path.",
    Code.HTTP_METHOD_NOT_ALLOWED: "Method not allowed on this path.",
    Code.HTTP_BODY_TOO_LARGE: "Request body too large.",
    Code.HTTP_BUSY: "Too many connections; try again later.",
}


class Rejected(Exception):
    """Raised during validation only; turned into one rejection event."""

    def __init__(self, code: Code, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.msg = MESSAGES[code] + (f" {detail}" if detail else "")
