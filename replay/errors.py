"""The one error type readers raise for bad input."""

from __future__ import annotations

__all__ = ["ReplayFormatError"]


class ReplayFormatError(ValueError):
    """A file cannot be read as the format it claims (or was detected) to be.

    ``str(err)`` reads ``"<path>:<line>: <problem>"``; the parts are also attributes. ``line`` is
    the 1-based physical line number in the (decompressed) file, or ``None`` when the problem is
    with the file as a whole (unknown format, unreadable archive...).
    """

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")
