"""MinHash-LSH near-duplicate removal (Broder 1997; FineWeb's settings, Penedo et al. 2024)."""

from __future__ import annotations

import functools

import numpy as np
from pydantic import Field, model_validator

from operators.core.base import Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.dedup.clusters import candidate_edges, mark_duplicates, node_names, resolve_clusters
from operators.text.text_hashing import batch_ngram_hashes, mix64

SIGNATURE = "_minhash"
"""Cached signature column: ``num_perm`` uint32 values as bytes (internal, not in the run output)."""
_PIECE = 8192  # n-gram hashes per vectorised MinHash block (x num_perm uint64 = 7.3 MB at 112)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-shift hash parameters (Dietzfelbinger et al. 1997): odd 64-bit ``a``, any ``b``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def signatures(texts: np.ndarray, ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32) of word ``ngram`` shingles.

    Each permutation is ``h_i(x) = (a_i * x + b_i) >> 32`` over the 64-bit shingle hash. The shift
    is monotone, so it is taken once on each document's minimum of ``a_i * x + b_i``. The batch's
    hashes are cut into blocks of ``_PIECE`` (whatever the document boundaries): a block is
    permuted into a (num_perm x piece) buffer, in place, reduced per document slice with
    ``np.minimum.reduceat`` along its contiguous axis, and folded into the running minima of the
    documents it touches."""
    hashes, offsets = batch_ngram_hashes(texts, ngram)
    a, b = (p[:, None] for p in permutations(num_perm, seed))
    best = np.full((num_perm, len(texts)), np.iinfo(np.uint64).max, dtype=np.uint64)
    buffer = np.empty((num_perm, _PIECE), dtype=np.uint64)
    for start in range(0, len(hashes), _PIECE):
        stop = min(start + _PIECE, len(hashes))
        first = np.searchsorted(offsets, start, side="right") - 1  # documents first..last-1 touch it
        last = np.searchsorted(offsets, stop, side="left")
        permuted = buffer[:, : stop - start]
        np.multiply(a, hashes[None, start:stop], out=permuted)
        np.add(permuted, b, out=permuted)
        cuts = np.maximum(offsets[first:last], start) - start
        touched = best[:, first:last]
        np.minimum(touched, np.minimum.reduceat(permuted, cuts, axis=1), out=touched)
    return (best.T >> np.uint64(32)).astype(np.uint32)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): the band's ``rows`` values hashed with its index."""
    n = len(sigs)
    banded = sigs[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    acc = np.broadcast_to(np.arange(1, bands + 1, dtype=np.uint64), (n, bands)).copy()
    for r in range(rows):
        acc = mix64(acc ^ banded[:, :, r])
    return acc


@register
class MinhashDedup(GlobalOperator):
    """Near-duplicate removal with MinHash-LSH. Documents are lower-cased word ``ngram`` shingles
    (FineWeb: 5-grams); ``num_perm`` MinHash values are cached per document; ``bands`` x ``rows``
    (FineWeb: 14 x 8, candidate probability 1-(1-s^8)^14, ~0.5 at Jaccard 0.72) group candidate
    pairs, connected components form clusters and each cluster keeps one document: the highest
    ``keep_by`` signal if given, else (and on ties) the lowest id. The others are dropped as
    ``near_duplicate_of:<kept id>``. Changing ``bands``/``rows``/``keep_by`` reuses the cached
    signatures; only ``ngram``, ``num_perm`` and ``seed`` re-shingle."""

    name = "minhash_dedup"
    reasons = ("near_duplicate_of",)
    signals = {SIGNATURE: "bytes"}
    annotate_params = ("ngram", "num_perm", "seed")

    class Params(OperatorParams):
        ngram: int = Field(5, ge=1, description="word n-gram shingle size (FineWeb: 5)")
        num_perm: int = Field(112, ge=1, le=1024, description="MinHash values cached per document")
        seed: int = Field(1, description="seed of the hash permutations")
        bands: int = Field(14, ge=1, description="LSH bands (FineWeb: 14)")
        rows: int = Field(8, ge=1, description="MinHash values per band (FineWeb: 8)")
        keep_by: str | None = Field(None, description="numeric signal column: keep the highest per cluster")

        @model_validator(mode="after")
        def _fits(self):
            if self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
            return self

    def annotate(self, batch: Batch) -> Batch:
        p = self.params
        sigs = signatures(batch["text"], p.ngram, p.num_perm, p.seed)
        return {SIGNATURE: np.array([s.tobytes() for s in sigs], dtype=object)}

    def apply(self, ds, ctx: StepContext):
        p = self.params
        # each pass reads the parent stage from disk again: nothing of the corpus is held in memory
        needed = ["id", "source", SIGNATURE, *([p.keep_by] if p.keep_by else [])]
        keys = ds.select_columns(needed).map_batches(
            functools.partial(_band_rows, bands=p.bands, rows=p.rows, keep_by=p.keep_by), batch_format="numpy"
        )
        dropped, kept = resolve_clusters(candidate_edges(keys, ctx.num_blocks))
        return mark_duplicates(ds, dropped, kept, "near_duplicate", blank=(SIGNATURE,))


def decode_signatures(column: np.ndarray) -> np.ndarray:
    """The cached signature column back to an (n x num_perm) uint32 array."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.uint32)
    return np.frombuffer(b"".join(column), dtype=np.uint32).reshape(len(column), -1)


def _band_rows(batch: Batch, bands: int, rows: int, keep_by: str | None) -> Batch:
    keys = band_keys(decode_signatures(batch[SIGNATURE]), bands, rows)
    rank = np.zeros(len(keys)) if keep_by is None else np.nan_to_num(batch[keep_by].astype(np.float64), nan=-np.inf)
    return {
        "key": keys.ravel(),
        "doc": np.repeat(node_names(batch), bands),
        "rank": np.repeat(rank, bands),
    }
