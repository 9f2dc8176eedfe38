"""Data operators on Ray Data: recipe model, registry, executor, cache, ledger and manifest."""

from operators.env import apply_offline_defaults

apply_offline_defaults()
