"""The wire: JSON text in and out, and the error answer.

Strict parsing (`loads`: NaN/Infinity refused, decimals kept as exact text), the one
encoder every answer and stream message goes through (`dumps`, `encode_plain`), the
envelopes of answers and stream messages, and `ProtocolError`, the error answer with its
wire code and status. Depends on nothing of the protocol's.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from exchange import units
from exchange.core.errors import MESSAGES, Code

PROTOCOL_VERSION = "1.0"
MAX_ID_LEN = 64
MAX_INT = 2**63 - 1

_STATUS_FOR = {
    Code.INVALID_KEY_OR_PERMISSION: 401,
    Code.BAD_SIGNATURE: 401,
    Code.TIMESTAMP_OUTSIDE_WINDOW: 401,
    Code.TOO_MANY_REQUESTS: 429,
    Code.STORE_UNAVAILABLE: 503,
    Code.UNKNOWN: 500,
}


class ProtocolError(Exception):
    """An error answer: wire code, message and HTTP-like status."""

    def __init__(self, code: int, msg: str | None = None, status: int | None = None) -> None:
        c = Code(code) if code in Code._value2member_map_ else None
        if msg is None:
            msg = MESSAGES.get(c, "Error.") if c is not None else "Error."
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.status = status if status is not None else _STATUS_FOR.get(c, 400)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_int(text: str) -> Any:
    # Huge integers stay text, so they fail type checks (-1130) instead of costing CPU.
    return int(text) if len(text) <= 40 else units.JsonNumber(text)


_decoder = json.JSONDecoder(
    parse_float=units.JsonNumber, parse_int=_parse_int, parse_constant=_reject_constant
)
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _has_float(obj: Any) -> bool:
    """Whether a float is anywhere in a parsed JSON value. O(size), one call per nested
    container (a request is a dict holding one: a plain loop, no generator)."""
    t = type(obj)
    if t is float:
        return True
    if t is dict:
        obj = obj.values()
    elif t is not list:
        return False
    for v in obj:
        tv = type(v)
        if tv is float or ((tv is dict or tv is list) and _has_float(v)):
            return True
    return False


def loads(text: str) -> Any:
    """Strict JSON: NaN/Infinity rejected, floats kept as exact text (`JsonNumber`).

    orjson parses first (~4× faster than `json`); what it refuses, and anything holding a
    float (orjson makes floats of decimals and of integers past 64 bits), is parsed again
    by the strict `json` decoder, so the result and every error are exactly that decoder's.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _decoder.decode(text)
    if _has_float(obj):
        return _decoder.decode(text)
    return obj


def dumps(obj: Any) -> str:
    return _encode(obj)


def encode_plain(obj: Any) -> bytes:
    """`_encode(obj).encode()` for data built only from str, int (and bool, IntEnum), None,
    lists and str-keyed dicts — the formatters' output: the same bytes, ~7× faster
    (orjson). Never use it for floats (their text differs) or anything else; on any error
    (an integer past 64 bits, a lone surrogate) it falls back to `_encode`.
    """
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encode(obj).encode()


def _encode_plain(obj: Any) -> str:
    """`encode_plain` as text (answers and stream messages are text frames)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return _encode(obj)


def _id_text(req_id: Any) -> str:
    """The JSON text of a request id (None, int or str), exactly as `_encode` writes it."""
    if req_id is None:
        return "null"
    if type(req_id) is int:
        return int.__repr__(req_id)
    return _encode(req_id)


def _ok_text(req_id: Any, result_text: str) -> str:
    return '{"id":' + _id_text(req_id) + ',"status":200,"result":' + result_text + "}"


def _stream_text(stream: str, data: dict[str, Any]) -> str:
    """`_encode({"stream": stream, "data": data})` for formatter data (see `_encode_plain`)."""
    return _encode_plain({"stream": stream, "data": data})


def stream_message(stream: str, payload: bytes) -> str:
    """The text of a stream message whose `data` is already encoded (`Formatter.payload`)."""
    return '{"stream":' + _encode(stream) + ',"data":' + payload.decode() + "}"


def error_text(req_id: Any, code: int, msg: str, status: int = 400) -> str:
    return _encode({"id": req_id, "status": status, "error": {"code": code, "msg": msg}})
