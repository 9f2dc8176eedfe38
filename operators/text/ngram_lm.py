"""Hashed n-gram language models over token arrays (UTF-8 bytes or word hashes).

Counts live in fixed-size hashed tables (one row per order), so a model has a known size, can
be summed across Ray blocks and shipped to workers. Smoothing is interpolated Dirichlet
(MacKay & Peto 1995): ``P_k(t|h) = (N(h t) + beta * P_{k-1}(t|h')) / (N(h) + beta)`` where
``N(h)`` counts the context ``h`` followed by any token and ``P_0`` is uniform.
"""

from __future__ import annotations

import numpy as np

from operators.text.text_hashing import mix64

_MIX = np.uint64(0x9E3779B97F4A7C15)


def gram_hashes(tokens: np.ndarray, order: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucketed hashes per token: ``grams[k-1]`` of the k tokens ending there and
    ``contexts[k-1]`` of the k-1 tokens before it (row 0 unused: the unigram context is empty).
    The sequence is padded with ``order - 1`` zero tokens in front."""
    y = np.concatenate([np.zeros(order - 1, dtype=np.uint64), tokens.astype(np.uint64)])
    n = len(y)
    full = np.zeros((order, n), dtype=np.uint64)
    full[0] = mix64(y + np.uint64(1))
    for k in range(2, order + 1):  # extend the (k-1)-gram ending at j one token to the left
        full[k - 1, k - 1 :] = mix64(full[k - 2, k - 1 :] * _MIX + y[: n - k + 1] + np.uint64(k))
    grams = (full[:, order - 1 :] % np.uint64(buckets)).astype(np.int64)
    contexts = np.zeros_like(grams)
    contexts[1:] = full[:-1, order - 2 : n - 1] % np.uint64(buckets)
    return grams, contexts


def utf8_tokens(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


class NgramLM:
    """Hashed n-gram LM; ``vocab`` sets the uniform base distribution ``P_0 = 1 / vocab``."""

    def __init__(self, order: int, buckets: int, beta: float, vocab: int) -> None:
        self.order, self.buckets, self.beta, self.vocab = order, buckets, beta, vocab
        self.grams = np.zeros((order, buckets), dtype=np.float32)
        self.contexts = np.zeros((order, buckets), dtype=np.float32)
        self.total = 0.0

    def add(self, tokens: np.ndarray) -> None:
        """Count one sequence."""
        if len(tokens) == 0:
            return
        grams, contexts = gram_hashes(tokens, self.order, self.buckets)
        for k in range(self.order):
            self.grams[k] += np.bincount(grams[k], minlength=self.buckets)
            if k:
                self.contexts[k] += np.bincount(contexts[k], minlength=self.buckets)
        self.total += len(tokens)

    def merge(self, other: NgramLM) -> None:
        self.grams += other.grams
        self.contexts += other.contexts
        self.total += other.total

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Natural-log probability of each token given the ones before it."""
        if len(tokens) == 0:
            return np.zeros(0)
        grams, contexts = gram_hashes(tokens, self.order, self.buckets)
        prob = np.full(len(tokens), 1.0 / self.vocab)
        for k in range(self.order):
            seen = self.contexts[k][contexts[k]] if k else self.total
            prob = (self.grams[k][grams[k]] + self.beta * prob) / (seen + self.beta)
        return np.log(prob)
