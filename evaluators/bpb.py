"""Bits per byte of a proxy on held-out texts, computed the way lm-eval's ``loglikelihood_rolling`` does.

Each text is scored on its own: the first byte is conditioned on ``EOT``, the first window holds
``EOT`` + the first ``seq_len - 1`` bytes and scores ``seq_len`` bytes, and every later window is a
full ``seq_len`` of preceding bytes that scores the bytes not yet scored (lm-eval's
``get_rolling_token_windows`` with ``context_len=1`` + ``make_disjoint_window``). Bits per byte is
the corpus total ``-sum log p / (ln 2 * sum bytes)``, lm-eval's ``bits_per_byte`` aggregation, so
the two agree to float rounding. Windows are batched by length, so this runs at forward speed.

With a fitted BPE ``tokenizer`` the same windows run over ``EOT`` + the text's ids, and the total
is still divided by the texts' UTF-8 bytes (as lm-eval's ``bits_per_byte`` does whatever the
tokenizer), so a BPE proxy and a byte proxy are scored on the same scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from evaluators.bpe_tokenizer import document_encoder
from evaluators.model import context_length

if TYPE_CHECKING:
    from evaluators.bpe_tokenizer import BpeTokenizer


@dataclass
class Window:
    doc: int
    start: int  # into EOT + bytes
    end: int
    scored: int  # the last ``scored`` positions of the window are scored


def rolling_windows(n_bytes: int, seq_len: int, doc: int = 0) -> list[Window]:
    """lm-eval's disjoint rolling windows over a text of ``n_bytes`` tokens (in ``EOT`` + tokens
    coordinates)."""
    if n_bytes == 0:
        return []
    first = min(seq_len, n_bytes)
    windows = [Window(doc, 0, first, first)]
    predicted = first
    while predicted < n_bytes:
        scored = min(n_bytes - predicted, seq_len)
        end = predicted + scored
        windows.append(Window(doc, end - seq_len, end, scored))
        predicted = end
    return windows


@dataclass
class BpbResult:
    bits_per_byte: float
    nll_nats: float
    n_bytes: int
    n_texts: int


@torch.no_grad()
def bits_per_byte(
    model,
    texts: list[str],
    *,
    seq_len: int | None = None,
    batch_size: int = 32,
    device=None,
    tokenizer: BpeTokenizer | None = None,
) -> BpbResult:
    """Bits per byte of ``model`` over ``texts`` tokenized by ``tokenizer`` (None: bytes; see the
    module docstring)."""
    seq_len = seq_len or context_length(model)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    encode, pad_id = document_encoder(tokenizer)
    docs = [encode(t) for t in texts]
    windows = [w for i, d in enumerate(docs) for w in rolling_windows(len(d) - 1, seq_len, i)]
    windows.sort(key=lambda w: w.end - w.start)
    total = 0.0
    for lo in range(0, len(windows), batch_size):
        batch = windows[lo : lo + batch_size]
        width = max(w.end - w.start for w in batch)
        inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
        targets = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, w in enumerate(batch):
            seq = torch.from_numpy(docs[w.doc][w.start : w.end + 1])
            length = w.end - w.start
            inputs[row, :length] = seq[:-1]
            targets[row, length - w.scored : length] = seq[1 + length - w.scored :]
        logits = model(input_ids=inputs.to(device)).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.to(device).reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += float(nll)
    model.train(was_training)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return BpbResult(total / (math.log(2) * max(n_bytes, 1)), total, n_bytes, len(texts))
