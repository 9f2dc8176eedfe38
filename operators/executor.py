"""Runs a recipe on Ray Data: read -> steps -> per-source Parquet output, ledger and manifest.

Each step runs as one or two cached *stages* (a filter is ``annotate`` then ``decide``; a mapper is
``map``; a global operator is ``annotate`` then ``apply``). A stage reads its parent's Parquet,
applies a batched function and writes Parquet into the stage cache (see ``stage_cache``). Rows a
stage drops stay in its output with a ``_reason`` and are filtered out by the next stage, so the
ledger can be assembled from the stage folders afterwards.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel

from operators.base import Filter, GlobalOperator, Operator, StepContext, get_operator
from operators.digest import combine
from operators.ledger import LedgerError, write_ledger
from operators.output import write_outputs
from operators.recipe import Recipe
from operators.stage_cache import StageCache, StageStats, code_version, parquet_parts, stage_dataset, stage_key
from operators.stages import kept_rows, read_files, stats_batch, step_batch, to_arrow


class StepReport(BaseModel):
    """One line of the per-step table and of ``manifest.json``'s ``steps``."""

    index: int
    name: str
    stage: str
    key: str
    docs_in: int
    docs_out: int
    dropped: dict[str, int]
    seconds: float
    cached: bool
    output_sha256: str


@dataclass
class Stage:
    index: int
    name: str
    stage: str
    key: str
    build: Callable  # parent Dataset -> Dataset


ProgressFn = Callable[[str, StepReport | None], None]


class Executor:
    """Executes one recipe. ``num_blocks`` sets Ray parallelism; results do not depend on it."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        use_cache: bool = True,
        cache_root: Path | None = None,
        num_blocks: int | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.recipe = recipe
        self.cache = StageCache(cache_root, enabled=use_cache)
        self.num_blocks = num_blocks or max(2, 2 * (os.cpu_count() or 1))
        self.progress = progress or (lambda _msg, _report: None)
        self.files = recipe.input_files()  # refuses missing paths before any work

    def run(self, out_dir: str | Path) -> tuple[list[StepReport], dict[str, dict[str, int]], Path]:
        """Run every stage, then write outputs and the ledger into ``out_dir``.

        Returns the step reports, per-source counts and the last stage's folder."""
        from operators.ray_session import ensure_ray

        ensure_ray()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        reports: list[StepReport] = []
        stage_dirs: list[tuple[StepReport, Path]] = []
        parent: Path | None = None
        for stage in self.plan():
            self.progress(f"{stage.name} ({stage.stage})", None)
            report, parent = self._run_stage(stage, parent)
            reports.append(report)
            stage_dirs.append((report, parent))
            self.progress(f"{stage.name} ({stage.stage})", report)
        assert parent is not None
        counts = write_ledger(stage_dirs, out / "ledger.parquet")
        write_outputs(parent, out / "data", sorted(self.files))
        return reports, counts, parent

    # ---- planning ----------------------------------------------------------------------------

    def file_hashes(self) -> dict[str, str]:
        from operators.manifest import sha256_file

        return {f: sha256_file(f) for files in self.files.values() for f in files}

    def plan(self) -> list[Stage]:
        canon = self.recipe.canonical()
        hashes = self.file_hashes()
        read_key = stage_key(
            "",
            stage="read",
            sources=canon["sources"],
            inputs={s: [(os.path.basename(f), hashes[f]) for f in fs] for s, fs in self.files.items()},
            readers={s["format"]: code_version(get_operator(s["format"])) for s in canon["sources"]},
        )
        stages = [Stage(-1, "read", "read", read_key, lambda _parent: self._read_dataset())]
        parent_key = read_key
        for i, step in enumerate(self.recipe.steps):
            if not step.enabled:
                continue
            op = self.recipe.operator(i)
            for stage_name, params in _stage_parts(op):
                key = stage_key(
                    parent_key,
                    op=step.op,
                    stage=stage_name,
                    code=code_version(type(op)),
                    params=params,
                    sources=step.sources,
                    seed=self.recipe.seed if isinstance(op, GlobalOperator) else None,
                )
                stages.append(Stage(i, step.op, stage_name, key, self._builder(op, stage_name, step.sources, i)))
                parent_key = key
        return stages

    def _builder(self, op: Operator, stage: str, sources: list[str] | None, index: int) -> Callable:
        if stage == "apply":
            return functools.partial(self._apply_global, op, sources, index)
        fn = functools.partial(step_batch, op=op, mode=stage, sources=sources)
        return lambda parent: parent.map_batches(fn, batch_format="numpy", zero_copy_batch=False)

    def _read_dataset(self):
        import ray.data

        tasks = []
        for src in self.recipe.sources:
            reader = self.recipe.reader_class(src)
            for path in self.files[src.name]:
                tasks.append(
                    {"path": path, "source": src.name, "params": json.dumps(src.params), "format": reader.name}
                )
        datasets = []  # one per reader: each reader's code is a separate map function
        for fmt in sorted({t["format"] for t in tasks}):
            items = [t for t in tasks if t["format"] == fmt]
            fn = functools.partial(read_files, reader_cls=get_operator(fmt))
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            datasets.append(ds.map_batches(fn, batch_size=1, batch_format="numpy"))
        ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
        return ds.repartition(self.num_blocks)

    def _apply_global(self, op: GlobalOperator, sources: list[str] | None, index: int, parent):
        live = parent.map_batches(_live_arrow, batch_format="numpy", zero_copy_batch=False)
        ctx = StepContext(
            seed=self.recipe.seed,
            num_blocks=self.num_blocks,
            scratch_dir=str(self.cache.scratch()),
            step_index=index,
            sources={
                src.name: {
                    "format": self.recipe.reader_class(src).name,
                    "params": src.params,
                    "files": self.files[src.name],
                }
                for src in self.recipe.sources
            },
        )
        if sources is None:
            return op.apply(live, ctx)
        inside = functools.partial(_by_source, sources=sources, inside=True)
        outside = functools.partial(_by_source, sources=sources, inside=False)
        scoped = op.apply(live.map_batches(inside, batch_format="numpy", zero_copy_batch=False), ctx)
        return scoped.union(live.map_batches(outside, batch_format="numpy", zero_copy_batch=False))

    # ---- execution ---------------------------------------------------------------------------

    def _run_stage(self, stage: Stage, parent: Path | None) -> tuple[StepReport, Path]:
        import ray.data

        hit = self.cache.lookup(stage.key)
        if hit is not None:
            return _report(stage, hit, cached=True), self.cache.path(stage.key)
        start = time.perf_counter()
        tmp = self.cache.scratch()
        parent_ds = None if parent is None else ray.data.read_parquet(parquet_parts(parent))
        stage.build(parent_ds).write_parquet(str(tmp))
        stats = _stage_stats(tmp)
        stats.seconds = round(time.perf_counter() - start, 3)
        path = self.cache.commit(stage.key, tmp, stats)
        return _report(stage, stats, cached=False), path


def _stage_parts(op: Operator) -> list[tuple[str, dict]]:
    """The stages of one step and the params each depends on."""
    full = op.params.model_dump(mode="json")
    if isinstance(op, Filter):
        return [("annotate", op.annotate_key()), ("decide", full)]
    if isinstance(op, GlobalOperator):
        return [("annotate", op.annotate_key()), ("apply", full)]
    if op.kind == "annotator":
        return [("annotate", full)]
    return [("map", full)]


def _live_arrow(batch) -> pa.Table:
    return to_arrow(kept_rows(batch))


def _by_source(batch, sources: list[str], inside: bool) -> pa.Table:
    import numpy as np

    mask = np.isin(batch["source"].astype(str), sources)
    return to_arrow({k: v[mask == inside] for k, v in batch.items()})


def _stage_stats(folder: Path) -> StageStats:
    """Counts and kept-document hash of a written stage, streamed from its Parquet parts."""
    dropped: dict[str, int] = {}
    dropped_by_source: dict[str, int] = {}
    kept_by_source: dict[str, int] = {}
    digests: list[bytes] = []
    for batch in stage_dataset(folder).to_batches(columns=None):
        cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names}
        table = stats_batch(cols)
        for src, reason, digest in zip(
            *(table.column(c).to_pylist() for c in ("source", "reason", "digest")), strict=True
        ):
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                dropped_by_source[src] = dropped_by_source.get(src, 0) + 1
            else:
                kept_by_source[src] = kept_by_source.get(src, 0) + 1
                digests.append(digest)
    return StageStats(
        docs_in=sum(dropped.values()) + len(digests),
        docs_out=len(digests),
        dropped=dict(sorted(dropped.items())),
        dropped_by_source=dict(sorted(dropped_by_source.items())),
        kept_by_source=dict(sorted(kept_by_source.items())),
        kept_sha256=combine(digests),
    )


def _report(stage: Stage, stats: StageStats, cached: bool) -> StepReport:
    return StepReport(
        index=stage.index,
        name=stage.name,
        stage=stage.stage,
        key=stage.key,
        docs_in=stats.docs_in,
        docs_out=stats.docs_out,
        dropped=stats.dropped,
        seconds=stats.seconds,
        cached=cached,
        output_sha256=stats.kept_sha256,
    )


__all__ = ["Executor", "LedgerError", "StepReport"]
