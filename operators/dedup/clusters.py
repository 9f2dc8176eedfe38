"""The shared Ray Data plan of the dedup operators: bucket keys -> candidate edges -> clusters.

1. Each document emits one row per bucket key (a MinHash band hash, a text hash, a URL hash):
   ``key`` (uint64), ``doc`` (the node name ``"<id>\\x1f<source>"``) and ``rank`` (float64).
2. Rows are hash-shuffled by ``key % partitions`` (``groupby(...).map_groups``); inside a
   partition, rows with the same key form a bucket and each bucket yields star edges from one
   member to the others (vectorised: one integer sort per partition, not one call per bucket).
   When all key rows fit in ``LOCAL_KEY_BYTES`` they form one partition on the driver instead:
   a shuffle's fixed cost (tasks, object transfers) is larger than the sort of that few rows.
3. The driver collects the candidate edges (never documents, never signatures; key rows only up
   to ``LOCAL_KEY_BYTES``) and finds connected components by vectorised hooking and pointer
   jumping (``components``). Memory there is O(candidate edges), i.e. proportional to the
   duplicates, not to the corpus.
4. Each component keeps one document: the highest ``rank``, ties (and the default, rank 0)
   broken by the lowest id. The rest are marked ``<prefix>_of:<kept id>`` by a ``map_batches``
   over the dataset that looks the dropped nodes up in a sorted array.

Components do not depend on edge order, so results are identical across runs and block counts.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.core.base import KEEP, Batch

if TYPE_CHECKING:
    import ray.data

SEP = "\x1f"
EDGE_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("ra", pa.float64()), ("rb", pa.float64())])


def node_names(batch: Batch) -> np.ndarray:
    """Cluster node name of each row: id first, so sorting names sorts by id (then source)."""
    return np.array([f"{i}{SEP}{s}" for i, s in zip(batch["id"], batch["source"], strict=True)], dtype=object)


LOCAL_KEY_BYTES = 32 << 20
"""Key rows (Arrow bytes) grouped on the driver without a shuffle: ~700k rows, 50k documents at
MinHash's 14 bands."""


def arrow_node_names(table: pa.Table) -> pa.Array:
    """``node_names`` of an Arrow table, computed in Arrow."""
    return pc.binary_join_element_wise(table["id"], table["source"], SEP)


def find_nodes(sorted_names: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``names`` that occur in ``sorted_names``, and where they occur there."""
    if not len(sorted_names) or not len(names):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.clip(np.searchsorted(sorted_names, names), 0, len(sorted_names) - 1)
    rows = np.flatnonzero(sorted_names[pos] == names)
    return rows, pos[rows]


def candidate_edges(
    keys: ray.data.Dataset,
    partitions: int,
    bucket_edges: Callable[[Batch], pa.Table] | None = None,
    local_bytes: int = LOCAL_KEY_BYTES,
) -> list[pa.Table]:
    """Stage 2: shuffle key rows by ``key % partitions`` and emit star edges per bucket.

    ``bucket_edges`` replaces the star edges: it gets one partition's rows (with any extra
    columns the key rows carry) and returns its edges in ``EDGE_SCHEMA``, e.g. only the pairs
    of a bucket that pass a check (``edge_table`` builds them).

    The key rows are materialised first; up to ``local_bytes`` they are one partition, grouped on
    the driver (0.1 s instead of ~1 s for 410k rows on 2 CPUs; the components are the same).
    Larger sets use Ray's sort-based pull shuffle: on a small local cluster it runs this groupby
    ~10x faster than the default actor-based SHUFFLE_V2 (measured with Ray 2.60 on 2 CPUs)."""
    fn = bucket_edges or _bucket_edges
    keys = keys.materialize()
    if keys.size_bytes() <= local_bytes:
        tables = [t for t in keys.iter_batches(batch_format="pyarrow", batch_size=None) if t.num_rows]
        if not tables:
            return []
        rows = pa.concat_tables(tables)
        edges = fn({c: rows[c].to_numpy(zero_copy_only=False) for c in rows.column_names})
        return [edges] if edges.num_rows else []
    with sort_shuffle(keys):
        shuffled = keys.map_batches(_add_partition, fn_kwargs={"partitions": partitions}, batch_format="numpy")
        edges = shuffled.groupby("part", num_partitions=partitions).map_groups(fn, batch_format="numpy")
        return [t for t in edges.iter_batches(batch_format="pyarrow", batch_size=None) if t.num_rows]


@contextlib.contextmanager
def sort_shuffle(ds: ray.data.Dataset) -> Iterator[None]:
    """Run the shuffles of datasets derived from ``ds`` inside the block with the sort-based pull
    shuffle. A dataset keeps the context it was created with, so ``ds``'s own context is switched;
    the sort shuffle also passes over the column-less blocks Ray emits for empty inputs, which
    the hash shuffle's reduce fails to concatenate."""
    from ray.data.context import ShuffleStrategy

    ctx = ds.context
    old = ctx.shuffle_strategy
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        yield
    finally:
        ctx.shuffle_strategy = old


def _add_partition(batch: Batch, partitions: int) -> Batch:
    return {**batch, "part": (batch["key"] % np.uint64(partitions)).astype(np.int64)}


def _bucket_edges(batch: Batch) -> pa.Table:
    # star centres depend on row order, the connected components (and so the result) do not
    order = np.argsort(batch["key"], kind="stable")
    key, doc, rank = batch["key"][order], batch["doc"][order], batch["rank"][order].astype(np.float64)
    new_bucket = np.ones(len(key), dtype=bool)
    new_bucket[1:] = key[1:] != key[:-1]
    first = np.maximum.accumulate(np.where(new_bucket, np.arange(len(key)), 0))
    member = np.flatnonzero(~new_bucket & (doc != doc[first]))
    return edge_table(doc, rank, first[member], member)


def edge_table(doc: np.ndarray, rank: np.ndarray, a: np.ndarray, b: np.ndarray) -> pa.Table:
    """The edges ``doc[a[i]] - doc[b[i]]`` with their ranks, in ``EDGE_SCHEMA``."""
    return pa.table(
        {
            "a": pa.array(doc[a].tolist(), pa.string()),
            "b": pa.array(doc[b].tolist(), pa.string()),
            "ra": pa.array(rank[a], pa.float64()),
            "rb": pa.array(rank[b], pa.float64()),
        },
        schema=EDGE_SCHEMA,
    )


def resolve_clusters(edges: list[pa.Table]) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3: connected components of the edges. Returns the dropped node names (sorted) and,
    aligned with them, the id of the document each component keeps."""
    if not edges:
        return np.array([], dtype=object), np.array([], dtype=object)
    table = pa.concat_tables(edges)
    a = np.asarray(table.column("a").to_pylist(), dtype=object)
    b = np.asarray(table.column("b").to_pylist(), dtype=object)
    nodes, index = np.unique(np.concatenate([a, b]), return_inverse=True)
    rank = np.zeros(len(nodes))
    rank[index] = np.concatenate([table.column("ra").to_numpy(), table.column("rb").to_numpy()])
    ia, ib = index[: len(a)], index[len(a) :]
    comp = components(len(nodes), ia, ib)
    order = np.lexsort((np.arange(len(nodes)), -rank, comp))  # by component, best rank, lowest name
    is_rep = np.ones(len(order), dtype=bool)
    is_rep[1:] = comp[order][1:] != comp[order][:-1]
    rep_of_comp = np.empty(comp.max() + 1, dtype=np.int64)
    rep_of_comp[comp[order][is_rep]] = order[is_rep]
    dropped = np.sort(order[~is_rep])  # node indexes; ``nodes`` is sorted, so these names are too
    kept_ids = np.array([n.split(SEP, 1)[0] for n in nodes[rep_of_comp[comp[dropped]]]], dtype=object)
    return nodes[dropped], kept_ids


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the undirected edges ``a[i] - b[i]`` over nodes ``0..n-1``: each
    node's label is the smallest node of its component. Vectorised hooking and pointer jumping
    (Shiloach & Vishkin 1982): every round hooks the larger label of each edge onto the smaller,
    then compresses paths; labels only decrease, and it stops when every edge is inside a label."""
    label = np.arange(n)
    while True:
        la, lb = label[a], label[b]
        if (la == lb).all():
            return label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if (jumped == label).all():
                break
            label = jumped


def mark_duplicates(
    ds: ray.data.Dataset, dropped: np.ndarray, kept_ids: np.ndarray, prefix: str, blank: tuple[str, ...] = ()
) -> ray.data.Dataset:
    """Stage 4: ``_reason = "<prefix>_of:<kept id>"`` on every dropped document, "" elsewhere.
    Internal columns named in ``blank`` (cached signatures) are emptied: the schema stays the
    same for the rows outside the step's ``sources:``, the bytes are not carried further. Arrow
    batches: the text passes through untouched."""
    fn = functools.partial(_mark, dropped=dropped, kept_ids=kept_ids, prefix=prefix, blank=blank)
    return ds.map_batches(fn, batch_format="pyarrow")


def _mark(table: pa.Table, dropped: np.ndarray, kept_ids: np.ndarray, prefix: str, blank: tuple[str, ...]) -> pa.Table:
    n = table.num_rows
    for c in blank:
        kind = table.schema.field(c).type
        kind = pa.string() if pa.types.is_null(kind) else kind
        empty = b"" if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) else ""
        table = _with(table, c, pa.repeat(pa.scalar(empty, kind), n))
    reasons = np.full(n, KEEP, dtype=object)
    rows, pos = find_nodes(dropped, arrow_node_names(table).to_numpy(zero_copy_only=False))
    reasons[rows] = [f"{prefix}_of:{k}" for k in kept_ids[pos]]
    return _with(table, "_reason", pa.array(reasons.tolist(), pa.string()))


def _with(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)
