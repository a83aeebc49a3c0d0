"""The `/fapi/...` account endpoints (account, balance, positions, leverage and margin,
brackets, fees, income) and the user data stream's listen keys: reads from the core's
account views and the gateway's ledger, writes through the native API (see
`exchange.binance.endpoints`).
"""

from __future__ import annotations

from typing import Any

from exchange.binance import formats as F
from exchange.binance.endpoints import (
    V1,
    V2,
    V3,
    call_native,
    instrument_of,
    symbols_of,
)
from exchange.binance.errors import (
    BinanceError,
)
from exchange.binance.ledger import ms
from exchange.binance.rest import KEY, SIGNED, Request, endpoint
from exchange.core.errors import Code

# ------------------------------------------------------------------ account


def _account(r: Request) -> dict[str, Any]:
    r.gw.catch_up()
    ex, ledger = r.gw.exchange, r.gw.ledger
    view = ex.account_view(r.account)
    if view is None:
        raise BinanceError(Code.INVALID_KEY_OR_PERMISSION, "Invalid API-key, IP, or permissions for action.", 401)  # fmt: skip
    t = max(ms(ledger.balance_ts.get(r.account, 0)), 1)  # type: ignore[arg-type]
    positions = [
        (ex.instruments[p.symbol], p, ms(ledger.position_ts.get((r.account, p.symbol), 0)))
        for p in view.positions
    ]
    return F.account(list(view.balances), positions, {b.asset: t for b in view.balances})


@endpoint("GET", (V2 + "account", V3 + "account"), SIGNED, weight=5)
async def account(r: Request) -> Any:
    return _account(r)


@endpoint("GET", (V2 + "balance", V3 + "balance"), SIGNED, weight=5)
async def balance(r: Request) -> Any:
    return F.balances(_account(r))


@endpoint("GET", (V2 + "positionRisk", V3 + "positionRisk"), SIGNED, weight=5, params="symbol")
async def position_risk(r: Request) -> Any:
    sym = r.get("symbol")
    if sym is not None:
        instrument_of(r)
    r.gw.catch_up()
    ex, ledger = r.gw.exchange, r.gw.ledger
    view = ex.account_view(r.account)
    out = []
    for p in view.positions if view is not None else ():
        if sym is None or p.symbol == sym:
            t = ms(ledger.position_ts.get((r.account, p.symbol), 0))
            out.append(F.position_risk(ex.instruments[p.symbol], p, t))
    return out


@endpoint("GET", V1 + "leverageBracket", SIGNED, params="symbol")
async def leverage_bracket(r: Request) -> Any:
    out = [F.leverage_bracket(i) for i in symbols_of(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("POST", V1 + "leverage", SIGNED, params="symbol leverage")
async def set_leverage(r: Request) -> Any:
    inst = instrument_of(r)
    lev = r.int("leverage", 1, 1000)
    if lev is None:
        r.need("leverage")
    res = await call_native(r, "leverage.set", {"symbol": inst.symbol, "leverage": lev})
    cap = 0
    for b in inst.brackets:
        if b.max_leverage >= res["leverage"]:
            cap = b.cap
    return {"leverage": res["leverage"], "maxNotionalValue": F.units.quanta_to_str(cap), "symbol": inst.symbol}  # fmt: skip


@endpoint("POST", V1 + "marginType", SIGNED, params="symbol marginType")
async def margin_type(r: Request) -> Any:
    instrument_of(r)
    mt = r.need("marginType")
    if mt == "ISOLATED":
        return {"code": 200, "msg": "success"}
    if mt == "CROSSED":
        raise BinanceError(Code.INVALID_PARAMETER, "Cross margin is not available: margincall margins every position in isolation (marginType ISOLATED).")  # fmt: skip
    raise BinanceError(Code.INVALID_PARAMETER, "Param 'marginType' must be ISOLATED or CROSSED.")


@endpoint("POST", V1 + "positionMargin", SIGNED, params="symbol amount type positionSide")
async def position_margin(r: Request) -> Any:
    inst = instrument_of(r)
    if r.get("positionSide") not in (None, "BOTH"):
        raise BinanceError(-4061, "Order's position side does not match user's setting: margincall is one-way (BOTH) only.")  # fmt: skip
    typ = r.int("type", 1, 2)
    if typ is None:
        r.need("type")
    res = await call_native(r, "position.margin", {"symbol": inst.symbol, "amount": r.need("amount"), "type": typ})  # fmt: skip
    return {"amount": float(res["amount"]), "code": 200, "msg": "Successfully modify position margin.", "type": typ}  # fmt: skip


@endpoint("GET", V1 + "positionSide/dual", SIGNED)
async def position_mode(r: Request) -> Any:
    return {"dualSidePosition": False}


@endpoint("POST", V1 + "positionSide/dual", SIGNED, params="dualSidePosition")
async def set_position_mode(r: Request) -> Any:
    if r.need("dualSidePosition") == "false":
        raise BinanceError(-4059, "No need to change position side.")
    raise BinanceError(Code.INVALID_PARAMETER, "Hedge mode is not available: margincall positions are one-way (BOTH).")  # fmt: skip


@endpoint("GET", V1 + "multiAssetsMargin", SIGNED)
async def multi_assets(r: Request) -> Any:
    return {"multiAssetsMargin": False}


@endpoint("GET", V1 + "commissionRate", SIGNED, weight=20, params="symbol")
async def commission_rate(r: Request) -> Any:
    inst = instrument_of(r)
    rate = F.units.rate_to_str
    return {"symbol": inst.symbol, "makerCommissionRate": rate(inst.maker_fee), "takerCommissionRate": rate(inst.taker_fee)}  # fmt: skip


@endpoint("GET", V1 + "accountConfig", SIGNED, weight=5)
async def account_config(r: Request) -> Any:
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "dualSidePosition": False, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1}  # fmt: skip


@endpoint("GET", V1 + "income", SIGNED, weight=30, params="symbol incomeType startTime endTime limit page")  # fmt: skip
async def income(r: Request) -> Any:
    sym = r.get("symbol")
    if sym is not None:
        instrument_of(r)
    kind = r.get("incomeType")
    limit = r.int("limit", 1, 1000, 100) or 100
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    ex = r.gw.exchange
    out = []
    for row in r.gw.ledger.income.get(r.account, ()):  # type: ignore[arg-type]
        s, k, amount, t, tran = row
        if (sym is None or s == sym) and (kind is None or k == kind) and start <= ms(t) <= end:
            asset = ex.instruments[s].quote_asset
            out.append({"symbol": s, "incomeType": k, "income": F.units.quanta_to_str(amount),
                        "asset": asset, "info": k, "time": ms(t), "tranId": tran, "tradeId": ""})  # fmt: skip
    return out[:limit] if start else out[-limit:]


# ------------------------------------------------------------------ user data stream


@endpoint("POST", V1 + "listenKey", KEY)
async def listen_key_new(r: Request) -> Any:
    return {"listenKey": r.gw.listen_keys.create(r.account)}  # type: ignore[arg-type]


@endpoint("PUT", V1 + "listenKey", KEY, params="listenKey")
async def listen_key_keepalive(r: Request) -> Any:
    key = r.gw.listen_keys.extend(r.account)  # type: ignore[arg-type]
    if key is None:
        raise BinanceError(-1125)
    return {"listenKey": key}


@endpoint("DELETE", V1 + "listenKey", KEY, params="listenKey")
async def listen_key_close(r: Request) -> Any:
    key = r.gw.listen_keys.key_of(r.account)  # type: ignore[arg-type]
    if key is not None:
        r.gw.listen_keys.delete(key)
        await r.gw.streams.listen_key_closed(key)
    return {}
