"""Mixture sampler: a run's per-source output + mixture weights + a token budget -> a training stream.

Tokens are the byte tokenizer's (UTF-8 bytes + one ``EOT`` per document), so a budget means the
same amount of text for every recipe.

1. Source shares. Each source gets ``weight * total_tokens``; no source may repeat its documents
   more than ``max_epochs`` times, so a share above ``max_epochs * available`` is capped and the
   excess goes to the uncapped sources in proportion to their weights (water-filling, as in the
   RegMix/Olmix repetition caps). Without weights the natural mixture is used (shares proportional
   to each source's weighted tokens). When every source is capped the stream is shorter than the
   budget, and the report says so.
2. Documents within a source. A per-document ``weight`` column (SoftDeDup, He et al. 2024) scales
   how often a document is drawn: document i expects ``share * w_i n_i / sum_j w_j n_j`` tokens,
   again capped at ``max_epochs`` copies per document and water-filled. Whole copies are taken
   as they are; the fractional remainder is filled by weighted sampling without replacement
   (Efraimidis-Spirakis keys) until the source's share is met. Weight 0 never samples a document.
3. Synthetic share guard. With ``max_synthetic_share``, copies of documents whose meta says
   ``synthetic: true`` (e.g. ``llm_rephrase`` output) are removed in a seeded random order until
   they hold at most that share of the budget; the stream gets shorter, it is not refilled.
4. The copies of all sources are shuffled into one order.

Everything is seeded: the same pool, mixture, budget and seed give the same stream; each source
draws from its own generator, so adding a source leaves the other sources' selections unchanged.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from operators import Mixture, read_output


@dataclass
class SourcePool:
    """The documents of one source that training may use (ids sorted, as in the run output)."""

    name: str
    ids: np.ndarray
    texts: np.ndarray
    weights: np.ndarray
    synthetic: np.ndarray | None = None
    """Per document: meta says ``synthetic: true`` (None = no document is)."""
    n_tokens: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.synthetic is None:
            self.synthetic = np.zeros(len(self.ids), dtype=bool)
        self.n_tokens = np.fromiter((len(t.encode("utf-8")) + 1 for t in self.texts), np.int64, len(self.texts))

    @property
    def tokens(self) -> int:
        return int(self.n_tokens.sum())

    @property
    def usable_tokens(self) -> int:
        """Tokens of the documents with a positive weight (the ones that can be drawn)."""
        return int(self.n_tokens[self.weights > 0].sum())


def load_pools(
    run_dir: str | Path, sources: list[str] | None = None, exclude_ids: dict[str, set[str]] | None = None
) -> dict[str, SourcePool]:
    """Read each source's kept documents from ``run_dir``, minus ``exclude_ids`` (held-out slices)."""
    data = Path(run_dir) / "data"
    names = sources if sources is not None else sorted(p.stem for p in data.glob("*.parquet"))
    pools = {}
    for name in names:
        if not (data / f"{name}.parquet").is_file():
            raise FileNotFoundError(f"{data / name}.parquet: source {name!r} has no output in this run")
        table = read_output(run_dir, name)
        ids = table.column("id").to_numpy(zero_copy_only=False)
        keep = np.ones(len(ids), dtype=bool)
        excluded = (exclude_ids or {}).get(name)
        if excluded:
            keep = ~np.isin(ids, np.array(sorted(excluded), dtype=object))
        if "weight" in table.column_names:
            weights = pc.fill_null(table.column("weight"), 1.0).to_numpy(zero_copy_only=False).astype(np.float64)
            weights = np.nan_to_num(weights, nan=1.0)  # NaN = the weighting step did not cover this row
        else:
            weights = np.ones(len(ids))
        texts = table.column("text").to_numpy(zero_copy_only=False)
        synthetic = np.array([is_synthetic(m) for m in table.column("meta").to_pylist()], dtype=bool)
        pools[name] = SourcePool(name, ids[keep], texts[keep], weights[keep], synthetic[keep])
    return pools


def is_synthetic(meta: str | None) -> bool:
    """A run-output ``meta`` JSON string that marks its document as synthetic."""
    return bool(meta) and '"synthetic"' in meta and json.loads(meta).get("synthetic") is True


@dataclass
class SourceStats:
    """What the sampler realised for one source."""

    weight: float
    available_tokens: int
    target_tokens: int
    tokens: int
    epochs: float
    documents: int
    unique_documents: int
    capped: bool


@dataclass
class MixtureSample:
    """The training stream: ``order[k] = (source index, document index)``, and per-source stats."""

    sources: list[str]
    order: np.ndarray
    stats: dict[str, SourceStats]
    total_tokens: int
    budget: int

    def documents(self, pools: dict[str, SourcePool]) -> list[str]:
        """The stream's texts in training order."""
        texts = [pools[name].texts for name in self.sources]
        return [texts[s][d] for s, d in self.order]


def water_fill(budget: float, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Split ``budget`` in proportion to ``weights`` without exceeding ``caps``; excess is re-split."""
    alloc = np.zeros(len(weights))
    active = (weights > 0) & (caps > 0)
    while active.any():
        remaining = budget - alloc.sum()
        share = np.zeros(len(weights))
        share[active] = remaining * weights[active] / weights[active].sum()
        full = active & (share >= caps - alloc)
        if not full.any():
            alloc[active] += share[active]
            break
        alloc[full] = caps[full]
        active &= ~full
    return alloc


def sample_mixture(pools: dict[str, SourcePool], mixture: Mixture, total_tokens: int, seed: int = 0) -> MixtureSample:
    """A deterministic training stream of about ``total_tokens`` tokens (see the module docstring)."""
    names = sorted(pools)
    usable = np.array([pools[n].usable_tokens for n in names], dtype=np.float64)
    if mixture.weights is None:
        weights = np.array([float(pools[n].weights @ pools[n].n_tokens) for n in names])
    else:
        weights = np.array([float(mixture.weights.get(n, 0.0)) for n in names])
    if weights.sum() <= 0 or usable.sum() <= 0:
        raise ValueError(f"nothing to sample: sources {names} have no usable documents under weights {mixture.weights}")
    weights = weights / weights.sum()
    caps = mixture.max_epochs * usable
    targets = water_fill(float(total_tokens), weights, caps)
    all_copies = []
    for s, name in enumerate(names):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        all_copies.append(_document_copies(pools[name], targets[s], mixture.max_epochs, rng))
    if mixture.max_synthetic_share is not None:
        _cap_synthetic(pools, names, all_copies, mixture.max_synthetic_share * total_tokens, seed)
    order_parts, stats = [], {}
    for s, name in enumerate(names):
        copies = all_copies[s]
        docs = np.repeat(np.arange(len(copies)), copies)
        order_parts.append(np.stack([np.full(len(docs), s), docs], axis=1))
        tokens = int(copies @ pools[name].n_tokens)
        stats[name] = SourceStats(
            weight=float(weights[s]),
            available_tokens=pools[name].tokens,
            target_tokens=round(targets[s]),
            tokens=tokens,
            epochs=tokens / max(pools[name].tokens, 1),
            documents=int(copies.sum()),
            unique_documents=int((copies > 0).sum()),
            capped=bool(weights[s] * total_tokens > caps[s] + 0.5),
        )
    order = np.concatenate(order_parts) if order_parts else np.zeros((0, 2), dtype=np.int64)
    order = order[np.random.default_rng([seed, 0x5EED]).permutation(len(order))]
    return MixtureSample(names, order, stats, sum(st.tokens for st in stats.values()), total_tokens)


def _cap_synthetic(
    pools: dict[str, SourcePool], names: list[str], copies: list[np.ndarray], cap: float, seed: int
) -> None:
    """Remove copies of synthetic documents (seeded random order) until they hold <= ``cap`` tokens."""
    source_of, doc_of = [], []
    for s, name in enumerate(names):
        docs = np.flatnonzero(pools[name].synthetic)
        doc_of.append(np.repeat(docs, copies[s][docs]))  # one entry per copy in the stream
        source_of.append(np.full(len(doc_of[-1]), s))
    sources, docs = np.concatenate(source_of), np.concatenate(doc_of)
    shuffled = np.random.default_rng([seed, 0x5717]).permutation(len(docs))
    sources, docs = sources[shuffled], docs[shuffled]
    tokens = np.array([pools[names[s]].n_tokens[d] for s, d in zip(sources, docs, strict=True)], dtype=np.int64)
    kept = int(np.searchsorted(np.cumsum(tokens), cap, side="right"))
    for s, d in zip(sources[kept:], docs[kept:], strict=True):
        copies[s][d] -= 1


def _document_copies(pool: SourcePool, target: float, max_epochs: float, rng: np.random.Generator) -> np.ndarray:
    """How many times each document of ``pool`` enters the stream so that its tokens meet ``target``."""
    n = pool.n_tokens.astype(np.float64)
    expected = water_fill(target, pool.weights * n, max_epochs * n * (pool.weights > 0)) / n
    copies = np.floor(expected + 1e-9).astype(np.int64)
    frac = np.clip(expected - copies, 0.0, 1.0)
    remainder = target - float(copies @ pool.n_tokens)
    candidates = np.flatnonzero(frac > 1e-9)
    if remainder <= 0 or not len(candidates):
        return copies
    # Efraimidis-Spirakis: key = log(u) / p, largest keys first = weighted sampling without replacement
    keys = np.log(rng.random(len(candidates))) / frac[candidates]
    ranked = candidates[np.argsort(-keys, kind="stable")]
    cumulative = np.cumsum(pool.n_tokens[ranked])
    cut = int(np.searchsorted(cumulative, remainder))  # the document whose tokens reach the target
    take = cut
    if cut < len(ranked):
        before = cumulative[cut - 1] if cut else 0
        take += int(cumulative[cut] - remainder < remainder - before)  # keep it if that lands nearer
    copies[ranked[:take]] += 1
    return copies
