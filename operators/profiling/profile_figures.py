"""Profile figures as PNG files, drawn with matplotlib's object API (Agg canvas, no GUI backend)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

TOP_LANGUAGES = 15


def length_histogram(name: str, n_chars: np.ndarray, path: Path) -> str:
    """Histogram of document lengths in characters on log-spaced bins."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    lengths = np.maximum(np.asarray(n_chars, dtype=np.float64), 1.0)
    bins = np.logspace(np.log10(lengths.min()), np.log10(lengths.max() * 1.01), 40) if lengths.size else 10
    ax.hist(lengths, bins=bins, color="#4C72B0")
    ax.set_xscale("log")
    ax.set(title=f"{name}: document length", xlabel="characters (log scale)", ylabel="documents in sample")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return str(path)


def language_bars(name: str, languages: Mapping[str, float], path: Path) -> str:
    """Bar chart of the most frequent languages' shares."""
    from matplotlib.figure import Figure

    top = list(languages.items())[:TOP_LANGUAGES]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.bar([k for k, _ in top], [v for _, v in top], color="#55A868")
    ax.set(title=f"{name}: languages (top {TOP_LANGUAGES})", xlabel="language (py3langid)", ylabel="share of sample")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return str(path)
