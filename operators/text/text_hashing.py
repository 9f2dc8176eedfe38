"""Deterministic, vectorised text hashing shared by the dedup and selection operators.

Words are lower-cased ``\\w+`` runs (punctuation and whitespace differences vanish, as in
datatrove's ``simplify_text``). Each distinct word is hashed once with CRC-32 (stable across
processes, unlike Python's salted ``hash``); word n-grams are combined into 64-bit hashes with
numpy arithmetic that wraps modulo 2**64, so a batch never loops over n-grams in Python.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

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
    """Word hashes of a whole batch with Arrow kernels (lower-case, split on runs of characters
    that are not letters, digits or ``_``; each distinct word CRC-32-hashed once), concatenated,
    and each document's offsets into them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.split_pattern_regex(pc.utf8_lower(pa.array([str(t) for t in texts], pa.string())), _NON_WORD)
    values, parents = pc.list_flatten(lists), pc.list_parent_indices(lists)
    present = pc.not_equal(values, "")
    values, parents = values.filter(present), parents.filter(present).to_numpy()
    encoded = values.dictionary_encode()
    vocab = encoded.dictionary.to_pylist()
    table = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in vocab), dtype=np.uint64, count=len(vocab))
    hashes = table[encoded.indices.to_numpy()] if len(vocab) else np.zeros(0, dtype=np.uint64)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=len(texts)), out=offsets[1:])
    return hashes, offsets


_NON_WORD = r"[^\p{L}\p{N}_]+"


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
            acc = (acc ^ hashes[j : j + span]) * _MIX
        starts = np.arange(span)
        doc = np.searchsorted(word_offsets, starts, side="right") - 1
        valid = starts + n <= word_offsets[doc + 1]
        out[np.repeat(long_doc, counts)] = mix64(acc[valid] ^ np.uint64(n))
    for d in np.flatnonzero(~long_doc):
        out[offsets[d]] = ngram_hashes(hashes[word_offsets[d] : word_offsets[d + 1]], n)[0]
    return out, offsets
