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
TARGET_LIKE_SPREADS = 3.0
"""A target-like document stands this many of the target documents' spreads above the source's median."""
TARGET_DOMAIN_PERCENTILE = 5
"""A document of the target's domain weighs at least this percentile of the target documents' own weights."""
UNIFORM_WEIGHT = 0.1
"""Interpolation weight of the uniform distribution in both models of the per-document view."""
MAD_TO_SD = 1.4826


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
    likes better than the source's own.

    Per document (``target_like``): a source that holds a minority of target-domain documents in a
    large generic mix has a mean weight far below 0, like a source with none; ``frac_positive``
    misses them too, for a document scored by a raw model that contains it prefers that model.
    So each sampled document is scored by its log weight per n-gram with the raw model fitted on
    the *other* sampled documents (left-one-out), and each target document likewise with the target
    model fitted on the other target documents; both models are interpolated with the uniform
    distribution at the same weight, so a rare n-gram does not favour the smaller model as add-one
    smoothing would. A document is *target-like* when the target model explains it better
    (weight > 0) and its weight stands ``TARGET_LIKE_SPREADS`` spreads of the target documents'
    own weights above the source's median, the spread scaled to its length (a weight per n-gram
    of a document of ``n`` n-grams varies as ``1/sqrt(n)``). In a source that is wholly the
    target's domain nothing stands out (its median is about 0 and its spread the target's), so its
    share is about 0 however large the target set; with no target documents, none beats the source.
    ``target_domain_share`` tells those two apart: the share of documents that weigh at least
    ``TARGET_DOMAIN_PERCENTILE`` of the target documents' own weights."""
    target_features = hashed_ngrams(list(target_texts))
    target_log = log_bag_model(target_features)
    raw_log = log_bag_model(source_features)
    weights = np.asarray(source_features @ (target_log - raw_log)).ravel()
    ngrams = np.asarray(source_features.sum(axis=1)).ravel()
    has = ngrams > 0
    return {
        "target_docs": len(target_texts),
        "mean_log_weight": float(weights[has].mean()) if has.any() else 0.0,
        "mean_log_weight_per_ngram": float((weights[has] / ngrams[has]).mean()) if has.any() else 0.0,
        "frac_positive": float((weights[has] > 0).mean()) if has.any() else 0.0,
        **target_like(source_features, target_features),
    }


def smoothed_log_model(counts, weight: float = UNIFORM_WEIGHT) -> np.ndarray:
    """Log-probabilities of a bag-of-ngrams model fitted on ``counts`` and interpolated with the
    uniform distribution at ``weight`` (Jelinek & Mercer 1980)."""
    totals = np.asarray(counts.sum(axis=0)).ravel()
    mle = totals / totals.sum() if totals.sum() else totals
    return np.log((1 - weight) * mle + weight / len(totals))


def held_out_log_weights(
    features, other_log: np.ndarray, weight: float = UNIFORM_WEIGHT
) -> tuple[np.ndarray, np.ndarray]:
    """Per document with n-grams: the mean over its n-grams of ``other_log - log p_own``, where
    ``p_own`` is ``smoothed_log_model`` of the *other* rows of ``features`` (left-one-out), and
    its n-gram count."""
    features = features.tocsr()
    totals = np.asarray(features.sum(axis=0)).ravel()
    ngrams = np.asarray(features.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
    counts, buckets = features.data, features.indices
    rest = totals.sum() - ngrams[rows]
    mle = np.divide(totals[buckets] - counts, rest, out=np.zeros_like(counts), where=rest > 0)
    own = np.log((1 - weight) * mle + weight / features.shape[1])
    summed = np.bincount(rows, weights=counts * (other_log[buckets] - own), minlength=features.shape[0])
    has = ngrams > 0
    return summed[has] / ngrams[has], ngrams[has]


def target_like(source_features, target_features) -> dict[str, Any]:
    """The per-document view of ``dsir_similarity``: quantiles of the sampled documents' left-one-out
    log weight per n-gram, the target documents' spread, the target-like share, and the share of
    documents that score at least as the target's own documents do (their 5th percentile):
    about 1 for a source wholly of the target's domain, the diluted share, about 0 for none."""
    docs, n = held_out_log_weights(source_features, smoothed_log_model(target_features))
    own, m = held_out_log_weights(target_features, smoothed_log_model(source_features))
    own = -own  # log p_target(-doc) - log p_raw per n-gram, per target document
    scaled = own * np.sqrt(m)
    spread = MAD_TO_SD * float(np.median(np.abs(scaled - np.median(scaled)))) if own.size else 0.0
    out = {"doc_log_weight": quantiles(docs, LENGTH_QUANTILES), "target_spread": spread}
    if not docs.size:
        return {**out, "target_like_share": 0.0, "target_domain_share": 0.0}
    cut = np.maximum(0.0, np.median(docs) + TARGET_LIKE_SPREADS * spread / np.sqrt(n))
    floor = np.percentile(own, TARGET_DOMAIN_PERCENTILE) if own.size else np.inf
    return {
        **out,
        "target_like_share": float((docs > cut).mean()),
        "target_domain_share": float((docs >= floor).mean()),
    }
