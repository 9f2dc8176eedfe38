"""Reading and writing a stage's Parquet parts in bounded memory, whatever the corpus size.

- Writing: every Ray write task streams its blocks into one Parquet file, a row group per block,
  as they arrive. (Ray's own ``write_parquet`` lists all of a task's blocks before writing them,
  so a task held its whole share of the stage in memory.)
- Reading: a stage is cut into read units of about ``task_bytes`` each, by row ranges of its
  row groups (a unit may end inside a row group); each read task streams its unit's row groups
  one at a time. The number of tasks follows the stage's size, not a fixed block count.

Blocks themselves are capped by ``ray_session.BLOCK_BYTES``, so what a task holds at
once is a few blocks: its input batch, the operator's output and the row group being written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import Block, BlockAccessor
from ray.data.datasource import Datasink

from operators.core.stage_cache import parquet_parts

TASK_BYTES = 32 << 20
"""Parquet bytes on disk per read task of a stage (lz4: roughly 50-60 MB of text)."""


class StreamingParquetSink(Datasink[None]):
    """One Parquet file per write task, ``<task>-<n>.parquet``, written block by block; a block whose
    columns differ from the file's starts the task's next file (``n`` + 1)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = str(folder)

    def write(self, blocks: Iterable[Block], ctx) -> None:
        writer: pq.ParquetWriter | None = None
        part = 0
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                if table.num_rows == 0:
                    continue
                if writer is not None:
                    fitted = _fit(table, writer.schema)
                    if fitted is None:
                        writer.close()
                        writer, part = None, part + 1
                    else:
                        table = fitted
                if writer is None:
                    path = os.path.join(self.folder, f"{ctx.task_idx:06d}-{part}.parquet")
                    writer = pq.ParquetWriter(path, table.schema, compression="lz4")
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def _fit(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` cast to ``schema`` (same columns; a null-typed column becomes the file's type), or
    None when its columns differ."""
    if table.schema.equals(schema, check_metadata=False):
        return table
    if sorted(table.column_names) != sorted(schema.names):
        return None
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


def write_stage(ds, folder: Path) -> None:
    """Execute ``ds`` and stream it into ``folder``'s Parquet parts."""
    folder.mkdir(parents=True, exist_ok=True)
    ds.write_datasink(StreamingParquetSink(folder))


def read_units(folder: Path, tasks: int) -> list[list[tuple[str, int, int, int]]]:
    """The stage's rows cut into ``tasks`` units of about equal Parquet bytes: each unit lists
    ``(file, row group, first row, end row)`` slices in stage order. Never more units than rows."""
    groups = []
    for path in parquet_parts(folder):
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if rg.num_rows:
                groups.append((path, g, rg.num_rows, max(1, rg.total_byte_size)))
    if not groups:
        return []
    rows = np.array([g[2] for g in groups])
    size = np.array([g[3] for g in groups], dtype=np.float64)
    tasks = max(1, min(tasks, int(rows.sum())))
    # byte position of every row, then cut at equal byte positions (whole rows)
    ends = np.cumsum(size)
    starts = ends - size
    cuts = np.linspace(0, ends[-1], tasks + 1)[1:-1]
    units: list[list[tuple[str, int, int, int]]] = [[] for _ in range(tasks)]
    for (path, g, n, _), start, width in zip(groups, starts, size, strict=True):
        row_pos = start + width * np.arange(n) / n
        unit_of_row = np.searchsorted(cuts, row_pos, side="right")
        bounds = np.flatnonzero(np.diff(unit_of_row)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n], strict=True):
            units[int(unit_of_row[lo])].append((path, g, int(lo), int(hi)))
    return [u for u in units if u]


def read_stage(folder: Path, tasks: int):
    """A stage's rows as a Ray Dataset of ``tasks`` read tasks (see ``read_units``)."""
    import ray.data

    units = read_units(folder, tasks)
    if not units:  # every row was dropped before this stage: no parts, nothing to read
        return ray.data.from_items([])
    items = [{"unit": json.dumps(u)} for u in units]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_unit, batch_size=1, batch_format="numpy"
    )


def _read_unit(batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
    opened, parquet = None, None  # a unit's slices come file by file: each footer is read once
    for path, group, lo, hi in json.loads(str(batch["unit"][0])):
        if path != opened:
            opened, parquet = path, pq.ParquetFile(path)
        yield parquet.read_row_group(group).slice(lo, hi - lo)
