"""Document length filter over characters and whitespace-separated words."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from operators.core.base import Batch, OperatorParams, register
from operators.core.rules import Rule, ThresholdFilter


@register
class LengthFilter(ThresholdFilter):
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

    def rules(self, batch: Batch) -> list[Rule]:
        p = self.params
        chars, words = batch["n_chars"], batch["n_words"]
        return [  # the first violated bound is reported
            Rule("too_short", "n_chars", chars, "<", p.min_chars, "min_chars"),
            Rule("too_long", "n_chars", chars, ">", p.max_chars, "max_chars"),
            Rule("too_few_words", "n_words", words, "<", p.min_words, "min_words"),
            Rule("too_many_words", "n_words", words, ">", p.max_words, "max_words"),
        ]
