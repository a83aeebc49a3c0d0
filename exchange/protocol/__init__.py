"""The WebSocket protocol: request parsing and validation, method dispatch, formatting.

Transport-free: `Session.handle_text(text)` takes one text frame and returns the text
of its answer; `Router.route(events)` turns a batch of core events into stream
messages and hands them to the sessions subscribed to them. `exchange.server` is the
thin adapter that moves frames between sockets and these objects.

Requests ``{"id": 7, "method": "order.place", "params": {...}}`` get
``{"id": 7, "status": 200, "result": {...}}`` or
``{"id": 7, "status": 400, "error": {"code": -4014, "msg": "..."}}``.
Stream messages are ``{"stream": "mark.BTCUSDT", "data": {...}}``. Decimals travel as
strings; times are integer nanoseconds of engine time (``ts``) except where a name says
milliseconds (``serverTime``, ``timestamp``). See docs/protocol.md.

Validation happens here, before anything reaches the core: the envelope, each method's
parameters (unknown → -1104, missing → -1102, wrong type → -1130), decimals (see
`exchange.units`), authorization (-2015). Semantic checks (band, margin, ...) are the
core's, which answers with a rejection event mapped to the same error shape.

The package's modules: `wire` (JSON and the error answer), `params` (validators and the
method table), `views` (JSON of orders, positions, instruments), `formatter` (events →
stream messages), `fanout` (the router and margin calls), `api` (what connections
share), `session` (one connection and the request path), and the methods by area:
`logon`, `orders`, `account`, `market`, `subscriptions`, `admin` — imported here in that
order, which is the order of `METHODS`.
"""

from __future__ import annotations

# The methods register themselves in `METHODS` as their modules are imported: this order.
from exchange.protocol import logon  # isort: skip
from exchange.protocol import orders  # isort: skip
from exchange.protocol import account  # isort: skip
from exchange.protocol import market  # isort: skip
from exchange.protocol import subscriptions  # isort: skip
from exchange.protocol import admin  # isort: skip
from exchange.protocol.account import account_json
from exchange.protocol.api import Api
from exchange.protocol.fanout import MARGIN_CALL_RATIO, MARGIN_CALL_REARM, Router
from exchange.protocol.formatter import Formatter
from exchange.protocol.market import ladder_json
from exchange.protocol.orders import place_result
from exchange.protocol.params import (
    METHODS,
    PLAIN_RESULTS,
    SYMBOL,
    Method,
    Validator,
    method,
    v_bool,
    v_client_id,
    v_decimal,
    v_int,
    v_object,
    v_str,
    v_streams,
    v_symbol,
    validate_params,
)
from exchange.protocol.session import PIPELINED, Session
from exchange.protocol.subscriptions import check_stream
from exchange.protocol.views import instrument_json, order_view_json, position_json
from exchange.protocol.wire import (
    MAX_ID_LEN,
    MAX_INT,
    PROTOCOL_VERSION,
    ProtocolError,
    _decoder,
    dumps,
    encode_plain,
    error_text,
    loads,
    stream_message,
)

__all__ = [
    "MARGIN_CALL_RATIO",
    "MARGIN_CALL_REARM",
    "MAX_ID_LEN",
    "MAX_INT",
    "METHODS",
    "PIPELINED",
    "PLAIN_RESULTS",
    "PROTOCOL_VERSION",
    "SYMBOL",
    "Api",
    "Formatter",
    "Method",
    "ProtocolError",
    "Router",
    "Session",
    "Validator",
    "_decoder",
    "account",
    "account_json",
    "admin",
    "check_stream",
    "dumps",
    "encode_plain",
    "error_text",
    "instrument_json",
    "ladder_json",
    "loads",
    "logon",
    "market",
    "method",
    "order_view_json",
    "orders",
    "place_result",
    "position_json",
    "stream_message",
    "subscriptions",
    "v_bool",
    "v_client_id",
    "v_decimal",
    "v_int",
    "v_object",
    "v_str",
    "v_streams",
    "v_symbol",
    "validate_params",
]
