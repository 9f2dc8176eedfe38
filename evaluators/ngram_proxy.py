"""The count-based proxy: a hashed byte n-gram LM as the cheapest fidelity rung.

Presets ``ngram3`` ... ``ngram7`` fit ``operators.NgramLM`` (interpolated Dirichlet smoothing,
MacKay & Peto 1995) on the same sampled training stream a neural proxy would see (same byte
tokens, ``EOT`` before every document) and score each target text on its own, conditioned on
``EOT`` as ``evaluators.bpb`` does, so the result is bits per byte on the same scale. DataDecide
(Magnusson et al. 2025) found that cheap proxies rank data recipes much better than their
absolute losses suggest; ``benchmarks/decisions.py`` measures how often this rung makes the same
call as a ten-times-larger neural reference.

The count tables hold ``buckets`` float32 entries per order (twice: grams and contexts), so an
order-5 model at the default ``2**21`` buckets takes 80 MB whatever the token budget.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import numpy as np

from evaluators.tokenizer import EOT_ID, VOCAB_SIZE
from operators import NgramLM

NGRAM_PRESET = re.compile(r"^ngram([3-7])$")
BETA = 2.0
"""Dirichlet prior strength, as ``perplexity_select``'s default."""
BUCKETS = 2**21
CHUNK_TOKENS = 4_000_000
"""Training tokens hashed at once (bounds memory: order x chunk x 16 bytes of hashes)."""


def ngram_order(preset: object) -> int | None:
    """The n-gram order of a count-based preset name (``ngram5`` -> 5), None for a neural preset."""
    match = NGRAM_PRESET.match(preset) if isinstance(preset, str) else None
    return int(match.group(1)) if match else None


def _document_tokens(texts: list[str]) -> np.ndarray:
    """``EOT`` + UTF-8 bytes of every text, concatenated (the neural proxies' training stream)."""
    parts = []
    for text in texts:
        parts.append(np.array([EOT_ID], dtype=np.int64))
        parts.append(np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def fit_ngram(
    stream: list[str],
    order: int,
    buckets: int = BUCKETS,
    beta: float = BETA,
    eval_at: list[int] | None = None,
    check: Callable[[NgramLM, int], bool] | None = None,
) -> tuple[NgramLM, bool]:
    """Count the n-grams of the training stream (documents in stream order). When the tokens
    counted reach a number in ``eval_at`` (exactly: the stream is cut there), ``check(model,
    tokens)`` sees the model fitted on that prefix, a smaller-budget rung of the same stream; True
    stops counting. Returns the model and whether it was stopped."""
    model = NgramLM(order, buckets, beta, VOCAB_SIZE)
    points = sorted(eval_at or []) if check else []
    batch: list[str] = []
    size = pending = 0  # characters (chunking), tokens not yet counted (rungs)
    for text in stream:
        batch.append(text)
        size += len(text) + 1
        pending += len(text.encode("utf-8")) + 1 if points else 0
        if size < CHUNK_TOKENS and not (points and model.total + pending >= points[0]):
            continue
        tokens = _document_tokens(batch)
        batch, size, pending = [], 0, 0
        while points and model.total + len(tokens) >= points[0]:
            cut = points.pop(0) - int(model.total)
            model.add(tokens[:cut])
            tokens = tokens[cut:]
            if check is not None and check(model, int(model.total)):
                return model, True
        model.add(tokens)
    if batch:
        model.add(_document_tokens(batch))
    return model, False


def ngram_bits_per_byte(model: NgramLM, texts: list[str]) -> tuple[float, int]:
    """Bits per byte over ``texts`` (each conditioned on ``EOT`` only) and the bytes scored."""
    nll, n_bytes = 0.0, 0
    for text in texts:
        tokens = _document_tokens([text])
        if len(tokens) < 2:
            continue
        nll -= float(model.log_probs(tokens)[1:].sum())
        n_bytes += len(tokens) - 1
    return nll / (math.log(2) * max(n_bytes, 1)), n_bytes


class NgramTrained:
    """What fitting took: the model, the tokens counted, the seconds, whether a rung stopped it."""

    def __init__(
        self,
        stream: list[str],
        order: int,
        eval_at: list[int] | None = None,
        check: Callable[[NgramLM, int], bool] | None = None,
    ) -> None:
        start = time.perf_counter()
        self.order = order
        self.model, self.stopped_early = fit_ngram(stream, order, eval_at=eval_at, check=check)
        self.seconds = time.perf_counter() - start
        self.tokens = int(self.model.total)
        self.params = int(sum(int((row > 0).sum()) for row in self.model.grams))
