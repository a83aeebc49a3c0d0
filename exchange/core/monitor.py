"""The margin monitor: open positions of one symbol ordered by liquidation price.

Longs are liquidated when mark ≤ their liquidation tick, shorts when mark ≥ it, so
each side is a `SortedList` of (tick, account) and a mark update only looks at the
end that the mark has crossed: O(log N + k) for k liquidations, O(1) when none.
"""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList

from .ladder import LiquidationLadder


def _most_endangered_long(entry: tuple[int, int]) -> tuple[int, int]:
    return -entry[0], entry[1]


class MarginMonitor:
    __slots__ = (
        "longs",
        "shorts",
        "keys",
        "version",
        "long_version",
        "short_version",
        "long_quiet",
        "short_quiet",
        "ladder",
    )

    def __init__(self) -> None:
        self.longs = SortedList()  # (liq tick, account); due from the top
        self.shorts = SortedList()  # due from the bottom
        self.keys: dict[int, tuple[int, int, int]] = {}  # account -> (side, tick, account)
        self.version = 0  # grows with every change of longs/shorts (for callers' caches)
        # the same per side, and the (side version, mark) at which `pop_due` last found
        # nothing due on that side: while both are unchanged there is nothing to look at
        self.long_version = 0
        self.short_version = 0
        self.long_quiet = (-1, 0)
        self.short_quiet = (-1, 0)
        # bucket aggregates for the public liquidation ladder, kept once someone asks
        self.ladder: LiquidationLadder | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the ladder is derived: snapshots leave it out (and older ones never had it)
        return {k: getattr(self, k) for k in self.__slots__ if k != "ladder"}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # the default slots state: (None, {name: value})
            state = state[1]
        for k, v in state.items():
            setattr(self, k, v)
        self.ladder = None

    def __len__(self) -> int:
        return len(self.keys)

    def update(self, account: int, qty: int, tick: int) -> None:
        """Place the account's position at `tick` (remove it when flat or tick ≤ 0). O(log N).

        A side found quiet at a mark (nothing due there) stays quiet through removals
        and through additions the mark does not cross, so `pop_due` at the same mark
        after them is O(1): a cascade re-indexes its counterparties after every
        liquidation without making the monitor look again."""
        if self.ladder is not None:
            self.ladder.set(account, qty, tick)
        old = self.keys.get(account)
        side = 1 if qty > 0 else -1 if qty < 0 else 0
        if old is not None:
            if side == old[0] and tick == old[1]:
                return
            if old[0] > 0:
                self.longs.remove((old[1], account))
                v = self.long_version
                self.long_version = v + 1
                if self.long_quiet[0] == v:
                    self.long_quiet = (v + 1, self.long_quiet[1])
            else:
                self.shorts.remove((old[1], account))
                v = self.short_version
                self.short_version = v + 1
                if self.short_quiet[0] == v:
                    self.short_quiet = (v + 1, self.short_quiet[1])
            del self.keys[account]
            self.version += 1
        if side == 0 or tick <= 0:
            return
        if side > 0:
            self.longs.add((tick, account))
            v = self.long_version
            self.long_version = v + 1
            quiet = self.long_quiet
            if quiet[0] == v and tick < quiet[1]:  # due when mark <= tick: not at that mark
                self.long_quiet = (v + 1, quiet[1])
        else:
            self.shorts.add((tick, account))
            v = self.short_version
            self.short_version = v + 1
            quiet = self.short_quiet
            if quiet[0] == v and tick > quiet[1]:  # due when mark >= tick: not at that mark
                self.short_quiet = (v + 1, quiet[1])
        self.keys[account] = (side, tick, account)
        self.version += 1

    def quiet(self, mark: int) -> bool:
        """Whether no position is due at `mark` (> 0). O(1); remembers the answer per
        side, so asking again after changes the mark does not cross costs two compares."""
        quiet = self.long_quiet
        if quiet[0] != self.long_version or quiet[1] != mark:
            maxes = self.longs._maxes  # the largest tick, without SortedList's indexing
            if maxes and maxes[-1][0] >= mark:
                return False
            self.long_quiet = (self.long_version, mark)
        quiet = self.short_quiet
        if quiet[0] != self.short_version or quiet[1] != mark:
            lists = self.shorts._lists  # the smallest tick
            if lists and lists[0][0][0] <= mark:
                return False
            self.short_quiet = (self.short_version, mark)
        return True

    def remove(self, account: int) -> None:
        self.update(account, 0, 0)

    def pop_due(self, mark: int) -> list[int]:
        """Remove and return every account whose liquidation tick the mark has crossed,
        most endangered first (longs by tick descending, then shorts ascending),
        ties by account id. O(log N + k); O(1) when the sides are quiet at `mark`.
        Afterwards both sides are quiet at `mark`."""
        due: list[int] = []
        quiet = self.long_quiet
        if quiet[0] != self.long_version or quiet[1] != mark:
            longs = self.longs
            maxes = longs._maxes
            if maxes and maxes[-1][0] >= mark:
                i = longs.bisect_left((mark, -1))
                group = list(longs.islice(i))
                del longs[i:]
                self.long_version += 1
                group.sort(key=_most_endangered_long)
                due.extend([a for _, a in group])
            self.long_quiet = (self.long_version, mark)
        quiet = self.short_quiet
        if quiet[0] != self.short_version or quiet[1] != mark:
            shorts = self.shorts
            lists = shorts._lists
            if lists and lists[0][0][0] <= mark:
                j = shorts.bisect_left((mark + 1, -1))
                group = list(shorts.islice(0, j))
                del shorts[:j]
                self.short_version += 1
                due.extend([a for _, a in group])
            self.short_quiet = (self.short_version, mark)
        if due:
            self.version += 1
            keys = self.keys
            for a in due:
                del keys[a]
            if self.ladder is not None:
                for a in due:
                    self.ladder.set(a, 0, 0)
        return due

    def due_scan(self, mark: int) -> list[int]:
        """The accounts `pop_due` would return, found by a full scan (for tests). O(N)."""
        out = [(k[1], a) for a, k in self.keys.items() if k[0] > 0 and k[1] >= mark]
        out.sort(key=lambda t: (-t[0], t[1]))
        shorts = sorted((k[1], a) for a, k in self.keys.items() if k[0] < 0 and k[1] <= mark)
        return [a for _, a in out] + [a for _, a in shorts]

    def _check(self) -> None:
        assert len(self.longs) + len(self.shorts) == len(self.keys), "monitor size mismatch"
        for side, tick, account in self.keys.values():
            lst = self.longs if side > 0 else self.shorts
            assert (tick, account) in lst, "monitor key missing from its side"
        if self.ladder is not None:
            self.ladder._check()
            held = {a: (0 if k[0] > 0 else 1, k[1]) for a, k in self.keys.items()}
            assert {a: h[:2] for a, h in self.ladder.held.items()} == held, "ladder != monitor"
