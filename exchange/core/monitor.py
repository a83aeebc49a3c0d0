"""The margin monitor: open positions of one symbol ordered by liquidation price.

Longs are liquidated when mark ≤ their liquidation tick, shorts when mark ≥ it, so a
mark update only looks at one end of each side: the highest long tick and the lowest
short tick. `keys` (account → (side, tick, account)) is the truth; each side is a
binary heap with that end on top (`heapq`: longs as (−tick, account), shorts as
(tick, account)) whose entries go stale when a position moves, instead of being
removed: re-indexing a position is one O(log N) push, a stale entry is dropped when it
reaches the top, and a side is rebuilt from `keys` once stale entries outnumber the
live ones. A position changes far more often than the mark crosses one (a cascade's
counterparty changes after every liquidation, a maker after every fill), so the
sorted order is paid for only where it is read: O(log N) per change, O(1) to see that
nothing is due, O(k log N) to take out k due positions. `longs`/`shorts` give the
sorted sides (for `state_hash` and checks) in O(N log N).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any

from .ladder import LiquidationLadder

# past this many due positions on a side, `pop_due` takes the rest in bulk
BULK = 64


class MarginMonitor:
    __slots__ = ("long_heap", "short_heap", "keys", "version", "calm", "ladder")

    def __init__(self) -> None:
        self.long_heap: list[tuple[int, int]] = []  # (−liq tick, account); due from the top
        self.short_heap: list[tuple[int, int]] = []  # (liq tick, account); due from the top
        self.keys: dict[int, tuple[int, int, int]] = {}  # account -> (side, tick, account)
        self.version = 0  # grows with every change of the positions held (for callers' caches)
        # a mark at which nothing held is due (0: none known). Removals keep it true, and
        # so do additions it does not cross: asking again at that mark is O(1), however
        # often positions were re-indexed in between (a cascade's counterparties are,
        # after every liquidation)
        self.calm = 0
        # bucket aggregates for the public liquidation ladder, kept once someone asks
        self.ladder: LiquidationLadder | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the heaps and the ladder are derived from `keys`: snapshots hold only these
        return {"keys": self.keys, "version": self.version}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # the default slots state: (None, {name: value})
            state = state[1]
        # (older snapshots also hold sorted lists and per-side versions: derived, ignored)
        self.keys = state["keys"]
        self.version = state.get("version", 0)
        self.ladder = None
        self.calm = 0
        self._rebuild()

    def _rebuild(self) -> None:
        """Both heaps afresh from `keys`, without stale entries. O(N)."""
        longs = [(-k[1], a) for a, k in self.keys.items() if k[0] > 0]
        shorts = [(k[1], a) for a, k in self.keys.items() if k[0] < 0]
        heapify(longs)
        heapify(shorts)
        self.long_heap = longs
        self.short_heap = shorts

    @property
    def longs(self) -> list[tuple[int, int]]:
        """The longs held, as (tick, account) ascending. O(N log N)."""
        return sorted((k[1], a) for a, k in self.keys.items() if k[0] > 0)

    @property
    def shorts(self) -> list[tuple[int, int]]:
        """The shorts held, as (tick, account) ascending. O(N log N)."""
        return sorted((k[1], a) for a, k in self.keys.items() if k[0] < 0)

    def __len__(self) -> int:
        return len(self.keys)

    def update(self, account: int, qty: int, tick: int) -> None:
        """Place the account's position at `tick` (remove it when flat or tick ≤ 0).
        O(log N) amortized: its old heap entry just goes stale."""
        if self.ladder is not None:
            self.ladder.set(account, qty, tick)
        keys = self.keys
        old = keys.get(account)
        side = 1 if qty > 0 else -1 if qty < 0 else 0
        if old is not None:
            if side == old[0] and tick == old[1]:
                return
            del keys[account]
            self.version += 1
        if side == 0 or tick <= 0:
            return
        keys[account] = (side, tick, account)
        self.version += 1
        calm = self.calm
        if side > 0:
            heap = self.long_heap
            heappush(heap, (-tick, account))
            if calm and tick >= calm:
                self.calm = 0
        else:
            heap = self.short_heap
            heappush(heap, (tick, account))
            if calm and tick <= calm:
                self.calm = 0
        if len(heap) > 2 * len(keys) + 64:  # mostly stale: rebuild (amortized O(1))
            self._rebuild()

    def remove(self, account: int) -> None:
        self.update(account, 0, 0)

    def quiet(self, mark: int) -> bool:
        """Whether no position is due at `mark` (> 0). O(1) amortized (stale entries at
        the top are dropped on the way); O(1) at the mark last found calm."""
        if mark == self.calm:
            return True
        keys = self.keys
        heap = self.long_heap
        while heap:
            neg, a = heap[0]
            k = keys.get(a)
            if k is None or k[0] != 1 or k[1] != -neg:
                heappop(heap)  # stale
                continue
            if -neg >= mark:
                return False
            break
        heap = self.short_heap
        while heap:
            tick, a = heap[0]
            k = keys.get(a)
            if k is None or k[0] != -1 or k[1] != tick:
                heappop(heap)
                continue
            if tick <= mark:
                return False
            break
        self.calm = mark
        return True

    def pop_due(self, mark: int) -> list[int]:
        """Remove and return every account whose liquidation tick the mark has crossed,
        most endangered first (longs by tick descending, then shorts ascending),
        ties by account id. O((k + s) log N) for k due and s stale entries met, or
        O(N + k log k) in a few linear passes once more than `BULK` are due (a crash); O(1) at
        the mark last found calm. Afterwards nothing is due at `mark`."""
        if mark == self.calm:
            return []
        due: list[int] = []
        keys = self.keys
        heap = self.long_heap
        n = 0
        while heap:
            neg, a = heap[0]
            k = keys.get(a)
            if k is None or k[0] != 1 or k[1] != -neg:
                heappop(heap)
                continue
            if -neg < mark:
                break
            if n == BULK:
                self.long_heap = self._take_all(heap, 1, -mark, due)
                keys = self.keys  # (rebuilt)
                break
            heappop(heap)
            del keys[a]  # (a duplicate entry of the same position is stale from here on)
            due.append(a)
            n += 1
        heap = self.short_heap
        n = 0
        while heap:
            tick, a = heap[0]
            k = keys.get(a)
            if k is None or k[0] != -1 or k[1] != tick:
                heappop(heap)
                continue
            if tick > mark:
                break
            if n == BULK:
                self.short_heap = self._take_all(heap, -1, mark, due)
                break
            heappop(heap)
            del keys[a]
            due.append(a)
            n += 1
        self.calm = mark
        if due:
            self.version += 1
            if self.ladder is not None:
                for a in due:
                    self.ladder.set(a, 0, 0)
        return due

    def _take_all(
        self, heap: list[tuple[int, int]], side: int, edge: int, due: list[int]
    ) -> list[tuple[int, int]]:
        """Append to `due`, in heap order, the account of every live entry ≤ `edge` and
        take it out of `keys`; return the side's new heap of the other entries.
        O(N + k log k): the live entries are read from `keys` (the truth: no stale
        entry, no duplicate) in one pass and sorted as integers (entry · 2⁶⁴ + account,
        the same order as the entries, account ids being below 2⁶³), far cheaper than
        sorting tuples; `keys` is rebuilt without them in a second pass, which reads
        memory in order where deleting k keys one by one would read it at random."""
        keys = self.keys
        if side > 0:  # longs: entries (−tick, account), due when tick ≥ −edge
            mark = -edge
            taken = [(-k[1] << 64) + a for a, k in keys.items() if k[1] >= mark and k[0] == 1]
            self.keys = {a: k for a, k in keys.items() if k[1] < mark or k[0] != 1}
        else:  # shorts: entries (tick, account), due when tick ≤ edge
            taken = [(k[1] << 64) + a for a, k in keys.items() if k[1] <= edge and k[0] == -1]
            self.keys = {a: k for a, k in keys.items() if k[1] > edge or k[0] != -1}
        taken.sort()
        low = (1 << 64) - 1
        due.extend([x & low for x in taken])
        rest = [e for e in heap if e[0] > edge]
        heapify(rest)
        return rest

    def due_scan(self, mark: int) -> list[int]:
        """The accounts `pop_due` would return, found by a full scan (for tests). O(N)."""
        out = [(k[1], a) for a, k in self.keys.items() if k[0] > 0 and k[1] >= mark]
        out.sort(key=lambda t: (-t[0], t[1]))
        shorts = sorted((k[1], a) for a, k in self.keys.items() if k[0] < 0 and k[1] <= mark)
        return [a for _, a in out] + [a for _, a in shorts]

    def _check(self) -> None:
        """Every position held has its entry in its side's heap, and both are heaps."""
        longs = set(self.long_heap)
        shorts = set(self.short_heap)
        for side, tick, account in self.keys.values():
            assert side in (1, -1) and tick > 0, "monitor key out of range"
            if side > 0:
                assert (-tick, account) in longs, "monitor key missing from its side"
            else:
                assert (tick, account) in shorts, "monitor key missing from its side"
        assert not self.calm or not self.due_scan(self.calm), "a position is due at the calm mark"
        for heap in (self.long_heap, self.short_heap):
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2] <= heap[i], "monitor side is not a heap"
        if self.ladder is not None:
            self.ladder._check()
            held = {a: (0 if k[0] > 0 else 1, k[1]) for a, k in self.keys.items()}
            assert {a: h[:2] for a, h in self.ladder.held.items()} == held, "ladder != monitor"
