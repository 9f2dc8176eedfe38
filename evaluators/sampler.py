"""Mixture sampler: a run's per-source output + mixture weights + a token budget -> a training stream.

Tokens are the byte tokenizer's (UTF-8 bytes + one ``EOT`` per document), so a budget means the
same amount of text for every recipe.

1. Source shares. Each source gets ``weight * total_tokens``; no source may repeat its documents
   more than ``max_epochs`` times, so a share above ``max_epochs * available`` is capped and the
   excess goes to the uncapped sources in proportion to their weights (water-filling, as in the
   RegMix/Olmix repetition caps). Without weights the natural mixture is used (shares proportional
   to each source's weighted tokens). When every source is capped the stream is shorter than the
   budget, and the report says so. With ``phases`` (``Mixture.phases``, a schedule) each phase's
   share of the budget is split by that phase's weights, phase after phase, from what the earlier
   phases left under the caps: the caps hold over the whole run.
2. Documents within a source. A per-document ``weight`` column (SoftDeDup, He et al. 2024) scales
   how often a document is drawn: document i expects ``share * w_i n_i / sum_j w_j n_j`` tokens,
   again capped at ``max_epochs`` copies per document and water-filled. Whole copies are taken
   as they are; the fractional remainder is filled by weighted sampling without replacement
   (Efraimidis-Spirakis keys) until the source's share is met: the document that crosses it is
   kept when that lands nearer, otherwise the room left is filled by the next documents in draw
   order that fit (so a share smaller than its first drawn document is not left empty). Weight 0
   never samples a document.
3. Synthetic share guard. With ``max_synthetic_share``, copies of documents whose meta says
   ``synthetic: true`` (e.g. ``llm_rephrase`` output) are removed in a seeded random order until
   they hold at most that share of the budget; the stream gets shorter, it is not refilled.
4. The copies of all sources are shuffled into one order. With phases, each source's copies (a
   seeded order, first copies before any repeat) are first cut into consecutive runs that follow
   its per-phase targets; each phase is shuffled on its own and the phases keep training order.

Everything is seeded, and every random number belongs to a document: it is a hash of the seed,
the source's name, the document's id and (for a repeat) its copy number, never of its position.
These are common random numbers (Law & Kelton, "Simulation Modeling and Analysis", ch. 11): two
recipes that differ by a step draw the same documents and train on them in the same order, apart
from the documents the step removes and the ones that take their place, so a paired comparison
measures the step and not a different random sample. The same pool, mixture, budget and seed give
the same stream; adding a source leaves the other sources' selections unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from operators import Mixture, read_output

SAMPLER_VERSION = 2
"""The rule that draws a stream: 2 = every random number keyed by its document (1: by position).
A proxy result measured under another version is not reused."""


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

    @cached_property
    def id_hashes(self) -> np.ndarray:
        """Per document: a 64-bit hash of the source's name and the document's id (its random numbers;
        about 1.3 s per million documents, so only for a source the stream draws from)."""
        return np.fromiter((_hash64(self.name, str(i)) for i in self.ids), np.uint64, len(self.ids))

    def uniforms(self, docs: np.ndarray, seed: int, purpose: str, copy: np.ndarray | int = 0) -> np.ndarray:
        """A number in (0, 1) for each of ``docs`` (indices), fixed by the seed, the purpose, the
        document's id and ``copy`` (which repeat of it)."""
        return _keyed_uniforms(self.id_hashes[docs], _hash64(int(seed), purpose), copy)

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
class PhaseStats:
    """One phase of the stream: ``order[start:end]``, ending at ``until`` of the budget."""

    until: float
    target_tokens: dict[str, int]
    """Per source: the phase's share after the ``max_epochs`` caps."""
    tokens: dict[str, int]
    """Per source: realised in the phase."""
    end: int
    start: int = 0


@dataclass
class MixtureSample:
    """The training stream: ``order[k] = (source index, document index)``, per-source stats (over
    the whole stream) and per-phase stats (one phase for a static mixture)."""

    sources: list[str]
    order: np.ndarray
    stats: dict[str, SourceStats]
    total_tokens: int
    budget: int
    phases: list[PhaseStats] = field(default_factory=list)

    @property
    def phase_starts(self) -> list[int]:
        """Where each phase after the first begins in ``order`` (the documents' indices)."""
        return [p.start for p in self.phases[1:]]

    @property
    def token_shares(self) -> dict[str, float]:
        """Each source's realised share of the stream's tokens."""
        return {n: st.tokens / max(self.total_tokens, 1) for n, st in self.stats.items()}

    def documents(self, pools: dict[str, SourcePool]) -> list[str]:
        """The stream's texts in training order."""
        texts = [pools[name].texts for name in self.sources]
        return [texts[s][d] for s, d in self.order]


def _hash64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijection that scatters every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _keyed_uniforms(hashes: np.ndarray, salt: int, copy: np.ndarray | int = 0) -> np.ndarray:
    """Numbers in (0, 1), one per 64-bit ``hashes`` entry, fixed by it, ``salt`` and ``copy``."""
    copies = np.asarray(copy, dtype=np.uint64)
    x = _splitmix64(hashes.astype(np.uint64) ^ np.uint64(salt)) + (copies + np.uint64(1)) * _GOLDEN
    return ((_splitmix64(x) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


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
    caps = mixture.max_epochs * usable
    schedule = mixture.schedule()
    weights, targets, capped = _phase_targets(pools, names, schedule, caps, total_tokens)
    all_copies = [
        _document_copies(pools[name], targets[:, s].sum(), mixture.max_epochs, seed) for s, name in enumerate(names)
    ]
    if mixture.max_synthetic_share is not None:
        _cap_synthetic(pools, names, all_copies, mixture.max_synthetic_share * total_tokens, seed)
    stats = {}
    for s, name in enumerate(names):
        copies = all_copies[s]
        tokens = int(copies @ pools[name].n_tokens)
        stats[name] = SourceStats(
            weight=float(weights[:, s] @ np.diff([0.0] + [end for end, _ in schedule])),
            available_tokens=pools[name].tokens,
            target_tokens=round(targets[:, s].sum()),
            tokens=tokens,
            epochs=tokens / max(pools[name].tokens, 1),
            documents=int(copies.sum()),
            unique_documents=int((copies > 0).sum()),
            capped=bool(capped[s]),
        )
    if len(schedule) == 1:
        order = _shuffled_copies(pools, names, all_copies, seed)
        phases = [PhaseStats(1.0, {n: st.target_tokens for n, st in stats.items()}, {}, len(order))]
    else:
        order, phases = _phase_order(pools, names, schedule, targets, all_copies, seed)
    for phase in phases:
        phase.tokens = _tokens_by_source(pools, names, order[phase.start : phase.end])
    return MixtureSample(names, order, stats, sum(st.tokens for st in stats.values()), total_tokens, phases)


def _phase_targets(
    pools: dict[str, SourcePool],
    names: list[str],
    schedule: list[tuple[float, dict[str, float] | None]],
    caps: np.ndarray,
    total_tokens: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per phase and source: normalised weights and target tokens, phase after phase from what the
    ``max_epochs`` caps leave (earlier phases draw first); and per source whether a cap bit."""
    weights = np.zeros((len(schedule), len(names)))
    targets = np.zeros((len(schedule), len(names)))
    capped = np.zeros(len(names), dtype=bool)
    begin = 0.0
    for k, (end, phase_weights) in enumerate(schedule):
        if phase_weights is None:
            w = np.array([float(pools[n].weights @ pools[n].n_tokens) for n in names])
        else:
            w = np.array([float(phase_weights.get(n, 0.0)) for n in names])
        left = caps - targets.sum(axis=0)
        if w.sum() <= 0 or caps.sum() <= 0:
            where = "" if len(schedule) == 1 else f"phase {k}: "
            raise ValueError(
                f"{where}nothing to sample: sources {names} have no usable documents under weights {phase_weights}"
            )
        weights[k] = w / w.sum()
        budget = (end - begin) * total_tokens
        targets[k] = water_fill(budget, weights[k], left)
        capped |= weights[k] * budget > left + 0.5
        begin = end
    return weights, targets, capped


def _shuffled_copies(
    pools: dict[str, SourcePool], names: list[str], all_copies: list[np.ndarray], seed: int
) -> np.ndarray:
    """(source index, document index) rows, each source's documents repeated by their copies, in the
    stream's order: each row's place is a number fixed by its document and copy."""
    parts, keys = [], []
    for s, copies in enumerate(all_copies):
        docs, copy = _copies(copies)
        parts.append(np.stack([np.full(len(docs), s), docs], axis=1))
        keys.append(pools[names[s]].uniforms(docs, seed, "order", copy))
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(parts)[np.argsort(np.concatenate(keys), kind="stable")]


def _copies(copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each document index repeated by its copies, and which copy each entry is (0 = the first)."""
    docs = np.repeat(np.arange(len(copies)), copies)
    return docs, np.arange(len(docs)) - np.repeat(np.cumsum(copies) - copies, copies)


def _phase_order(
    pools: dict[str, SourcePool],
    names: list[str],
    schedule: list[tuple[float, dict[str, float] | None]],
    targets: np.ndarray,
    all_copies: list[np.ndarray],
    seed: int,
) -> tuple[np.ndarray, list[PhaseStats]]:
    """The stream of a schedule: each source's copies, first copies first (a document repeats only
    once every document of its source has been seen) in a seeded order, are cut into consecutive
    runs whose tokens follow the source's per-phase targets; each phase is shuffled on its own and
    the phases follow each other in training order."""
    runs: list[list[np.ndarray]] = [[] for _ in schedule]
    keys: list[list[np.ndarray]] = [[] for _ in schedule]
    for s, name in enumerate(names):
        docs, epoch = _copies(all_copies[s])
        key = pools[name].uniforms(docs, seed, "order", epoch)
        ranked = np.lexsort((pools[name].uniforms(docs, seed, "phase", epoch), epoch))
        docs, key = docs[ranked], key[ranked]
        lengths = pools[name].n_tokens[docs]
        middle = np.cumsum(lengths) - lengths / 2
        share = np.cumsum(targets[:, s]) / max(targets[:, s].sum(), 1e-9)
        phase_of = np.minimum(np.searchsorted(share * lengths.sum(), middle, side="right"), len(schedule) - 1)
        for k in range(len(schedule)):
            picked = docs[phase_of == k]
            runs[k].append(np.stack([np.full(len(picked), s), picked], axis=1))
            keys[k].append(key[phase_of == k])
    parts, phases, start = [], [], 0
    for k, (end, _) in enumerate(schedule):
        part = np.concatenate(runs[k]) if runs[k] else np.zeros((0, 2), dtype=np.int64)
        parts.append(part[np.argsort(np.concatenate(keys[k]) if keys[k] else np.zeros(0), kind="stable")])
        phases.append(
            PhaseStats(end, {n: round(targets[k, s]) for s, n in enumerate(names)}, {}, start + len(part), start)
        )
        start += len(part)
    return np.concatenate(parts), phases


def _tokens_by_source(pools: dict[str, SourcePool], names: list[str], order: np.ndarray) -> dict[str, int]:
    return {n: int(pools[n].n_tokens[order[order[:, 0] == s, 1]].sum()) for s, n in enumerate(names)}


def _cap_synthetic(
    pools: dict[str, SourcePool], names: list[str], copies: list[np.ndarray], cap: float, seed: int
) -> None:
    """Remove copies of synthetic documents (seeded random order) until they hold <= ``cap`` tokens."""
    source_of, doc_of, key_of = [], [], []
    for s, name in enumerate(names):
        synthetic = np.flatnonzero(pools[name].synthetic)
        docs, copy = _copies(copies[s][synthetic])  # one entry per copy in the stream
        doc_of.append(synthetic[docs])
        source_of.append(np.full(len(docs), s))
        key_of.append(pools[name].uniforms(synthetic[docs], seed, "synthetic", copy))
    shuffled = np.argsort(np.concatenate(key_of), kind="stable")
    sources, docs = np.concatenate(source_of)[shuffled], np.concatenate(doc_of)[shuffled]
    tokens = np.array([pools[names[s]].n_tokens[d] for s, d in zip(sources, docs, strict=True)], dtype=np.int64)
    kept = int(np.searchsorted(np.cumsum(tokens), cap, side="right"))
    for s, d in zip(sources[kept:], docs[kept:], strict=True):
        copies[s][d] -= 1


def _document_copies(pool: SourcePool, target: float, max_epochs: float, seed: int) -> np.ndarray:
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
    keys = np.log(pool.uniforms(candidates, seed, "draw")) / frac[candidates]
    ranked = candidates[np.argsort(-keys, kind="stable")]
    cumulative = np.cumsum(pool.n_tokens[ranked])
    cut = int(np.searchsorted(cumulative, remainder))  # the document whose tokens reach the target
    copies[ranked[:cut]] += 1
    if cut < len(ranked):
        room = remainder - (cumulative[cut - 1] if cut else 0)
        if pool.n_tokens[ranked[cut]] - room < room:  # keep it if that lands nearer
            copies[ranked[cut]] += 1
        else:  # or fill the room with the next documents, in draw order, that fit in it
            rest = ranked[cut + 1 :]
            fits = rest[pool.n_tokens[rest] <= room]
            smallest = pool.n_tokens[fits].min() if len(fits) else room + 1
            for doc in fits:
                if room < smallest:
                    break
                if pool.n_tokens[doc] <= room:
                    copies[doc] += 1
                    room -= pool.n_tokens[doc]
    return copies
