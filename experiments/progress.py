"""Progress listeners: how a CLI hears of each search trial and each confirmation training that a
tool call runs several layers down (the agent graph -> a tool -> ``Search.run`` / ``run_confirm``),
without a callback threaded through every signature. A listener set here holds for the ``with``
block (a ``ContextVar``); an explicit callback given to ``Search.run`` or ``run_confirm`` wins."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

Listener = Callable[[dict[str, Any]], None]

TRIALS: ContextVar[Listener | None] = ContextVar("trial_listener", default=None)
"""Hears each finished search trial: ``experiments.study.trial_summary``'s row."""
CONFIRMATIONS: ContextVar[Listener | None] = ContextVar("confirm_listener", default=None)
"""Hears each confirmation training: see ``experiments.confirm.OnRun``."""


@contextlib.contextmanager
def listening(on_trial: Listener | None = None, on_confirm: Listener | None = None) -> Iterator[None]:
    """Searches and confirmations in this block report to ``on_trial`` / ``on_confirm``."""
    tokens = [(var, var.set(fn)) for var, fn in ((TRIALS, on_trial), (CONFIRMATIONS, on_confirm)) if fn]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
