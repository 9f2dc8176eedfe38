"""Row-local batch functions the executor hands to Ray Data (module level, so they pickle)."""

from __future__ import annotations

import functools
import hashlib
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


READ_CHUNK_BYTES = 8 << 20
"""Characters of text (plus a per-record allowance) read into one table."""


def read_files(
    batch: dict[str, np.ndarray], reader_cls: type[Operator], chunk_bytes: int = READ_CHUNK_BYTES
) -> Iterator[pa.Table]:
    """Read the files named in a batch of tasks (path, source, params) into documents, a table per
    ``chunk_bytes`` of text, so a file of any size streams through in bounded memory."""
    rows: list[dict[str, Any]] = []
    size = 0
    for path, source, params in zip(batch["path"], batch["source"], batch["params"], strict=True):
        reader = reader_cls(json.loads(params))
        for row in reader.read(str(path), str(source)):  # type: ignore[attr-defined]
            rows.append({"url": "", **row, "source": str(source)})
            size += len(row["text"]) + 256
            if size >= chunk_bytes:
                yield pa.Table.from_pylist(rows, schema=_reader_schema(rows))
                rows, size = [], 0
    if rows:
        yield pa.Table.from_pylist(rows, schema=_reader_schema(rows))


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
        rows = pa.array(index.rows(table["source"], table["id"]))
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


@functools.lru_cache(maxsize=2)
def _signal_table(folder: str) -> tuple[KeyIndex, pa.Table]:
    """The signal columns of an annotate stage's live rows and their (source, id) index, loaded
    once per process; only those columns are read, never the text."""
    ds = stage_dataset(Path(folder))
    names = [c for c in ds.schema.names if c not in BASE_COLUMNS]
    table = ds.to_table(columns=["source", "id", *names], filter=pc.field("_reason") == "")
    return KeyIndex(table["source"], table["id"]), table.select(names).combine_chunks()


class KeyIndex:
    """Row of each (source, id) in a table, kept as 16 bytes per row: a sorted 64-bit hash of the
    key and the row it belongs to. A stage whose keys collide on the hash keeps a dict instead.
    Keys are looked up by hash alone, so they must be keys of the table: a decision stage's rows
    always are, as its annotate stage covers every document the decisions before it saw."""

    def __init__(self, sources: pa.ChunkedArray, ids: pa.ChunkedArray) -> None:
        hashes = key_hashes(sources, ids)
        self.order = np.argsort(hashes, kind="stable")
        self.sorted = hashes[self.order]
        self.exact: dict[str, int] | None = None
        if len(hashes) > 1 and (self.sorted[1:] == self.sorted[:-1]).any():
            self.exact = {k: i for i, k in enumerate(_joined(sources, ids))}

    def rows(self, sources: pa.ChunkedArray, ids: pa.ChunkedArray) -> np.ndarray:
        """Rows of the given keys; KeyError names the first key the table lacks."""
        if self.exact is not None:
            return np.fromiter((self.exact[k] for k in _joined(sources, ids)), dtype=np.int64, count=len(ids))
        hashes = key_hashes(sources, ids)
        pos = np.clip(np.searchsorted(self.sorted, hashes), 0, max(0, len(self.sorted) - 1))
        found = self.sorted[pos] == hashes if len(self.sorted) else np.zeros(len(hashes), dtype=bool)
        if not found.all():
            first = int(np.flatnonzero(~found)[0])
            raise KeyError(f"{sources[first].as_py()}/{ids[first].as_py()}")
        return self.order[pos]


def key_hashes(sources: pa.ChunkedArray, ids: pa.ChunkedArray) -> np.ndarray:
    """64-bit BLAKE2b of each ``source\\x1fid``."""
    digests = b"".join(hashlib.blake2b(k.encode(), digest_size=8).digest() for k in _joined(sources, ids))
    return np.frombuffer(digests, dtype=np.uint64)


def _joined(sources: pa.ChunkedArray, ids: pa.ChunkedArray) -> list[str]:
    return pc.binary_join_element_wise(sources, ids, "\x1f").to_pylist()


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
        old = np.full(n, fill, dtype=object if dtype in (None, "str", "bytes") else dtype)
    full = old.copy()
    full[mask] = values
    return full


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    return values.astype(object if dtype in ("str", "bytes") else dtype, copy=False)


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
