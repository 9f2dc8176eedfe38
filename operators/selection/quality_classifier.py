"""DCLM-style quality classifier (Li et al. 2024, "DataComp-LM"): a fast linear model over
hashed word n-grams, trained on positive (high-quality) vs negative (random pool) documents.

DCLM uses fastText (word unigrams + bigrams); here the same features are hashed with
scikit-learn's ``HashingVectorizer`` and fitted with logistic regression. The model is a
compressed ``.npz`` of plain arrays (no pickle) plus a ``<model>.json`` with its metrics.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from operators.core.base import KEEP, Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.core.recipe import RecipeError
from operators.core.stages import to_arrow

N_FEATURES = 1 << 20


def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2")


def train_classifier(
    positive: list[str],
    negative: list[str],
    out: str | Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    c: float = 4.0,
) -> dict[str, Any]:
    """Fit on a stratified split, report held-out accuracy/AUC, refit on everything, save
    ``out`` (.npz) and ``out.json`` (metrics). Returns the metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    if len(positive) < 2 or len(negative) < 2:
        raise ValueError(f"need at least 2 positive and 2 negative documents, got {len(positive)} and {len(negative)}")
    texts = np.array(positive + negative, dtype=object)
    labels = np.array([1] * len(positive) + [0] * len(negative))
    vec = _vectorizer()
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    model = LogisticRegression(C=c, max_iter=2000, solver="liblinear")
    model.fit(vec.transform(x_train), y_train)
    prob = model.predict_proba(vec.transform(x_test))[:, 1]
    metrics = {
        "n_positive": len(positive),
        "n_negative": len(negative),
        "test_fraction": test_fraction,
        "test_accuracy": round(float(accuracy_score(y_test, prob >= 0.5)), 4),
        "test_auc": round(float(roc_auc_score(y_test, prob)), 4),
        "features": "hashed word 1-2 grams, 2^20 buckets",
        "seed": seed,
    }
    model.fit(vec.transform(texts), labels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:  # np.savez would append ".npz" to a name without it
        np.savez_compressed(fh, coef=model.coef_[0].astype(np.float32), intercept=np.float64(model.intercept_[0]))
    Path(f"{out}.json").write_text(json.dumps(metrics, indent=1))
    return metrics


@cache
def _load(path: str, digest: str) -> tuple[np.ndarray, float]:
    with np.load(path) as data:
        return data["coef"].astype(np.float64), float(data["intercept"])


def score_texts(texts: np.ndarray, model_path: str) -> np.ndarray:
    """P(high quality) of each text under the saved model."""
    coef, intercept = _load(model_path, file_sha256(model_path))
    logits = _vectorizer().transform([str(t) for t in texts]) @ coef + intercept
    return 1.0 / (1.0 + np.exp(-logits))


def file_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise RecipeError(
            f"quality_classifier.model: cannot read {path!r} ({err}); train one with `dataplan classifier train`"
        ) from None


@register
class QualityClassifier(GlobalOperator):
    """Scores documents with a trained quality classifier (``dataplan classifier train``) into
    the ``quality_score`` signal (cached; the cache key includes the model file's sha256) and
    keeps those with ``quality_score >= min_score`` or, with ``keep_fraction``, the top fraction
    of the pool (DCLM keeps its top 10%: ``keep_fraction: 0.1``). Others are dropped as
    ``low_quality_score``."""

    name = "quality_classifier"
    reasons = ("low_quality_score",)
    signals = {"quality_score": "float64"}
    annotate_params = ("model",)

    class Params(OperatorParams):
        model: str = Field(..., description="path of a model saved by `dataplan classifier train`")
        min_score: float | None = Field(None, ge=0, le=1)
        keep_fraction: float | None = Field(None, gt=0, le=1, description="keep the top fraction (DCLM: 0.1)")

        @model_validator(mode="after")
        def _one_rule(self):
            if (self.min_score is None) == (self.keep_fraction is None):
                raise ValueError("give exactly one of `min_score` or `keep_fraction`")
            return self

    def annotate_key(self) -> dict[str, Any]:
        return {**super().annotate_key(), "model_sha256": file_sha256(self.params.model)}

    def annotate(self, batch: Batch) -> Batch:
        return {"quality_score": score_texts(batch["text"], self.params.model)}

    def apply(self, ds, ctx: StepContext):
        ds = ds.materialize()  # read the parent stage once for every pass
        p = self.params
        threshold = p.min_score
        if threshold is None:
            scores = np.concatenate(
                [b["quality_score"] for b in ds.select_columns(["quality_score"]).iter_batches(batch_format="numpy")]
                or [np.zeros(0)]
            )
            k = max(1, round(p.keep_fraction * len(scores)))
            threshold = float(np.sort(scores)[-k]) if len(scores) else 0.0
        return ds.map_batches(_decide, fn_kwargs={"threshold": threshold}, batch_format="numpy", zero_copy_batch=False)


def _decide(batch: Batch, threshold: float) -> Any:
    scores = batch["quality_score"]
    reasons = np.where(scores >= threshold, KEEP, "low_quality_score").astype(object)
    detail = np.array([f"quality_score={s:.4f}" for s in scores], dtype=object)
    return to_arrow({**batch, "_reason": reasons, "_detail": detail})
