"""The game file: a small TOML document describing a classroom game (docs/classroom.md).

`load_game(path)` / `parse_game(text)` validate the whole document and return a frozen
`Game`, or raise `GameFileError` whose `problems` each name the field by its path in
the document, e.g. ``rounds[1].scenario.shocks[0].size: must be a percentage between
-90 and 90``. Unknown fields are refused too (a typo must not silently do nothing).
Decimals are read exactly (TOML floats as `Decimal`); durations are seconds or text
such as ``"90s"``, ``"5m"``, ``"1m30s"``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from exchange.config import (
    InstrumentFileError,
    default_instruments_path,
    instrument_from_dict,
)
from exchange.core.instruments import LIQUIDATION_POLICIES, Instrument

RANK_METRICS = ("return", "equity", "return_over_drawdown")
BOT_KINDS = ("market_maker", "noise")
MARK_METHODS = ("index", "last", "mid", "median")
INSTRUMENT_OVERRIDES = {
    "max_leverage", "brackets", "mark_method", "default_leverage", "maker_fee", "taker_fee",
    "band_up", "band_down", "max_open_orders", "funding_interval_hours", "min_notional",
    "liquidation_policy",
}  # fmt: skip
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?\Z")


class GameFileError(ValueError):
    """A game file that cannot be played; `problems` lists ``path: message`` texts."""

    def __init__(self, problems: list[str], source: str = "<game>") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Shock:
    at: float  # seconds into the round (wall time)
    size: Decimal  # percent, e.g. -30
    over: float  # seconds the move takes (0: one jump)


@dataclass(frozen=True, slots=True)
class Headline:
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Halt:
    at: float
    symbol: str
    duration: float  # seconds; 0 = until the instructor resumes it


@dataclass(frozen=True, slots=True)
class Scenario:
    """How one round's index moves: `source` "generated" (seeded random walk with drift
    and volatility) or "file" (a recorded file the replay readers read)."""

    symbol: str
    source: str
    start_price: Decimal | None  # generated: the first index; file: rescale the file to it
    drift: Decimal  # percent per simulated hour
    volatility: Decimal  # percent per sqrt(simulated hour)
    seed: int
    step: float  # seconds (wall) between index updates
    file: Path | None
    file_format: str | None
    file_offset: float  # seconds of recorded time skipped at the start
    shocks: tuple[Shock, ...]
    headlines: tuple[Headline, ...]
    halts: tuple[Halt, ...]


@dataclass(frozen=True, slots=True)
class Round:
    name: str
    duration: float  # seconds of wall time
    clock_speed: int  # engine seconds per wall second
    reset_positions: bool
    scenario: Scenario


@dataclass(frozen=True, slots=True)
class Limits:
    max_position_notional: Decimal | None
    max_open_orders: int | None
    max_leverage: int | None


@dataclass(frozen=True, slots=True)
class Bot:
    kind: str
    symbol: str
    count: int
    size: Decimal
    seed: int


@dataclass(frozen=True, slots=True)
class Game:
    name: str
    instruments: tuple[Instrument, ...]
    initial_index: dict[str, Decimal]
    starting_balance: Decimal
    limits: Limits
    rounds: tuple[Round, ...]
    insurance_fund: Decimal
    adl: bool
    bots: tuple[Bot, ...]
    rank_by: str
    show_leaderboard: bool
    teams: bool
    max_students: int
    source: str = "<game>"
    base_dir: Path = field(default=Path("."))

    def symbols(self) -> list[str]:
        return [i.symbol for i in self.instruments]


def load_game(path: str | Path) -> Game:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise GameFileError([f"cannot read: {e.strerror}"], str(p)) from e
    return parse_game(text, source=str(p), base_dir=p.parent)


def parse_game(text: str, *, source: str = "<game>", base_dir: Path | None = None) -> Game:
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        raise GameFileError([f"not valid TOML: {e}"], source) from e
    v = _Validator(base_dir or Path("."))
    game = v.game(doc, source)
    if v.problems:
        raise GameFileError(v.problems, source)
    assert game is not None
    return game


class _Bad(Exception):
    pass


class _Validator:
    """Collects every problem (not just the first), each with its field path."""

    def __init__(self, base_dir: Path) -> None:
        self.problems: list[str] = []
        self.base_dir = base_dir

    def fail(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}")
        raise _Bad

    def table(self, raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(path, "must be a table")
        for k in sorted(raw):
            if k not in allowed:
                self.problems.append(
                    f"{path}.{k}: unknown field" if path else f"{k}: unknown field"
                )
        return raw

    def soft(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _Bad:
            return None

    def text(self, raw: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        v = raw.get(key, default)
        if not isinstance(v, str) or not v.strip():
            self.fail(f"{path}{key}", "must be a non-empty string")
        if len(v) > 200:
            self.fail(f"{path}{key}", "must be at most 200 characters")
        return v.strip()

    def boolean(self, raw: dict[str, Any], key: str, path: str, default: bool) -> bool:
        v = raw.get(key, default)
        if not isinstance(v, bool):
            self.fail(f"{path}{key}", "must be true or false")
        return v

    def dec(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        default: Any = None,
        lo: Decimal | None = None,
        hi: Decimal | None = None,
        what: str = "a number",
    ) -> Decimal:
        v = raw.get(key, default)
        where = f"{path}{key}"
        if v is None:
            self.fail(where, "missing")
        if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
            self.fail(where, f"must be {what}")
        try:
            d = Decimal(v)
        except InvalidOperation:
            self.fail(where, f"must be {what}")
        if not d.is_finite() or (lo is not None and d < lo) or (hi is not None and d > hi):
            self.fail(where, f"must be {what}")
        return d

    def integer(
        self, raw: dict[str, Any], key: str, path: str, default: Any, lo: int, hi: int
    ) -> int:
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(f"{path}{key}", f"must be a whole number between {lo} and {hi}")
        return v

    def duration(
        self, raw: dict[str, Any], key: str, path: str, default: Any, lo: float, hi: float
    ) -> float:
        v = raw.get(key, default)
        where = f"{path}{key}"
        secs: float | None = None
        if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
            secs = float(v)
        elif isinstance(v, str):
            m = _DURATION.match(v.strip())
            if m and any(m.groups()):
                h, mi, s = m.groups()
                secs = int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
        if secs is None:
            self.fail(where, 'must be a duration: seconds, or text like "90s", "5m", "1m30s"')
        if not lo <= secs <= hi:
            self.fail(where, f"must be between {lo:g} and {hi:g} seconds")
        return secs

    # ------------------------------------------------------------------ sections

    def game(self, doc: dict[str, Any], source: str) -> Game | None:
        top = {
            "name", "starting_balance", "rank_by", "show_leaderboard", "instruments_file",
            "instruments", "limits", "rounds", "liquidation", "bots", "join",
        }  # fmt: skip
        try:
            self.table(doc, "", top)
        except _Bad:
            return None
        name = self.soft(self.text, doc, "name", "")
        balance = self.soft(
            self.dec, doc, "starting_balance", "", None, Decimal("1"), Decimal("1e12"),
            "an amount of USDT between 1 and 1e12",
        )  # fmt: skip
        rank_by = doc.get("rank_by", "return")
        if rank_by not in RANK_METRICS:
            self.problems.append(f"rank_by: must be one of {', '.join(RANK_METRICS)}")
        show = self.soft(self.boolean, doc, "show_leaderboard", "", True)
        instruments, initial = self.instruments(doc)
        symbols = [i.symbol for i in instruments]
        limits = self.soft(self.limits, doc.get("limits", {}))
        rounds_raw = doc.get("rounds")
        rounds: list[Round] = []
        if not isinstance(rounds_raw, list) or not rounds_raw:
            self.problems.append("rounds: at least one [[rounds]] table")
        else:
            if len(rounds_raw) > 50:
                self.problems.append("rounds: at most 50 rounds")
            for i, r in enumerate(rounds_raw[:50]):
                rd = self.soft(self.round, r, f"rounds[{i}]", symbols)
                if rd is not None:
                    rounds.append(rd)
        liq = doc.get("liquidation", {})
        fund, adl = Decimal(0), True
        try:
            self.table(liq, "liquidation", {"insurance_fund", "adl"})
            fund = self.soft(
                self.dec, liq, "insurance_fund", "liquidation.", 0, Decimal(0), Decimal("1e12"),
                "an amount of USDT between 0 and 1e12",
            ) or Decimal(0)  # fmt: skip
            adl = self.soft(self.boolean, liq, "adl", "liquidation.", True)
        except _Bad:
            pass
        bots: list[Bot] = []
        braw = doc.get("bots", [])
        if not isinstance(braw, list):
            self.problems.append("bots: must be a list of [[bots]] tables")
        else:
            for i, b in enumerate(braw):
                bot = self.soft(self.bot, b, f"bots[{i}]", symbols)
                if bot is not None:
                    bots.append(bot)
        join = doc.get("join", {})
        teams, max_students = False, 500
        try:
            self.table(join, "join", {"teams", "max_students"})
            teams = bool(self.soft(self.boolean, join, "teams", "join.", False))
            max_students = self.soft(self.integer, join, "max_students", "join.", 500, 1, 5000)
        except _Bad:
            pass
        if self.problems:
            return None
        return Game(
            name=name,
            instruments=tuple(instruments),
            initial_index=initial,
            starting_balance=balance,
            limits=limits,
            rounds=tuple(rounds),
            insurance_fund=fund,
            adl=adl,
            bots=tuple(bots),
            rank_by=rank_by,
            show_leaderboard=show,
            teams=teams,
            max_students=max_students,
            source=source,
            base_dir=self.base_dir,
        )

    def instruments(self, doc: dict[str, Any]) -> tuple[list[Instrument], dict[str, Decimal]]:
        file_ = doc.get("instruments_file")
        path = default_instruments_path()
        if file_ is not None:
            if not isinstance(file_, str) or not file_:
                self.problems.append("instruments_file: must be a path")
                return [], {}
            path = self.base_dir / file_
        try:
            base = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        except (OSError, tomllib.TOMLDecodeError) as e:
            self.problems.append(f"instruments_file: cannot read {path}: {e}")
            return [], {}
        by_symbol = {t.get("symbol"): t for t in base.get("instrument", []) if isinstance(t, dict)}
        raw = doc.get("instruments")
        if not isinstance(raw, list) or not raw:
            self.problems.append("instruments: at least one [[instruments]] table with a symbol")
            return [], {}
        out: list[Instrument] = []
        initial: dict[str, Decimal] = {}
        for i, t in enumerate(raw):
            where = f"instruments[{i}]"
            try:
                self.table(t, where, INSTRUMENT_OVERRIDES | {"symbol", "initial_index"})
                sym = self.text(t, "symbol", f"{where}.")
                if sym not in by_symbol:
                    known = ", ".join(s for s in by_symbol if isinstance(s, str))
                    self.fail(f"{where}.symbol", f"{sym!r} is not in {path.name} ({known})")
                if sym in initial:
                    self.fail(f"{where}.symbol", "listed twice")
                mm = t.get("mark_method")
                if mm is not None and mm not in MARK_METHODS:
                    self.fail(f"{where}.mark_method", f"must be one of {', '.join(MARK_METHODS)}")
                lp = t.get("liquidation_policy")
                if lp is not None and lp not in LIQUIDATION_POLICIES:
                    self.fail(
                        f"{where}.liquidation_policy",
                        f"must be one of {', '.join(LIQUIDATION_POLICIES)}",
                    )
                initial[sym] = self.dec(
                    t, "initial_index", f"{where}.", "50000", Decimal(0), None,
                    "a positive price",
                )  # fmt: skip
                if initial[sym] <= 0:
                    self.fail(f"{where}.initial_index", "must be a positive price")
                merged = {**by_symbol[sym], **{k: v for k, v in t.items() if k != "initial_index"}}
                if "max_leverage" in t and "brackets" not in t:
                    # a lower cap applies to every bracket of the instruments file
                    cap = t["max_leverage"]
                    merged["brackets"] = [
                        {**b, "max_leverage": min(Decimal(b["max_leverage"]), Decimal(cap))}
                        if isinstance(b, dict) and isinstance(cap, int)
                        else b
                        for b in merged.get("brackets", [])
                    ]
                    if "default_leverage" not in t and isinstance(cap, int):
                        merged["default_leverage"] = min(
                            int(merged.get("default_leverage", cap)), cap
                        )
                try:
                    inst = instrument_from_dict(merged, where=where)
                except InstrumentFileError as e:
                    self.problems.append(str(e).replace(": ", ".", 1))
                    raise _Bad from None
                out.append(inst)
            except _Bad:
                continue
        return out, initial

    def limits(self, raw: Any) -> Limits:
        t = self.table(raw, "limits", {"max_position_notional", "max_open_orders", "max_leverage"})
        notional = None
        if "max_position_notional" in t:
            notional = self.dec(
                t, "max_position_notional", "limits.", None, Decimal(1), Decimal("1e12"),
                "an amount of USDT between 1 and 1e12",
            )  # fmt: skip
        orders = self.integer(t, "max_open_orders", "limits.", 0, 0, 1000) or None
        lev = self.integer(t, "max_leverage", "limits.", 0, 0, 125) or None
        return Limits(notional, orders, lev)

    def round(self, raw: Any, path: str, symbols: list[str]) -> Round:
        t = self.table(
            raw, path, {"name", "duration", "clock_speed", "reset_positions", "scenario"}
        )
        p = path + "."
        name = self.soft(self.text, t, "name", p, path.replace("rounds", "Round "))
        duration = self.soft(self.duration, t, "duration", p, None, 10, 4 * 3600)
        speed = self.soft(self.integer, t, "clock_speed", p, 1, 1, 3600)
        reset = self.soft(self.boolean, t, "reset_positions", p, True)
        scenario = self.soft(self.scenario, t.get("scenario", {}), f"{p}scenario", symbols)
        if None in (name, duration, speed, reset, scenario):
            raise _Bad
        for what, items in (("shocks", scenario.shocks), ("headlines", scenario.headlines)):
            for j, s in enumerate(items):
                if s.at >= duration:
                    self.problems.append(
                        f"{p}scenario.{what}[{j}].at: must be before the round ends ({duration:g} s)"
                    )
        return Round(name, duration, speed, reset, scenario)

    def scenario(self, raw: Any, path: str, symbols: list[str]) -> Scenario:
        allowed = {
            "symbol", "source", "start_price", "drift", "volatility", "seed", "step", "file",
            "format", "file_offset", "shocks", "headlines", "halts",
        }  # fmt: skip
        t = self.table(raw, path, allowed)
        p = path + "."
        sym = t.get("symbol", symbols[0] if symbols else None)
        if symbols and sym not in symbols:
            self.problems.append(f"{p}symbol: must be one of the game's instruments")
        source = t.get("source", "generated")
        if source not in ("generated", "file"):
            self.problems.append(f'{p}source: must be "generated" or "file"')
        start = None
        if "start_price" in t:
            start = self.soft(
                self.dec, t, "start_price", p, None, Decimal("0.00000001"), None, "a positive price"
            )
        drift = self.soft(
            self.dec, t, "drift", p, 0, Decimal(-50), Decimal(50),
            "a percentage per hour between -50 and 50",
        )  # fmt: skip
        vol = self.soft(
            self.dec, t, "volatility", p, 0, Decimal(0), Decimal(100),
            "a percentage between 0 and 100",
        )  # fmt: skip
        seed = self.soft(self.integer, t, "seed", p, 1, 0, 2**63 - 1)
        step = self.soft(self.duration, t, "step", p, 1, 0.05, 60)
        fpath: Path | None = None
        fmt = t.get("format")
        if fmt is not None and not isinstance(fmt, str):
            self.problems.append(f"{p}format: must be a replay format name")
        offset = self.soft(self.duration, t, "file_offset", p, 0, 0, 10**9)
        if source == "file":
            f = t.get("file")
            if not isinstance(f, str) or not f:
                self.problems.append(f"{p}file: a recorded file is needed when source is file")
            else:
                fpath = Path(f) if Path(f).is_absolute() else self.base_dir / f
                if not fpath.is_file():
                    self.problems.append(f"{p}file: {fpath} does not exist")
        elif "file" in t:
            self.problems.append(f'{p}file: only with source = "file"')
        shocks = self.items(t, "shocks", p, self.shock)
        headlines = self.items(t, "headlines", p, self.headline)
        halts = self.items(t, "halts", p, lambda r, w: self.halt(r, w, symbols))
        if any(x is None for x in (drift, vol, seed, step, offset)):
            raise _Bad
        return Scenario(
            sym, source, start, drift, vol, seed, step, fpath, fmt, offset,
            tuple(shocks), tuple(headlines), tuple(halts),
        )  # fmt: skip

    def items(self, t: dict[str, Any], key: str, p: str, fn: Any) -> list[Any]:
        raw = t.get(key, [])
        if not isinstance(raw, list):
            self.problems.append(f"{p}{key}: must be a list of tables")
            return []
        out = []
        for j, r in enumerate(raw):
            x = self.soft(fn, r, f"{p}{key}[{j}]")
            if x is not None:
                out.append(x)
        return sorted(out, key=lambda x: x.at)

    def shock(self, raw: Any, path: str) -> Shock:
        t = self.table(raw, path, {"at", "size", "over"})
        p = path + "."
        at = self.duration(t, "at", p, None, 0, 4 * 3600)
        size = self.dec(
            t, "size", p, None, Decimal(-90), Decimal(90), "a percentage between -90 and 90"
        )
        if size == 0:
            self.fail(f"{p}size", "must be a percentage between -90 and 90, not 0")
        over = self.duration(t, "over", p, 0, 0, 3600)
        return Shock(at, size, over)

    def headline(self, raw: Any, path: str) -> Headline:
        t = self.table(raw, path, {"at", "text"})
        return Headline(
            self.duration(t, "at", path + ".", None, 0, 4 * 3600), self.text(t, "text", path + ".")
        )

    def halt(self, raw: Any, path: str, symbols: list[str]) -> Halt:
        t = self.table(raw, path, {"at", "symbol", "for"})
        p = path + "."
        sym = t.get("symbol", symbols[0] if symbols else None)
        if symbols and sym not in symbols:
            self.fail(f"{p}symbol", "must be one of the game's instruments")
        return Halt(
            self.duration(t, "at", p, None, 0, 4 * 3600),
            sym,
            self.duration(t, "for", p, 0, 0, 3600),
        )

    def bot(self, raw: Any, path: str, symbols: list[str]) -> Bot:
        t = self.table(raw, path, {"kind", "symbol", "count", "size", "seed"})
        p = path + "."
        kind = t.get("kind")
        if kind not in BOT_KINDS:
            self.fail(f"{p}kind", f"must be one of {', '.join(BOT_KINDS)}")
        sym = t.get("symbol", symbols[0] if symbols else None)
        if symbols and sym not in symbols:
            self.fail(f"{p}symbol", "must be one of the game's instruments")
        count = self.integer(t, "count", p, 1, 1, 50)
        size = self.dec(
            t, "size", p, "0.05", Decimal("0.000001"), Decimal(1000), "a positive quantity"
        )
        seed = self.integer(t, "seed", p, 7, 0, 2**63 - 1)
        return Bot(kind, sym, count, size, seed)
