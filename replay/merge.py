"""Merge many event streams into one time-ordered stream, lazily and deterministically.

Order: by timestamp (``exchange_ts`` or ``local_ts``), then stream priority (lower first; by
default the event type's ``priority``), then the stream's position in the argument list, then
the stream's own order. Only one event per stream is held at a time: memory is O(streams) and
each event costs O(log streams).

Within one stream the order is never changed. If a stream's timestamps go backwards (Tardis
exchange timestamps may, slightly, since Tardis files are sorted by arrival), its events are
merged by the running maximum of its timestamps, so the output is as sorted as its inputs allow
and still deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from heapq import heapify, heappop, heapreplace
from typing import Literal

from replay.events import Event

__all__ = ["merge", "MergeBy"]

MergeBy = Literal["exchange", "local"]


def merge(
    streams: Iterable[Iterable[Event]],
    *,
    by: MergeBy = "exchange",
    priorities: Sequence[int | None] | None = None,
) -> Iterator[Event]:
    """Lazily merge ``streams`` (each already in time order) into one ordered stream.

    ``by`` picks the clock: ``"exchange"`` (venue time) or ``"local"`` (recorder arrival time).
    ``priorities[i]``, when given and not ``None``, replaces the event-type priority for every
    event of stream ``i``. Each stream is first pulled when the result is first pulled.
    """
    if by not in ("exchange", "local"):
        raise ValueError(f"by must be 'exchange' or 'local', not {by!r}")
    iters = [iter(s) for s in streams]
    prios: list[int | None] = list(priorities) if priorities is not None else [None] * len(iters)
    if len(prios) != len(iters):
        raise ValueError(f"{len(prios)} priorities given for {len(iters)} streams")
    return _merge(iters, "exchange_ts" if by == "exchange" else "local_ts", prios)


def _merge(iters: list[Iterator[Event]], attr: str, prios: list[int | None]) -> Iterator[Event]:
    if len(iters) == 1:
        yield from iters[0]
        return
    heap: list[tuple[int, int, int, Event]] = []
    for idx, it in enumerate(iters):
        ev = next(it, None)
        if ev is not None:
            p = prios[idx]
            heap.append((getattr(ev, attr), ev.priority if p is None else p, idx, ev))
    heapify(heap)
    # Heap keys (ts, priority, stream index) are unique (one entry per stream), so events
    # themselves are never compared.
    while heap:
        ts, _, idx, ev = heap[0]
        yield ev
        nxt = next(iters[idx], None)
        if nxt is None:
            heappop(heap)
            continue
        t = getattr(nxt, attr)
        if t < ts:
            t = ts  # running maximum: never reorder within a stream
        p = prios[idx]
        heapreplace(heap, (t, nxt.priority if p is None else p, idx, nxt))
