"""Statistics over a sample of documents: quantiles, near-duplicates (MinHash LSH) and DSIR-style
target similarity. Pure functions over lists of texts / numpy arrays; the models live in ``profile``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LENGTH_QUANTILES = (5, 25, 50, 75, 95)
SIGNAL_QUANTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)

MINHASH_NGRAM = 5
MINHASH_PERMS = 128
MINHASH_THRESHOLD = 0.8
DSIR_BUCKETS = 10_000


def quantiles(values: np.ndarray, qs: Sequence[int]) -> dict[str, float]:
    """``{"p5": ..., ...}`` over the finite values (linear interpolation), 0.0 when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {f"p{q}": 0.0 for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(finite, qs), strict=True)}


def signal_summary(values: np.ndarray) -> dict[str, Any]:
    """Percentiles p1..p99, mean, std (population) and the number of finite values of one signal."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    moments = (float(finite.mean()), float(finite.std())) if finite.size else (0.0, 0.0)
    return {**quantiles(finite, SIGNAL_QUANTILES), "mean": moments[0], "std": moments[1], "n": int(finite.size)}


def shingles(text: str, n: int = MINHASH_NGRAM) -> list[bytes]:
    """Distinct lowercase word ``n``-grams (whitespace split); a shorter text is one shingle."""
    words = text.lower().split()
    if len(words) <= n:
        return [" ".join(words).encode("utf-8")]
    return list({" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)})


def duplicate_stats(texts: Sequence[str], seed: int) -> dict[str, Any]:
    """Exact and near duplicates among ``texts``. Near: MinHash (128 permutations, 5-word shingles,
    datasketch) with LSH at Jaccard 0.8 (the banding datasketch picks for that threshold), each
    candidate pair confirmed by its estimated Jaccard; documents are clustered by union-find and a
    dedup keeping one per cluster would drop ``near_duplicate_docs`` (exact copies included)."""
    from datasketch import MinHash, MinHashLSH

    n = len(texts)
    exact = n - len(set(texts))
    sigs = MinHash.bulk([shingles(t) for t in texts], num_perm=MINHASH_PERMS, seed=seed)
    lsh = MinHashLSH(threshold=MINHASH_THRESHOLD, num_perm=MINHASH_PERMS)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, sig in enumerate(sigs):
        for j in sorted(lsh.query(sig)):
            if sig.jaccard(sigs[j]) >= MINHASH_THRESHOLD:
                parent[root(i)] = root(j)
        lsh.insert(i, sig)
    clusters = len({root(i) for i in range(n)})
    return {
        "exact_duplicate_docs": exact,
        "exact_duplicate_rate": exact / n if n else 0.0,
        "near_duplicate_docs": n - clusters,
        "near_duplicate_rate": (n - clusters) / n if n else 0.0,
    }


def hashed_ngrams(texts: Sequence[str]):
    """Sparse (docs x 10,000) counts of hashed lowercase word unigrams and bigrams (word/punctuation
    tokens as NLTK's ``WordPunctTokenizer``), DSIR's feature space (Xie et al. 2023)."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import HashingVectorizer

    if not texts:
        return csr_matrix((0, DSIR_BUCKETS), dtype=np.float64)
    vectorizer = HashingVectorizer(
        n_features=DSIR_BUCKETS,
        ngram_range=(1, 2),
        token_pattern=r"\w+|[^\w\s]+",
        lowercase=True,
        alternate_sign=False,
        norm=None,
        dtype=np.float64,
    )
    return vectorizer.transform(texts)


def log_bag_model(counts) -> np.ndarray:
    """Log-probabilities of a Laplace-smoothed (add-one) bag-of-ngrams model fitted on ``counts``."""
    totals = np.asarray(counts.sum(axis=0)).ravel() + 1.0
    return np.log(totals / totals.sum())


def dsir_similarity(source_features, target_texts: Sequence[str]) -> dict[str, Any]:
    """DSIR importance weights (Xie et al. 2023, "Data Selection for Language Models via Importance
    Resampling"): ``log w(x) = log p_target(x) - log p_raw(x)`` under the two bag-of-hashed-ngram
    models, the raw model fitted on the source sample itself. Its mean over the sample estimates
    ``-KL(source || target)`` on these features: 0 means indistinguishable, more negative means
    further away. ``mean_log_weight`` sums over a document's n-grams as DSIR does;
    ``mean_log_weight_per_ngram`` divides by the document's n-gram count, comparable across sources
    with different document lengths; ``frac_positive`` is the share of documents the target model
    likes better than the source's own."""
    target_log = log_bag_model(hashed_ngrams(list(target_texts)))
    raw_log = log_bag_model(source_features)
    weights = np.asarray(source_features @ (target_log - raw_log)).ravel()
    ngrams = np.asarray(source_features.sum(axis=1)).ravel()
    has = ngrams > 0
    return {
        "target_docs": len(target_texts),
        "mean_log_weight": float(weights[has].mean()) if has.any() else 0.0,
        "mean_log_weight_per_ngram": float((weights[has] / ngrams[has]).mean()) if has.any() else 0.0,
        "frac_positive": float((weights[has] > 0).mean()) if has.any() else 0.0,
    }
