"""Text statistics shared by the heuristic quality filters: words, lines and paragraphs, computed once
per batch and vectorised over it.

Words. datatrove (the reference implementation of the Gopher, C4 and FineWeb filters) splits English
text with ``spacy.blank("en")``'s tokenizer. :class:`SpacyWords` re-implements that tokenizer's
algorithm (``spacy.tokenizer.Tokenizer.explain``: whitespace split, then special cases, prefixes,
suffixes, URL match and infixes) in plain Python over spaCy's own English rules, exported verbatim to
``spacy_en_rules.json`` (see ``benchmarks/peers/datatrove/export_spacy_rules.py``), followed by
spaCy's special-case matcher (runs of tokens that spell an exception such as ``:-)`` are merged
back). The one known difference: spaCy's matcher also sees candidate runs across a single space
(``x: x.`` lets ``: x`` shadow ``x.``); we match within a whitespace-free chunk only. On the
benchmark's 12,485 documents the words are identical for all but one (``benchmarks/filters.py``).

Speed comes from memoisation: every distinct whitespace-separated chunk is tokenised once per process
and mapped to token ids, so a batch costs one ``str.split`` and one dict lookup per chunk, and every
per-document count below is a numpy reduction over the batch's flat token-id array.

Lines and paragraphs follow datatrove exactly (``str.splitlines``, ``re.split("\\n+")``,
``re.split("\\n{2,}")``, ``str.split("\\n")``), each computed lazily once per batch.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from functools import cache, cached_property
from pathlib import Path

import numpy as np

PUNCTUATION = (
    "!/\u2014\u201d:\uff05\uff11\u3008&(\u3001\u2501\\\u3010#%\u300c\u300d\uff0c\u3011\uff1b+^]~\u201c\u300a\u201e';"
    '\u2019{|\u2236\xb4[=-`*\uff0e\uff08\u2013\uff1f\uff01\uff1a$\uff5e\xab\u3009,><\u300b)?\uff09\u3002\u2026@_."}'
    "\u25ba\xbb" + "".join(map(chr, [*range(0, 9), *range(11, 32), *range(127, 160)]))
)
"""datatrove's ``utils.text.PUNCTUATION`` (Apache-2.0): a word made only of these (or terminal
punctuation) is a "symbol" word for Gopher's word count and mean word length."""

TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965\u104a\u104b"
    "\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa"
    "\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c"
    "\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f"
    "\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56"
    "\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be"
    "\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de"
    "\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3"
    "\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2"
    "\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c\U0001173d\U0001173e"
    "\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8"
    "\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f"
    "\U0001da88"
)
"""datatrove's ``utils.text.TERMINAL_PUNCTUATION`` (Apache-2.0): sentence-ending marks of many scripts."""

SYMBOL_CHARS = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION
RULES_FILE = Path(__file__).with_name("spacy_en_rules.json")
FEATURES = {"length": np.int64, "non_symbol": bool, "alpha": bool, "sent_punct": bool, "is_punct": bool}
"""Per-token features of the lexicon; see :class:`SpacyWords`."""
MAX_LEXICON = 300_000
"""Distinct chunks kept memoised per process (about 200 MB at most) before the lexicon is
cleared, between batches."""


def _is_punct(token: str) -> bool:
    """spaCy's ``Token.is_punct``: every character is in a Unicode punctuation category."""
    return all(unicodedata.category(ch).startswith("P") for ch in token)


class SpacyWords:
    """spaCy's English tokenizer (``Tokenizer.explain``), memoised per chunk, with a token lexicon.

    Token ids index the feature arrays ``length``, ``non_symbol`` (some character is not
    punctuation), ``alpha`` (some character is alphabetic), ``sent_punct`` (spaCy's sentencizer
    punctuation) and ``is_punct``."""

    def __init__(self) -> None:
        rules = json.loads(RULES_FILE.read_text(encoding="utf-8"))
        self._prefix = re.compile(rules["prefix"]).match  # every alternative is anchored with ^
        self._suffix = re.compile(rules["suffix"]).search
        self._infix = re.compile(rules["infix"]).finditer
        self._url = re.compile(rules["url"]).match
        self._special: dict[str, list[str]] = rules["special_cases"]
        self._sent_punct = frozenset(rules["sentence_punct"])
        self.clear()

    def clear(self) -> None:
        """Forget every memoised chunk and token (ids are only meaningful within one batch)."""
        self._chunk_ids: dict[str, int] = {}
        self._affix_memo: dict[str, list[str]] = {}
        self._token_ids: dict[str, int] = {}
        self._chunk_start = _Column(np.int64)
        self._chunk_count = _Column(np.int64)
        self._chunk_flat = _Column(np.int64)
        self._features = {name: _Column(dtype) for name, dtype in FEATURES.items()}

    def clear_if_full(self) -> None:
        if len(self._chunk_ids) > MAX_LEXICON:
            self.clear()

    # ---- tokenising one chunk (spaCy's algorithm) -------------------------------------------

    def split_chunk(self, chunk: str) -> list[str]:
        """The tokens spaCy makes of one whitespace-free string."""
        tokens = self._split_affixes(chunk, self._special)
        if len(tokens) > 1:
            tokens = self._merge_specials(tokens)
        return tokens

    def _split_affixes(self, chunk: str, special: dict[str, list[str]]) -> list[str]:
        """spaCy's affix loop. One round strips a prefix and a suffix; what remains is split the same
        way from scratch, so remainders are memoised (``"word,"`` reuses ``"word"``)."""
        memo = self._affix_memo if special is self._special else {}
        key = chunk
        hit = memo.get(key)
        if hit is not None:
            return hit
        if chunk in special:
            tokens = special[chunk]
        elif not (self._prefix_end(chunk) or self._suffix_start(chunk) is not None):
            tokens = self._split_middle(chunk, special)
        else:
            head: list[str] = []
            tail: list[str] = []
            end = self._prefix_end(chunk)
            if end:
                head, chunk = [chunk[:end]], chunk[end:]
            if chunk not in special:
                start = self._suffix_start(chunk)
                if start is not None:
                    tail, chunk = [chunk[start:]], chunk[:start]
            tokens = head + (self._split_affixes(chunk, special) if chunk else []) + tail
        memo[key] = tokens
        return tokens

    def _prefix_end(self, chunk: str) -> int:
        """Length of the prefix spaCy splits off (0: none). Prefixes never start with a letter or
        digit, except the currencies US$, C$ and A$."""
        if not chunk or (chunk[0].isalnum() and not chunk.startswith(("US$", "C$", "A$"))):
            return 0
        match = self._prefix(chunk)
        return match.end() if match else 0

    def _suffix_start(self, chunk: str) -> int | None:
        """Where the suffix spaCy splits off starts (None: no suffix). A suffix ending in a letter or
        digit is a unit after an ASCII digit or ``'s``; other suffixes are at most 8 characters long
        except runs of dots, so only the tail is searched unless the match reaches its start."""
        if not chunk:
            return None
        if chunk[-1].isalnum() and chunk[-2:-1] not in ("'", "’") and not _ASCII_DIGIT.search(chunk[-7:]):
            return None
        pos = max(0, len(chunk) - 8)
        match = self._suffix(chunk, pos)
        if match and match.start() == pos and pos:
            match = self._suffix(chunk)
        return match.start() if match and match.start() < len(chunk) else None

    def _split_middle(self, chunk: str, special: dict[str, list[str]]) -> list[str]:
        if "." in chunk and self._url(chunk):  # every URL the rule accepts has a dot in its host
            return [chunk]
        if chunk in special:
            return special[chunk]
        if chunk.isalnum():  # infixes are punctuation, symbols or ellipses
            return [chunk]
        return self._split_infixes(chunk)

    @cached_property
    def _special_patterns(self) -> tuple[dict[tuple[str, ...], str], int]:
        """spaCy's special matcher: special cases that contain affixes, as the tokens affix
        splitting alone makes of them; such runs of tokens are merged back into the special case."""
        patterns = {}
        for key in self._special:
            if self._prefix(key) or self._suffix(key) or next(self._infix(key), None):
                patterns[tuple(self._split_affixes(key, {}))] = key
        return patterns, max(map(len, patterns))

    @cached_property
    def _pattern_heads(self) -> frozenset[tuple[str, ...]]:
        """The first two tokens of every special pattern (the whole pattern if shorter)."""
        return frozenset(p[:2] for p in self._special_patterns[0])

    def _merge_specials(self, tokens: list[str]) -> list[str]:
        heads = self._pattern_heads
        if (
            not any((a, b) in heads or (a,) in heads for a, b in itertools.pairwise(tokens))
            and (tokens[-1],) not in heads
        ):
            return tokens
        patterns, longest = self._special_patterns
        spans = [
            (j - i, i, j)
            for i in range(len(tokens))
            for j in range(i + 1, min(len(tokens), i + longest) + 1)
            if tuple(tokens[i:j]) in patterns
        ]
        if not spans:
            return tokens
        seen: set[int] = set()
        chosen = []
        for _, i, j in sorted(spans, key=lambda s: (-s[0], s[1])):  # longest, then leftmost first
            if i not in seen and j - 1 not in seen:
                chosen.append((i, j))
            seen.update(range(i, j))
        out: list[str] = []
        pos = 0
        for i, j in sorted(chosen):
            out.extend(tokens[pos:i])
            out.extend(self._special[patterns[tuple(tokens[i:j])]])
            pos = j
        out.extend(tokens[pos:])
        return out

    def _split_infixes(self, chunk: str) -> list[str]:
        out: list[str] = []
        offset = 0
        for match in self._infix(chunk):
            if offset == 0 and match.start() == 0:
                continue
            if chunk[offset : match.start()]:
                out.append(chunk[offset : match.start()])
            if match.group():
                out.append(match.group())
            offset = match.end()
        if chunk[offset:]:
            out.append(chunk[offset:])
        return out

    def words(self, text: str) -> list[str]:
        """The words datatrove's ``split_into_words(text, "en")`` returns (whitespace tokens dropped)."""
        return [tok for chunk in text.split() for tok in self.split_chunk(chunk)]

    # ---- the lexicon: chunk -> token ids -> features ----------------------------------------

    def chunk_ids(self, chunks: list[str]) -> np.ndarray:
        """Ids of the given chunks, tokenising the ones not seen before."""
        get = self._chunk_ids.get
        out = [get(c, -1) for c in chunks]
        if -1 in out:
            missing = [i for i, cid in enumerate(out) if cid == -1]
            self._add_chunks(list(dict.fromkeys(chunks[i] for i in missing)))
            for i in missing:
                out[i] = get(chunks[i])
        return np.asarray(out, dtype=np.int64)

    def _add_chunks(self, chunks: list[str]) -> None:
        token_lists = [self.split_chunk(c) for c in chunks]
        _number(self._chunk_ids, chunks)
        counts = [len(tokens) for tokens in token_lists]
        self._chunk_start.extend((len(self._chunk_flat) + np.cumsum([0, *counts[:-1]])).tolist())
        self._chunk_count.extend(counts)
        tokens = [t for ts in token_lists for t in ts]
        get = self._token_ids.get
        ids = [get(t, -1) for t in tokens]
        if -1 in ids:
            self._add_tokens(list(dict.fromkeys(t for t, i in zip(tokens, ids, strict=True) if i == -1)))
            ids = [get(t) for t in tokens]
        self._chunk_flat.extend(ids)

    def _add_tokens(self, tokens: list[str]) -> None:
        _number(self._token_ids, tokens)
        features = self._features
        features["length"].extend([len(t) for t in tokens])
        features["non_symbol"].extend([not SYMBOL_CHARS.issuperset(t) for t in tokens])
        features["alpha"].extend([any(ch.isalpha() for ch in t) for t in tokens])
        features["sent_punct"].extend([t in self._sent_punct for t in tokens])
        features["is_punct"].extend([_is_punct(t) for t in tokens])

    def feature(self, name: str) -> np.ndarray:
        """One per-token feature array (a key of ``FEATURES``), indexed by token id."""
        return self._features[name].view()

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens seen (token ids are below it)."""
        return len(self._token_ids)

    def token_id_of(self, token: str) -> int:
        """The id of ``token`` if it has been seen, else -1."""
        return self._token_ids.get(token, -1)

    def tokens_of_chunks(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat token ids of a sequence of chunks and, per chunk, its number of tokens."""
        n = self._chunk_count.view()[chunk_ids]
        offsets = np.repeat(self._chunk_start.view()[chunk_ids] - (np.cumsum(n) - n), n)
        return self._chunk_flat.view()[offsets + np.arange(int(n.sum()), dtype=np.int64)], n


def _number(ids: dict[str, int], new: list[str]) -> None:
    """Give the ``new`` strings the next free ids."""
    ids.update(zip(new, range(len(ids), len(ids) + len(new)), strict=True))


class _Column:
    """An append-only numpy array; appends are buffered in a list and flushed on ``view``."""

    def __init__(self, dtype: type) -> None:
        self._data = np.zeros(0, dtype=dtype)
        self._pending: list = []

    def __len__(self) -> int:
        return len(self._data) + len(self._pending)

    def extend(self, values: list) -> None:
        self._pending.extend(values)

    def view(self) -> np.ndarray:
        if self._pending:
            self._data = np.concatenate([self._data, np.asarray(self._pending, dtype=self._data.dtype)])
            self._pending = []
        return self._data


@cache
def spacy_words() -> SpacyWords:
    """The per-process tokenizer and lexicon."""
    return SpacyWords()


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number, total characters) of items equal to an earlier item (datatrove's ``find_duplicates``)."""
    seen: set[str] = set()
    n_dup = dup_chars = 0
    for item in items:
        if item in seen:
            n_dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return n_dup, dup_chars


_ASCII_DIGIT = re.compile("[0-9]")
_LINE_SPLIT = re.compile("\n+")
_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")


class Segments:
    """Flat token ids of a list of segments (documents or lines), grouped by segment."""

    def __init__(self, texts: list[str]) -> None:
        lex = spacy_words()
        chunks = [t.split() for t in texts]
        chunk_ids = lex.chunk_ids([c for cs in chunks for c in cs])
        self.tokens, per_chunk = lex.tokens_of_chunks(chunk_ids)
        chunk_counts = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        bounds = np.concatenate([[0], np.cumsum(per_chunk)])
        chunk_bounds = np.concatenate([[0], np.cumsum(chunk_counts)])
        self.offsets = bounds[chunk_bounds]
        """``tokens[offsets[i]:offsets[i+1]]`` are segment ``i``'s tokens."""
        self.counts = np.diff(self.offsets)
        self.segment = np.repeat(np.arange(len(texts), dtype=np.int64), self.counts)
        """Segment index of every token."""

    def sum(self, per_token: np.ndarray) -> np.ndarray:
        """Per-segment sum of a per-token array."""
        return np.bincount(self.segment, weights=per_token, minlength=len(self.counts))

    def feature(self, name: str) -> np.ndarray:
        """A lexicon feature for every token of the batch."""
        return spacy_words().feature(name)[self.tokens]

    @cached_property
    def chars_before(self) -> np.ndarray:
        """Characters in the tokens before each flat position (one more entry than tokens): the
        words ``i..j`` hold ``chars_before[j + 1] - chars_before[i]`` characters."""
        return np.concatenate([[0], np.cumsum(self.feature("length"))])


class TextStats:
    """Lazily computed statistics of one batch of texts; each is computed at most once."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    @cached_property
    def words(self) -> Segments:
        """spaCy-compatible words of every document."""
        return Segments(self.texts)

    @cached_property
    def n_chars(self) -> np.ndarray:
        return np.fromiter(map(len, self.texts), dtype=np.int64, count=len(self.texts))

    @cached_property
    def splitlines(self) -> list[list[str]]:
        """``str.splitlines()`` of every document (Gopher quality, C4)."""
        return [t.splitlines() for t in self.texts]

    @cached_property
    def newline_runs(self) -> list[list[str]]:
        """Lines split on runs of ``\\n`` (Gopher repetition)."""
        return [_LINE_SPLIT.split(t) for t in self.texts]

    @cached_property
    def paragraphs(self) -> list[list[str]]:
        """Paragraphs: the stripped text split on two or more ``\\n`` (Gopher repetition)."""
        return [_PARAGRAPH_SPLIT.split(t.strip()) for t in self.texts]

    @cached_property
    def nonblank_lines(self) -> list[list[str]]:
        """``text.split("\\n")`` without blank lines (FineWeb)."""
        return [[line for line in t.split("\n") if line.strip()] for t in self.texts]


_MEMO: list[TextStats] = []


def text_stats(texts: np.ndarray | list[str]) -> TextStats:
    """The statistics of a batch of texts. The last batch's statistics are kept, so several filters
    annotating the same batch in one process share words, lines and paragraphs."""
    texts = [str(t) for t in texts]
    if _MEMO and _MEMO[0].texts == texts:
        return _MEMO[0]
    spacy_words().clear_if_full()
    _MEMO[:] = [TextStats(texts)]
    return _MEMO[0]


def reset() -> None:
    """Forget the memoised batch statistics and the lexicon (benchmarks use it to measure cold starts)."""
    _MEMO.clear()
    spacy_words().clear()
