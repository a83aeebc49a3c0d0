"""The classroom game: a teacher runs a trading game for a class (docs/classroom.md).

`gamefile` reads and validates the game file, `scenario` turns a round's scenario into
an index path, `lifecycle` is the state table, `roster` the students and their
accounts, `leaderboard` the ranking, `journal` the game's records, `controller` runs
a game on the exchange's command queue.
"""

from .gamefile import Game, GameFileError, load_game, parse_game

__all__ = ["Game", "GameFileError", "load_game", "parse_game"]
