"""Process-wide defaults: offline switches and the workspace folder."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_defaults() -> None:
    """Set each offline switch the user has not set: no code path reaches the network by default."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def workspace() -> Path:
    """The workspace (runs, caches, mlflow.db, agent.db): ``DATAPLAN_HOME`` or ``./.dataplan``."""
    path = Path(os.environ.get("DATAPLAN_HOME", ".dataplan")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
