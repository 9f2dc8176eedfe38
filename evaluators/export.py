"""Export a run's final training set: the recipe's mixture applied by the proxies' own sampler.

``export_run(run_dir, out_dir, fmt, tokens=None, docs=None, seed=0, shard_bytes=...)`` draws the
stream that a proxy trained with seed ``seed`` on the same budget would see (``sampler``: the
mixture weights water-filled under ``max_epochs``, per-document weights, the synthetic cap, one
seeded shuffle) and writes it in that order as shards:

- ``jsonl``: ``part-00000.jsonl``, one ``{"id", "source", "text"}`` object a line;
- ``parquet``: ``part-00000.parquet`` with columns ``id``, ``source``, ``text``;
- ``tokens``: the byte tokenizer's ids (``evaluators.tokenizer``: ``EOT`` then the UTF-8 bytes of
  each document, vocabulary 258, so ``uint16``), ``part-00000.bin`` (raw little-endian) with
  ``part-00000.idx``, a Megatron-LM ``MMIDIDX`` index (one sequence per document), the pair that
  Megatron/NeMo's ``IndexedDataset`` reads and ``np.memmap`` reads directly.

``manifest.json`` records the run, recipe id, seed, budget, per-source documents, bytes, tokens
and realised share next to the weight, each shard's sha256, and one overall ``sha256`` over the
shards: two exports are the same dataset exactly when it matches. A source with a positive weight
that the recipe left empty is a warning in the manifest; when every source is empty the export is
refused (``ExportRefused``).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from evaluators.sampler import MixtureSample, SourcePool, load_pools, sample_mixture
from evaluators.tokenizer import EOT_ID, VOCAB_SIZE
from operators import Manifest, Mixture, load_manifest, recipe_from_yaml, sha256_file

FORMATS = ("jsonl", "parquet", "tokens")
DEFAULT_SHARD_BYTES = 256 << 20
TOKEN_DTYPE = np.uint16
MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_UINT16 = 8
"""Megatron-LM ``DType`` code of ``uint16``."""
Progress = Callable[[int, int], None]
"""(documents written, documents in the export)."""


class ExportRefused(ValueError):
    """Nothing can be exported (no documents, bad arguments); nothing was written."""


class ExportSource(BaseModel):
    """One source in the export: what the mixture asked for and what came out."""

    weight: float
    """The normalised mixture weight."""
    target_share: float
    """The share the sampler aimed at: the weight, after ``max_epochs`` caps and empty sources
    moved tokens to the other sources."""
    share: float
    """Realised share of the export's tokens."""
    documents: int
    unique_documents: int
    bytes: int
    tokens: int
    available_tokens: int
    """Tokens of the run's kept documents of this source (the pool the sampler drew from)."""
    epochs: float
    capped: bool
    """``max_epochs`` limited this source below its weight's share."""


class Shard(BaseModel):
    file: str
    documents: int
    tokens: int
    sha256: str
    index: str | None = None
    """The ``.idx`` file of a ``tokens`` shard."""
    index_sha256: str | None = None


class ExportManifest(BaseModel):
    """``manifest.json`` of an export."""

    run: str
    recipe_id: str
    recipe_name: str
    run_output_sha256: str
    format: str
    seed: int
    budget_tokens: int
    """The token budget handed to the sampler (byte tokens: UTF-8 bytes + one ``EOT`` per document)."""
    max_documents: int | None
    documents: int
    tokens: int
    bytes: int
    tokenizer: dict[str, str | int]
    sources: dict[str, ExportSource]
    shards: list[Shard]
    warnings: list[str]
    sha256: str
    """Over the shards' names and hashes in order: equal exactly when two exports are the same data."""


def parse_size(text: str) -> int:
    """``"256MB"``, ``"1GiB"``, ``"500k"`` or ``"4096"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not m:
        raise ExportRefused(f"shard size {text!r}: give bytes with an optional unit, e.g. 256MB, 1GiB, 500k")
    value = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_")
    if value < 1:
        raise ExportRefused(f"shard size {text!r}: must be at least one byte")
    return int(value)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    fmt: str = "jsonl",
    *,
    tokens: int | None = None,
    docs: int | None = None,
    seed: int = 0,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: Progress | None = None,
) -> ExportManifest:
    """Write ``run_dir``'s training set under its recipe's mixture into ``out_dir`` (see the module
    docstring); returns the export manifest, also written as ``out_dir/manifest.json``."""
    if fmt not in FORMATS:
        raise ExportRefused(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if tokens is not None and docs is not None:
        raise ExportRefused("give --tokens or --docs, not both")
    run = load_manifest(run_dir)
    mixture = recipe_from_yaml(run.recipe, base_dir=run.base_dir).mixture
    pools = load_pools(run_dir)
    warnings = _empty_sources(run, mixture, pools)
    drawable = {n: p for n, p in pools.items() if p.usable_tokens > 0}
    if mixture.weights is not None:
        drawable = {n: p for n, p in drawable.items() if mixture.weights.get(n, 0.0) > 0}
    if not drawable:
        raise ExportRefused(
            f"nothing to export: no source with a positive weight kept any document in {run_dir} "
            f"({'; '.join(warnings) or 'the run kept nothing'}); loosen the recipe's filters and run it again"
        )
    budget = tokens or mixture.total_tokens or sum(p.usable_tokens for p in drawable.values())
    sample, budget = _draw(pools, mixture, budget, docs, seed)
    order = sample.order if docs is None else sample.order[:docs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("part-*"), out / "manifest.json"]:
        old.unlink(missing_ok=True)
    shards = _write_shards(out, fmt, sample.sources, pools, order, shard_bytes, progress)
    manifest = ExportManifest(
        run=str(Path(run_dir).resolve()),
        recipe_id=run.recipe_id,
        recipe_name=run.recipe_name,
        run_output_sha256=run.output_sha256,
        format=fmt,
        seed=seed,
        budget_tokens=int(budget),
        max_documents=docs,
        documents=len(order),
        tokens=sum(s.tokens for s in shards),
        bytes=sum(s.tokens for s in shards) - len(order),
        tokenizer={"name": "bytes", "vocab_size": VOCAB_SIZE, "eot_id": EOT_ID, "dtype": np.dtype(TOKEN_DTYPE).name},
        sources=_source_stats(sample, pools, order),
        shards=shards,
        warnings=warnings,
        sha256=hashlib.sha256("".join(f"{s.file} {s.sha256}\n" for s in shards).encode()).hexdigest(),
    )
    (out / "manifest.json").write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return manifest


def _empty_sources(run: Manifest, mixture: Mixture, pools: dict[str, SourcePool]) -> list[str]:
    """A warning per source whose weight is positive but that has nothing to draw from."""
    warnings = []
    for name, weight in sorted((mixture.weights or {}).items()):
        if weight > 0 and (name not in pools or pools[name].usable_tokens == 0):
            read = run.sources.get(name, {}).get("input", 0)
            warnings.append(
                f"source {name!r} has weight {weight:g} but the recipe kept none of its {read} documents: "
                f"its share goes to the other sources (see `dataplan samples RUN` for why they were dropped)"
            )
    return warnings


def _draw(
    pools: dict[str, SourcePool], mixture: Mixture, budget: int, docs: int | None, seed: int
) -> tuple[MixtureSample, int]:
    """The sampler's stream for ``budget`` tokens; with ``docs``, the budget is grown until the stream
    holds that many documents (or every source is capped), and the stream is cut there."""
    if docs is not None:
        budget = _budget_for(docs, pools, mixture)
    sample = sample_mixture(pools, mixture, budget, seed)
    if docs is None:
        return sample, budget
    for _ in range(20):
        have = len(sample.order)
        if have >= docs or all(s.capped for s in sample.stats.values() if s.weight > 0):
            break
        budget = int(budget * docs / max(have, 1) * 1.05) + 1
        sample = sample_mixture(pools, mixture, budget, seed)
    return sample, budget


def _budget_for(docs: int, pools: dict[str, SourcePool], mixture: Mixture) -> int:
    """A first guess of the tokens in which the mixture holds ``docs`` documents, from each drawn
    source's share and mean document length."""
    shares = {
        n: float(mixture.weights.get(n, 0.0)) if mixture.weights else float(p.tokens)
        for n, p in pools.items()
        if p.usable_tokens > 0
    }
    total = sum(shares.values())
    docs_per_token = sum(w / total / (pools[n].tokens / len(pools[n].ids)) for n, w in shares.items())
    return int(docs / docs_per_token) + 1


def _source_stats(sample: MixtureSample, pools: dict[str, SourcePool], order: np.ndarray) -> dict[str, ExportSource]:
    picks = {name: order[order[:, 0] == s, 1] for s, name in enumerate(sample.sources)}
    tokens = {name: int(pools[name].n_tokens[picked].sum()) for name, picked in picks.items()}
    targets = {name: sample.stats[name].target_tokens for name in sample.sources}
    out = {}
    for name, picked in picks.items():
        n_tokens = tokens[name]
        out[name] = ExportSource(
            weight=round(sample.stats[name].weight, 6),
            target_share=round(targets[name] / max(sum(targets.values()), 1), 6),
            share=round(n_tokens / max(sum(tokens.values()), 1), 6),
            documents=len(picked),
            unique_documents=len(np.unique(picked)),
            bytes=n_tokens - len(picked),
            tokens=n_tokens,
            available_tokens=pools[name].tokens,
            epochs=round(n_tokens / max(pools[name].tokens, 1), 4),
            capped=sample.stats[name].capped,
        )
    return out


def _write_shards(
    out: Path,
    fmt: str,
    sources: list[str],
    pools: dict[str, SourcePool],
    order: np.ndarray,
    shard_bytes: int,
    progress: Progress | None,
) -> list[Shard]:
    """Documents in stream order, cut into shards of about ``shard_bytes`` at document boundaries."""
    shards: list[Shard] = []
    batch: list[tuple[str, str, str]] = []
    size = 0
    for k, (s, d) in enumerate(order):
        pool = pools[sources[s]]
        batch.append((str(pool.ids[d]), pool.name, str(pool.texts[d])))
        size += int(pool.n_tokens[d]) * (2 if fmt == "tokens" else 1)
        if size >= shard_bytes or k == len(order) - 1:
            shards.append(WRITERS[fmt](out, len(shards), batch))
            batch, size = [], 0
        if progress is not None and (k % 1000 == 0 or k == len(order) - 1):
            progress(k + 1, len(order))
    return shards


def _write_jsonl(out: Path, number: int, docs: list[tuple[str, str, str]]) -> Shard:
    path = out / f"part-{number:05d}.jsonl"
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for doc_id, source, text in docs:
            fh.write(json.dumps({"id": doc_id, "source": source, "text": text}, ensure_ascii=False) + "\n")
    return _shard(path, docs)


def _write_parquet(out: Path, number: int, docs: list[tuple[str, str, str]]) -> Shard:
    path = out / f"part-{number:05d}.parquet"
    columns = list(zip(*docs, strict=True))
    table = pa.table(
        {name: pa.array(col, pa.string()) for name, col in zip(("id", "source", "text"), columns, strict=True)}
    )
    pq.write_table(table, path, compression="zstd")
    return _shard(path, docs)


def _write_tokens(out: Path, number: int, docs: list[tuple[str, str, str]]) -> Shard:
    """``.bin``: each document as ``EOT`` + its UTF-8 bytes, uint16; ``.idx``: Megatron's index."""
    path = out / f"part-{number:05d}.bin"
    lengths = np.empty(len(docs), dtype=np.int32)
    with path.open("wb") as fh:
        for i, (_, _, text) in enumerate(docs):
            ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(TOKEN_DTYPE)
            fh.write(np.concatenate([np.array([EOT_ID], TOKEN_DTYPE), ids]).astype("<u2").tobytes())
            lengths[i] = len(ids) + 1
    index = path.with_suffix(".idx")
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]) * np.dtype(TOKEN_DTYPE).itemsize
    with index.open("wb") as fh:
        fh.write(MEGATRON_HEADER + struct.pack("<QBQQ", 1, MEGATRON_UINT16, len(docs), len(docs) + 1))
        fh.write(lengths.astype("<i4").tobytes())
        fh.write(pointers.astype("<i8").tobytes())
        fh.write(np.arange(len(docs) + 1, dtype="<i8").tobytes())
    shard = _shard(path, docs)
    return shard.model_copy(update={"index": index.name, "index_sha256": sha256_file(index)})


def _shard(path: Path, docs: list[tuple[str, str, str]]) -> Shard:
    tokens = sum(len(text.encode("utf-8")) + 1 for _, _, text in docs)
    return Shard(file=path.name, documents=len(docs), tokens=tokens, sha256=sha256_file(path))


WRITERS = {"jsonl": _write_jsonl, "parquet": _write_parquet, "tokens": _write_tokens}


def read_token_shard(bin_path: str | Path) -> list[np.ndarray]:
    """The documents of a ``tokens`` shard (``.bin`` + its ``.idx``), each as its token ids."""
    bin_path = Path(bin_path)
    raw = bin_path.with_suffix(".idx").read_bytes()
    if not raw.startswith(MEGATRON_HEADER):
        raise ValueError(f"{bin_path.with_suffix('.idx')}: not a Megatron MMIDIDX index")
    _, _, count, _ = struct.unpack_from("<QBQQ", raw, len(MEGATRON_HEADER))
    start = len(MEGATRON_HEADER) + struct.calcsize("<QBQQ")
    lengths = np.frombuffer(raw, dtype="<i4", count=count, offset=start)
    pointers = np.frombuffer(raw, dtype="<i8", count=count, offset=start + 4 * count)
    data = np.fromfile(bin_path, dtype="<u2")
    return [data[p // 2 : p // 2 + n] for p, n in zip(pointers, lengths, strict=True)]
