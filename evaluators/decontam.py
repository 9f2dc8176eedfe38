"""Per-set contamination report: word 13-gram overlap between a training stream and evaluation sets.

Uses the n-gram index of ``operators.filters.decontaminate`` (the operator that drops contaminated
documents), so the report and the filter agree on what overlaps.
"""

from __future__ import annotations

import numpy as np

from operators import NGRAM, count_in, doc_ngrams


def contamination_report(
    train_texts: list[str], eval_sets: dict[str, list[str]], n: int = NGRAM
) -> dict[str, dict[str, float]]:
    """For each evaluation set (name -> record texts; ``read_texts(files, records=True)`` reads a file): its records, how many share an n-gram with the training texts
    (``contaminated_records`` and ``contaminated_fraction``), and how many training documents
    share an n-gram with the set (``contaminated_train_docs``)."""
    memo: dict[str, int] = {}
    train_grams = [doc_ngrams(t, n, memo) for t in train_texts]
    train_index = _union(train_grams)
    report = {}
    for name, records in eval_sets.items():
        record_grams = [doc_ngrams(t, n, memo) for t in records]
        hit_records = sum(count_in(g, train_index) > 0 for g in record_grams)
        set_index = _union(record_grams)
        hit_docs = sum(count_in(g, set_index) > 0 for g in train_grams)
        report[name] = {
            "records": len(records),
            "contaminated_records": hit_records,
            "contaminated_fraction": hit_records / max(len(records), 1),
            "contaminated_train_docs": hit_docs,
        }
    return report


def _union(grams: list[np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate(grams)) if grams else np.zeros(0, dtype=np.uint64)
