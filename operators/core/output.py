"""A run's output: one Parquet file per source, ``data/<source>.parquet``, rows sorted by id."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from operators.core.digest import combine, doc_digests
from operators.core.ledger import stage_rows
from operators.core.stage_cache import stage_dataset


def write_outputs(stage_folder: Path, data_dir: Path, sources: list[str]) -> dict[str, int]:
    """Write the kept rows of the last stage, per source, deterministically ordered; returns the
    UTF-8 bytes of each source's kept text."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("*.parquet"):
        old.unlink()
    table = stage_rows(stage_folder, _columns(stage_folder), dropped=False)
    text_bytes = {}
    for src in sources:
        part = table.filter(pc.equal(table.column("source"), src)).sort_by("id")
        pq.write_table(part, data_dir / f"{src}.parquet")
        text_bytes[src] = int(pc.sum(pc.binary_length(part.column("text").cast(pa.binary()))).as_py() or 0)
    return text_bytes


def _columns(stage_folder: Path) -> list[str]:
    names = stage_dataset(stage_folder).schema.names
    return [c for c in names if not c.startswith("_")]


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
