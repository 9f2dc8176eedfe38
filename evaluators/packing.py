"""Packing documents into fixed-length training sequences.

- ``concat_and_chunk``: the GPT-2/3 default. Documents (each ``EOT`` + its bytes, or its ids under
  a fitted BPE ``tokenizer``) are concatenated in stream order and cut every ``seq_len`` tokens;
  only the last sequence is padded, but every document that straddles a cut is truncated (its
  tail is trained without its head as context). The sequences are then shuffled (seeded), as
  GPT-2/3-style loaders draw them: kept in order, a long document's sequences fill consecutive
  batches, and one 30 KB licence in Japanese (byte-fallback tokens under an English BPE) filled 8
  batches of a 100k-token proxy and raised its loss from 6.6 to 10.2 nats for the rest of the run.
- ``best_fit``: Best-fit Decreasing packing (Ding et al. 2024, "Fewer Truncations Improve Language
  Modeling"). A document is cut only when it is longer than ``seq_len``; the pieces are placed,
  longest first, into the open sequence with the least room that still fits them, and the
  remainder of each sequence is padded. Sequences are then shuffled (seeded). Given the starts of
  a multi-phase mixture's phases (``MixtureSample.phase_starts``), each phase is packed and
  shuffled on its own and the phases keep their order.

Under ``concat`` a sequence belongs to the phase of its first token's document, and sequences are
shuffled within their phase, so the phases keep their order there too.

Both report ``truncation_rate`` (documents split over more than one sequence / documents) and
``padding_rate`` (pad tokens / all tokens). Pad positions carry the pad id and are left out of the
loss. Given one label per document (its source index), ``Packed.labels`` holds the label of every
token's document, ``-1`` at pads: per-domain losses of a mixed sequence (DoReMi's source labels).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from evaluators.bpe_tokenizer import document_encoder
from evaluators.tokenizer import PAD_ID

if TYPE_CHECKING:
    from evaluators.bpe_tokenizer import BpeTokenizer

METHODS = ("concat", "best_fit")

PACKING_VERSION = 2
"""2 = ``concat`` shuffles its sequences within each phase (1: kept in stream order). A proxy
result measured under another version is not reused."""


@dataclass
class PackingStats:
    method: str
    seq_len: int
    sequences: int
    documents: int
    truncated_documents: int
    tokens: int
    padding_tokens: int

    @property
    def truncation_rate(self) -> float:
        return self.truncated_documents / max(self.documents, 1)

    @property
    def padding_rate(self) -> float:
        return self.padding_tokens / max(self.sequences * self.seq_len, 1)

    def as_dict(self) -> dict:
        return {**self.__dict__, "truncation_rate": self.truncation_rate, "padding_rate": self.padding_rate}


@dataclass
class Packed:
    """``tokens``: (sequences, seq_len) ``uint16`` token ids, ``PAD_ID`` where nothing was placed;
    ``labels``: the same shape, each token's document label (``-1`` at pads), when labels were given."""

    tokens: np.ndarray
    stats: PackingStats
    labels: np.ndarray | None = None


def pack(
    texts: list[str],
    seq_len: int,
    method: str = "concat",
    seed: int = 0,
    phase_starts: Sequence[int] = (),
    labels: np.ndarray | None = None,
    tokenizer: BpeTokenizer | None = None,
) -> Packed:
    """Encode ``texts`` with ``tokenizer`` (None: the byte tokenizer) and pack them with ``method``
    (one of ``METHODS``); ``phase_starts`` (indices into ``texts``) keep a phased stream's order;
    ``labels`` (one small non-negative int per text) are carried to every token."""
    encode, pad_id = document_encoder(tokenizer)
    docs = [encode(t) for t in texts]
    if method == "concat":
        return concat_and_chunk(docs, seq_len, seed, phase_starts, labels, pad_id)
    if method == "best_fit":
        return best_fit(docs, seq_len, seed, phase_starts, labels, pad_id)
    raise ValueError(f"packing method {method!r}: use one of {METHODS}")


def concat_and_chunk(
    docs: list[np.ndarray],
    seq_len: int,
    seed: int = 0,
    phase_starts: Sequence[int] = (),
    labels: np.ndarray | None = None,
    pad_id: int = PAD_ID,
) -> Packed:
    """Concatenate ``docs``, cut every ``seq_len`` tokens, pad the last sequence and shuffle the
    sequences within each phase."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    total = int(lengths.sum())
    n_seq = -(-total // seq_len)
    flat = np.full(n_seq * seq_len, pad_id, dtype=np.uint16)
    if docs:
        flat[:total] = np.concatenate(docs)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    straddles = (starts // seq_len) != ((ends - 1) // seq_len)
    stats = PackingStats("concat", seq_len, n_seq, len(docs), int(straddles.sum()), total, n_seq * seq_len - total)
    first_doc = np.searchsorted(ends, np.arange(n_seq) * seq_len, side="right")  # the document of each row's start
    order = shuffle_within_phases(np.searchsorted(phase_starts, first_doc, side="right"), len(phase_starts), seed)
    token_labels = None
    if labels is not None:
        token_labels = np.full(n_seq * seq_len, -1, dtype=np.int16)
        token_labels[:total] = np.repeat(np.asarray(labels, dtype=np.int16), lengths)
        token_labels = token_labels.reshape(n_seq, seq_len)[order]
    return Packed(flat.reshape(n_seq, seq_len)[order], stats, token_labels)


def best_fit(
    docs: list[np.ndarray],
    seq_len: int,
    seed: int = 0,
    phase_starts: Sequence[int] = (),
    labels: np.ndarray | None = None,
    pad_id: int = PAD_ID,
) -> Packed:
    """Best-fit Decreasing: cut only documents longer than ``seq_len``, pack the pieces tightly
    (each phase on its own: a sequence never mixes documents of two phases)."""
    pieces = [d[i : i + seq_len] for d in docs for i in range(0, len(d), seq_len)]
    owner = [k for k, d in enumerate(docs) for _ in range(0, len(d), seq_len)]  # the document of each piece
    phase = [bisect.bisect_right(phase_starts, k) for k in owner]
    truncated = sum(len(d) > seq_len for d in docs)
    order = sorted(range(len(pieces)), key=lambda k: (phase[k], -len(pieces[k])))
    bins: list[list[int]] = []
    bin_phase: list[int] = []
    room: list[tuple[int, int]] = []  # (free tokens, bin index), sorted: the best fit is the first >= size
    for k in order:
        if bin_phase and bin_phase[-1] != phase[k]:
            room = []  # a new phase: the open sequences of the last one are closed
        size = len(pieces[k])
        at = bisect.bisect_left(room, (size, -1))
        if at == len(room):
            bins.append([k])
            bin_phase.append(phase[k])
            free, b = seq_len - size, len(bins) - 1
        else:
            free, b = room.pop(at)
            bins[b].append(k)
            free -= size
        if free > 0:
            bisect.insort(room, (free, b))
    tokens = np.full((len(bins), seq_len), pad_id, dtype=np.uint16)
    token_labels = None if labels is None else np.full((len(bins), seq_len), -1, dtype=np.int16)
    for row, b in enumerate(shuffle_within_phases(np.array(bin_phase), len(phase_starts), seed)):
        seq = np.concatenate([pieces[k] for k in bins[b]])
        tokens[row, : len(seq)] = seq
        if token_labels is not None:
            token_labels[row, : len(seq)] = np.concatenate([np.full(len(pieces[k]), labels[owner[k]]) for k in bins[b]])
    total = sum(len(d) for d in docs)
    stats = PackingStats("best_fit", seq_len, len(bins), len(docs), truncated, total, len(bins) * seq_len - total)
    return Packed(tokens, stats, token_labels)


def shuffle_within_phases(row_phase: np.ndarray, phase_count: int, seed: int) -> np.ndarray:
    """A seeded order of the rows that permutes each phase's rows among themselves (``row_phase``:
    each row's phase, non-decreasing, ``0 .. phase_count``)."""
    rng = np.random.default_rng(seed)
    first = np.searchsorted(row_phase, np.arange(phase_count + 2))  # each phase's first row
    return np.concatenate([lo + rng.permutation(hi - lo) for lo, hi in itertools.pairwise(first)])
