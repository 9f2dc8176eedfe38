"""Row-local batch functions the executor hands to Ray Data (module level, so they pickle)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.core.base import KEEP, SIGNAL_FILL, Operator
from operators.core.stage_cache import stage_dataset

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
    """Apply one operator's ``map`` or ``annotate`` stage to the live rows of a batch; rows outside
    ``sources`` pass through, their new signal columns set to the fill value."""
    batch = kept_rows(batch)
    n = len(batch["id"])
    mask = np.ones(n, dtype=bool) if sources is None else np.isin(batch["source"].astype(str), sources)
    sub = batch if sources is None else {k: v[mask] for k, v in batch.items()}
    updates = op.annotate(sub) if mode == "annotate" else op.map(sub)  # type: ignore[attr-defined]
    out = dict(batch)
    for col, values in updates.items():
        out[col] = _scatter(batch.get(col), np.asarray(values), mask, n, op.signals.get(col))
    return to_arrow(out)


def decide_batch(table: pa.Table, op: Operator, mode: str, sources: list[str] | None, join: str | None) -> pa.Table:
    """A ``decide`` or ``join`` stage on an Arrow batch: the live rows, the annotate stage's signal
    columns from ``join`` attached by (source, id), and for ``decide`` the operator's drop reasons
    for the rows of ``sources``. Only the columns the operator reads become numpy; the text passes
    through untouched."""
    if "_reason" in table.column_names:
        table = table.filter(pc.equal(table["_reason"], KEEP))
    n = table.num_rows
    table = _with(table, "_reason", pa.array([KEEP] * n, pa.string()))
    table = _with(table, "_detail", pa.array([""] * n, pa.string()))
    if join:
        index, signals = _signal_table(join)
        keys = zip(table["source"].to_pylist(), table["id"].to_pylist(), strict=True)
        rows = pa.array(np.fromiter((index[f"{s}\x1f{i}"] for s, i in keys), dtype=np.int64, count=n))
        for col in signals.column_names:
            table = _with(table, col, signals[col].take(rows))
    if mode == "join":
        return table
    reasons = np.full(n, KEEP, dtype=object)
    details = np.full(n, "", dtype=object)
    inside = (
        np.ones(n, dtype=bool)
        if sources is None
        else pc.is_in(table["source"], value_set=pa.array(sources, pa.string())).to_numpy(zero_copy_only=False)
    )
    columns = ArrowColumns(table if sources is None else table.filter(pa.array(inside)))
    decided = np.asarray(op.decide(columns), dtype=object)  # type: ignore[attr-defined]
    reasons[inside] = decided
    if (decided != KEEP).any():
        details[inside] = op.details(columns, decided)  # type: ignore[attr-defined]
    table = _with(table, "_reason", pa.array(reasons.tolist(), pa.string()))
    return _with(table, "_detail", pa.array(details.tolist(), pa.string()))


class ArrowColumns(Mapping[str, np.ndarray]):
    """An Arrow table seen as the ``{column: numpy array}`` batch operators take; a column is
    converted when first read."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._converted: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._converted:
            self._converted[name] = self.table[name].to_numpy(zero_copy_only=False)
        return self._converted[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.column_names)

    def __len__(self) -> int:
        return self.table.num_columns


BASE_COLUMNS = frozenset(("id", "text", "source", "url", "meta", "_reason", "_detail"))


@functools.lru_cache(maxsize=8)
def _signal_table(folder: str) -> tuple[dict[str, int], pa.Table]:
    """(source, id) -> row, and the signal columns, of an annotate stage (loaded once per process)."""
    table = stage_dataset(Path(folder)).to_table(filter=pc.field("_reason") == "")
    keys = pc.binary_join_element_wise(table.column("source"), table.column("id"), "\x1f").to_pylist()
    signals = table.select([c for c in table.column_names if c not in BASE_COLUMNS]).combine_chunks()
    return {k: i for i, k in enumerate(keys)}, signals


def _with(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with column ``name`` set to ``values`` (replaced in place, or appended)."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


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
