"""Deterministic, vectorised text hashing shared by the dedup and selection operators.

Words are lower-cased ``\\w+`` runs (punctuation and whitespace differences vanish, as in
datatrove's ``simplify_text``). Each distinct word is hashed once with CRC-32 (stable across
processes, unlike Python's salted ``hash``); word n-grams are combined into 64-bit hashes with
numpy arithmetic that wraps modulo 2**64, so a batch never loops over n-grams in Python.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

_WORD = re.compile(r"\w+")
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier (Knuth), odd


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


def word_hashes(tokens: list[str], memo: dict[str, int]) -> np.ndarray:
    """CRC-32 of each token as uint64; ``memo`` caches hashes across the documents of a batch."""
    out = np.empty(len(tokens), dtype=np.uint64)
    for i, tok in enumerate(tokens):
        h = memo.get(tok)
        if h is None:
            h = memo[tok] = zlib.crc32(tok.encode("utf-8"))
        out[i] = h
    return out


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of one document (one n-gram when it has fewer words)."""
    if len(hashes) == 0:
        return np.zeros(1, dtype=np.uint64)
    k = min(n, len(hashes))
    count = len(hashes) - k + 1
    acc = np.zeros(count, dtype=np.uint64)
    for j in range(k):
        acc = (acc ^ hashes[j : j + count]) * _MIX
    return mix64(acc ^ np.uint64(k))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the output (array of uint64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def batch_word_hashes(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of a whole batch with Arrow kernels, concatenated, and each document's offsets
    into them. Words are the runs of letters, digits and ``_`` of the ``utf8_lower``-ed text;
    each distinct word is CRC-32-hashed once.

    Fast path (half the time of splitting with the pattern): one byte-table pass lower-cases ASCII and turns every other ASCII byte
    that is not a word character into a space, and the texts are split on spaces. That is the
    final split except inside the few pieces holding non-ASCII characters (Unicode punctuation
    such as curly quotes, non-Latin letters): those alone are lower-cased and split with the
    Unicode pattern, and their words' hashes take their place. ``utf8_lower`` maps each code
    point on its own, so the words are those of splitting the lower-cased texts with the pattern."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(texts, pa.string())
    validity, offsets, data = array.buffers()
    folded = pa.py_buffer(data.to_pybytes().translate(_ASCII_FOLD) if data is not None else b"")
    lists = pc.ascii_split_whitespace(pa.StringArray.from_buffers(len(array), offsets, folded, validity))
    pieces, parents = pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy()
    hashes, keep = _crc32(pieces)
    unicode = np.flatnonzero(~pc.string_is_ascii(pieces).to_numpy(zero_copy_only=False))
    if len(unicode):
        words = pc.split_pattern_regex(pc.utf8_lower(pieces.take(unicode)), _NON_WORD)
        hashes, parents, keep = _splice(unicode, words, (hashes, parents, keep))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents[keep], minlength=len(texts)), out=offsets[1:])
    return hashes[keep], offsets


def _crc32(words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """CRC-32 of each string (uint64; each distinct one hashed once) and whether it is non-empty."""
    import pyarrow.compute as pc

    encoded = words.dictionary_encode()
    vocab = encoded.dictionary.to_pylist()
    table = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in vocab), dtype=np.uint64, count=len(vocab))
    hashes = table[encoded.indices.to_numpy()] if len(vocab) else np.zeros(0, dtype=np.uint64)
    return hashes, pc.binary_length(words).to_numpy() > 0


def _splice(at: np.ndarray, words: pa.ListArray, columns: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """``columns`` (hash, text index, non-empty) of the pieces, with the pieces at indexes ``at``
    each replaced by its list of ``words``."""
    import pyarrow.compute as pc

    counts = np.diff(words.offsets.to_numpy())
    n = len(columns[0])
    sizes = np.ones(n, dtype=np.int64)
    sizes[at] = counts
    starts = np.cumsum(sizes) - sizes  # where each piece's words go
    plain = np.ones(n, dtype=bool)
    plain[at] = False
    sub_hashes, sub_keep = _crc32(pc.list_flatten(words))
    sub_at = np.repeat(starts[at] - np.cumsum(counts) + counts, counts) + np.arange(len(sub_hashes))
    out = []
    for whole, sub in zip(columns, (sub_hashes, np.repeat(columns[1][at], counts), sub_keep), strict=True):
        spliced = np.empty(int(sizes.sum()), dtype=whole.dtype)
        spliced[starts[plain]], spliced[sub_at] = whole[plain], sub
        out.append(spliced)
    return out


WORD_CHARS = r"\p{L}\p{N}_"
"""What a word is made of (Unicode letters, digits, underscore), as Arrow's RE2 patterns spell it."""
WORD_RUN = f"[{WORD_CHARS}]+"
_NON_WORD = f"[^{WORD_CHARS}]+"
_ASCII_FOLD = bytes(
    c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95 or c >= 128) else 32
    for c in range(256)
)
"""Byte table: ASCII upper case to lower case, every other ASCII byte that is not a letter, digit
or ``_`` to a space; bytes of multi-byte UTF-8 characters (>= 128) unchanged."""


def batch_ngram_hashes(texts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes of every document of a batch, concatenated, and each document's offsets
    into that array (``offsets[i]:offsets[i+1]``). Vectorised over the batch; a document with
    fewer than ``n`` words gets one hash of all its words (``ngram_hashes``'s convention)."""
    hashes, word_offsets = batch_word_hashes(texts)
    lengths = np.diff(word_offsets)
    counts = np.where(lengths >= n, lengths - n + 1, 1)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    out = np.empty(offsets[-1], dtype=np.uint64)
    long_doc = lengths >= n
    if len(hashes) >= n:
        span = len(hashes) - n + 1
        acc = np.zeros(span, dtype=np.uint64)
        for j in range(n):
            acc ^= hashes[j : j + span]
            acc *= _MIX
        valid = np.arange(n, span + n) <= np.repeat(word_offsets[1:], lengths)[:span]  # inside its document
        acc = acc[valid]
        acc ^= np.uint64(n)
        out[np.repeat(long_doc, counts)] = mix64(acc)
    for d in np.flatnonzero(~long_doc):
        out[offsets[d]] = ngram_hashes(hashes[word_offsets[d] : word_offsets[d + 1]], n)[0]
    return out, offsets
