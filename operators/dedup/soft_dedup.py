"""SoftDeDup (He et al. 2024, "SoftDedup: an Efficient Data Reweighting Method for Speeding Up
Language Model Pre-training", ACL 2024, arXiv:2407.06654)."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.core.base import Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.core.stages import to_arrow
from operators.text.ngram_lm import NgramLM
from operators.text.text_hashing import word_hashes, words


def word_tokens(text: str, memo: dict[str, int]) -> np.ndarray:
    return word_hashes(words(text), memo)


@register
class SoftDedup(GlobalOperator):
    """Down-weights common documents instead of dropping duplicates. A word ``order``-gram LM
    (paper: 4-gram) is trained on the whole pool (hashed counts, summed across Ray blocks); a
    document's commonness is the geometric mean of its n-gram probabilities. Documents are split
    into ``segments`` equal-size commonness quantiles; each segment's weight is proportional to
    1 / its mean commonness (paper: W(x) ~ 1/p(x)), normalised to mean 1 over the pool and
    clipped to [``min_weight``, ``max_weight``]. The result is the ``weight`` column the mixer
    samples by; rows outside the step's ``sources:`` get NaN (= unweighted). Nothing is dropped."""

    name = "soft_dedup"
    signals = {"weight": "float64"}

    class Params(OperatorParams):
        order: int = Field(4, ge=1, le=8, description="word n-gram order (paper: 4)")
        buckets: int = Field(1 << 19, ge=1024, description="hashed count table size per order")
        beta: float = Field(1.0, gt=0, description="Dirichlet smoothing strength")
        segments: int = Field(10, ge=1, description="commonness quantile segments")
        min_weight: float = Field(0.1, gt=0)
        max_weight: float = Field(10.0, gt=0)

    def annotate(self, batch: Batch) -> Batch:
        return {"weight": np.ones(len(batch["id"]))}  # placeholder; ``apply`` sets the weights

    def apply(self, ds, ctx: StepContext):
        ds = ds.materialize()  # read the parent stage once for every pass
        p = self.params
        lm = NgramLM(p.order, p.buckets, p.beta, vocab=p.buckets)
        counted = ds.map_batches(functools.partial(_count, params=p), batch_format="numpy", batch_size=None)
        for part in counted.iter_batches(batch_format="numpy", batch_size=1):
            block_lm = NgramLM(p.order, p.buckets, p.beta, vocab=p.buckets)
            block_lm.grams, block_lm.contexts, block_lm.total = (
                part["grams"][0],
                part["contexts"][0],
                float(part["total"][0]),
            )
            lm.merge(block_lm)
        scored = ds.map_batches(functools.partial(_commonness, lm=lm), batch_format="numpy", zero_copy_batch=False)
        scored = scored.materialize()
        common = np.concatenate(
            [b["_commonness"] for b in scored.select_columns(["_commonness"]).iter_batches(batch_format="numpy")]
            or [np.zeros(0)]
        )
        edges, seg_weight = segment_weights(common, p.segments, p.min_weight, p.max_weight)
        return scored.map_batches(
            _weigh, fn_kwargs={"edges": edges, "seg_weight": seg_weight}, batch_format="numpy", zero_copy_batch=False
        )


def segment_weights(common: np.ndarray, segments: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantile segment edges of the commonness values and each segment's weight."""
    if len(common) == 0:
        return np.zeros(0), np.ones(1)
    edges = np.quantile(common, np.linspace(0, 1, segments + 1)[1:-1])
    seg = np.searchsorted(edges, common, side="right")
    mean = np.array([common[seg == s].mean() if np.any(seg == s) else np.nan for s in range(segments)])
    raw = np.where(np.isnan(mean), 1.0, 1.0 / np.maximum(mean, 1e-300))
    raw /= raw[seg].mean()  # mean weight over the documents is 1
    return edges, np.clip(raw, lo, hi)


def _count(batch: Batch, params: SoftDedup.Params) -> Batch:
    lm = NgramLM(params.order, params.buckets, params.beta, vocab=params.buckets)
    memo: dict[str, int] = {}
    for text in batch["text"]:
        lm.add(word_tokens(str(text), memo))
    return {"grams": lm.grams[None], "contexts": lm.contexts[None], "total": np.array([lm.total])}


def _commonness(batch: Batch, lm: NgramLM) -> pa.Table:
    memo: dict[str, int] = {}
    values = []
    for text in batch["text"]:
        logp = lm.log_probs(word_tokens(str(text), memo))
        values.append(float(np.exp(logp.mean())) if len(logp) else 0.0)
    return to_arrow({**batch, "_commonness": np.array(values)})


def _weigh(batch: Batch, edges: np.ndarray, seg_weight: np.ndarray) -> pa.Table:
    seg = np.searchsorted(edges, batch["_commonness"], side="right")
    out = {k: v for k, v in batch.items() if k != "_commonness"}
    return to_arrow({**out, "weight": seg_weight[seg].astype(np.float64)})
