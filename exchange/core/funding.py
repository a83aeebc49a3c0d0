"""Funding: settled between longs and shorts at each funding time, zero-sum.

Funding times passed while the clock moves are settled in order, before the command
that moved it. Payers pay ceil(notional × |rate|), capped at their margin; receivers
share exactly what was paid, pro rata, with the remainder handed out by largest
remainder. The rate comes from the premium samples (mark.py) or is imposed.
"""

from __future__ import annotations

from . import events as E
from .numbers import RATE_ONE, ceil_div
from .room import Room
from .state import FUND, Market, Seat


class Funding(Room):
    """Settling funding at funding times."""

    def _settle_funding_due(self) -> bool:
        """Settle each funding time passed, in order; a market without positions (or a
        jump of over 10,000 intervals) skips straight to the next funding time.
        Returns whether any funding was settled."""
        settled = False
        for m in self.markets.values():
            if m.next_funding_ts > self.now:
                continue
            iv = m.inst.funding_interval_ns
            if not (m.sides[0] or m.sides[1]) or (self.now - m.next_funding_ts) // iv > 10_000:
                m.next_funding_ts = (self.now // iv + 1) * iv
                m.premium_sum = m.premium_n = 0
                m.funding_override = None
                continue
            while m.next_funding_ts <= self.now:
                settled = True
                self._settle_funding(m, m.next_funding_ts)
                m.next_funding_ts += m.inst.funding_interval_ns
                m.premium_sum = m.premium_n = 0
                m.funding_rate = m.inst.interest_rate
                m.funding_override = None
                self._react(m)
        return settled

    def _settle_funding(self, m: Market, at: int) -> None:
        """Pay funding between longs and shorts, zero-sum to the quantum.

        Payers pay ceil(notional × |rate|), capped at their margin (the fund pays from
        its balance); receivers share exactly what was paid, pro rata to notional,
        rounded down, the remainder handed out a quantum each by largest remainder,
        then account id. O(P log P) for P positions.
        """
        rate = m.funding_rate
        if rate == 0 or m.mark <= 0:
            self._emit(
                E.FundingSettled, m.inst.symbol, rate, at, 0, at + m.inst.funding_interval_ns
            )
            return
        lv = m.inst.lot_value
        quote = m.inst.quote_asset
        payers_long = rate > 0
        payers: list[tuple[int, Seat]] = []
        receivers: list[tuple[int, Seat]] = []
        for acct_id in sorted(m.seats):
            seat = m.seats[acct_id]
            if seat.qty == 0:
                continue
            notional = abs(seat.qty) * m.mark * lv
            (payers if (seat.qty > 0) == payers_long else receivers).append((notional, seat))
        total = 0
        for notional, seat in payers:
            due = ceil_div(notional * abs(rate), RATE_ONE)
            if seat.account == FUND:
                fund = self.accounts[FUND]
                pay = min(due, max(0, fund.available.get(quote, 0)))
                fund.available[quote] = fund.available.get(quote, 0) - pay
                self._touch_balance(FUND, quote)
            else:
                pay = min(due, seat.margin)
                seat.margin -= pay
            total += pay
            self._touch(seat)
            self._emit(E.FundingPaid, seat.account, m.inst.symbol, rate, -pay, seat.qty, m.mark)
        weight = sum(n for n, _ in receivers)
        shares: list[tuple[int, int, Seat]] = []
        given = 0
        for notional, seat in receivers:
            share, rem = divmod(total * notional, weight) if weight else (0, 0)
            shares.append((share, rem, seat))
            given += share
        bonus = {
            r[2].account
            for r in sorted(shares, key=lambda r: (-r[1], r[2].account))[: total - given]
        }
        for share, _, seat in shares:
            share += seat.account in bonus
            if seat.account == FUND:
                fund = self.accounts[FUND]
                fund.available[quote] = fund.available.get(quote, 0) + share
                self._touch_balance(FUND, quote)
            else:
                seat.margin += share
            self._touch(seat)
            self._emit(E.FundingPaid, seat.account, m.inst.symbol, rate, share, seat.qty, m.mark)
        self._emit(
            E.FundingSettled, m.inst.symbol, rate, at, total, at + m.inst.funding_interval_ns
        )
