"""SimHash near-duplicate removal (Charikar 2002; Manku, Jain & Das Sarma 2007)."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.core.base import Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.dedup.clusters import candidate_edges, edge_table, mark_duplicates, node_names, resolve_clusters
from operators.text.text_hashing import batch_ngram_hashes, mix64

FINGERPRINT = "_simhash"
"""Cached fingerprint column: the 64 bits as int64 (internal, not in the run output)."""
_PAIRS = 1 << 20  # candidate pairs verified per vectorised step inside a partition


def fingerprints(texts: np.ndarray, ngram: int, seed: int) -> np.ndarray:
    """64-bit SimHash (Charikar 2002) of each text's word ``ngram`` shingles, as uint64.

    Each distinct shingle votes with weight ``1 + ln(count)`` (sublinear term frequency, SMART's
    "l" weighting; Manning, Raghavan & Schuetze 2008, 6.4.1) for the bits set in its seeded
    64-bit hash and against the others; bit j of the fingerprint is set where the votes for it
    outweigh those against. With raw counts a repeated shingle ("the", "0 0 0") decides the
    fingerprint alone, and unrelated code and licences land within 3 bits. Vectorised over the
    batch: one sort, then one ``np.add.reduceat`` per bit."""
    if len(texts) == 0:
        return np.zeros(0, dtype=np.uint64)
    hashes, offsets = batch_ngram_hashes(texts, ngram)  # every document has at least one
    doc = np.repeat(np.arange(len(texts)), np.diff(offsets))
    order = np.lexsort((hashes, doc))
    hashes, doc = hashes[order], doc[order]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = (hashes[1:] != hashes[:-1]) | (doc[1:] != doc[:-1])
    at = np.flatnonzero(first)
    weight = 1.0 + np.log(np.diff(np.append(at, len(hashes))))
    hashes = mix64(hashes[at] ^ mix64(np.array(seed, dtype=np.uint64)))
    starts = np.searchsorted(doc[at], np.arange(len(texts)))
    total = np.add.reduceat(weight, starts)
    out = np.zeros(len(texts), dtype=np.uint64)
    for j in range(64):
        votes = np.add.reduceat(weight * ((hashes >> np.uint64(j)) & np.uint64(1)), starts)
        out |= (2 * votes > total).astype(np.uint64) << np.uint64(j)
    return out


def block_keys(fps: np.ndarray, k: int) -> np.ndarray:
    """(n x k+1) bucket keys: the 64 bits cut into ``k + 1`` contiguous blocks, each block's value
    tagged with its index. By pigeonhole, fingerprints within Hamming distance ``k`` share at
    least one key (Manku et al. 2007, section 3); distinct (block, value) pairs never collide."""
    keys = np.empty((len(fps), k + 1), dtype=np.uint64)
    for b, bits in enumerate(np.array_split(np.arange(64, dtype=np.uint64), k + 1)):
        mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - len(bits))
        keys[:, b] = mix64(((fps >> bits[0]) & mask) | (np.uint64(b) << np.uint64(56)))
    return keys


def verified_edges(batch: Batch, k: int) -> pa.Table:
    """Edges of one partition's key rows (``key``, ``doc``, ``rank``, ``fp``): inside a bucket,
    rows with the same fingerprint join the first of them (distance 0, no pairs to check), and
    every pair of distinct fingerprints is an edge when its Hamming distance is at most ``k``."""
    order = np.lexsort((batch["fp"], batch["key"]))
    key, fp = batch["key"][order], batch["fp"][order]
    doc, rank = batch["doc"][order], batch["rank"][order].astype(np.float64)
    same_key = np.zeros(len(key), dtype=bool)
    same_key[1:] = key[1:] == key[:-1]
    same_fp = same_key.copy()
    same_fp[1:] &= fp[1:] == fp[:-1]
    first = np.maximum.accumulate(np.where(same_fp, 0, np.arange(len(key))))
    copies = np.flatnonzero(same_fp)
    # the distinct fingerprints of a bucket: each is paired with the ones after it in the bucket
    reps = np.flatnonzero(~same_fp)
    bucket = np.cumsum(~same_key[reps])
    after = np.searchsorted(bucket, bucket, side="right") - np.arange(len(reps)) - 1
    ends = np.cumsum(after)
    total = int(ends[-1]) if len(ends) else 0
    a, b = [first[copies]], [copies]
    for lo in range(0, total, _PAIRS):
        # pairs lo .. lo+_PAIRS of the enumeration (rep i, rep i+1 .. rep i+after[i])
        pair = np.arange(lo, min(lo + _PAIRS, total))
        left = np.searchsorted(ends, pair, side="right")
        right = left + 1 + pair - (ends[left] - after[left])
        close = np.bitwise_count(fp[reps[left]] ^ fp[reps[right]]) <= k
        a.append(reps[left][close])
        b.append(reps[right][close])
    return edge_table(doc, rank, np.concatenate(a), np.concatenate(b))


@register
class SimhashDedup(GlobalOperator):
    """Near-duplicate removal with 64-bit SimHash (Charikar 2002) as Manku, Jain & Das Sarma
    (2007) use it for web pages: documents whose fingerprints differ in at most
    ``hamming_distance`` bits (their k = 3) are duplicates.

    Features are lower-cased words (``ngram`` 1; Manku et al. use IR word features too) weighted
    ``1 + ln(count)``. Measured on the 12,067 shared domain documents: copies with 3 of 200-1000
    words changed land within 3 bits in 83% of cases at ``ngram`` 1, 52% at 2 and 28% at 3, and the
    146 pairs of originals within 3 bits at ``ngram`` 1 all share at least 71% of their words (with
    raw counts, 353 pairs share under half).

    Candidates come from the ``k + 1`` blocks of the fingerprint (pigeonhole: a pair within k bits
    agrees on a block; one bucket per block value, instead of Manku's permuted tables); every
    candidate pair's true distance is checked; connected components form clusters, each keeps its
    lowest id and drops the others as ``simhash_duplicate_of:<kept id>``. Fingerprints are cached:
    changing ``hamming_distance`` reuses them, only ``ngram`` and ``seed`` recompute."""

    name = "simhash_dedup"
    reasons = ("simhash_duplicate_of",)
    signals = {FINGERPRINT: "int64"}
    annotate_params = ("ngram", "seed")

    class Params(OperatorParams):
        ngram: int = Field(1, ge=1, description="word n-gram shingle size (1: words)")
        seed: int = Field(0, description="seed of the shingle hash")
        hamming_distance: int = Field(
            3, ge=0, le=7, description="most differing bits of a duplicate (Manku: 3); blocks of 64/(k+1) bits"
        )

    def annotate(self, batch: Batch) -> Batch:
        p = self.params
        return {FINGERPRINT: fingerprints(batch["text"], p.ngram, p.seed).view(np.int64)}

    def apply(self, ds, ctx: StepContext):
        k = self.params.hamming_distance
        keys = ds.select_columns(["id", "source", FINGERPRINT]).map_batches(
            _block_rows, fn_kwargs={"k": k}, batch_format="numpy"
        )
        edges = candidate_edges(keys, ctx.num_blocks, functools.partial(verified_edges, k=k))
        dropped, kept = resolve_clusters(edges)
        return mark_duplicates(ds, dropped, kept, "simhash_duplicate")


def _block_rows(batch: Batch, k: int) -> Batch:
    fps = batch[FINGERPRINT].astype(np.int64).view(np.uint64)
    return {
        "key": block_keys(fps, k).ravel(),
        "doc": np.repeat(node_names(batch), k + 1),
        "rank": np.zeros(len(fps) * (k + 1)),
        "fp": np.repeat(fps, k + 1),
    }
