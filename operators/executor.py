"""Runs a recipe on Ray Data: read -> steps -> per-source Parquet output, ledger and manifest.

Each step runs as cached *stages* on two chains ("annotate once, decide cheaply"):

- the *content* chain computes what does not depend on which documents survive: mappers' rewritten
  text and every ``annotate`` stage (signals, signatures), over **all** documents still readable;
  its keys chain only content-changing work, so moving any threshold upstream never invalidates it
  (except after a ``survivors_only`` operator, e.g. an LLM scorer: the chains merge there, so it
  sees only what the decisions before it kept);
- the *decision* chain applies ``decide`` (filters), ``apply`` (global operators) and mappers that
  follow a decision to the surviving documents, joining each step's signals from its annotate stage
  by (source, id).

Before the first decision the two chains are one. A stage reads its parent's Parquet, applies a
batched function and writes Parquet into the stage cache (see ``stage_cache``). Rows a decision
stage drops stay in its output with a ``_reason`` and are filtered out by the next stage, so the
ledger is assembled from the decision chain's folders afterwards.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel

from operators.base import GlobalOperator, Operator, StepContext, get_operator
from operators.ledger import LedgerError, write_ledger
from operators.output import write_outputs
from operators.recipe import Recipe, RecipeError
from operators.stage_cache import StageCache, StageStats, code_version, parquet_parts, read_stage, stage_key
from operators.stage_stats import repeated_ids, stage_stats
from operators.stages import decide_batch, read_files, step_batch, to_arrow


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
    chain: str = "decision"
    """"content": not part of the ledger; computed over every readable document, whatever earlier
    decisions kept (or, from a ``survivors_only`` operator on, over what they kept)."""


@dataclass
class Stage:
    index: int
    name: str
    stage: str
    key: str
    build: Callable  # (parent Dataset, join folder or None) -> Dataset
    parent: str | None = None
    """Key of the stage whose output this one reads (None for reading)."""
    join: str | None = None
    """Key of the annotate stage whose signal columns are joined in by (source, id)."""
    chain: str = "decision"
    """"content" stages never drop documents a decision kept: they are not part of the ledger."""


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

    def run(self, out_dir: str | Path) -> tuple[list[StepReport], dict[str, dict[str, int]], dict[str, int]]:
        """Run every stage, then write outputs and the ledger into ``out_dir``.

        Returns the step reports, per-source counts and per-source UTF-8 bytes of the kept text."""
        from operators.ray_session import ensure_ray

        ensure_ray()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        reports: list[StepReport] = []
        decisions: list[tuple[StepReport, Path]] = []
        dirs: dict[str, Path] = {}
        last = None
        for stage in self.plan():
            self.progress(f"{stage.name} ({stage.stage})", None)
            report, dirs[stage.key] = self._run_stage(stage, dirs.get(stage.parent), dirs.get(stage.join))
            reports.append(report)
            if stage.chain == "decision":
                decisions.append((report, dirs[stage.key]))
                last = dirs[stage.key]
            self.progress(f"{stage.name} ({stage.stage})", report)
        assert last is not None
        counts = write_ledger(decisions, out / "ledger.parquet")
        return reports, counts, write_outputs(last, out / "data", sorted(self.files))

    # ---- planning ----------------------------------------------------------------------------

    @functools.cached_property
    def input_hashes(self) -> dict[str, str]:
        """sha256 of every input file, read once per run (the plan and the manifest both use it)."""
        from operators.manifest import sha256_file

        return {f: sha256_file(f) for files in self.files.values() for f in files}

    def plan(self) -> list[Stage]:
        canon = self.recipe.canonical()
        hashes = self.input_hashes
        read_key = stage_key(
            "",
            stage="read",
            sources=canon["sources"],
            inputs={s: [(os.path.basename(f), hashes[f]) for f in fs] for s, fs in self.files.items()},
            readers={s["format"]: code_version(get_operator(s["format"])) for s in canon["sources"]},
        )
        stages = [Stage(-1, "read", "read", read_key, lambda _parent, _join: self._read_dataset())]
        content = decision = read_key
        enabled = [(i, s) for i, s in enumerate(self.recipe.steps) if s.enabled]
        for pos, (i, step) in enumerate(enabled):
            op = self.recipe.operator(i)
            full = op.params.model_dump(mode="json")
            key = functools.partial(_step_key, step=step, op=op, seed=self.recipe.seed)
            if op.survivors_only:
                content = decision  # costly per document: only what the decisions so far kept

            if op.kind == "mapper":
                shared = content == decision
                needed_later = any(self.recipe.operator(j).kind != "mapper" for j, _ in enabled[pos + 1 :])
                if shared or needed_later:
                    ck = key(content, "map", full)
                    stages.append(
                        Stage(
                            i,
                            step.op,
                            "map",
                            ck,
                            self._builder(op, "map", step.sources, i),
                            content,
                            None,
                            "decision" if shared else "content",
                        )
                    )
                    content = ck
                    if shared:
                        decision = ck
                        continue
                dk = key(decision, "map", full)
                stages.append(Stage(i, step.op, "map", dk, self._builder(op, "map", step.sources, i), decision))
                decision = dk
                continue
            ak = key(content, "annotate", op.annotate_key() if op.kind != "annotator" else full)  # signals only
            stages.append(
                Stage(
                    i,
                    step.op,
                    "annotate",
                    ak,
                    self._builder(op, "annotate", step.sources, i),
                    content,
                    None,
                    "content",
                )
            )
            content = ak
            mode = {"filter": "decide", "global": "apply"}.get(op.kind, "join")
            dk = key(decision, mode, full, signals=ak)
            stages.append(Stage(i, step.op, mode, dk, self._builder(op, mode, step.sources, i), decision, ak))
            decision = dk
        return stages

    def _builder(self, op: Operator, stage: str, sources: list[str] | None, index: int) -> Callable:
        if stage == "apply":
            return functools.partial(self._apply_global, op, sources, index)

        if stage in CONTENT_KEEPING:

            def build(parent, join: Path | None):
                fn = functools.partial(decide_batch, op=op, mode=stage, sources=sources, join=_str(join))
                return parent.map_batches(fn, batch_format="pyarrow")

            return build

        def build_map(parent, _join: None):
            fn = functools.partial(step_batch, op=op, mode=stage, sources=sources)
            return parent.map_batches(fn, batch_format="numpy", zero_copy_batch=False, **op.ray_args())

        return build_map

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

    def _apply_global(self, op: GlobalOperator, sources: list[str] | None, index: int, parent, join: Path | None):
        live_fn = functools.partial(decide_batch, op=op, mode="join", sources=sources, join=_str(join))
        live = parent.map_batches(live_fn, batch_format="pyarrow")
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

    def _blocks(self, parent: Path, cheap: bool) -> int:
        """Read tasks for a stage: ``num_blocks``, or for a cheap stage one per ``CHEAP_STAGE_BYTES``."""
        if not cheap:
            return self.num_blocks
        size = sum(os.path.getsize(p) for p in parquet_parts(parent))
        return max(1, min(self.num_blocks, -(-size // CHEAP_STAGE_BYTES)))

    def _run_stage(self, stage: Stage, parent: Path | None, join: Path | None) -> tuple[StepReport, Path]:
        hit = self.cache.lookup(stage.key)
        if hit is not None:
            return _report(stage, hit, cached=True), self.cache.path(stage.key)
        start = time.perf_counter()
        tmp = self.cache.scratch()
        unchanged = stage.stage in CONTENT_KEEPING
        parent_ds = None if parent is None else read_stage(parent, self._blocks(parent, cheap=unchanged))
        stage.build(parent_ds, join).write_parquet(str(tmp), compression="lz4")
        stats = stage_stats(tmp, unchanged_from=parent if unchanged else None)
        if stage.stage == "read":
            _refuse_repeated_ids(tmp)
        stats.seconds = round(time.perf_counter() - start, 3)
        path = self.cache.commit(stage.key, tmp, stats)
        return _report(stage, stats, cached=False), path


CONTENT_KEEPING = frozenset({"decide", "join"})
"""Stages that only set ``_reason`` or attach signals: cheap per document, and every kept document's
content is its parent's."""

CHEAP_STAGE_BYTES = 16 << 20
"""Parquet bytes per Ray task for a content-keeping stage: a task's fixed cost is ~30 ms, its work
on 16 MiB (reading, deciding, writing) several times that."""


def _step_key(parent: str, stage: str, params: dict, *, step, op: Operator, seed: int, **extra) -> str:
    """A stage's cache key: its parent's key, the operator, its code version and the params it uses."""
    return stage_key(
        parent,
        op=step.op,
        stage=stage,
        code=code_version(type(op)),
        params=params,
        sources=step.sources,
        seed=seed if isinstance(op, GlobalOperator) else None,
        **extra,
    )


def _refuse_repeated_ids(folder: Path) -> None:
    """Signals are joined and the ledger is written by (source, id): two records of one source
    with the same id would get each other's signals and fates."""
    repeated = repeated_ids(folder)
    if repeated:
        shutil.rmtree(folder)
        src, ids = next(iter(repeated.items()))
        raise RecipeError(
            f"source {src!r}: ids carried by more than one record: {len(ids)} (e.g. {ids[:3]}); ids must be "
            "unique within a source. Set the source's `params: {id_field: ...}` to a unique field, or to '' to "
            "identify records by file and position"
        )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _by_source(batch, sources: list[str], inside: bool) -> pa.Table:
    import numpy as np

    mask = np.isin(batch["source"].astype(str), sources)
    return to_arrow({k: v[mask == inside] for k, v in batch.items()})


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
        chain=stage.chain,
    )


__all__ = ["Executor", "LedgerError", "StepReport"]
