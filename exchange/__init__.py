"""margincall: a paper-trading exchange for perpetual futures."""

__version__ = "0.1.0"
