"""Bounded-memory stage I/O on real data: byte-sized read units, streamed reading of one large
file, the bucket-sorted run output, and the (source, id) index of signal joins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators import load_recipe, run_recipe
from operators.core.base import get_operator
from operators.core.output import write_outputs
from operators.core.stage_cache import StageCache, parquet_parts, stage_dataset
from operators.core.stages import KeyIndex, read_files

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example(shared_data: Path, ray_started: None, tmp_path_factory: pytest.TempPathFactory):
    """The example recipe's run and the cache folder of each of its stages."""
    out = tmp_path_factory.mktemp("run")
    manifest = run_recipe(load_recipe(REPO / "recipes/domains_basic.yaml"), out)
    return out, {(s.index, s.stage): StageCache().path(s.key) for s in manifest.steps}


def test_read_units_cover_every_row_once_in_order_and_split_by_bytes(example) -> None:
    from operators.core.stage_io import read_units

    _, stages = example
    folder = stages[(-1, "read")]
    rows = stage_dataset(folder).to_table(columns=["id"])["id"].to_pylist()
    assert len(rows) == 1463
    for tasks in (1, 3, 7, 40):
        units = read_units(folder, tasks)
        assert len(units) == tasks
        got = []
        for unit in units:
            for path, group, lo, hi in unit:
                got += pq.ParquetFile(path).read_row_group(group, columns=["id"]).slice(lo, hi - lo)["id"].to_pylist()
        assert got == rows  # every row once, in the stage's order
    sizes = [sum(_bytes(p, g, lo, hi) for p, g, lo, hi in u) for u in read_units(folder, 7)]
    assert max(sizes) < 2 * min(sizes)  # about equal bytes, though books are 20x longer than legal texts


def _bytes(path: str, group: int, lo: int, hi: int) -> float:
    rg = pq.ParquetFile(path).metadata.row_group(group)
    return rg.total_byte_size * (hi - lo) / rg.num_rows


def test_a_large_file_is_read_in_bounded_tables(shared_data: Path) -> None:
    path = shared_data / "domains/books_gutenberg.jsonl"  # 360 records
    batch = {"path": np.array([str(path)]), "source": np.array(["books"]), "params": np.array(["{}"])}
    tables = list(read_files(batch, get_operator("jsonl"), chunk_bytes=1 << 20))
    assert len(tables) == 3 and all(t.num_rows < 360 for t in tables)  # 3.1 M characters
    with open(path) as fh:
        ids = [json.loads(line)["id"] for line in fh]
    assert [i for t in tables for i in t["id"].to_pylist()] == ids


def test_bucket_sorted_output_equals_one_sort_in_memory(example, tmp_path: Path) -> None:
    out, stages = example
    last = stages[(2, "decide")]
    sizes = write_outputs(last, tmp_path / "buckets" / "data", ["books", "code", "legal"], bucket_bytes=100_000)
    assert len(list((tmp_path / "buckets").iterdir())) == 1  # the spill folder is gone
    for src in ("books", "code", "legal"):
        expected = pq.read_table(out / "data" / f"{src}.parquet")
        got = pq.ParquetFile(tmp_path / "buckets" / "data" / f"{src}.parquet")
        assert got.metadata.num_row_groups > 1  # it really went through several buckets
        assert got.read().equals(expected)
        assert sizes[src] == sum(len(t.encode()) for t in expected["text"].to_pylist())


def test_key_index_finds_rows_and_names_a_missing_key(example) -> None:
    _, stages = example
    table = stage_dataset(stages[(-1, "read")]).to_table(columns=["source", "id"])
    index = KeyIndex(table["source"], table["id"])
    order = np.random.default_rng(0).permutation(table.num_rows)
    picked = table.take(pa.array(order))
    assert (index.rows(picked["source"], picked["id"]) == order).all()
    assert index.exact is None  # 1463 keys, no 64-bit collision: the compact index
    with pytest.raises(KeyError, match="legal/spdx:NOPE"):
        index.rows(pa.chunked_array([["legal"]]), pa.chunked_array([["spdx:NOPE"]]))


def test_stage_parts_are_written_one_file_per_task(example) -> None:
    _, stages = example
    names = [Path(p).name for p in parquet_parts(stages[(0, "map")])]
    assert names and all(n.endswith("-0.parquet") for n in names)
