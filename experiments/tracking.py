"""MLflow tracking: where runs go, and small helpers to log dicts of numbers."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from operators import apply_offline_defaults, workspace

EXPERIMENT = "dataplan"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<workspace>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace() / 'mlflow.db'}"


def mlflow_client(experiment: str = EXPERIMENT):
    """The ``mlflow`` module pointed at our tracking store and ``experiment``. With a SQLite store
    the experiment's artifacts go beside the database (``mlartifacts/``), not into the current
    directory's ``mlruns/`` (MLflow's default)."""
    apply_offline_defaults()
    import mlflow

    for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..."
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        _ensure_experiment(uri, experiment)
    mlflow.set_experiment(experiment)
    return mlflow


@functools.cache
def _ensure_experiment(uri: str, experiment: str) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    db = Path(uri.removeprefix("sqlite:///"))
    with _store_lock(db):  # MLflow creates its tables on first use: two processes at once collide
        write_ahead_log(db)
        if mlflow.get_experiment_by_name(experiment) is None:
            with contextlib.suppress(MlflowException):  # another process created it first
                mlflow.create_experiment(experiment, artifact_location=(db.parent / "mlartifacts").resolve().as_uri())


@contextlib.contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` (an exclusive ``flock``, released by the kernel if the process dies) while
    the store is created or migrated, so that two searches started at once on a fresh workspace
    do not both run MLflow's migrations."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@functools.cache
def write_ahead_log(db: Path) -> None:
    """Put a SQLite database (created if absent) in WAL mode, which the file keeps: a commit then
    appends to the log instead of rewriting pages through a rollback journal (a search commits
    tens of times a trial), and readers (the MLflow UI, `dataplan status`) never block the writer.
    Committed trials still survive a killed process."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


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


def log_confirmation(parent_run: str | None, labels: dict[str, str], entry: dict[str, Any]) -> str | None:
    """One confirmation training (a ``confirm_log`` entry) as a finished MLflow run under the search's
    parent run: named ``confirm:<recipe name>:<seed or search scale>``, tagged with the kind, recipe
    name and id, scale and seed (and the search's labels), its objective and per-target bits per
    byte as metrics. None when the search has no parent run."""
    if parent_run is None or (experiment := _parent_experiment(parent_run)) is None:
        return None
    from mlflow.entities import Metric, Param

    client = mlflow_client().MlflowClient()
    where = "search scale" if entry["scale"] == "search" else f"seed {entry['seed']}"
    tags = {
        "mlflow.parentRunId": parent_run,
        "dataplan.kind": "confirmation",
        **{f"dataplan.{k}": str(entry[k]) for k in ("name", "recipe_id", "scale", "seed")},
        **labels,
    }
    run = client.create_run(experiment, run_name=f"confirm:{entry['name']}:{where}", tags=tags)
    now = int(time.time() * 1000)
    metrics = [Metric("objective", entry["objective"], now, 0)]
    metrics += [Metric(f"bpb.{k}", v, now, 0) for k, v in entry["bpb"].items()]
    params = [Param(k, str(entry[k])) for k in ("preset", "tokens")]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@functools.cache
def _parent_experiment(parent_run: str) -> str | None:
    """The experiment of a search's parent run; None, with one warning, when the tracking store in
    use does not hold it (the search was made under another ``MLFLOW_TRACKING_URI``): its
    confirmations are then recorded in ``confirmations.jsonl`` only."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client().MlflowClient().get_run(parent_run).info.experiment_id
    except MlflowException:
        warnings.warn(
            f"the search's MLflow parent run {parent_run} is not in {tracking_uri()}: confirmation trainings "
            "are recorded in confirmations.jsonl only; set MLFLOW_TRACKING_URI to the store the search was made in",
            stacklevel=2,
        )
        return None
