"""Deduplication: exact, MinHash, soft (reweighting) and semantic, over one shared cluster plan.

Importing this package registers its operators."""

from operators.dedup import (
    bloom_dedup,
    clusters,
    exact_dedup,
    minhash_dedup,
    semantic_dedup,
    simhash_dedup,
    soft_dedup,
    substring_dedup,
)

__all__ = [
    "bloom_dedup",
    "clusters",
    "exact_dedup",
    "minhash_dedup",
    "semantic_dedup",
    "simhash_dedup",
    "soft_dedup",
    "substring_dedup",
]
