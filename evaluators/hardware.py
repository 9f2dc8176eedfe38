"""Where a proxy trains (CPU threads or a GPU) and that machine's measured matmul ceiling (for MFU)."""

from __future__ import annotations

import functools
import os
import time

import torch


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads explicitly: ``threads``, ``DATAPLAN_TORCH_THREADS`` or every core."""
    n = threads or int(os.environ.get("DATAPLAN_TORCH_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def train_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (exact, deterministic); bf16 autocast on a GPU that supports it."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@functools.cache
def matmul_ceiling(device_type: str = "cpu", dtype: torch.dtype = torch.float32, threads: int = 0) -> float:
    """Best FLOP/s of square matmuls (n = 512 .. 2048 on CPU, 4096 .. 8192 on GPU) measured here,
    now, with the current thread count: the denominator of model FLOPs utilisation."""
    del threads  # part of the cache key only: the ceiling depends on it
    device = torch.device(device_type)
    sizes = (4096, 8192) if device.type == "cuda" else (512, 1024, 2048)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        reps = max(2, int(2e10 / (2 * n**3))) if device.type == "cpu" else 20
        for _ in range(2):
            a @ b
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
