"""A run's output: one Parquet file per source, ``data/<source>.parquet``, rows sorted by id."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from operators.core.digest import combine, doc_digests
from operators.core.ledger import stage_rows
from operators.core.stage_cache import scan_stage, stage_bytes, stage_dataset

SORT_BUCKET_BYTES = 64 << 20
"""Parquet bytes (estimated from the stage's rows per byte) of one id range sorted in memory."""


def write_outputs(
    stage_folder: Path, data_dir: Path, sources: list[str], bucket_bytes: int = SORT_BUCKET_BYTES
) -> dict[str, int]:
    """Write the kept rows of the last stage, per source, sorted by id; returns the UTF-8 bytes of
    each source's kept text.

    A bucket sort in bounded memory: the kept ids alone are read to cut each source into id
    ranges of about ``bucket_bytes``; one pass over the stage spills every batch's rows to
    their range's Arrow file; each range is then sorted in memory and appended to the source's
    Parquet file, in id order."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("*.parquet"):
        old.unlink()
    schema = _output_schema(stage_folder)
    ids = stage_rows(stage_folder, ["source", "id"], dropped=False)
    bounds = bucket_bounds(ids, sources, stage_bytes(stage_folder), bucket_bytes)
    with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".sort-") as tmp:
        spill = SortSpill(Path(tmp), schema, bounds)
        kept = pc.field("_reason") == ""
        for batch in scan_stage(stage_folder, schema.names, kept):
            spill.add(pa.Table.from_batches([batch]))
        spill.close()
        return {src: spill.write_sorted(src, data_dir / f"{src}.parquet") for src in sources}


def bucket_bounds(ids: pa.Table, sources: list[str], size: int, bucket_bytes: int) -> dict[str, np.ndarray]:
    """Per source, the sorted ids that start its 2nd, 3rd, ... bucket: ``ids`` (columns ``source``
    and ``id``) are the rows to sort, ``size`` their bytes, ``bucket_bytes`` the bytes of a bucket."""
    per_bucket = max(1, int(ids.num_rows * bucket_bytes / max(1, size)))
    bounds = {}
    for src in sources:
        sorted_ids = np.sort(np.asarray(ids.filter(pc.equal(ids["source"], src))["id"].to_pylist(), dtype=object))
        bounds[src] = sorted_ids[per_bucket::per_bucket]
    return bounds


class SortSpill:
    """A bucket sort by (source, id) in bounded memory: rows are appended batch by batch to Arrow
    IPC files, one per (source, id range of ``bounds``), and read back range by range, each range
    sorted by id in memory."""

    def __init__(self, folder: Path, schema: pa.Schema, bounds: dict[str, np.ndarray]) -> None:
        self.folder = folder
        self.schema = schema
        self.bounds = bounds
        self.writers: dict[tuple[str, int], pa.ipc.RecordBatchFileWriter] = {}
        self.paths: dict[tuple[str, int], Path] = {}

    def add(self, table: pa.Table) -> None:
        """Spill the rows of ``table`` (of the sources in ``bounds``) to their ranges' files."""
        for src, cuts in self.bounds.items():
            part = table.filter(pc.equal(table.column("source"), src))
            if part.num_rows:
                bucket = np.searchsorted(cuts, np.asarray(part.column("id").to_pylist(), dtype=object), "right")
                for b in np.unique(bucket):
                    self._add(src, int(b), part.filter(pa.array(bucket == b)))

    def _add(self, source: str, bucket: int, table: pa.Table) -> None:
        key = (source, bucket)
        if key not in self.writers:
            self.paths[key] = self.folder / f"{len(self.paths)}.arrow"
            self.writers[key] = pa.ipc.new_file(str(self.paths[key]), self.schema)
        self.writers[key].write_table(table.cast(self.schema))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def sorted_tables(self, source: str) -> Iterator[pa.Table]:
        """The source's rows (after ``close``), range by range, each range sorted by id."""
        for bucket in sorted(b for s, b in self.writers if s == source):
            yield pa.ipc.open_file(str(self.paths[(source, bucket)])).read_all().sort_by("id")

    def write_sorted(self, source: str, path: Path) -> int:
        """The source's rows sorted by id into one Parquet file; its text's UTF-8 bytes."""
        text_bytes, empty = 0, True
        with pq.ParquetWriter(path, self.schema) as writer:
            for table in self.sorted_tables(source):
                writer.write_table(table)
                text_bytes += int(pc.sum(pc.binary_length(table.column("text").cast(pa.binary()))).as_py() or 0)
                empty = False
            if empty:
                writer.write_table(self.schema.empty_table())
        return text_bytes


def _output_schema(stage_folder: Path) -> pa.Schema:
    """The stage's document columns: all but the internal ``_`` ones (reasons, signatures)."""
    schema = stage_dataset(stage_folder).schema
    return pa.schema([f for f in schema if not f.name.startswith("_")])


def read_output(run_dir: str | Path, source: str | None = None) -> pa.Table:
    """The documents a run kept (all sources, or one), as an Arrow table."""
    data = Path(run_dir) / "data"
    files = [data / f"{source}.parquet"] if source else sorted(data.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def output_sha256(run_dir: str | Path) -> str:
    """Order-independent hash of every document in ``run_dir/data``, recomputed from the files. The
    manifest records the same hash from the last decision stage, without reading the files back."""
    digests: list[bytes] = []
    for f in sorted((Path(run_dir) / "data").glob("*.parquet")):
        for batch in pq.ParquetFile(f).iter_batches():
            cols = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names}
            digests.extend(doc_digests(cols))
    return combine(digests)
