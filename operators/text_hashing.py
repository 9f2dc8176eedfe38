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


def batch_ngram_hashes(texts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes of every document of a batch, concatenated, and each document's offset
    into that array (``offsets[i]:offsets[i+1]``); every document has at least one hash."""
    memo: dict[str, int] = {}
    parts = [ngram_hashes(word_hashes(words(str(t)), memo), n) for t in texts]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)), offsets
