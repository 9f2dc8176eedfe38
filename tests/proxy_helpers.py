"""Helpers for the proxy tests: a run folder built from the shared domain files (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return rows[:limit]


def write_source(run_dir: Path, name: str, records: list[dict], weights: list[float] | None = None) -> None:
    """``run_dir/data/<name>.parquet`` with the run-output schema (id, text, source, meta[, weight])."""
    records = sorted(records, key=lambda r: r["id"])
    columns = {
        "id": [r["id"] for r in records],
        "text": [r["text"] for r in records],
        "source": [name] * len(records),
        "meta": ["{}"] * len(records),
    }
    if weights is not None:
        columns["weight"] = np.asarray(weights, dtype=np.float64)
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), run_dir / "data" / f"{name}.parquet")


def domains_run(run_dir: Path, shared: Path, sources: dict[str, str], limit: int | None = None) -> Path:
    """A run folder whose sources are shared ``domains/`` files (name -> file name)."""
    for name, file in sources.items():
        write_source(run_dir, name, read_jsonl(shared / "domains" / file, limit))
    return run_dir
