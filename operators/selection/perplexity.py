"""CCNet-style perplexity selection (Wenzek et al. 2020) with a small character n-gram LM."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from operators.core.base import KEEP, Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.core.stages import to_arrow
from operators.readers.reference import reference_texts
from operators.text.ngram_lm import NgramLM, utf8_tokens


@register
class PerplexitySelect(GlobalOperator):
    """Keeps documents whose perplexity under a character n-gram LM trained on a reference set
    lies in a band (CCNet: a 5-gram LM trained on Wikipedia; documents split into head/middle/
    tail at the 30th/60th perplexity percentiles). The reference is a recipe source
    (``reference``) or files (``reference_files``). ``band`` is given in quantiles of the pool
    (default keeps CCNet's head + middle, ``[0, 0.6]``); ``max_perplexity`` adds an absolute cap.
    Others are dropped as ``perplexity_out_of_band`` with the perplexity in the ledger detail."""

    name = "perplexity_select"
    reasons = ("perplexity_out_of_band",)

    class Params(OperatorParams):
        reference: str | None = Field(None, description="name of the recipe source the LM is trained on")
        reference_files: list[str] = Field(default_factory=list, description="reference files (jsonl/parquet/txt)")
        order: int = Field(5, ge=1, le=10, description="n-gram order over UTF-8 bytes (CCNet: 5-gram LM)")
        buckets: int = Field(1 << 19, ge=1024, description="hashed count table size per order")
        beta: float = Field(2.0, gt=0, description="Dirichlet smoothing strength")
        band: tuple[float, float] = Field((0.0, 0.6), description="kept perplexity quantiles of the pool")
        max_perplexity: float | None = Field(None, gt=0)

        @model_validator(mode="after")
        def _valid(self):
            if bool(self.reference) == bool(self.reference_files):
                raise ValueError("give exactly one of `reference` (a source name) or `reference_files`")
            lo, hi = self.band
            if not 0 <= lo < hi <= 1:
                raise ValueError(f"band must satisfy 0 <= low < high <= 1, got {self.band}")
            return self

    def apply(self, ds, ctx: StepContext):
        p = self.params
        texts = reference_texts(ctx, p.reference, p.reference_files, "perplexity_select.reference")
        lm = NgramLM(p.order, p.buckets, p.beta, vocab=256)
        for text in texts:
            lm.add(utf8_tokens(text))
        scored = ds.map_batches(functools.partial(_score, lm=lm), batch_format="numpy", zero_copy_batch=False)
        scored = scored.materialize()
        ppl = np.concatenate(
            [b["_perplexity"] for b in scored.select_columns(["_perplexity"]).iter_batches(batch_format="numpy")]
            or [np.zeros(0)]
        )
        lo, hi = (np.quantile(ppl, q) if len(ppl) else 0.0 for q in p.band)
        if p.max_perplexity is not None:
            hi = min(hi, p.max_perplexity)
        return scored.map_batches(
            _decide, fn_kwargs={"low": lo, "high": hi}, batch_format="numpy", zero_copy_batch=False
        )


def perplexity(lm: NgramLM, text: str) -> float:
    """Per-byte perplexity: exp of the mean negative log-probability of the UTF-8 bytes."""
    logp = lm.log_probs(utf8_tokens(text))
    return float(np.exp(-logp.mean())) if len(logp) else float("inf")


def _score(batch: Batch, lm: NgramLM) -> pa.Table:
    return to_arrow({**batch, "_perplexity": np.array([perplexity(lm, str(t)) for t in batch["text"]])})


def _decide(batch: Batch, low: float, high: float) -> pa.Table:
    ppl = batch["_perplexity"]
    reasons = np.where((ppl >= low) & (ppl <= high), KEEP, "perplexity_out_of_band").astype(object)
    detail = np.array([f"perplexity={v:.2f}" for v in ppl], dtype=object)
    out = {k: v for k, v in batch.items() if k != "_perplexity"}
    return to_arrow({**out, "_reason": reasons, "_detail": detail})
