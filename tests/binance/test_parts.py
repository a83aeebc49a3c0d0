"""The gateway's pure parts: signing, weight, listen keys, ledger, formats, stream names."""

from __future__ import annotations

import pytest

from exchange.auth import KeyStore
from exchange.binance import formats as F
from exchange.binance.errors import BinanceError
from exchange.binance.gateway import ListenKeys
from exchange.binance.ledger import Ledger
from exchange.binance.signing import sign, strip_signature, verify
from exchange.binance.streams import parse_stream
from exchange.binance.weight import WeightCounter
from exchange.config import load_instruments
from exchange.core import events as E
from exchange.core.views import PositionView

NOW = 1_700_000_000_000
INST = {i.symbol: i for i in load_instruments()}["BTCUSDT"]


def test_signature_is_over_the_raw_text_without_its_own_pair() -> None:
    assert strip_signature("a=1&signature=ab&b=2") == ("a=1&b=2", "ab")
    assert strip_signature("a=1") == ("a=1", None)
    keys = KeyStore(b"k" * 32)
    key, secret = keys.issue(7)
    q = f"symbol=BTCUSDT&timestamp={NOW}"
    params = {"symbol": "BTCUSDT", "timestamp": str(NOW)}
    good = q + "&signature=" + sign(secret, q)
    assert verify(keys, key, good, "", params, NOW) == 7
    # query + body are one text (Binance's totalParams)
    assert verify(keys, key, "symbol=BTCUSDT", f"timestamp={NOW}&signature=" + sign(secret, f"symbol=BTCUSDTtimestamp={NOW}"), params, NOW) == 7  # fmt: skip

    def code(**kw: object) -> int:
        args = {"api_key": key, "raw_query": good, "params": params, "now_ms": NOW, **kw}
        with pytest.raises(BinanceError) as e:
            verify(keys, args["api_key"], args["raw_query"], "", args["params"], args["now_ms"])  # type: ignore[arg-type]
        return e.value.code

    assert code(api_key=None) == -2014
    assert code(params={"symbol": "BTCUSDT"}) == -1102
    assert code(params={"timestamp": "12a"}) == -1100
    assert code(params={**params, "recvWindow": "70000"}) == -1130
    assert code(raw_query=q) == -1102
    assert code(now_ms=NOW + 5_001) == -1021
    assert code(now_ms=NOW - 1_001) == -1021
    assert code(api_key="ab" * 32) == -2015
    assert code(raw_query=q + "&signature=" + "0" * 64) == -1022
    assert code(raw_query=q + "&signature=zz") == -1022
    assert verify(keys, key, good, "", {**params, "recvWindow": "60000"}, NOW + 59_000) == 7


def test_weight_counter_windows_by_minute() -> None:
    t = [120.0]
    w = WeightCounter(5, clock=lambda: t[0])
    assert w.take("a", 3) == (True, 3, 60)
    assert w.take("a", 3)[0] is False and w.used("a") == 3
    assert w.take("b", 5)[0] is True
    t[0] = 150.5
    ok, used, retry = w.take("a", 2)
    assert (ok, used, retry) == (True, 5, 30)
    t[0] = 180.0
    assert w.take("a", 5) == (True, 5, 60) and w.refused == 1


def test_listen_keys_expire_and_are_one_per_account() -> None:
    t = [0.0]
    lk = ListenKeys(60, clock=lambda: t[0])
    k = lk.create(1)
    k2 = lk.create(2)
    assert lk.create(1) == k and lk.account(k) == 1 and k2 != k
    t[0] = 50
    assert lk.extend(1) == k
    t[0] = 100
    assert lk.account(k) == 1 and lk.expired() == [k2]
    t[0] = 200
    assert (
        sorted(lk.expired()) == sorted([k, k2]) and lk.account(k) is None and lk.extend(1) is None
    )


def _fill(seq: int, ts_ms: int, price: int, qty: int, taker: str = "BUY", liq: bool = False, maker: int = 1) -> E.OrderFilled:  # fmt: skip
    return E.OrderFilled(seq, ts_ms * 1_000_000, "BTCUSDT", seq, price, qty, taker, 100 + seq, maker,
                         2, 3, 5, 1, 0, 0, liq)  # fmt: skip


def test_ledger_klines_orders_and_trades() -> None:
    led = Ledger()
    acc = E.OrderAccepted(1, 0, 1, "c1", 3, "BTCUSDT", "BUY", "LIMIT", "GTC", 500000, 10, 0, False, "NEW")  # fmt: skip
    base = 1_700_006_400_000  # a 4 h boundary
    led.apply([acc, _fill(2, base + 1_000, 500000, 4), _fill(3, base + 61_000, 501000, 6)])
    led.apply([_fill(4, base + 3_600_000 + 5, 499000, 1, taker="SELL", maker=9)])
    rec = led.orders[1]
    assert (rec.filled, rec.quote, rec.status) == (10, 4 * 500000 + 6 * 501000, "FILLED")
    ones = led.klines("BTCUSDT", 60_000, 0, 2**62, 10)
    assert [k[0] for k in ones] == [base, base + 60_000, base + 3_600_000]
    hour = led.klines("BTCUSDT", 3_600_000, 0, 2**62, 10)
    assert hour[0][1:8] == [500000, 501000, 500000, 501000, 10, 4 * 500000 + 6 * 501000, 2]
    assert hour[1][8] == 0  # a taker sell: no taker-buy volume
    assert led.klines("BTCUSDT", 3_600_000, 0, 2**62, 1) == [hour[1]]
    week = led.klines("BTCUSDT", 604_800_000, 0, 2**62, 5)
    assert len(week) == 1 and (week[0][0] // 86_400_000 - 4) % 7 == 0  # weeks start on Monday
    mine = led.account_trades[3]
    assert [t.qty for t in mine] == [4, 6, 1] and all(t.maker for t in mine)
    assert [t.side for t in led.account_trades[2]] == ["BUY", "BUY", "SELL"]
    assert not any(t.maker for t in led.account_trades[2])


def test_liquidation_fills_make_an_autoclose_order() -> None:
    led = Ledger()
    led.apply([_fill(1, NOW, 490000, 5, taker="SELL", liq=True)])
    rec = led.orders[101]
    assert rec.client_id == "autoclose-101" and rec.type == "LIQUIDATION" and rec.filled == 5
    assert F.order(INST, rec)["type"] == "LIMIT"


def test_position_risk_and_symbol_info_fields() -> None:
    p = PositionView("BTCUSDT", 10, 10 * 500000 * INST.lot_value, (10 * 500000 * INST.lot_value, 10 * INST.lot_value),  # fmt: skip
                     1_000_000_000, 10, 510000, 460000, 455000, 10 * 10000 * INST.lot_value, 2_000_000, 1_000_000, 0)  # fmt: skip
    r = F.position_risk(INST, p, 5)
    assert r["marginType"] == "isolated" and r["leverage"] == "10" and r["positionSide"] == "BOTH"
    assert r["isolatedWallet"] == "10.00000000"
    assert r["markPrice"] == F.units.ticks_to_str(INST, 510000)
    assert float(r["isolatedMargin"]) == float(r["isolatedWallet"]) + float(r["unRealizedProfit"])
    info = F.symbol_info(INST)
    kinds = [f["filterType"] for f in info["filters"]]
    for k in ("PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL", "PERCENT_PRICE", "MAX_NUM_ORDERS"):  # fmt: skip
        assert k in kinds
    assert "STOP_MARKET" in info["orderTypes"] and info["contractType"] == "PERPETUAL"


def test_stream_names() -> None:
    syms = {"btcusdt": "BTCUSDT"}
    assert parse_stream("btcusdt@depth@100ms", syms) == ("BTCUSDT", "depth@100ms", "btcusdt@depth@100ms")  # fmt: skip
    assert parse_stream("btcusdt@kline_1h", syms) is not None
    assert parse_stream("!forceOrder@arr", syms) == ("!", "!forceOrder@arr", "!forceOrder@arr")
    for bad in ("btcusdt@kline_7m", "ethbtc@trade", "BTCUSDT@trade", "btcusdt@depth@7ms", "0"):
        assert parse_stream(bad, syms) is None
