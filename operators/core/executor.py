"""Runs a recipe on Ray Data: read -> steps -> per-source Parquet output, ledger and manifest.

Each step runs as cached *stages* on two chains ("annotate once, decide cheaply"):

- the *content* chain computes what does not depend on which documents survive: mappers' rewritten
  text and every ``annotate`` stage (signals, signatures), over **all** documents still readable;
  its keys chain only content-changing work, so moving any threshold upstream never invalidates it
  (except after a ``survivors_only`` operator, e.g. an LLM scorer: the chains merge there, so it
  sees only what the decisions before it kept; and after an ``edits_text`` global operator, so
  later signals describe the edited text);
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

from operators.core.base import GlobalOperator, Operator, OperatorKind, StepContext, get_operator
from operators.core.digest import sha256_file
from operators.core.ledger import write_ledger
from operators.core.output import write_outputs
from operators.core.plan import CONTENT_KEEPING, Chain, ProgressFn, Stage, StageKind, StepReport
from operators.core.recipe import Recipe, RecipeError, Step
from operators.core.stage_cache import StageCache, StageStats, code_version, stage_bytes, stage_key
from operators.core.stage_stats import repeated_ids, stage_stats
from operators.core.stages import decide_batch, read_files, step_batch, to_arrow


class RunResult(BaseModel):
    """What ``Executor.run`` did: every stage's report, per-source ledger counts and the UTF-8
    bytes of each source's kept text."""

    reports: list[StepReport]
    counts: dict[str, dict[str, int]]
    """Per source: ``input``, ``kept``, ``dropped``."""
    text_bytes: dict[str, int]

    @property
    def output_sha256(self) -> str:
        """The kept-documents hash of the last decision stage: the run's output hash."""
        return [r for r in self.reports if r.chain == Chain.DECISION][-1].output_sha256


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

    def run(self, out_dir: str | Path) -> RunResult:
        """Run every stage, then write outputs and the ledger into ``out_dir``. The stage cache is
        held for the whole run (``cache gc`` is refused meanwhile) and its scratch folders are
        deleted however the run ends."""
        from operators.core.ray_session import ensure_ray

        ensure_ray()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self.cache.in_use():
            self.cache.record_run(out)
            try:
                return self._execute(out)
            finally:
                self.cache.release_scratch()

    def _execute(self, out: Path) -> RunResult:
        reports: list[StepReport] = []
        decisions: list[tuple[StepReport, Path]] = []
        dirs: dict[str, Path] = {}
        last = None
        for stage in self.plan():
            self.progress(f"{stage.name} ({stage.stage})", None)
            report, dirs[stage.key] = self._run_stage(stage, dirs.get(stage.parent), dirs.get(stage.join))
            reports.append(report)
            if stage.chain == Chain.DECISION:
                decisions.append((report, dirs[stage.key]))
                last = dirs[stage.key]
            self.progress(f"{stage.name} ({stage.stage})", report)
        assert last is not None
        counts = write_ledger(decisions, out / "ledger.parquet")
        text_bytes = write_outputs(last, out / "data", sorted(self.files))
        return RunResult(reports=reports, counts=counts, text_bytes=text_bytes)

    # ---- planning ----------------------------------------------------------------------------

    @functools.cached_property
    def input_hashes(self) -> dict[str, str]:
        """sha256 of every input file, read once per run (the plan and the manifest both use it)."""
        return {f: sha256_file(f) for files in self.files.values() for f in files}

    def plan(self) -> list[Stage]:
        """The stages of the recipe in execution order: reading, then each enabled step's stages."""
        read_key = self._read_key()
        stages = [Stage(index=-1, name="read", stage=StageKind.READ, key=read_key, build=self._read_builder)]
        heads = _Heads(content=read_key, decision=read_key)
        enabled = [(i, s) for i, s in enumerate(self.recipe.steps) if s.enabled]
        for pos, (i, step) in enumerate(enabled):
            op = self.recipe.operator(i)
            if op.survivors_only:
                heads.content = heads.decision  # costly per document: only what the decisions so far kept
            if op.kind == OperatorKind.MAPPER:
                later = (self.recipe.operator(j) for j, _ in enabled[pos + 1 :])
                needed_later = any(o.kind != OperatorKind.MAPPER for o in later)
                stages += self._plan_mapper(i, step, op, heads, needed_later)
            else:
                stages += self._plan_annotated(i, step, op, heads)
            if op.edits_text:
                heads.content = heads.decision  # later signals are computed on the edited text
        return stages

    def _read_key(self) -> str:
        canon = self.recipe.canonical()
        hashes = self.input_hashes
        return stage_key(
            "",
            stage=StageKind.READ,
            sources=canon["sources"],
            inputs={s: [(os.path.basename(f), hashes[f]) for f in fs] for s, fs in self.files.items()},
            readers={s["format"]: code_version(get_operator(s["format"])) for s in canon["sources"]},
        )

    def _plan_mapper(self, index: int, step: Step, op: Operator, heads: _Heads, needed_later: bool) -> list[Stage]:
        """A mapper runs once on the content chain while the chains are one, or when a later
        annotate stage needs its text; after a decision it also runs on the decision chain."""
        key = functools.partial(_step_key, step=step, op=op, seed=self.recipe.seed)
        full = op.params.model_dump(mode="json")
        build = self._builder(op, StageKind.MAP, step.sources)
        shared = heads.content == heads.decision
        stages = []
        if shared or needed_later:
            chain = Chain.DECISION if shared else Chain.CONTENT
            ck = key(heads.content, StageKind.MAP, full)
            stages.append(
                Stage(
                    index=index,
                    name=step.op,
                    stage=StageKind.MAP,
                    key=ck,
                    build=build,
                    parent=heads.content,
                    chain=chain,
                )
            )
            heads.content = ck
            if shared:
                heads.decision = ck
                return stages
        dk = key(heads.decision, StageKind.MAP, full)
        stages.append(Stage(index=index, name=step.op, stage=StageKind.MAP, key=dk, build=build, parent=heads.decision))
        heads.decision = dk
        return stages

    def _plan_annotated(self, index: int, step: Step, op: Operator, heads: _Heads) -> list[Stage]:
        """An annotate stage on the content chain (signals only), then the decision stage that
        joins those signals: ``decide`` (filter), ``apply`` (global) or ``join`` (annotator)."""
        key = functools.partial(_step_key, step=step, op=op, seed=self.recipe.seed)
        full = op.params.model_dump(mode="json")
        signals = op.annotate_key() if op.kind != OperatorKind.ANNOTATOR else full
        ak = key(heads.content, StageKind.ANNOTATE, signals)
        annotate = Stage(
            index=index,
            name=step.op,
            stage=StageKind.ANNOTATE,
            key=ak,
            parent=heads.content,
            build=self._builder(op, StageKind.ANNOTATE, step.sources),
            chain=Chain.CONTENT,
        )
        heads.content = ak
        mode = DECISION_STAGE.get(op.kind, StageKind.JOIN)
        dk = key(heads.decision, mode, full, signals=ak)
        decide = Stage(
            index=index,
            name=step.op,
            stage=mode,
            key=dk,
            parent=heads.decision,
            join=ak,
            build=self._builder(op, mode, step.sources, index),
        )
        heads.decision = dk
        return [annotate, decide]

    def _builder(self, op: Operator, stage: StageKind, sources: list[str] | None, index: int = -1) -> Callable:
        if stage == StageKind.APPLY:
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

    def _read_builder(self, _parent: None, _join: None):
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
        return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]

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

    def _tasks(self, parent: Path, cheap: bool) -> int:
        """Read tasks for a stage of ``parent``: one per ``TASK_BYTES`` and at least ``num_blocks``;
        for a cheap stage one per ``CHEAP_STAGE_BYTES``."""
        from operators.core.stage_io import TASK_BYTES

        size = stage_bytes(parent)
        if cheap:
            return max(1, -(-size // CHEAP_STAGE_BYTES))
        return max(self.num_blocks, -(-size // TASK_BYTES))

    def _run_stage(self, stage: Stage, parent: Path | None, join: Path | None) -> tuple[StepReport, Path]:
        hit = self.cache.lookup(stage.key)
        if hit is not None:
            return _report(stage, hit, cached=True), self.cache.path(stage.key)
        from operators.core.stage_io import read_stage, write_stage

        start = time.perf_counter()
        tmp = self.cache.scratch()
        unchanged = stage.stage in CONTENT_KEEPING
        parent_ds = None if parent is None else read_stage(parent, self._tasks(parent, cheap=unchanged))
        write_stage(stage.build(parent_ds, join), tmp)
        stats = stage_stats(tmp, unchanged_from=parent if unchanged else None)
        if stage.stage == "read":
            _refuse_repeated_ids(tmp)
        stats.seconds = round(time.perf_counter() - start, 3)
        path = self.cache.commit(stage.key, tmp, stats)
        return _report(stage, stats, cached=False), path


DECISION_STAGE = {OperatorKind.FILTER: StageKind.DECIDE, OperatorKind.GLOBAL: StageKind.APPLY}
"""The decision stage of an operator with an annotate stage, by kind (otherwise ``join``)."""


@dataclass
class _Heads:
    """The newest stage key of each chain while planning."""

    content: str
    decision: str


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


__all__ = ["Executor", "RunResult"]
