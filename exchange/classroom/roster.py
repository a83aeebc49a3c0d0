"""The roster: who plays, under which nickname, on which account.

A student joins with the game's join code and a nickname (`join`), or is listed in a
CSV roster beforehand (`import_csv`, one printable join slip each). Either way they
get a *rejoin secret*: 16 random bytes, shown once, kept by the browser tab in
sessionStorage (or printed on the slip); the roster stores only its SHA-256. A reload,
a lost network or a server restart brings the student back into the same account with
it (`rejoin`). Teams: students giving the same team code share one account.

Nicknames are sanitized (`sanitize_nickname`): Unicode NFKC, control and format
characters dropped, whitespace collapsed, at most 24 characters, made unique by a
" #2" suffix; the pages still render them with textContent only.

The roster is state the game journal rebuilds (`apply`): every change is a record
(`joined`, `kicked`, `frozen`) appended before it takes effect.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

MAX_NICK = 24
FIRST_ACCOUNT = 1001
_SPACES = re.compile(r"\s+")
_TEAM = re.compile(r"[A-Za-z0-9-]{1,16}\Z")


class RosterError(ValueError):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def sanitize_nickname(raw: Any) -> str:
    """A displayable nickname, or `RosterError` when nothing printable is left."""
    if not isinstance(raw, str):
        raise RosterError("bad_nickname", "The nickname must be text.")
    text = unicodedata.normalize("NFKC", raw[:200])
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] not in ("C", "Z")
    )
    text = _SPACES.sub(" ", text).strip()[:MAX_NICK].strip()
    if not any(ch.isalnum() for ch in text):
        raise RosterError("bad_nickname", "The nickname needs at least one letter or digit.")
    return text


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class Student:
    id: int
    nickname: str
    account: int
    team: str | None
    secret_hash: str
    kicked: bool = False
    frozen: bool = False
    listed: bool = False  # from a CSV roster (has a join slip)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "nickname": self.nickname, "team": self.team}


@dataclass
class Roster:
    max_students: int = 500
    teams_allowed: bool = False
    students: dict[int, Student] = field(default_factory=dict)
    by_secret: dict[str, int] = field(default_factory=dict)
    team_accounts: dict[str, int] = field(default_factory=dict)
    next_account: int = FIRST_ACCOUNT

    # ------------------------------------------------------------ planning changes

    def plan_join(self, nickname: Any, team: Any = None) -> tuple[dict[str, Any], str]:
        """Validate a join and return (the `joined` record, the secret to hand out);
        nothing changes until `apply(record)`."""
        nick = self.unique(sanitize_nickname(nickname))
        if len(self.students) >= self.max_students:
            raise RosterError("full", "The game is full.")
        team_code: str | None = None
        if team not in (None, ""):
            if not self.teams_allowed:
                raise RosterError("no_teams", "This game is played alone, not in teams.")
            if not isinstance(team, str) or not _TEAM.match(team.strip()):
                raise RosterError("bad_team", "A team code is 1-16 letters, digits or dashes.")
            team_code = team.strip().upper()
        account = self.team_accounts.get(team_code) if team_code else None
        new_account = account is None
        if account is None:
            account = self.next_account
        secret = new_secret()
        record = {
            "kind": "joined",
            "student": max(self.students, default=0) + 1,
            "nickname": nick,
            "account": account,
            "new_account": new_account,
            "team": team_code,
            "secret_hash": secret_hash(secret),
            "listed": False,
        }
        return record, secret

    def unique(self, nick: str) -> str:
        taken = {s.nickname.casefold() for s in self.students.values()}
        if nick.casefold() not in taken:
            return nick
        n = 2
        while f"{nick[: MAX_NICK - 4]} #{n}".casefold() in taken:
            n += 1
        return f"{nick[: MAX_NICK - 4]} #{n}"

    def plan_csv(self, text: str) -> tuple[list[tuple[dict[str, Any], str]], list[Student]]:
        """Join records for a CSV roster (columns `nickname` and optionally `team`; a
        file without that header is read as one nickname per line), and the students
        skipped because they already have a join slip.

        A line whose nickname (sanitized, case-insensitive) is that of a student who
        already has a slip makes no new account: importing the same roster twice
        creates each student once. Lines repeated within one file are different
        students, as before ("Ada", "Ada #2"); a student who joined with the code
        has no slip, so a roster line of that nickname still makes one ("Ada #2")."""
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            raise RosterError("empty", "The roster is empty.")
        header = [c.strip().lower() for c in rows[0]]
        if "nickname" in header:
            ni, ti = header.index("nickname"), header.index("team") if "team" in header else None
            rows = rows[1:]
        else:
            ni, ti = 0, None
        planned: list[tuple[dict[str, Any], str]] = []
        slipped = {s.nickname.casefold(): s for s in self.students.values() if s.listed}
        already: dict[int, Student] = {}
        shadow = Roster(self.max_students, self.teams_allowed, dict(self.students))
        shadow.by_secret, shadow.team_accounts = dict(self.by_secret), dict(self.team_accounts)
        shadow.next_account = self.next_account
        for i, row in enumerate(rows, start=2 if ti is not None or "nickname" in header else 1):
            if not row or not "".join(row).strip():
                continue
            try:
                raw = row[ni] if ni < len(row) else ""
                had = slipped.get(sanitize_nickname(raw).casefold())
                if had is not None:
                    already[had.id] = had
                    continue
                team = row[ti] if ti is not None and ti < len(row) else None
                rec, secret = shadow.plan_join(raw, team)
            except RosterError as e:
                raise RosterError(e.code, f"line {i}: {e.msg}") from None
            rec["listed"] = True
            shadow.apply(rec)
            planned.append((rec, secret))
        return planned, list(already.values())

    # ------------------------------------------------------------ applying records

    def apply(self, rec: dict[str, Any]) -> None:
        kind = rec["kind"]
        if kind == "joined":
            s = Student(
                rec["student"],
                rec["nickname"],
                rec["account"],
                rec["team"],
                rec["secret_hash"],
                listed=rec.get("listed", False),
            )
            self.students[s.id] = s
            self.by_secret[s.secret_hash] = s.id
            if s.team:
                self.team_accounts.setdefault(s.team, s.account)
            self.next_account = max(self.next_account, s.account + 1)
        elif kind == "kicked":
            self.students[rec["student"]].kicked = rec.get("kicked", True)
        elif kind == "frozen":
            self.students[rec["student"]].frozen = rec["frozen"]

    # ------------------------------------------------------------ reading

    def rejoin(self, secret: Any) -> Student:
        if not isinstance(secret, str) or not 8 <= len(secret) <= 64:
            raise RosterError("bad_secret", "Unknown rejoin code.")
        sid = self.by_secret.get(secret_hash(secret))
        if sid is None:
            raise RosterError("bad_secret", "Unknown rejoin code.")
        s = self.students[sid]
        if s.kicked:
            raise RosterError("kicked", "You were removed from this game by the instructor.")
        return s

    def accounts(self) -> dict[int, list[Student]]:
        """Each playing account with its students (a team shares one)."""
        out: dict[int, list[Student]] = {}
        for s in self.students.values():
            out.setdefault(s.account, []).append(s)
        return out

    def labels(self) -> dict[int, str]:
        """`label` of every account with a student, in one pass (O(students))."""
        out: dict[int, str] = {}
        for s in self.students.values():
            if s.account not in out:
                out[s.account] = f"Team {s.team}" if s.team else s.nickname
        return out

    def label(self, account: int) -> str:
        """The name shown for an account: its team code, or its one student's nickname."""
        members = [s for s in self.students.values() if s.account == account]
        if not members:
            return f"account {account}"
        if members[0].team:
            return f"Team {members[0].team}"
        return members[0].nickname
