"""What the rooms of the exchange share: the registries, the event outlet, and the
transitions one room may ask of another.

`Exchange` (engine.py) is assembled from one class per room — `Accounts`, `Orders`,
`Reservations`, `Stops`, `Matching`, `Positions`, `Monitoring`, `MarkPrices`,
`Cascades`, `Funding`, `Views` — each in its own module with the transitions it owns. They all derive from
`Room`, which declares (for the type checker; nothing here runs) the attributes of the
one shared state and, below, every method a room calls in another room. That list is
the whole interface between rooms: a call not declared here stays inside its room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as E
from .adl import AdlRank
from .book import Order
from .errors import Code
from .instruments import Instrument
from .liquidation import LiquidationPolicy
from .state import MAX_AMOUNT, Account, AccountLimits, Market, Seat


class Room:
    """The shared state of one exchange (set up by `Exchange.__init__`)."""

    # engine: time, the event counter and the per-command event list
    now: int
    seq: int
    instruments: dict[str, Instrument]
    markets: dict[str, Market]
    _out: list[E.Event]
    _reacted: set[str]  # markets that ran `_react` in the current command
    _handlers: dict[type, Callable[[Any], None]]
    # accounts: balances and the money that came in and went out
    accounts: dict[int, Account]
    deposited: dict[str, int]
    withdrawn: dict[str, int]
    fees_collected: dict[str, int]
    _balances_touched: dict[tuple[int, str], None]
    # orders: every order by id, and seats whose orders need their reservation reviewed
    orders: dict[int, Order]
    next_order_id: int
    _review: dict[tuple[int, str, int], Seat]
    # matching
    next_trade_id: int
    # positions: seats changed in this command, to re-index and announce
    _touched: dict[Seat, None]
    # cascades
    next_liquidation_id: int
    next_cascade_id: int
    max_cascade_liquidations: int
    max_cascade_generations: int
    policy: LiquidationPolicy | None  # imposed on every market; None: each instrument's
    adl: bool  # whether the instruments' policies auto-deleverage
    _policies: dict[str, LiquidationPolicy]  # the instruments' policies, by name
    # (symbol, shorts) -> the ADL rank kept while a cascade runs (adl.py; never state)
    _adl_ranks: dict[tuple[str, bool], AdlRank] | None = None
    # supervision: account -> the operator's limits (absent = none)
    limits: dict[int, AccountLimits]

    if TYPE_CHECKING:
        # engine.Exchange
        def _emit(self, cls: Any, *args: Any) -> None: ...
        def _market(self, symbol: Any) -> Market: ...
        @staticmethod
        def _int(
            value: Any,
            what: str,
            lo: int = 1,
            hi: int = MAX_AMOUNT,
            code: Code = Code.INVALID_PARAMETER,
            unit: Callable[[int], str] = str,
        ) -> int: ...
        def _flush(self, m: Market) -> None: ...
        def _react(self, m: Market) -> None: ...

        # accounts
        def _account(self, account_id: Any) -> Account: ...
        def _touch_balance(self, account: int, asset: str) -> None: ...
        def _asset(self, asset: Any) -> str: ...
        def insurance_fund(self, asset: str = "USDT") -> int: ...

        # reservations
        def _review_reservations(self) -> None: ...
        def _order_reservation(self, m: Market, seat: Seat, o: Order, leverage: int) -> int: ...
        def _reservation(
            self, m: Market, side: int, price: int, qty: int, increase: int, leverage: int
        ) -> int: ...
        def _release(self, m: Market, o: Order, amount: int) -> None: ...

        # orders
        def _find(self, acct: Account, m: Market, order_id: Any, client_id: Any) -> Order: ...
        def _cancel_order(self, m: Market, o: Order, reason: str) -> None: ...
        def _open_orders_of(self, account: int, symbol: str) -> list[Order]: ...
        def _cut(self, m: Market, o: Order, lots: int) -> None: ...
        def _close_order(self, m: Market, o: Order, status: int, reason: str) -> None: ...

        # stops
        @staticmethod
        def _stop_direction(kind: str, side: int) -> int: ...
        def _fire_stops(self, m: Market) -> bool: ...

        # matching
        def _band(self, m: Market) -> tuple[int, int]: ...
        def _would_take(self, m: Market, side: int, price: int) -> bool: ...
        def _fillable(
            self, m: Market, side: int, limit: int, want: int, account: int, stp: str
        ) -> int: ...
        def _execute(self, m: Market, o: Order, limit: int) -> None: ...
        def _match(self, m: Market, t: Order, limit: int, liquidation: bool) -> str | None: ...

        # positions
        def _seat(self, acct: Account, m: Market) -> Seat: ...
        def _touch(self, seat: Seat) -> None: ...
        def _settle(
            self, m: Market, o: Order, before: int, price: int, n: int, fee: int, liquidation: bool
        ) -> None: ...
        def _trade_into(
            self,
            m: Market,
            acct: Account,
            seat: Seat,
            side: int,
            price: int,
            n: int,
            fee: int,
            funds: int,
            hold: bool,
        ) -> int: ...
        def transfer_position(
            self, m: Market, seat: Seat, to: Seat, lots: int, price: int
        ) -> int: ...

        # monitoring
        def _due(self, m: Market) -> list[Seat]: ...

        # cascades
        def cancel_orders_of(self, m: Market, seat: Seat, reason: str) -> None: ...
        def fund_seat(self, m: Market) -> Seat: ...

        # mark
        def _update_mark(self, m: Market) -> bool: ...
        def _observe_basis(self, m: Market) -> None: ...

        # views
        def conservation(self, asset: str = "USDT") -> tuple[int, int]: ...
