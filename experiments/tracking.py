"""MLflow tracking: where runs go, and small helpers to log dicts of numbers."""

from __future__ import annotations

import os
from typing import Any

from operators.env import apply_offline_defaults, workspace

EXPERIMENT = "dataplan"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<workspace>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace() / 'mlflow.db'}"


def mlflow_client():
    """The ``mlflow`` module pointed at our tracking store and experiment."""
    apply_offline_defaults()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def flat_params(prefix: str, data: dict[str, Any]) -> dict[str, str]:
    """Nested dict -> ``a.b.c`` keys with string values (MLflow params are strings <= 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_params(name, value))
        else:
            out[name] = str(value)[:6000]
    return out


def numeric(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}
