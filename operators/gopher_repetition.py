"""Gopher repetition filter (Rae et al. 2021, appendix A.1.1 and table A1), with datatrove's
``GopherRepetitionFilter`` semantics, vectorised over the batch's n-grams."""

from __future__ import annotations

import numpy as np

from operators.base import Batch, Filter, OperatorParams, register
from operators.text_stats import Segments, find_duplicates, first_violation, spacy_words, text_stats

TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)


NGrams = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(positions, group ids, first position index of each group) of the n-grams of a batch."""


def ngram_groups(words: Segments, max_n: int) -> dict[int, NGrams]:
    """For n = 1..max_n: the positions (into ``words.tokens``) where an n-gram fits inside its
    document, a group id per position shared by exactly the equal n-grams of the same document, and
    for each group the index (into the positions) of its first occurrence. Ids are exact, not
    hashes: the (id of the (n-1)-gram, next token) pairs are numbered with ``np.unique``."""
    tokens, seg = words.tokens, words.segment
    doc_end = words.offsets[1:][seg]
    vocab = max(spacy_words().vocab_size, 1)
    pos = np.arange(len(tokens), dtype=np.int64)
    key = seg * vocab + tokens
    out: dict[int, NGrams] = {}
    for n in range(1, max_n + 1):
        if n > 1:
            prev = out[n - 1][1]
            keep = pos + n <= doc_end[pos]
            pos = pos[keep]
            key = prev[keep] * vocab + tokens[pos + n - 1]
        _, first, group = np.unique(key, return_index=True, return_inverse=True)
        out[n] = (pos, group.astype(np.int64), first.astype(np.int64))
    return out


def top_ngram_chars(
    words: Segments, pos: np.ndarray, group: np.ndarray, first: np.ndarray, n: int, n_docs: int
) -> np.ndarray:
    """Per document: characters of its most frequent n-gram (words joined by spaces) times its count;
    ties go to the n-gram seen first, as ``Counter.most_common``. 0 for documents under n words."""
    out = np.zeros(n_docs)
    if not len(pos):
        return out
    counts = np.bincount(group)
    gdoc = words.segment[pos[first]]
    best = np.lexsort((first, -counts, gdoc))  # per document: most frequent, then first seen
    top = best[np.r_[True, gdoc[best][1:] != gdoc[best][:-1]]]
    start = pos[first[top]]
    out[gdoc[top]] = (words.chars_before[start + n] - words.chars_before[start] + n - 1) * counts[top]
    return out


def duplicate_ngram_chars(words: Segments, pos: np.ndarray, group: np.ndarray, n: int, n_docs: int) -> np.ndarray:
    """Per document: characters in repeated n-grams, as datatrove's ``find_all_duplicate``: scan
    left to right; an n-gram seen before adds its characters (words joined without spaces) and the
    scan jumps past it, otherwise it is remembered and the scan moves one word. Only n-grams that
    occur twice or more can change the result, so only their positions are scanned in Python."""
    out = np.zeros(n_docs)
    if not len(pos):
        return out
    repeated = np.bincount(group)[group] > 1
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
class GopherRepetition(Filter):
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
            out[f"gopher_top_{n}gram_char_frac"] = top_ngram_chars(words, *groups[n], n, n_docs) / chars
        for n in DUP_NGRAMS:
            pos, group, _ = groups[n]
            out[f"gopher_dup_{n}gram_char_frac"] = duplicate_ngram_chars(words, pos, group, n, n_docs) / chars
        return out

    def decide(self, batch: Batch) -> np.ndarray:
        p = self.params.model_dump()
        empty = np.array([not t for t in batch["text"]], dtype=bool)
        rules = [("gopher_empty", empty, ">", 0.5)]
        for name in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"):
            rules.append((f"gopher_{name}", batch[f"gopher_{name}"], ">", p[f"max_{name}"]))
        for kind, sizes in (("top", TOP_NGRAMS), ("dup", DUP_NGRAMS)):
            for n in sizes:
                signal = f"{kind}_{n}gram_char_frac"
                rules.append((f"gopher_{kind}_{n}gram", batch[f"gopher_{signal}"], ">", p[f"max_{signal}"]))
        return first_violation(len(empty), rules)
