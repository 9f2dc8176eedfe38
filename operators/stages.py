"""Row-local batch functions the executor hands to Ray Data (module level, so they pickle)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from operators.base import KEEP, SIGNAL_FILL, Operator
from operators.digest import doc_digests

LEDGER_COLUMNS = ("_reason", "_detail")
READ_SCHEMA = pa.schema([(c, pa.string()) for c in ("id", "text", "source", "url", "meta", "_reason", "_detail")])


def read_files(batch: dict[str, np.ndarray], reader_cls: type[Operator]) -> pa.Table:
    """Read the files named in a batch of tasks (path, source, params) into documents."""
    rows: list[dict[str, Any]] = []
    for path, source, params in zip(batch["path"], batch["source"], batch["params"], strict=True):
        reader = reader_cls(json.loads(params))
        for row in reader.read(str(path), str(source)):  # type: ignore[attr-defined]
            rows.append({"url": "", **row, "source": str(source)})
    return pa.Table.from_pylist(rows, schema=_reader_schema(rows))


def _reader_schema(rows: list[dict[str, Any]]) -> pa.Schema:
    extra = sorted({k for r in rows for k in r} - set(READ_SCHEMA.names))
    return pa.schema(list(READ_SCHEMA) + [(k, pa.string()) for k in extra])


def kept_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows still alive (no drop reason yet), with fresh empty ``_reason``/``_detail`` columns."""
    if "_reason" in batch:
        alive = np.asarray(batch["_reason"] == KEEP)
        batch = {k: v[alive] for k, v in batch.items()}
    n = len(batch["id"])
    return {**batch, "_reason": np.full(n, KEEP, dtype=object), "_detail": np.full(n, "", dtype=object)}


def step_batch(batch: dict[str, np.ndarray], op: Operator, mode: str, sources: list[str] | None) -> pa.Table:
    """Apply one operator stage (``map``, ``annotate`` or ``decide``) to the live rows of a batch;
    rows outside ``sources`` pass through, their new signal columns set to the fill value."""
    batch = kept_rows(batch)
    n = len(batch["id"])
    mask = np.ones(n, dtype=bool) if sources is None else np.isin(batch["source"].astype(str), sources)
    sub = batch if sources is None else {k: v[mask] for k, v in batch.items()}
    if mode == "annotate":
        updates = op.annotate(sub)  # type: ignore[attr-defined]
    elif mode == "decide":
        updates = {"_reason": op.decide(sub)}  # type: ignore[attr-defined]
    else:
        updates = op.map(sub)  # type: ignore[attr-defined]
    out = dict(batch)
    for col, values in updates.items():
        out[col] = _scatter(batch.get(col), np.asarray(values), mask, n, op.signals.get(col))
    return to_arrow(out)


def _scatter(old: np.ndarray | None, values: np.ndarray, mask: np.ndarray, n: int, dtype: str | None) -> np.ndarray:
    if mask.all():
        return values if dtype is None else _cast(values, dtype)
    if old is None:
        fill = SIGNAL_FILL[dtype] if dtype else ""
        old = np.full(n, fill, dtype=object if dtype in (None, "str") else dtype)
    full = old.copy()
    full[mask] = values
    return full


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    return values.astype(object if dtype == "str" else dtype, copy=False)


def to_arrow(batch: dict[str, np.ndarray]) -> pa.Table:
    """Numpy columns -> an Arrow table whose string columns are typed even when empty."""
    arrays = {}
    for col, values in batch.items():
        if values.dtype == object or values.dtype.kind == "U":
            first = next((v for v in values if v is not None), "")
            kind = pa.binary() if isinstance(first, bytes) else pa.string()
            arrays[col] = pa.array(values.tolist(), type=kind)
        else:
            arrays[col] = pa.array(values)
    return pa.table(arrays)


def stats_batch(batch: dict[str, np.ndarray]) -> pa.Table:
    """Per row: source, drop reason (code before any ':' detail) and the document digest if kept."""
    reasons = np.asarray([str(r).split(":", 1)[0] for r in batch["_reason"]], dtype=object)
    digests = doc_digests(batch)
    digests[reasons != KEEP] = b""
    return pa.table(
        {
            "source": pa.array(batch["source"].tolist(), type=pa.string()),
            "reason": pa.array(reasons.tolist(), type=pa.string()),
            "digest": pa.array(digests.tolist(), type=pa.binary()),
        }
    )
