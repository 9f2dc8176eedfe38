"""Document length filter over characters and whitespace-separated words."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Filter, OperatorParams, register


@register
class LengthFilter(Filter):
    """Keeps documents whose character and word counts lie within bounds. Signals: ``n_chars``,
    ``n_words`` (whitespace split). The defaults keep everything of at least one word."""

    name = "length_filter"
    reasons = ("too_short", "too_long", "too_few_words", "too_many_words")
    signals = {"n_chars": "int64", "n_words": "int64"}

    class Params(OperatorParams):
        min_chars: int = Field(1, ge=0)
        max_chars: int = Field(10_000_000, ge=1)
        min_words: int = Field(1, ge=0)
        max_words: int = Field(1_000_000, ge=1)

    def annotate(self, batch: Batch) -> Batch:
        texts = batch["text"]
        return {
            "n_chars": np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
            "n_words": np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts)),
        }

    def decide(self, batch: Batch) -> np.ndarray:
        p = self.params
        chars, words = batch["n_chars"], batch["n_words"]
        reason = np.full(len(chars), "", dtype=object)
        # later assignments win: the most specific violated bound is reported
        reason[words > p.max_words] = "too_many_words"
        reason[words < p.min_words] = "too_few_words"
        reason[chars > p.max_chars] = "too_long"
        reason[chars < p.min_chars] = "too_short"
        return reason
