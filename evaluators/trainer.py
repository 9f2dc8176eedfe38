"""Trains a GPT-2 proxy on packed sequences: AdamW, linear warmup + cosine decay, seeded.

A plain PyTorch loop (no ``Trainer``: at 0.1M-1M parameters its per-step overhead costs more than
the model). Pad positions are excluded from the loss. Throughput counts every sequence position
the model processed (pads included: they cost the same FLOPs). Every ``eval_every`` training tokens the
``evaluate`` callable scores the model and ``on_eval(step, tokens_seen, scores)`` decides whether
to stop (the search's pruner). A ``loss_fn`` replaces the mean next-token loss with its own
objective for each batch (domain reweighting: DoReMi, DoGE). Throughput is reported as tokens/s
and as model FLOPs utilisation against the matmul ceiling measured on the same device with the
same thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from evaluators.bpe_tokenizer import document_encoder
from evaluators.hardware import matmul_ceiling, pick_device, set_threads, train_dtype
from evaluators.model import Preset, build_model, context_length, count_params, flops_per_token
from evaluators.tokenizer import PAD_ID, save_tokenizer

if TYPE_CHECKING:
    from evaluators.bpe_tokenizer import BpeTokenizer

EvalFn = Callable[[torch.nn.Module], dict[str, float]]
OnEval = Callable[[int, int, dict[str, float]], bool]
LossFn = Callable[[torch.nn.Module, int, slice, torch.Tensor, torch.Tensor], torch.Tensor]
"""(model, step, the batch's rows of ``sequences``, batch tokens, logits) -> the loss to minimise."""


@dataclass
class TrainResult:
    model: torch.nn.Module
    params: int
    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float
    mfu: float
    matmul_flops: float
    device: str
    threads: int
    stopped_early: bool
    losses: list[tuple[int, int, float]] = field(default_factory=list)
    """(step, tokens seen, training loss) per optimiser step."""
    evals: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)


def lr_at(step: int, total_steps: int, preset: Preset) -> float:
    """Linear warmup over ``warmup_frac`` of the steps, then cosine decay to ``min_lr_ratio * lr``
    or (``wsd``) the peak rate until the last ``decay_frac`` of the steps and a linear decay there."""
    warmup = max(1, round(preset.warmup_frac * total_steps))
    if step < warmup:
        return preset.lr * (step + 1) / warmup
    floor = preset.min_lr_ratio
    if preset.schedule == "wsd":
        decay = max(1, round(preset.decay_frac * total_steps))
        left = min(1.0, (total_steps - step) / decay)
        return preset.lr * (floor + (1 - floor) * left)
    progress = (step - warmup) / max(1, total_steps - warmup)
    return preset.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(
    sequences: np.ndarray,
    preset: Preset,
    *,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
    evaluate: EvalFn | None = None,
    eval_every: int | None = None,
    on_eval: OnEval | None = None,
    eval_at: list[int] | None = None,
    loss_fn: LossFn | None = None,
    tokenizer: BpeTokenizer | None = None,
) -> TrainResult:
    """One pass over ``sequences`` ((n, seq_len) token ids of ``tokenizer``, None: bytes; its pad id
    = not trained on). Evaluates every ``eval_every`` tokens, or once each time the tokens seen
    pass a count in ``eval_at``; ``loss_fn`` (default: ``next_token_loss``) gives each step's
    objective."""
    if sequences.ndim != 2 or sequences.shape[1] != preset.seq_len:
        raise ValueError(f"sequences must be (n, {preset.seq_len}); got {sequences.shape}")
    dev = pick_device(device)
    n_threads = set_threads(threads)
    dtype = train_dtype(dev)
    torch.manual_seed(seed)
    model = build_model(preset, tokenizer).to(dev)
    pad_id = document_encoder(tokenizer)[1]
    n_params = count_params(model)
    optimizer = _optimizer(model, preset, dev)
    data = torch.from_numpy(sequences.astype(np.int64))
    total_steps = max(1, -(-len(data) // preset.batch_size))
    result = TrainResult(
        model=model,
        params=n_params,
        steps=0,
        tokens=0,
        seconds=0.0,
        tokens_per_s=0.0,
        mfu=0.0,
        matmul_flops=0.0,
        device=str(dev),
        threads=n_threads,
        stopped_early=False,
    )
    points = sorted(eval_at or [])
    next_eval = points.pop(0) if points else (eval_every or 0)
    train_seconds, positions = 0.0, 0
    model.train()
    for step in range(total_steps):
        start = time.perf_counter()
        rows = slice(step * preset.batch_size, (step + 1) * preset.batch_size)
        batch = data[rows].to(dev, non_blocking=True)
        if not (batch[:, 1:] != pad_id).any():
            continue  # nothing to predict (a last sequence holding one token)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total_steps, preset)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = model(input_ids=batch).logits
        loss = loss_fn(model, step, rows, batch, logits) if loss_fn else next_token_loss(logits, batch, pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())  # also synchronises a GPU, so the timing below is real
        train_seconds += time.perf_counter() - start
        positions += batch.numel()
        result.tokens += int((batch != pad_id).sum())
        result.steps = step + 1
        result.losses.append((step, result.tokens, loss_value))
        if evaluate and next_eval and result.tokens >= next_eval and step + 1 < total_steps:
            while points and points[0] <= result.tokens:
                points.pop(0)
            next_eval = points.pop(0) if points else (0 if eval_at else next_eval + (eval_every or 0))
            scores = evaluate(model)
            model.train()
            result.evals.append((step, result.tokens, scores))
            if on_eval and on_eval(step, result.tokens, scores):
                result.stopped_early = True
                break
    model.eval()
    result.seconds = train_seconds
    result.tokens_per_s = positions / max(train_seconds, 1e-9)
    result.matmul_flops = matmul_ceiling(dev.type, dtype, n_threads)
    vocab = model.config.vocab_size
    result.mfu = result.tokens_per_s * flops_per_token(preset, n_params, vocab) / result.matmul_flops
    return result


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """Mean cross-entropy of each position's next token; pad targets are ignored."""
    targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == pad_id, -100)
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    return torch.nn.functional.cross_entropy(flat, targets.reshape(-1), ignore_index=-100)


def token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each position's next token, (n, seq_len - 1), and the mask of the positions
    that count (targets that are not pads; their loss is 0 elsewhere)."""
    targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == PAD_ID, -100)
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    losses = torch.nn.functional.cross_entropy(flat, targets.reshape(-1), ignore_index=-100, reduction="none")
    return losses.view(targets.shape), targets != -100


def _optimizer(model: torch.nn.Module, preset: Preset, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; only matrices are decayed, biases and LayerNorm gains are not (nanoGPT's convention)."""
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": preset.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=preset.lr, betas=preset.betas, fused=device.type in ("cpu", "cuda"))


def save_model(model: torch.nn.Module, folder: str | Path, tokenizer: BpeTokenizer | None = None) -> Path:
    """Save model + its tokenizer (None: the byte tokenizer) in Hugging Face format (loadable by
    lm-eval's ``hf`` model)."""
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar per trial is noise
    try:
        model.save_pretrained(str(folder))
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if tokenizer is None:
        save_tokenizer(folder, model_max_length=context_length(model))
    else:
        tokenizer.save_pretrained(folder, model_max_length=context_length(model))
    return folder
