"""C4 heuristics (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", section 2.2), with datatrove's ``C4QualityFilter`` semantics.

C4 both removes lines and drops documents. "Annotate once, decide cheaply" splits that in two:

- ``c4_quality`` (filter) decides on documents: its annotate stage classifies every line with the
  line rules and records what the document-level rules need (sentences in the lines C4 keeps, the
  first kept line with "lorem ipsum" or a curly bracket); ``decide`` applies the document rules.
  The line rules' params change the signals, so they are ``annotate_params``; the document rules'
  thresholds and switches are decide-only.
- ``c4_line_filter`` (mapper) rewrites the text to the lines C4 keeps, with the same line rules.

``c4_quality`` then ``c4_line_filter`` (same line params) reproduce datatrove's filter, which drops
documents and rewrites the survivors' text in one pass.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Mapper, OperatorParams, register
from operators.core.rules import Rule, ThresholdFilter
from operators.text.text_stats import Segments, text_stats

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_WHITESPACE_RUN = re.compile(r"\s+")
_WHITESPACE_TOKEN = " \ue000 "
"""Stands for a spaCy whitespace token (a run of whitespace other than one space) when counting
sentences: a private-use character is one token that is neither punctuation nor a sentence end."""


class C4LineParams(OperatorParams):
    """The line rules of C4 (defaults as in the paper's released code and datatrove 0.10)."""

    remove_citations: bool = True
    """Delete Wikipedia-style citation marks ``[1]``, ``[edit]``, ``[citation needed]``."""
    filter_no_terminal_punct: bool = True
    """Drop lines that do not end in . ? ! " or ' (or end in an ellipsis)."""
    min_words_per_line: int = Field(3, ge=-1)
    """Drop lines with fewer whitespace-separated words (-1 disables)."""
    max_word_length: int = Field(1000, ge=-1)
    """Drop lines with a longer word (-1 disables)."""
    filter_javascript: bool = True
    """Drop lines mentioning "javascript"."""
    filter_policy: bool = True
    """Drop lines with cookie / privacy-policy / terms-of-use phrases."""


def c4_lines(text: str, p: C4LineParams) -> tuple[list[str], int, int]:
    """The lines C4 keeps (stripped, citations removed), and the index of the first line that would
    drop the document for "lorem ipsum" and for a curly bracket (-1: none), in datatrove's order:
    long word, citations, terminal punctuation, words per line, lorem ipsum, javascript, curly
    bracket, policy."""
    kept: list[str] = []
    lorem = curly = -1
    for i, raw in enumerate(text.splitlines()):
        stripped = line = raw.strip()
        if (
            p.max_word_length != -1
            and len(line) > p.max_word_length
            and any(len(w) > p.max_word_length for w in line.split())
        ):
            continue
        if p.remove_citations and "[" in line:
            line = CITATION.sub("", line)
        if p.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        if len(stripped.split()) < p.min_words_per_line:  # words counted before citations are removed
            continue
        lower = line.lower()
        if lorem == -1 and "lorem ipsum" in lower:
            lorem = i
        if p.filter_javascript and "javascript" in lower:
            continue
        if curly == -1 and "{" in line:
            curly = i
        if p.filter_policy and any(s in lower for s in POLICY_SUBSTRINGS):
            continue
        kept.append(line)
    return kept, lorem, curly


def sentence_counts(lines: list[str]) -> np.ndarray:
    """Sentences per line as datatrove counts them (spaCy's ``Sentencizer`` over spaCy tokens): a
    sentence starts at the first token, and after a sentence-final mark (. ! ? ...) at the next token
    that is not punctuation."""
    lines = [line if " ".join(line.split()) == line else _WHITESPACE_RUN.sub(_ws_token, line) for line in lines]
    words = Segments(lines)
    final = words.feature("sent_punct")
    breaker = ~words.feature("is_punct") & ~final
    relevant = np.flatnonzero(final | breaker)
    seg = words.segment[relevant]
    starts = breaker[relevant][1:] & final[relevant][:-1] & (seg[1:] == seg[:-1])
    breaks = np.bincount(seg[1:][starts], minlength=len(lines))
    return np.where(words.counts > 0, 1 + breaks, 0)


def _ws_token(match: re.Match) -> str:
    return " " if match.group() == " " else _WHITESPACE_TOKEN


@register
class C4Quality(ThresholdFilter):
    """C4's document rules (Raffel et al. 2020, section 2.2; datatrove 0.10 ``C4QualityFilter``).
    Lines are first filtered by the line rules (:class:`C4LineParams`); a document is then dropped
    when a kept line contains "lorem ipsum" (``c4_lorem_ipsum``) or a curly bracket
    (``c4_curly_bracket``), whichever line comes first, or when the kept lines hold fewer than 5
    sentences (``c4_too_few_sentences``; sentences counted per line with spaCy's sentencizer, as
    datatrove does). The bad-words rule is not part of this filter (as in datatrove, where it is
    ``C4BadWordsFilter``). Only datatrove's default line mode (``split_paragraph=True``) is
    implemented. Use ``c4_line_filter`` after this filter to also remove the lines.

    Two readings: the paper says pages with "lorem ipsum" or a curly bracket are removed; the
    reference code (TFDS ``c4_utils.clean_page``) and datatrove only look at lines that survived the
    earlier line rules (so a bare ``{`` line without terminal punctuation does not drop a page). We
    follow the code. TFDS counts sentences with NLTK's punkt over the kept text; we count them as
    datatrove does, with spaCy's sentencizer per kept line."""

    name = "c4_quality"
    reasons = ("c4_lorem_ipsum", "c4_curly_bracket", "c4_too_few_sentences")
    signals = {
        "c4_n_sentences": "int64",
        "c4_n_lines_kept": "int64",
        "c4_lorem_ipsum_line": "int64",
        "c4_curly_bracket_line": "int64",
    }
    annotate_params = tuple(C4LineParams.model_fields)

    class Params(C4LineParams):
        min_num_sentences: int = Field(5, ge=-1)
        """Drop documents whose kept lines hold fewer sentences (-1 disables)."""
        filter_lorem_ipsum: bool = True
        filter_curly_bracket: bool = True

    def annotate(self, batch: Batch) -> Batch:
        per_doc = [c4_lines(t, self.params) for t in text_stats(batch["text"]).texts]
        kept = [line for lines, _, _ in per_doc for line in lines]
        n_kept = np.fromiter((len(lines) for lines, _, _ in per_doc), dtype=np.int64, count=len(per_doc))
        doc = np.repeat(np.arange(len(per_doc)), n_kept)
        return {
            "c4_n_sentences": np.bincount(doc, weights=sentence_counts(kept), minlength=len(per_doc)).astype(np.int64),
            "c4_n_lines_kept": n_kept,
            "c4_lorem_ipsum_line": np.array([lorem for _, lorem, _ in per_doc], dtype=np.int64),
            "c4_curly_bracket_line": np.array([curly for _, _, curly in per_doc], dtype=np.int64),
        }

    def rules(self, batch: Batch) -> list[Rule]:
        """The first kept line with "lorem ipsum" or a curly bracket drops the document (the value
        in the detail is that line's index), then too few sentences."""
        p = self.params
        never = np.iinfo(np.int64).max
        lorem = np.where(batch["c4_lorem_ipsum_line"] >= 0, batch["c4_lorem_ipsum_line"], never)
        curly = np.where(batch["c4_curly_bracket_line"] >= 0, batch["c4_curly_bracket_line"], never)
        lorem = lorem if p.filter_lorem_ipsum else np.full_like(lorem, never)
        curly = curly if p.filter_curly_bracket else np.full_like(curly, never)
        lorem_first = np.where((lorem < never) & (lorem <= curly), lorem, -1)
        curly_first = np.where((curly < never) & (curly < lorem), curly, -1)
        min_sentences = p.min_num_sentences if p.min_num_sentences != -1 else None
        return [
            Rule("c4_lorem_ipsum", "c4_lorem_ipsum_line", lorem_first, ">=", 0, "filter_lorem_ipsum"),
            Rule("c4_curly_bracket", "c4_curly_bracket_line", curly_first, ">=", 0, "filter_curly_bracket"),
            Rule(
                "c4_too_few_sentences",
                "c4_n_sentences",
                batch["c4_n_sentences"],
                "<",
                min_sentences,
                "min_num_sentences",
            ),
        ]


@register
class C4LineFilter(Mapper):
    """C4's line removal (Raffel et al. 2020, section 2.2; datatrove 0.10 ``C4QualityFilter``): keeps
    the lines that pass the line rules (:class:`C4LineParams`), stripped and with citation marks
    removed, joined by newlines. Documents left without lines are dropped (``c4_no_lines_left``).
    Lines with "lorem ipsum" or a curly bracket are kept here: dropping those documents is
    ``c4_quality``'s job."""

    name = "c4_line_filter"
    reasons = ("c4_no_lines_left",)
    Params = C4LineParams

    def map(self, batch: Batch) -> Batch:
        texts = np.array(["\n".join(c4_lines(str(t), self.params)[0]).strip() for t in batch["text"]], dtype=object)
        return {"text": texts, "_reason": np.where(texts == "", "c4_no_lines_left", "").astype(object)}
