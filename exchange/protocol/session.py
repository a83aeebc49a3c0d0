"""One connection's protocol state and the request path: frame -> answer.

`Session.handle_text` parses the envelope, checks access, validates the parameters and
runs the method's handler; `Session.pipeline` lets a connection's commands share one
durable commit; `Session.submit` applies a core command at once when the runtime may
(`Runtime.apply_now`: the engine idle, no durable commit to wait for), else queues it,
bounded per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import MESSAGES, Code
from exchange.errors import StoreUnavailable
from exchange.protocol.api import Api
from exchange.protocol.params import _PLAIN_HANDLERS, METHODS, validate_params
from exchange.protocol.wire import (
    MAX_ID_LEN,
    MAX_INT,
    ProtocolError,
    _encode,
    _encode_plain,
    _ok_text,
    error_text,
    loads,
)
from exchange.units import UnitError

# Methods a connection may pipeline (see `Session.pipeline`): nothing before their
# command is queued reads state another command changes, and their answer comes from
# the command's own events or from a state no later command can change (a canceled
# order; `order.cancel` only by `orderId`, as a client order id can be reused later).
# One exception, by design: an `order.place` the core ignores as a resubmission answers
# with the earlier order as it is when the answer is written.
PIPELINED = frozenset({"order.place", "order.cancel"})


class Session:
    """One connection's protocol state: who it is and what it listens to.

    `sink(text)` is how stream messages leave (the server's bounded outbox).
    At most `MAX_IN_ENGINE` of one session's commands wait in the engine's queue at
    once (pipelined ones included: until one gets a slot the connection reads no further);
    more wait here, in order, so a connection that pipelines a burst is interleaved with
    the others instead of filling the queue ahead of them.
    """

    MAX_IN_ENGINE = 8

    def __init__(self, api: Api, sink: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.engine_slots = asyncio.Semaphore(self.MAX_IN_ENGINE)
        self.sink = sink
        self.account: int | None = None
        self.token_hash: str | None = None  # set when logged on with a session token
        self.admin = False
        self.streams: set[str] = set()
        self.book_floor: dict[str, int] = {}
        self.closed = False
        self._inflight: set[asyncio.Task[str]] = set()  # pipelined requests not yet answered
        self._ready: asyncio.Future[None] | None = None  # set by `submit` (see `pipeline`)

    # -- streams

    def deliver(self, stream: str, text: str, book_seq: int = 0) -> None:
        if self.closed or self.sink is None:
            return
        if book_seq and book_seq <= self.book_floor.get(stream, 0):
            return  # already in the snapshot this session got
        self.sink(text)

    def close(self) -> None:
        self.closed = True
        self.api.router.drop(self)
        self.streams.clear()

    def end_logon(self) -> None:
        """Back to no account (the admin flag stays): logout, or a token that died."""
        if self.account is not None:
            self.api.router.remove_account(self, self.account)
        self.streams.discard("account")
        self.account = None
        self.token_hash = None

    # -- requests

    def pipeline(self, text: str | bytes) -> tuple[asyncio.Task[str], asyncio.Future[None]]:
        """Start one request without waiting for its answer: (its answer, ready).

        Requests of one connection take effect in the order they are started, and each
        answer is what `handle_text` would have given had they run one at a time. The
        caller starts the next request once `ready` is done: when this one has finished,
        or when it is an `order.place` or an `order.cancel` by `orderId` (see
        `PIPELINED`) and its command is queued in the runtime — so a connection's
        commands can share one durable commit instead of waiting for one each. Any other
        request first waits until every earlier one is answered, and is ready only when
        it is answered itself.
        """
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        earlier = list(self._inflight)
        task = loop.create_task(self.handle_text(text, ready=ready, earlier=earlier))
        self._inflight.add(task)

        def done(t: asyncio.Task[str]) -> None:
            self._inflight.discard(t)
            if not ready.done():
                ready.set_result(None)

        task.add_done_callback(done)
        return task, ready

    async def handle_text(
        self,
        text: str | bytes,
        *,
        ready: asyncio.Future[None] | None = None,
        earlier: list[asyncio.Task[str]] | None = None,
    ) -> str:
        """One frame in, the text of its answer out. Never raises.

        `ready` and `earlier` are `pipeline`'s: without them the request simply runs.
        """
        req_id: Any = None
        api = self.api
        api.requests += 1
        try:
            if not isinstance(text, str):
                raise ProtocolError(
                    Code.ILLEGAL_CHARS, "Binary frames are not supported; send JSON text."
                )
            try:
                req = loads(text)
            except (ValueError, RecursionError):
                raise ProtocolError(Code.ILLEGAL_CHARS, "Malformed JSON.") from None
            if type(req) is not dict:
                raise ProtocolError(Code.ILLEGAL_CHARS, "A request must be a JSON object.")
            rid = req.get("id")
            if (
                rid is None
                or (type(rid) is int and -MAX_INT <= rid <= MAX_INT)
                or (type(rid) is str and len(rid) <= MAX_ID_LEN)
            ):
                req_id = rid
            else:
                raise ProtocolError(
                    Code.INVALID_PARAMETER,
                    f"'id' must be an integer, a string of at most {MAX_ID_LEN} characters or null.",
                )
            for k in req:
                if k not in ("id", "method", "params"):
                    raise ProtocolError(Code.UNKNOWN_PARAM, f"Unknown field '{str(k)[:64]}'.")
            name = req.get("method")
            if name is None:
                raise ProtocolError(
                    Code.MANDATORY_PARAM_MISSING, "Mandatory field 'method' was not sent."
                )
            if type(name) is not str:
                raise ProtocolError(Code.INVALID_PARAMETER, "'method' must be a string.")
            m = METHODS.get(name)
            if m is None:
                raise ProtocolError(Code.INVALID_PARAMETER, f"Unknown method '{name[:64]}'.")
            params = req.get("params", {})
            if params is None:
                params = {}
            if type(params) is not dict:
                raise ProtocolError(Code.INVALID_PARAMETER, "'params' must be an object.")
            if m.access == "user":
                if self.token_hash is not None and api.sessions.valid_hash(self.token_hash) is None:
                    self.end_logon()
                    raise ProtocolError(
                        Code.INVALID_KEY_OR_PERMISSION,
                        "The session token expired or was revoked: log on again.",
                    )
                if self.account is None:
                    raise ProtocolError(
                        Code.INVALID_KEY_OR_PERMISSION, "Not logged on: call session.logon first."
                    )
            if m.access == "admin" and not self.admin:
                raise ProtocolError(Code.INVALID_KEY_OR_PERMISSION)
            p = validate_params(m, params)
            if ready is not None:
                if name in PIPELINED and (name != "order.cancel" or "orderId" in p):
                    # no await until the handler's `submit`, which hands `ready` on
                    self._ready = ready
                elif earlier:
                    await asyncio.wait(earlier)
            result = await m.handler(self, p)
            if m.handler in _PLAIN_HANDLERS:
                return _ok_text(req_id, _encode_plain(result))
            return _encode({"id": req_id, "status": 200, "result": result})
        except ProtocolError as e:
            api.errors += 1
            return error_text(req_id, e.code, e.msg, e.status)
        except UnitError as e:
            api.errors += 1
            return error_text(req_id, int(e.code), e.msg, 400)
        except StoreUnavailable:
            api.errors += 1
            return error_text(
                req_id, int(Code.STORE_UNAVAILABLE), MESSAGES[Code.STORE_UNAVAILABLE], 503
            )
        except Exception:  # a bug: answer, log, keep the connection
            import logging

            logging.getLogger("margincall.protocol").exception("request failed: %.200r", text)
            api.errors += 1
            return error_text(req_id, int(Code.UNKNOWN), MESSAGES[Code.UNKNOWN], 500)

    async def submit(self, cmd: C.Command) -> list[E.Event]:
        """The command's events; ProtocolError with the core's code if it was refused.
        Applied at once when the runtime may (`Runtime.apply_now`), else queued."""
        # `ready` is taken before any await: it belongs to the request that set it
        ready = self._ready
        self._ready = None
        events = self.api.runtime.apply_now(cmd, owned=True) if ready is None else None
        if events is None:
            # a pipelined request counts toward the bound too: while it waits for a slot
            # its `ready` stays unset, so the connection reads no further (back-pressure)
            async with self.engine_slots:
                fut = self.api.runtime.submit_future(cmd, owned=True)
                if ready is not None and not ready.done():
                    ready.set_result(None)
                events = await fut
        for ev in events:
            t = type(ev)
            if t is E.OrderRejected or t is E.CommandRejected:
                raise ProtocolError(ev.code, ev.msg)  # type: ignore[attr-defined]
        return events
