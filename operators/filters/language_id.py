"""Language identification with py3langid (the model ships inside the wheel; nothing downloads)."""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Filter, OperatorParams, register
from operators.core.rules import threshold_detail

UNDETERMINED = "und"
_LETTER = re.compile(r"[^\W\d_]")


@cache
def identifier():
    """py3langid's naive-Bayes identifier (140 language labels), probabilities normalised to sum 1;
    loaded once per worker process."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@register
class LanguageId(Filter):
    """Language ID (py3langid 0.4, a fork of Lui & Baldwin's langid.py, 2012). Signals: ``lang`` (ISO
    639-1 code, ``und`` for text without letters) and ``lang_score`` (its normalised probability).
    Keeps documents whose language is in ``keep`` (any language when empty) with a score above
    ``min_score`` (strictly, as datatrove's ``LanguageFilter``). Defaults are FineWeb's (Penedo et al.
    2024): English, 0.65 — FineWeb scores with fastText lid.176, so the same threshold is a little
    stricter or looser here; ``benchmarks/langid.py`` measures accuracy. Reasons: ``lang_mismatch``,
    ``lang_low_score``. No param changes the signals, so moving ``keep``/``min_score`` never re-runs
    identification."""

    name = "language_id"
    reasons = ("lang_mismatch", "lang_low_score")
    signals = {"lang": "str", "lang_score": "float64"}
    annotate_params = ()

    class Params(OperatorParams):
        keep: list[str] = Field(default_factory=lambda: ["en"], description="languages kept; [] keeps any")
        min_score: float = Field(0.65, ge=0.0, le=1.0)

    def annotate(self, batch: Batch) -> Batch:
        ident = identifier()
        n = len(batch["text"])
        langs = np.full(n, UNDETERMINED, dtype=object)
        scores = np.zeros(n, dtype=np.float64)
        for i, text in enumerate(batch["text"]):
            if _LETTER.search(text):
                langs[i], scores[i] = ident.classify(text)
        return {"lang": langs, "lang_score": scores}

    def decide(self, batch: Batch) -> np.ndarray:
        p = self.params
        reason = np.full(len(batch["lang"]), "", dtype=object)
        reason[batch["lang_score"] <= p.min_score] = "lang_low_score"
        if p.keep:
            reason[~np.isin(batch["lang"].astype(str), p.keep)] = "lang_mismatch"
        return reason

    def details(self, batch: Batch, reasons: np.ndarray) -> np.ndarray:
        """``lang_mismatch``: the language found and the ones kept; ``lang_low_score``: the score
        and the ``min_score`` it did not exceed."""
        out = np.full(len(reasons), "", dtype=object)
        langs, scores = batch["lang"], batch["lang_score"]
        for i in np.flatnonzero(reasons == "lang_low_score"):
            out[i] = threshold_detail("lang_score", scores[i], "<=", self.params.min_score, "min_score")
        for i in np.flatnonzero(reasons == "lang_mismatch"):
            out[i] = json.dumps(
                {"signal": "lang", "value": str(langs[i]), "keep": self.params.keep}, separators=(",", ":")
            )
        return out
