"""Methods `subscribe` and `unsubscribe`: stream names, checks, and first snapshots."""

from __future__ import annotations

from typing import Any

from exchange.core.errors import Code
from exchange.protocol.fanout import BOOK_SUFFIXES, MARK_SUFFIXES
from exchange.protocol.params import MAX_STREAMS, method, v_streams
from exchange.protocol.session import Session
from exchange.protocol.wire import ProtocolError, _encode

_STREAM_KINDS = ("book", "trades", "mark", "liquidations", "status")


def check_stream(s: Session, name: str) -> None:
    if name == "cascades":
        return
    if name == "account":
        if s.account is None:
            raise ProtocolError(
                Code.INVALID_KEY_OR_PERMISSION, "The account stream needs session.logon first."
            )
        return
    kind, _, sym = name.partition(".")
    if kind in ("mark", "book") and "@" in sym:
        sym, at, suffix = sym.partition("@")
        if at + suffix not in (MARK_SUFFIXES if kind == "mark" else BOOK_SUFFIXES):
            hint = "mark.SYMBOL, mark.SYMBOL@1s or mark.SYMBOL@raw" if kind == "mark" else "book.SYMBOL or book.SYMBOL@raw"  # fmt: skip
            raise ProtocolError(
                Code.INVALID_PARAMETER, f"Unknown interval in stream '{name}': use {hint}."
            )
    if kind not in _STREAM_KINDS or not sym:
        raise ProtocolError(Code.INVALID_PARAMETER, f"Unknown stream '{name}'.")
    if sym not in s.api.exchange.instruments:
        raise ProtocolError(Code.BAD_SYMBOL, f"Unknown symbol in stream '{name}'.")


@method("subscribe", "public", required={"streams": v_streams})
async def _subscribe(s: Session, p: dict[str, Any]) -> Any:
    names = list(dict.fromkeys(p["streams"]))
    for name in names:
        check_stream(s, name)
    if len(s.streams | set(names)) > MAX_STREAMS:
        raise ProtocolError(
            Code.INVALID_PARAMETER, f"At most {MAX_STREAMS} streams per connection."
        )
    api = s.api
    ex = api.exchange
    for name in names:
        if name in s.streams:
            continue
        s.streams.add(name)
        if name == "account":
            api.router.add_account(s, s.account)  # type: ignore[arg-type]
            continue
        api.router.add(s, name)
        kind, _, sym = name.partition(".")
        sym = sym.partition("@")[0]
        if kind == "book":
            seq = ex.book_seq(sym)
            bids, asks = ex.depth(sym)
            s.book_floor[name] = seq
            s.deliver(
                name,
                _encode(
                    {
                        "stream": name,
                        "data": api.formatter.book_snapshot(sym, seq, bids, asks, ex.now),
                    }
                ),
            )
        elif kind == "mark":
            mv = ex.market_view(sym)
            if mv.mark:
                data = api.formatter.mark_data(sym, mv.mark, mv.index, mv.last, mv.funding_rate, mv.next_funding_ts, ex.now, 0)  # fmt: skip
                s.deliver(name, _encode({"stream": name, "data": data}))
    return {"streams": sorted(s.streams)}


@method("unsubscribe", "public", required={"streams": v_streams})
async def _unsubscribe(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    for name in p["streams"]:
        if name not in s.streams:
            continue
        s.streams.discard(name)
        s.book_floor.pop(name, None)
        if name == "account":
            if s.account is not None:
                api.router.remove_account(s, s.account)
        else:
            api.router.remove(s, name)
    return {"streams": sorted(s.streams)}
