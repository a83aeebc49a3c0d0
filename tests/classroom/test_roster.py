"""The roster: nicknames sanitized and unique, rejoin secrets, teams, CSV rosters."""

from __future__ import annotations

import pytest

from exchange.classroom.roster import FIRST_ACCOUNT, Roster, RosterError, sanitize_nickname


def join(r: Roster, nick: str, team: str | None = None):  # type: ignore[no-untyped-def]
    rec, secret = r.plan_join(nick, team)
    r.apply(rec)
    return r.students[rec["student"]], secret


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ada   Lovelace ", "Ada Lovelace"),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert"),  # kept as text, cut at 24
        ("Zoë\u200b\u202e", "Zoë"),  # format characters dropped
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),  # NFKC
        ("a\nb\tc", "a b c"),
    ],
)
def test_sanitize(raw: str, clean: str) -> None:
    assert sanitize_nickname(raw) == clean


@pytest.mark.parametrize("raw", ["", "   ", "\u200b", "!!!", 42, None])
def test_sanitize_refuses_empty(raw: object) -> None:
    with pytest.raises(RosterError):
        sanitize_nickname(raw)


def test_unique_nicknames_and_own_accounts() -> None:
    r = Roster()
    a, sa = join(r, "Sam")
    b, sb = join(r, "sam")
    assert (a.nickname, b.nickname) == ("Sam", "sam #2")
    assert a.account == FIRST_ACCOUNT and b.account == FIRST_ACCOUNT + 1
    assert r.rejoin(sa) is a and r.rejoin(sb) is b
    assert sa not in repr(r.students)  # only the hash is kept
    with pytest.raises(RosterError):
        r.rejoin("x" * 22)


def test_teams_share_an_account_and_need_teams_on() -> None:
    with pytest.raises(RosterError, match="alone"):
        Roster().plan_join("a", "red")
    r = Roster(teams_allowed=True)
    a, _ = join(r, "a", "red")
    b, _ = join(r, "b", "RED")
    c, _ = join(r, "c", "blue")
    assert a.account == b.account != c.account
    assert r.label(a.account) == "Team RED"
    with pytest.raises(RosterError, match="team code"):
        r.plan_join("d", "no spaces!")


def test_kicked_cannot_rejoin_and_full_game() -> None:
    r = Roster(max_students=1)
    a, s = join(r, "a")
    r.apply({"kind": "kicked", "student": a.id})
    with pytest.raises(RosterError, match="removed"):
        r.rejoin(s)
    with pytest.raises(RosterError, match="full"):
        r.plan_join("b")


def test_csv_roster() -> None:
    r = Roster(teams_allowed=True)
    planned, already = r.plan_csv("nickname,team\nAda,red\nBob,red\n\nCy,\n")
    assert already == []
    assert [p[0]["nickname"] for p in planned] == ["Ada", "Bob", "Cy"]
    assert planned[0][0]["account"] == planned[1][0]["account"] != planned[2][0]["account"]
    assert r.students == {}  # planning changes nothing
    plain, _ = Roster().plan_csv("Ada\nBob\n")
    assert [p[0]["nickname"] for p in plain] == ["Ada", "Bob"]
    with pytest.raises(RosterError, match="line 3"):
        Roster().plan_csv("nickname\nok\n!!!\n")


def test_a_roster_imported_again_makes_no_second_slip() -> None:
    """A nickname that already has a slip is skipped (and reported), case-insensitively;
    one that joined with the code has no slip and gets one; repeats within one file are
    two students, as before."""
    r = Roster()
    first, _ = r.plan_csv("nickname\nBea\nCy\n")
    for rec, _ in first:
        r.apply(rec)
    join(r, "Dee")  # joined with the code: no slip
    again, already = r.plan_csv("nickname\nbea\nCy\nDee\nEd\nEd\n")
    assert [s.nickname for s in already] == ["Bea", "Cy"]
    assert [rec["nickname"] for rec, _ in again] == ["Dee #2", "Ed", "Ed #2"]
    for rec, _ in again:
        r.apply(rec)
    third, already = r.plan_csv("nickname\nEd\nEd\nBea\n")
    assert third == [] and [s.nickname for s in already] == ["Ed", "Bea"]
    assert len(r.students) == 6
