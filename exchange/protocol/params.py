"""Method parameters: validators, the method table and `validate_params`.

Each method is registered once (`@method`) with its access (public, user, admin) and its
required and optional parameters; `validate_params` checks a request's parameters
against them before anything reaches the core (unknown -> -1104, missing -> -1102, wrong
type -> -1130).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange import units
from exchange.core.errors import Code
from exchange.protocol.wire import MAX_INT, ProtocolError

MAX_STREAMS = 100
CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}\Z")


Validator = Callable[[Any, str], Any]


def _type_error(name: str, what: str) -> ProtocolError:
    return ProtocolError(Code.INVALID_PARAMETER, f"Parameter '{name}' must be {what}.")


def v_str(maxlen: int = 32) -> Validator:
    def check(v: Any, name: str) -> str:
        if type(v) is not str or not 0 < len(v) <= maxlen:
            raise _type_error(name, f"a string of 1..{maxlen} characters")
        return v

    return check


def v_int(lo: int = 0, hi: int = MAX_INT) -> Validator:
    def check(v: Any, name: str) -> int:
        if type(v) is not int or not lo <= v <= hi:
            raise _type_error(name, f"an integer in [{lo}, {hi}]")
        return v

    return check


def v_bool(v: Any, name: str) -> bool:
    if v is True or v == "true":
        return True
    if v is False or v == "false":
        return False
    raise _type_error(name, "a boolean")


def v_decimal(v: Any, name: str) -> Any:
    # type and syntax now (so errors are uniform); conversion needs the instrument
    units.split_decimal(v, name)
    return v


def v_client_id(v: Any, name: str) -> str:
    if type(v) is not str or not CLIENT_ID_RE.match(v):
        raise ProtocolError(Code.CLIENT_ID_INVALID)
    return v


def v_streams(v: Any, name: str) -> list[str]:
    if type(v) is not list or not 0 < len(v) <= MAX_STREAMS:
        raise _type_error(name, f"a list of 1..{MAX_STREAMS} stream names")
    for s in v:
        if type(s) is not str or not 0 < len(s) <= 64:
            raise _type_error(name, "a list of stream names")
    return v


def v_object(v: Any, name: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise _type_error(name, "an object")
    return v


def v_symbol(v: Any, name: str) -> str:
    if type(v) is not str or not 0 < len(v) <= 32:
        raise _type_error(name, "a symbol string")
    return v


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Callable[[Any, dict[str, Any]], Awaitable[Any]]  # (Session, params)
    access: str  # public | user | admin
    required: Mapping[str, Validator]
    optional: Mapping[str, Validator] = field(default_factory=dict)
    # derived once (validate_params runs on every request)
    names: frozenset[str] = field(init=False, repr=False, compare=False)
    required_items: tuple[tuple[str, Validator], ...] = field(init=False, repr=False, compare=False)
    optional_items: tuple[tuple[str, Validator], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "names", frozenset(self.required) | frozenset(self.optional))
        set_(self, "required_items", tuple(self.required.items()))
        set_(self, "optional_items", tuple(self.optional.items()))


METHODS: dict[str, Method] = {}

# Methods whose results are built only by the views and formatters from str, int, bool,
# None and lists/dicts of those (never floats): their answers are encoded by
# `_encode_plain`. (Their handlers, as `@method` registers them, so a method replaced
# later in `METHODS` is not included.)
PLAIN_RESULTS = (
    "order.place",
    "order.cancel",
    "order.modify",
    "order.status",
    "order.cancelAll",
    "openOrders.status",
    "account.status",
    "depth",
    "market.liquidationLadder",
)
_PLAIN_HANDLERS: set[Any] = set()


def method(
    name: str,
    access: str,
    required: Mapping[str, Validator] | None = None,
    optional: Mapping[str, Validator] | None = None,
) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        METHODS[name] = Method(name, fn, access, required or {}, optional or {})
        if name in PLAIN_RESULTS:
            _PLAIN_HANDLERS.add(fn)
        return fn

    return deco


def validate_params(m: Method, params: dict[str, Any]) -> dict[str, Any]:
    """Unknown names first (in the request's order), then the required parameters, then
    the optional ones (each in declaration order); the first failure is the answer."""
    if not m.names.issuperset(params):
        for k in params:
            if k not in m.names:
                raise ProtocolError(Code.UNKNOWN_PARAM, f"Unknown parameter '{k[:64]}'.")
    out: dict[str, Any] = {}
    get = params.get
    for k, check in m.required_items:
        v = get(k)
        if v is None or v == "":
            raise ProtocolError(
                Code.MANDATORY_PARAM_MISSING, f"Mandatory parameter '{k}' was not sent."
            )
        out[k] = check(v, k)
    left = len(params) - len(out)  # optional names sent (None values included)
    if left:
        for k, check in m.optional_items:
            v = get(k)
            if v is not None:
                out[k] = check(v, k)
                left -= 1
                if not left:
                    break
    return out


SYMBOL = {"symbol": v_symbol}
