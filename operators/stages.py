"""Row-local batch functions the executor hands to Ray Data (module level, so they pickle)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import KEEP, SIGNAL_FILL, Operator
from operators.digest import doc_digests
from operators.stage_cache import stage_dataset

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


def step_batch(
    batch: dict[str, np.ndarray], op: Operator, mode: str, sources: list[str] | None, join: str | None = None
) -> pa.Table:
    """Apply one operator stage (``map``, ``annotate``, ``decide`` or ``join``) to the live rows of a
    batch, after joining in the signal columns of the annotate stage in ``join``; rows outside
    ``sources`` pass through, their new signal columns set to the fill value."""
    batch = kept_rows(batch)
    if join:
        batch = attach_signals(batch, join)
    if mode == "join":
        return to_arrow(batch)
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


BASE_COLUMNS = frozenset(("id", "text", "source", "url", "meta", "_reason", "_detail"))


@functools.lru_cache(maxsize=8)
def _signal_table(folder: str) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """(source, id) -> row, and the signal columns, of an annotate stage (loaded once per process)."""
    table = stage_dataset(Path(folder)).to_table(filter=pc.field("_reason") == "")
    keys = pc.binary_join_element_wise(table.column("source"), table.column("id"), "\x1f").to_pylist()
    columns = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names if c not in BASE_COLUMNS}
    return {k: i for i, k in enumerate(keys)}, columns


def attach_signals(batch: dict[str, np.ndarray], folder: str) -> dict[str, np.ndarray]:
    """The batch with the annotate stage's signal columns for its rows (joined on source and id)."""
    index, columns = _signal_table(folder)
    rows = np.fromiter(
        (index[f"{s}\x1f{i}"] for s, i in zip(batch["source"], batch["id"], strict=True)),
        dtype=np.int64,
        count=len(batch["id"]),
    )
    return {**batch, **{c: values[rows] for c, values in columns.items()}}


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
