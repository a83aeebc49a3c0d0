"""The sans-I/O core: the whole exchange as a deterministic state machine.

Imports only the standard library and sortedcontainers. One entry point:
`Exchange.handle(command) -> list[Event]`.
"""

from .commands import *  # noqa: F403
from .engine import Exchange
from .errors import Code
from .events import *  # noqa: F403
from .instruments import Bracket, Instrument, derive_brackets

__all__ = ["Exchange", "Code", "Bracket", "Instrument", "derive_brackets"]
