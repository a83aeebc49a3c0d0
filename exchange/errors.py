"""Exceptions shared by the adapters around the core (the core has its own `core.errors`)."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store cannot commit right now.

    Raised by a durable `command_log.append`; the runtime then refuses the whole batch
    with code -9004 and applies nothing, so the core never runs ahead of its journal.
    """
