"""Gopher quality filter (Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
Training Gopher", appendix A.1.1), with datatrove's ``GopherQualityFilter`` semantics."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from operators.core.base import Batch, OperatorParams, register
from operators.core.rules import Rule, ThresholdFilter
from operators.text.text_stats import spacy_words, text_stats

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
"""Gopher's stop words (appendix A.1.1); datatrove's ``STOP_WORDS``."""
BULLETS = ("•", "-")
ELLIPSES = ("...", "…")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(den)), where=den > 0)


@register
class GopherQuality(ThresholdFilter):
    """Gopher's quality rules (Rae et al. 2021, appendix A.1.1), defaults as published and in
    datatrove 0.10 (``GopherQualityFilter``). A document is dropped when, checked in this order:

    - its number of words (those with a non-punctuation character) is outside [50, 100,000]
      (``gopher_too_few_words`` / ``gopher_too_many_words``);
    - their mean length is outside [3, 10] characters (``gopher_short_words`` / ``gopher_long_words``);
    - the ``#`` count or the ellipsis count (``...`` or ``…``) per word exceeds 0.1
      (``gopher_too_many_hashes`` / ``gopher_too_many_ellipses``);
    - over 90 % of lines start with a bullet (``•`` or ``-``) or over 30 % end with an ellipsis
      (``gopher_too_many_bullet_lines`` / ``gopher_too_many_ellipsis_lines``);
    - under 80 % of words contain an alphabetic character (``gopher_too_few_alpha_words``);
    - fewer than 2 of the stop words (the, be, to, of, and, that, have, with) occur
      (``gopher_too_few_stop_words``).

    Words are spaCy English tokens (see ``operators.text.text_stats``), as in datatrove. Where the paper
    allows two readings we follow datatrove: the symbol ratios and the alphabetic fraction divide
    by *all* tokens (punctuation tokens included), while the word-count and mean-length rules count
    only tokens with a non-punctuation character; stop words match case-sensitively; lines are
    ``str.splitlines()``. ``None`` disables a rule.
    """

    name = "gopher_quality"
    reasons = (
        "gopher_too_few_words",
        "gopher_too_many_words",
        "gopher_short_words",
        "gopher_long_words",
        "gopher_too_many_hashes",
        "gopher_too_many_ellipses",
        "gopher_too_many_bullet_lines",
        "gopher_too_many_ellipsis_lines",
        "gopher_too_few_alpha_words",
        "gopher_too_few_stop_words",
    )
    signals = {
        "gopher_n_words": "int64",
        "gopher_mean_word_length": "float64",
        "gopher_hash_ratio": "float64",
        "gopher_ellipsis_ratio": "float64",
        "gopher_bullet_lines_ratio": "float64",
        "gopher_ellipsis_lines_ratio": "float64",
        "gopher_alpha_words_ratio": "float64",
        "gopher_n_stop_words": "int64",
    }
    annotate_params = ("stop_words",)

    class Params(OperatorParams):
        min_words: int | None = Field(50, ge=0)
        max_words: int | None = Field(100_000, ge=0)
        min_mean_word_length: float | None = 3
        max_mean_word_length: float | None = 10
        max_symbol_word_ratio: float | None = 0.1
        max_bullet_lines_ratio: float | None = 0.9
        max_ellipsis_lines_ratio: float | None = 0.3
        min_alpha_words_ratio: float | None = 0.8
        min_stop_words: int | None = Field(2, ge=0)
        stop_words: tuple[str, ...] = STOP_WORDS

    def annotate(self, batch: Batch) -> Batch:
        stats = text_stats(batch["text"])
        words = stats.words
        n_tokens = words.counts
        non_symbol = words.feature("non_symbol")
        n_words = words.sum(non_symbol)
        lex = spacy_words()
        stop_ids = [i for i in (lex.token_id_of(w) for w in self.params.stop_words) if i >= 0]
        is_stop = np.isin(words.tokens, stop_ids)
        distinct_stops = np.unique(words.segment[is_stop] * lex.vocab_size + words.tokens[is_stop])
        texts, lines = stats.texts, stats.splitlines
        n_lines = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        return {
            "gopher_n_words": n_words.astype(np.int64),
            "gopher_mean_word_length": np.divide(
                words.sum(words.feature("length") * non_symbol),
                n_words,
                out=np.full(len(texts), np.nan),
                where=n_words > 0,
            ),
            "gopher_hash_ratio": _ratio(np.array([t.count("#") for t in texts], dtype=np.float64), n_tokens),
            "gopher_ellipsis_ratio": _ratio(
                np.array([t.count("...") + t.count("…") for t in texts], dtype=np.float64), n_tokens
            ),
            "gopher_bullet_lines_ratio": _ratio(
                np.array([sum(s.lstrip().startswith(BULLETS) for s in ls) for ls in lines], dtype=np.float64), n_lines
            ),
            "gopher_ellipsis_lines_ratio": _ratio(
                np.array([sum(s.rstrip().endswith(ELLIPSES) for s in ls) for ls in lines], dtype=np.float64), n_lines
            ),
            "gopher_alpha_words_ratio": _ratio(words.sum(words.feature("alpha")), n_tokens),
            "gopher_n_stop_words": np.bincount(distinct_stops // lex.vocab_size, minlength=len(texts)).astype(np.int64),
        }

    def rules(self, batch: Batch) -> list[Rule]:
        p = self.params
        table = [
            ("gopher_too_few_words", "gopher_n_words", "<", "min_words"),
            ("gopher_too_many_words", "gopher_n_words", ">", "max_words"),
            ("gopher_short_words", "gopher_mean_word_length", "<", "min_mean_word_length"),
            ("gopher_long_words", "gopher_mean_word_length", ">", "max_mean_word_length"),
            ("gopher_too_many_hashes", "gopher_hash_ratio", ">", "max_symbol_word_ratio"),
            ("gopher_too_many_ellipses", "gopher_ellipsis_ratio", ">", "max_symbol_word_ratio"),
            ("gopher_too_many_bullet_lines", "gopher_bullet_lines_ratio", ">", "max_bullet_lines_ratio"),
            ("gopher_too_many_ellipsis_lines", "gopher_ellipsis_lines_ratio", ">", "max_ellipsis_lines_ratio"),
            ("gopher_too_few_alpha_words", "gopher_alpha_words_ratio", "<", "min_alpha_words_ratio"),
            ("gopher_too_few_stop_words", "gopher_n_stop_words", "<", "min_stop_words"),
        ]
        return [Rule(code, col, batch[col], op, getattr(p, param), param) for code, col, op, param in table]
