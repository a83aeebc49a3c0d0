"""The what-if fork: re-run the start of a cascade under other rules, side by side.

    from replay.whatif import Session, parse_variations, whatif

    session = Session.from_commands(instruments, commands)   # or .from_store(url),
    result = whatif(session, parse_variations(["policy=binance", "fund=0,1000000"]))
    result.table()                                           # a pandas DataFrame
    result.write_report("whatif-report")                     # report.html, whatif.csv

A session is a genesis (the instruments an `Exchange` starts from) and the command stream
that drove it: the store's journal, a replay's commands as the player translated them
against the baseline, or any list of core commands. The baseline runs the whole stream;
the chosen cascade (the largest by default, or the first, or one by id) began at the
command whose events hold its first `PositionLiquidated`. The state just before that
command is rebuilt (the core is deterministic) and each branch is a copy of it (pickled
once, unpickled per branch, as the store snapshots it),
changed by its variation and fed the same remaining commands. The branch without a
variation reproduces the baseline exactly (same events, same `state_hash()`).

How each variation is applied to the fork (docs/whatif.md):

* `policy=NAME` — `fork.policy = make_policy(NAME, adl=...)` (liquidation.POLICIES);
* `adl=off` — the same policy (the one named, else the fork's own) made with `adl=False`;
* `mark=METHOD` — the market's instrument replaced (`dataclasses.replace`) with that mark
  method; the mark's input key is cleared so the next command recomputes the mark; a
  market switched to `median` starts its time-weighted basis afresh at the fork (its
  earlier seconds count 0, as for a new market: only a median market keeps them);
* `band=RATE` — the instrument's `mark_band` replaced, the mark's key cleared;
* `fund=AMOUNT` — the insurance fund set to AMOUNT of the quote asset at the fork: raised
  by a `FundInsurance` command, lowered by taking the difference out as a withdrawal (so
  the conservation identity still holds).
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import FUND, Exchange
from exchange.core.instruments import MARK_METHODS, Instrument
from exchange.core.liquidation import POLICIES, make_policy
from exchange.core.numbers import MONEY_DECIMALS, RATE_ONE
from exchange.core.premium import MarkBasis

__all__ = [
    "Branch",
    "Session",
    "Variation",
    "WhatIf",
    "WhatIfError",
    "parse_variations",
    "whatif",
]

KINDS = ("policy", "adl", "mark", "band", "fund")


class WhatIfError(ValueError):
    """Bad input to the what-if fork: an unknown variation, no cascade to fork, ..."""


@dataclass(frozen=True)
class Variation:
    """One branch's changes to the fork (None: as the baseline). `band` is a rate in
    1/RATE_ONE, `fund` money quanta of the cascade's quote asset."""

    policy: str | None = None
    adl: bool | None = None
    mark: str | None = None
    band: int | None = None
    fund: int | None = None

    @property
    def label(self) -> str:
        parts = []
        if self.policy is not None:
            parts.append(f"policy={self.policy}")
        if self.adl is not None:
            parts.append(f"adl={'on' if self.adl else 'off'}")
        if self.mark is not None:
            parts.append(f"mark={self.mark}")
        if self.band is not None:
            parts.append(f"band={(Decimal(self.band) / RATE_ONE).normalize():f}")
        if self.fund is not None:
            parts.append(f"fund={Decimal(self.fund).scaleb(-MONEY_DECIMALS).normalize():f}")
        return " ".join(parts) or "baseline"


def _value(kind: str, text: str) -> Any:
    t = text.strip()
    if kind == "policy":
        if t not in POLICIES:
            raise WhatIfError(f"policy: unknown {t!r} (known: {', '.join(sorted(POLICIES))})")
        return t
    if kind == "adl":
        if t.lower() not in ("on", "off", "true", "false"):
            raise WhatIfError(f"adl: on or off, not {t!r}")
        return t.lower() in ("on", "true")
    if kind == "mark":
        if t not in MARK_METHODS:
            raise WhatIfError(f"mark: one of {', '.join(MARK_METHODS)}, not {t!r}")
        return t
    try:
        d = Decimal(t)
    except InvalidOperation:
        raise WhatIfError(f"{kind}: a decimal number, not {t!r}") from None
    if kind == "band":
        r = d * RATE_ONE
        if r != r.to_integral_value() or not 0 < r < RATE_ONE:
            raise WhatIfError(f"band: a rate between 0 and 1 (e.g. 0.01), not {t!r}")
        return int(r)
    q = d.scaleb(MONEY_DECIMALS)
    if not d.is_finite() or q != q.to_integral_value() or q < 0 or q > 10**30:
        raise WhatIfError(f"fund: a non-negative amount with at most 8 decimals, not {t!r}")
    return int(q)


def parse_variations(items: Iterable[str], *, grid: bool = False) -> list[Variation]:
    """`["policy=binance,bitmex", "fund=0,1e6"]` → one branch per value (each differing
    from the baseline in that one thing), or with `grid` one per combination (the first
    kind varying slowest). Raises `WhatIfError` on bad input."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, vals = item.partition("=")
        key = key.strip()
        values = [v for v in vals.split(",") if v.strip()]
        if not sep or not values:
            raise WhatIfError(f"a variation is kind=v1,v2,..., not {item!r}")
        if key not in KINDS:
            raise WhatIfError(f"unknown variation {key!r} (known: {', '.join(KINDS)})")
        if key in axes:
            raise WhatIfError(f"variation {key!r} given twice")
        axes[key] = [_value(key, v) for v in values]
    if grid:
        keys = list(axes)
        return [
            Variation(**dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(axes[k] for k in keys))
        ]
    return [Variation(**{k: v}) for k, vs in axes.items() for v in vs]


@dataclass
class Session:
    """A genesis and the command stream that drove it. `exchange_kwargs` (e.g. a policy)
    shape the genesis exchange."""

    instruments: list[Instrument]
    commands: list[C.Command]
    exchange_kwargs: dict[str, Any] = field(default_factory=dict)

    def genesis(self) -> Exchange:
        return Exchange(self.instruments, **self.exchange_kwargs)

    @classmethod
    def from_commands(
        cls, instruments: Iterable[Instrument], commands: Iterable[C.Command], **kw: Any
    ) -> Session:
        return cls(list(instruments), list(commands), kw)

    @classmethod
    def from_store(cls, db_url: str) -> Session:
        """The store's whole journal (every accepted command) from its genesis instruments.
        Read-only; a damaged journal tail ends the stream (as recovery does)."""
        import json

        from sqlalchemy import select

        from exchange.store import journal as J
        from exchange.store.codec import from_jsonable
        from exchange.store.db import Database, normalize_url
        from exchange.store.tables import StoreMeta

        db = Database(normalize_url(db_url), immediate=False)
        try:
            t = StoreMeta.__table__  # type: ignore[attr-defined]
            try:
                with db.connect() as conn:
                    row = conn.execute(
                        select(t.c.value).where(t.c.key == "genesis_instruments")
                    ).first()
            except Exception as e:  # not a store database at all
                raise WhatIfError(
                    f"{db_url}: not a margincall store ({type(e).__name__})"
                ) from None
            if row is None:
                raise WhatIfError(f"{db_url}: the store has no journal")
            insts: list[Instrument] = from_jsonable(list[Instrument], json.loads(row[0]))
            cmds = []
            for item in J.read_commands(db, 0):
                if isinstance(item, J.Damage):
                    break
                cmds.append(item[1])
        finally:
            db.dispose()
        return cls(insts, cmds)

    @classmethod
    def from_replay(cls, opts: Any) -> Session:
        """A replay (`replay.backtest.SessionOptions`: files, mark method, population, step)
        played on a baseline exchange by `replay.player.play`; the session is the commands
        as the player translated them there. A branch replays exactly those (the journal's
        view: what the market sent), not a fresh translation against its own book."""
        from replay.backtest import build_instruments, session_player_config
        from replay.formats import read_merged
        from replay.player import play
        from replay.population import Population

        insts = build_instruments(
            opts.instruments,
            mark_method=opts.mark_method,
            max_open_orders=opts.max_open_orders,
            funding=opts.funding,
            symbols=opts.only_symbols,
        )
        ex = Exchange(insts)
        cmds: list[C.Command] = []
        handle = ex.handle

        def recording(cmd: C.Command) -> list[E.Event]:
            cmds.append(cmd)
            return handle(cmd)

        ex.handle = recording  # type: ignore[method-assign]
        pop = Population(opts.population) if opts.population is not None else None
        events = read_merged(opts.data, by=opts.by, symbol=opts.symbol)
        play(ex, events, session_player_config(opts), population=pop, step_ns=opts.step_ns,
             sink=lambda evs: None)  # fmt: skip
        return cls(insts, cmds)


@dataclass
class Branch:
    """One branch from the fork to the end of the stream: its events and final exchange."""

    variation: Variation
    exchange: Exchange
    events: list[E.Event]
    symbol: str
    fork_mark: int
    fork_ts: int
    fund_at_fork: int

    def liquidations(self) -> list[E.PositionLiquidated]:
        return [e for e in self.events if type(e) is E.PositionLiquidated]

    def mark_path(self) -> list[tuple[int, int]]:
        """(engine time, mark) from the fork on, the mark at the fork first."""
        path = [(self.fork_ts, self.fork_mark)]
        path += [
            (e.ts, e.mark)
            for e in self.events
            if type(e) is E.MarkPriceChanged and e.symbol == self.symbol
        ]
        return path

    def row(self) -> dict[str, Any]:
        inst = self.exchange.instruments[self.symbol]
        liqs = self.liquidations()
        ends = [e for e in self.events if type(e) is E.CascadeEnded]
        marks = [m for _, m in self.mark_path()]
        tick = Decimal(inst.tick_size)
        step = Decimal(inst.step_size)
        q = Decimal(10) ** -MONEY_DECIMALS
        fund_end = self.exchange.insurance_fund(inst.quote_asset)
        return {
            "branch": self.variation.label,
            "liquidations": len(liqs),
            "volume": float(sum(e.qty for e in liqs) * step),
            "cascades": len(ends),
            "generations": max((e.generations for e in ends), default=0),
            "adl_hits": sum(1 for e in self.events if type(e) is E.PositionAutoDeleveraged),
            "fund_takeover": float(sum(e.fund_takeover_qty for e in liqs) * step),
            "mark_low": float(min(marks) * tick),
            "mark_end": float(marks[-1] * tick),
            "fund_at_fork": float(self.fund_at_fork * q),
            "fund_end": float(fund_end * q),
            "state_hash": self.exchange.state_hash(),
        }


@dataclass
class WhatIf:
    """The baseline's cascade, where it was forked, and every branch (the first is the
    baseline's own continuation)."""

    cascade_id: int
    fork_index: int  # index in the session's commands of the command that started it
    symbol: str
    baseline_events: list[E.Event]  # the baseline's events from the fork on
    branches: list[Branch]

    def table(self) -> Any:
        """One row per branch (pandas DataFrame, the `[analysis]` extra)."""
        import pandas as pd

        return pd.DataFrame([b.row() for b in self.branches])

    def write_report(self, folder: str | Path) -> Path:
        """Write `whatif.csv` and `report.html` (the table and the mark paths overlaid,
        plotly, opens offline) into `folder`; returns the page's path."""
        from replay.whatif_report import write_report

        return write_report(self, Path(folder))


def _cascades(session: Session) -> tuple[list[E.Event], dict[int, tuple[int, int, str]]]:
    """Run the baseline: its events and, per cascade id, (first command index, its
    liquidations, symbol)."""
    ex = session.genesis()
    events: list[E.Event] = []
    found: dict[int, list[Any]] = {}
    for i, cmd in enumerate(session.commands):
        out = ex.handle(cmd)
        for e in out:
            if type(e) is E.PositionLiquidated:
                c = found.setdefault(e.cascade_id, [i, 0, e.symbol])
                c[1] += 1
        events.extend(out)
    return events, {k: (v[0], v[1], v[2]) for k, v in found.items()}


def _fork_at(session: Session, index: int) -> Exchange:
    ex = session.genesis()
    for cmd in itertools.islice(session.commands, index):
        ex.handle(cmd)
    return ex


def _policy_name(ex: Exchange, symbol: str) -> str:
    own = getattr(ex, "policy", None)
    if own is not None:
        for name, factory in POLICIES.items():
            if type(factory()) is type(own):
                return name
    return getattr(ex.instruments[symbol], "liquidation_policy", None) or "binance"


def apply_variation(ex: Exchange, symbol: str, v: Variation) -> None:
    """Change the forked exchange `ex` as `v` says (see the module docstring)."""
    if v.policy is not None or v.adl is not None:
        name = v.policy if v.policy is not None else _policy_name(ex, symbol)
        ex.policy = make_policy(name, adl=True if v.adl is None else v.adl)
    m = ex.markets[symbol]
    changes: dict[str, Any] = {}
    if v.mark is not None:
        changes["mark_method"] = v.mark
    if v.band is not None:
        changes["mark_band"] = v.band
    if changes:
        inst = dataclasses.replace(m.inst, **changes)
        problems = inst.check()
        if problems:
            raise WhatIfError(problems[0])
        if inst.mark_method == "median" and m.inst.mark_method != "median":
            m.basis = MarkBasis(inst.basis_window, ex.now)
        m.inst = ex.instruments[symbol] = inst
        m.mark_key = ()
        m.quiet = (-1, 0)
        ex._observe_basis(m)
    if v.fund is not None:
        asset = m.inst.quote_asset
        have = ex.insurance_fund(asset)
        if v.fund > have:
            out = ex.handle(C.FundInsurance(ts=ex.now, asset=asset, amount=v.fund - have))
            if type(out[-1]) is E.CommandRejected:
                raise WhatIfError(f"fund: {out[-1].msg}")  # type: ignore[attr-defined]
        elif v.fund < have:
            ex.accounts[FUND].available[asset] = v.fund
            ex.withdrawn[asset] = ex.withdrawn.get(asset, 0) + have - v.fund


def _pick(found: dict[int, tuple[int, int, str]], cascade: int | str) -> int:
    if not found:
        raise WhatIfError("the session has no liquidation: there is no cascade to fork")
    if cascade == "first":
        return min(found)
    if cascade == "largest":
        return min(found, key=lambda k: (-found[k][1], k))
    if isinstance(cascade, int) and cascade in found:
        return cascade
    raise WhatIfError(
        f"no cascade {cascade!r} with liquidations (cascade ids: "
        f"{', '.join(str(k) for k in sorted(found)[:20])}{' ...' if len(found) > 20 else ''})"
    )


def whatif(
    session: Session, variations: Sequence[Variation], *, cascade: int | str = "largest"
) -> WhatIf:
    """Fork the session at the start of `cascade` ("largest", "first" or an id) and run
    the baseline continuation plus one branch per variation. Cost: the stream twice up to
    the fork, then once per branch from it."""
    events, found = _cascades(session)
    cid = _pick(found, cascade)
    index, _, symbol = found[cid]
    fork = _fork_at(session, index)
    seq = fork.seq
    baseline_events = [e for e in events if e.seq > seq]
    rest = session.commands[index:]
    # pickled once, unpickled per branch: an exact copy (the store's snapshots are the
    # same pickles) and about 9x cheaper per branch than copy.deepcopy (docs/whatif.md)
    frozen = pickle.dumps(fork, protocol=pickle.HIGHEST_PROTOCOL)
    branches = []
    for v in [Variation(), *variations]:
        ex = pickle.loads(frozen)
        apply_variation(ex, symbol, v)
        m = ex.markets[symbol]
        fund = ex.insurance_fund(m.inst.quote_asset)
        start = (ex.now, m.mark)
        out: list[E.Event] = []
        for cmd in rest:
            out.extend(ex.handle(cmd))
        branches.append(Branch(v, ex, out, symbol, start[1], start[0], fund))
    return WhatIf(cid, index, symbol, baseline_events, branches)
