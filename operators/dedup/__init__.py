"""Deduplication: exact, MinHash, soft (reweighting) and semantic, over one shared cluster plan.

Importing this package registers its operators."""

from operators.dedup import clusters, exact_dedup, minhash_dedup, semantic_dedup, soft_dedup

__all__ = ["clusters", "exact_dedup", "minhash_dedup", "semantic_dedup", "soft_dedup"]
