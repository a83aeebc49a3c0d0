"""Methods `admin.*`: accounts and funds, keys and tokens, prices and funding, halts,
instruments, the clock, stats. Admin connections only."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from exchange import units
from exchange.config import InstrumentFileError, instrument_from_dict
from exchange.core import commands as C
from exchange.core.errors import Code
from exchange.core.numbers import RATE_ONE
from exchange.protocol.account import account_json
from exchange.protocol.logon import _TOKEN_OPTS, _new_token
from exchange.protocol.params import SYMBOL, method, v_decimal, v_int, v_object, v_str, v_symbol
from exchange.protocol.session import Session
from exchange.protocol.views import instrument_json
from exchange.protocol.wire import ProtocolError


@method(
    "admin.createAccount",
    "admin",
    optional={"deposit": v_decimal, "asset": v_str(16), "account": v_int(1, 2**31)},
)
async def _admin_create(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    if "account" in p:
        account = p["account"]
        api.next_account = max(api.next_account, account + 1)
    else:
        account = api.next_account
        api.next_account += 1
    amount = units.money_to_quanta(p["deposit"], "deposit") if "deposit" in p else 0
    await s.submit(C.CreateAccount(account=account))
    if amount:
        await s.submit(C.Deposit(account=account, asset=p.get("asset", "USDT"), amount=amount))
    key, secret = await api.keys.issue_saved(account)  # durable before it is handed out
    return {"account": account, "apiKey": key, "secret": secret}


@method("admin.createSession", "admin", required={"account": v_int(1, 2**31)}, optional=_TOKEN_OPTS)
async def _admin_create_session(s: Session, p: dict[str, Any]) -> Any:
    if s.api.exchange.account_view(p["account"]) is None:
        raise ProtocolError(Code.UNKNOWN_ACCOUNT)
    return await _new_token(s, p["account"], p)


@method("admin.revokeSessions", "admin", required={"account": v_int(1, 2**31)})
async def _admin_revoke_sessions(s: Session, p: dict[str, Any]) -> Any:
    return {"account": p["account"], "revoked": s.api.sessions.revoke_account(p["account"])}


_FUNDS = {"account": v_int(1, 2**31), "asset": v_str(16), "amount": v_decimal}


@method("admin.deposit", "admin", required=_FUNDS)
async def _admin_deposit(s: Session, p: dict[str, Any]) -> Any:
    await s.submit(
        C.Deposit(account=p["account"], asset=p["asset"], amount=units.money_to_quanta(p["amount"]))
    )
    return account_json(s.api, p["account"])


@method("admin.withdraw", "admin", required=_FUNDS)
async def _admin_withdraw(s: Session, p: dict[str, Any]) -> Any:
    await s.submit(
        C.Withdraw(
            account=p["account"], asset=p["asset"], amount=units.money_to_quanta(p["amount"])
        )
    )
    return account_json(s.api, p["account"])


def _market_result(s: Session, symbol: str) -> dict[str, Any]:
    mv = s.api.exchange.market_view(symbol)
    data = s.api.formatter.mark_data(symbol, mv.mark, mv.index, mv.last, mv.funding_rate, mv.next_funding_ts, s.api.exchange.now, 0)  # fmt: skip
    del data["seq"]
    data["type"] = "market"
    data["status"] = "HALTED" if mv.halted else "TRADING"
    return data


@method("admin.setIndex", "admin", required={"symbol": v_symbol, "price": v_decimal})
async def _admin_set_index(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    ticks = units.price_to_ticks_rounded(inst, p["price"])
    await s.submit(C.SetIndexPrice(symbol=inst.symbol, price=ticks))
    return _market_result(s, inst.symbol)


@method("admin.shockIndex", "admin", required={"symbol": v_symbol, "change": v_decimal})
async def _admin_shock(s: Session, p: dict[str, Any]) -> Any:
    """Move the index by a relative change, e.g. "-0.10" for a 10 % crash."""
    inst = s.api.instrument(p["symbol"])
    change = units.rate_from_text(p["change"], "change")
    if not -RATE_ONE < change <= 10 * RATE_ONE:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'change' must be in (-1, 10].")
    index = s.api.exchange.market_view(inst.symbol).index
    if index <= 0:
        raise ProtocolError(Code.INVALID_PARAMETER, "The symbol has no index price to shock yet.")
    ticks = max(1, round(Fraction(index * (RATE_ONE + change), RATE_ONE)))
    await s.submit(C.SetIndexPrice(symbol=inst.symbol, price=ticks))
    return _market_result(s, inst.symbol)


@method("admin.setFundingRate", "admin", required={"symbol": v_symbol, "rate": v_decimal})
async def _admin_set_funding_rate(s: Session, p: dict[str, Any]) -> Any:
    """Impose the funding rate of the next funding time (journaled like every command)."""
    inst = s.api.instrument(p["symbol"])
    rate = units.rate_from_text(p["rate"], "rate")
    await s.submit(C.SetFundingRate(symbol=inst.symbol, rate=rate))
    return _market_result(s, inst.symbol)


@method("admin.halt", "admin", required=SYMBOL)
async def _admin_halt(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(C.HaltSymbol(symbol=inst.symbol))
    return _market_result(s, inst.symbol)


@method("admin.resume", "admin", required=SYMBOL)
async def _admin_resume(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(C.ResumeSymbol(symbol=inst.symbol))
    return _market_result(s, inst.symbol)


@method("admin.addInstrument", "admin", required={"instrument": v_object})
async def _admin_add_instrument(s: Session, p: dict[str, Any]) -> Any:
    raw = _plain(p["instrument"])
    try:
        inst = instrument_from_dict(raw, where="instrument")
    except InstrumentFileError as e:
        raise ProtocolError(Code.INVALID_PARAMETER, str(e)[:300]) from None
    await s.submit(C.AddInstrument(instrument=inst))
    return instrument_json(inst)


def _plain(v: Any, depth: int = 0) -> Any:
    """JSON numbers as their exact text, so the instrument parser reads them as decimals."""
    if depth > 4:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'instrument' is nested too deeply.")
    if isinstance(v, dict):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x, depth + 1) for x in v]
    if isinstance(v, units.JsonNumber):
        return str(v)
    return v


@method("admin.advanceClock", "admin", optional={"to": v_int(0), "by": v_int(0)})
async def _admin_advance(s: Session, p: dict[str, Any]) -> Any:
    ex = s.api.exchange
    if ("to" in p) == ("by" in p):
        raise ProtocolError(Code.MANDATORY_PARAM_MISSING, "Send exactly one of 'to' or 'by' (ns).")
    target = p["to"] if "to" in p else ex.now + p["by"]
    if target < ex.now:
        raise ProtocolError(Code.INVALID_PARAMETER, "The clock never goes backwards.")
    if target > 2**62:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'to' is too far in the future.")
    if target > ex.now:
        await s.submit(C.AdvanceClock(ts=target))
    return {"engineTime": ex.now, "clock": s.api.runtime.clock}


@method("admin.stats", "admin")
async def _admin_stats(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    ex = api.exchange
    out: dict[str, Any] = {
        "runtime": api.runtime.stats(),
        "protocol": {
            "requests": api.requests,
            "errors": api.errors,
            "streamMessages": api.router.messages,
            "marginCalls": api.router.margin_calls,
            "topics": {k: len(v) for k, v in api.router.topics.items()},
        },
        "stateHash": ex.state_hash(),
        "insuranceFund": units.quanta_to_str(ex.insurance_fund("USDT")),
        "engineTime": ex.now,
    }
    if api.extra_stats is not None:
        out["server"] = api.extra_stats()
    return out


@method("admin.account", "admin", required={"account": v_int(0, 2**31)})
async def _admin_account(s: Session, p: dict[str, Any]) -> Any:
    return account_json(s.api, p["account"])
