"""The lifecycle table: every allowed transition, and everything else refused."""

from __future__ import annotations

import pytest

from exchange.classroom import lifecycle as L


def test_the_issue_path() -> None:
    s: L.State = "lobby"
    for action, want in [
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("end_round", "round_over"),
        ("next_round", "running"),
        ("end_round", "round_over"),
        ("finish", "game_over"),
    ]:
        s = L.next_state(s, action)
        assert s == want


@pytest.mark.parametrize("state", L.STATES)
def test_everything_not_in_the_table_is_refused(state: L.State) -> None:
    for action in ("start", "pause", "resume", "end_round", "next_round", "finish", "dance"):
        if (state, action) in L.TRANSITIONS:
            assert L.next_state(state, action) == L.TRANSITIONS[(state, action)]  # type: ignore[index]
        else:
            with pytest.raises(L.LifecycleError, match=f"cannot {action} while the game is"):
                L.next_state(state, action)


def test_game_over_is_final() -> None:
    assert L.allowed_actions("game_over") == []
