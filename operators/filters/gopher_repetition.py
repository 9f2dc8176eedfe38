"""Gopher repetition filter (Rae et al. 2021, appendix A.1.1 and table A1), with datatrove's
``GopherRepetitionFilter`` semantics, vectorised over the batch's n-grams."""

from __future__ import annotations

import numpy as np

from operators.core.base import Batch, OperatorParams, register
from operators.core.rules import Rule, ThresholdFilter
from operators.text.text_stats import Segments, find_duplicates, spacy_words, text_stats

TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)


NGrams = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Of the n-grams of a batch that may repeat: positions, group ids and, per group, the index of its
first position and its number of positions."""


def _group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group ids of equal keys, and per group the index of its first occurrence and its size."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    is_start = np.ones(len(key), dtype=bool)
    is_start[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(is_start)
    group = np.empty(len(key), dtype=np.int64)
    group[order] = np.cumsum(is_start) - 1
    return group, order[starts], np.diff(np.append(starts, len(key)))


def ngram_groups(words: Segments, max_n: int) -> dict[int, NGrams]:
    """For n = 1..max_n, the n-grams that may occur twice in their document: every word for n = 1,
    then the n-grams whose (n-1)-gram prefix repeats (an n-gram cannot repeat otherwise), within
    the document's end. Equal n-grams of a document share a group id; ids are exact, not hashes:
    (id of the (n-1)-gram, next token) pairs are numbered by sorting."""
    tokens, seg = words.tokens, words.segment
    doc_end = words.offsets[1:][seg]
    vocab = max(spacy_words().vocab_size, 1)
    pos = np.arange(len(tokens), dtype=np.int64)
    key = seg * vocab + tokens
    out: dict[int, NGrams] = {}
    for n in range(1, max_n + 1):
        if n > 1:
            prev_pos, prev_group, _, prev_counts = out[n - 1]
            keep = (prev_counts[prev_group] > 1) & (prev_pos + n <= doc_end[prev_pos])
            pos = prev_pos[keep]
            key = prev_group[keep] * vocab + tokens[pos + n - 1]
        out[n] = (pos, *_group(key))
    return out


def top_ngram_chars(
    words: Segments, pos: np.ndarray, group: np.ndarray, first: np.ndarray, counts: np.ndarray, n: int
) -> np.ndarray:
    """Per document: characters of its most frequent n-gram (words joined by spaces) times its count;
    ties go to the n-gram seen first, as ``Counter.most_common``: the document's first n-gram when
    none repeats. 0 for documents under n words."""
    starts = words.offsets[:-1]
    has_ngram = words.counts >= n
    out = np.zeros(len(starts))
    first_start = starts[has_ngram]
    out[has_ngram] = words.chars_before[first_start + n] - words.chars_before[first_start] + n - 1
    repeated = np.flatnonzero(counts > 1)
    if len(repeated):
        gpos = pos[first[repeated]]
        gdoc = words.segment[gpos]
        best = np.lexsort((gpos, -counts[repeated], gdoc))  # per document: most frequent, then first seen
        top = best[np.r_[True, gdoc[best][1:] != gdoc[best][:-1]]]
        start = gpos[top]
        out[gdoc[top]] = (words.chars_before[start + n] - words.chars_before[start] + n - 1) * counts[repeated][top]
    return out


def duplicate_ngram_chars(
    words: Segments, pos: np.ndarray, group: np.ndarray, counts: np.ndarray, n: int
) -> np.ndarray:
    """Per document: characters in repeated n-grams, as datatrove's ``find_all_duplicate``: scan
    left to right; an n-gram seen before adds its characters (words joined without spaces) and the
    scan jumps past it, otherwise it is remembered and the scan moves one word. Only n-grams that
    occur twice or more can change the result, so only their positions are scanned in Python."""
    out = np.zeros(len(words.counts))
    repeated = counts[group] > 1
    if not repeated.any():
        return out
    rpos, rgroup = pos[repeated], group[repeated]
    chars = words.chars_before[rpos + n] - words.chars_before[rpos]
    rdoc = words.segment[rpos]
    seen: set[int] = set()
    current, resume = -1, 0
    for p, g, d, c in zip(rpos.tolist(), rgroup.tolist(), rdoc.tolist(), chars.tolist(), strict=True):
        if d != current:
            current, resume = d, 0
            seen.clear()
        if p < resume:
            continue
        if g in seen:
            out[d] += c
            resume = p + n
        else:
            seen.add(g)
            resume = p + 1
    return out


@register
class GopherRepetition(ThresholdFilter):
    """Gopher's repetition rules (Rae et al. 2021, appendix A.1.1, thresholds of table A1), as in
    datatrove 0.10 (``GopherRepetitionFilter``). A document is dropped, checked in this order, when:

    - over 30 % of its paragraphs (split on 2+ newlines) are duplicates of an earlier one, or they
      hold over 20 % of its characters (``gopher_dup_para_frac`` / ``gopher_dup_para_char_frac``);
    - the same for lines (split on newlines): 30 % / 20 % (``gopher_dup_line_frac`` /
      ``gopher_dup_line_char_frac``);
    - its most frequent 2-, 3- or 4-gram covers over 20 / 18 / 16 % of its characters
      (``gopher_top_2gram`` ...);
    - repeated 5- to 10-grams cover over 15 / 14 / 13 / 12 / 11 / 10 % of its characters
      (``gopher_dup_5gram`` ... ``gopher_dup_10gram``).
    Empty documents are dropped as ``gopher_empty``.

    Where the paper allows two readings we follow datatrove: character fractions divide by the
    whole text's length; the top n-gram's characters include the spaces between its words and count
    every occurrence, overlapping ones too; repeated n-gram characters come from a greedy left-to-right
    scan that skips the rest of a repeat. One deliberate difference: datatrove compares repeated
    n-grams as their words concatenated without spaces (so ``a bc`` equals ``ab c``), we compare
    the words themselves. ``None`` disables a rule.
    """

    name = "gopher_repetition"
    reasons = (
        "gopher_empty",
        "gopher_dup_para_frac",
        "gopher_dup_para_char_frac",
        "gopher_dup_line_frac",
        "gopher_dup_line_char_frac",
        *(f"gopher_top_{n}gram" for n in TOP_NGRAMS),
        *(f"gopher_dup_{n}gram" for n in DUP_NGRAMS),
    )
    signals = {
        "gopher_dup_para_frac": "float64",
        "gopher_dup_para_char_frac": "float64",
        "gopher_dup_line_frac": "float64",
        "gopher_dup_line_char_frac": "float64",
        **{f"gopher_top_{n}gram_char_frac": "float64" for n in TOP_NGRAMS},
        **{f"gopher_dup_{n}gram_char_frac": "float64" for n in DUP_NGRAMS},
    }

    class Params(OperatorParams):
        max_dup_para_frac: float | None = 0.30
        max_dup_para_char_frac: float | None = 0.20
        max_dup_line_frac: float | None = 0.30
        max_dup_line_char_frac: float | None = 0.20
        max_top_2gram_char_frac: float | None = 0.20
        max_top_3gram_char_frac: float | None = 0.18
        max_top_4gram_char_frac: float | None = 0.16
        max_dup_5gram_char_frac: float | None = 0.15
        max_dup_6gram_char_frac: float | None = 0.14
        max_dup_7gram_char_frac: float | None = 0.13
        max_dup_8gram_char_frac: float | None = 0.12
        max_dup_9gram_char_frac: float | None = 0.11
        max_dup_10gram_char_frac: float | None = 0.10

    def annotate(self, batch: Batch) -> Batch:
        stats = text_stats(batch["text"])
        n_docs = len(stats.texts)
        chars = np.maximum(stats.n_chars, 1).astype(np.float64)
        out: Batch = {}
        for unit, parts in (("para", stats.paragraphs), ("line", stats.newline_runs)):
            dups = np.array([find_duplicates(p) for p in parts], dtype=np.float64).reshape(n_docs, 2)
            n_parts = np.fromiter(map(len, parts), dtype=np.float64, count=n_docs)
            out[f"gopher_dup_{unit}_frac"] = dups[:, 0] / np.maximum(n_parts, 1)
            out[f"gopher_dup_{unit}_char_frac"] = dups[:, 1] / chars
        words = stats.words
        groups = ngram_groups(words, max(DUP_NGRAMS))
        for n in TOP_NGRAMS:
            out[f"gopher_top_{n}gram_char_frac"] = top_ngram_chars(words, *groups[n], n) / chars
        for n in DUP_NGRAMS:
            pos, group, _, counts = groups[n]
            out[f"gopher_dup_{n}gram_char_frac"] = duplicate_ngram_chars(words, pos, group, counts, n) / chars
        return out

    def rules(self, batch: Batch) -> list[Rule]:
        p = self.params.model_dump()
        empty = np.array([not t for t in batch["text"]], dtype=bool)
        rules = [Rule("gopher_empty", "text_is_empty", empty, ">", 0.5)]
        for name in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"):
            rules.append(
                Rule(f"gopher_{name}", f"gopher_{name}", batch[f"gopher_{name}"], ">", p[f"max_{name}"], f"max_{name}")
            )
        for kind, sizes in (("top", TOP_NGRAMS), ("dup", DUP_NGRAMS)):
            for n in sizes:
                signal = f"{kind}_{n}gram_char_frac"
                col = f"gopher_{signal}"
                rules.append(Rule(f"gopher_{kind}_{n}gram", col, batch[col], ">", p[f"max_{signal}"], f"max_{signal}"))
        return rules
