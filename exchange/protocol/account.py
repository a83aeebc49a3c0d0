"""Methods on one's own account: `account.status`, `position.margin`, `leverage.set`."""

from __future__ import annotations

from typing import Any

from exchange import units
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code
from exchange.protocol.api import Api
from exchange.protocol.params import method, v_decimal, v_int, v_symbol
from exchange.protocol.session import Session
from exchange.protocol.views import position_json
from exchange.protocol.wire import ProtocolError


def account_json(api: Api, account: int) -> dict[str, Any]:
    ex = api.exchange
    view = ex.account_view(account)
    if view is None:
        raise ProtocolError(Code.UNKNOWN_ACCOUNT)
    return {
        "account": account,
        "balances": [
            {
                "asset": b.asset,
                "available": units.quanta_to_str(b.available),
                "reserved": units.quanta_to_str(b.reserved),
                "total": units.quanta_to_str(b.available + b.reserved),
            }
            for b in view.balances
        ],
        "positions": [position_json(ex.instruments[pv.symbol], pv) for pv in view.positions],
    }


@method("account.status", "user")
async def _account_status(s: Session, p: dict[str, Any]) -> Any:
    return account_json(s.api, s.account)  # type: ignore[arg-type]


@method(
    "position.margin",
    "user",
    required={"symbol": v_symbol, "amount": v_decimal, "type": v_int(1, 2)},
)
async def _position_margin(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    amount = units.money_to_quanta(p["amount"])
    events = await s.submit(
        C.AdjustIsolatedMargin(
            account=s.account,  # type: ignore[arg-type]
            symbol=inst.symbol,
            amount=amount if p["type"] == 1 else -amount,
        )
    )
    margin = next((ev.margin for ev in events if type(ev) is E.IsolatedMarginChanged), None)
    return {
        "symbol": inst.symbol,
        "amount": units.quanta_to_str(amount),
        "type": p["type"],
        "isolatedMargin": units.quanta_to_str(margin) if margin is not None else None,
    }


@method("leverage.set", "user", required={"symbol": v_symbol, "leverage": v_int(1, 1000)})
async def _leverage_set(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(
        C.SetLeverage(account=s.account, symbol=inst.symbol, leverage=p["leverage"])  # type: ignore[arg-type]
    )
    return {"symbol": inst.symbol, "leverage": p["leverage"]}
