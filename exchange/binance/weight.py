"""Binance's request-weight limit: a one-minute window per client address.

Every answer carries `X-MBX-USED-WEIGHT-1M` (weight used in the current minute, this
request included). A request that would go over the limit is refused with 429, code
-1003 and `Retry-After` (seconds until the minute ends) and costs nothing; it changes
nothing either. Windows are aligned to wall-clock minutes, as Binance's. O(1) per
request; windows of addresses not seen in the current minute are dropped at its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class WeightCounter:
    def __init__(self, limit: int = 2400, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._clock = clock
        self._minute = -1
        self._used: dict[str, int] = {}
        self.refused = 0

    def _roll(self) -> float:
        now = self._clock()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self._used.clear()
        return now

    def take(self, who: str, weight: int) -> tuple[bool, int, int]:
        """(allowed, weight used now, seconds until the window resets)."""
        now = self._roll()
        used = self._used.get(who, 0)
        retry = max(1, int(60 - now % 60 + 0.999))
        if used + weight > self.limit:
            self.refused += 1
            return False, used, retry
        used += weight
        self._used[who] = used
        return True, used, retry

    def used(self, who: str) -> int:
        self._roll()
        return self._used.get(who, 0)
