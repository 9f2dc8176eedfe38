"""What the stage cache holds, and removing what no recorded run needs (``dataplan cache du|gc``).

A run's ``manifest.json`` names the key of every stage it ran or reused (``steps[].key``). The runs
the cache knows are the run folders every executor records in the cache (``runs/``) and any
``manifest.json`` under the workspace (searches, agent runs, runs recorded before the cache kept a
record). A stage that one of their manifests names is referenced: ``gc`` keeps it, so replaying
that run with ``--use-cache`` still finds every stage; every other stage, and scratch folders that
killed processes left behind, are removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, computed_field

from operators.core.env import workspace
from operators.core.manifest import Manifest, load_manifest
from operators.core.recipe import RecipeError
from operators.core.stage_cache import RUNS, StageCache, StageStats, stale_scratch


class StageUsage(BaseModel):
    """One cached stage: its key, size on disk, documents out, and the runs that name it."""

    key: str
    bytes: int
    docs: int | None
    """Documents in the stage's output (None: no ``stats.json``, an incomplete entry)."""
    step: str
    """``name (stage)`` as the first referencing manifest calls it ("" when none does)."""
    runs: list[str]
    """Run folders whose manifest names this stage."""

    @computed_field
    @property
    def referenced(self) -> bool:
        return bool(self.runs)


class CacheUsage(BaseModel):
    """``cache du``: every stage, the totals, and the stale scratch folders."""

    root: str
    stages: list[StageUsage]
    total_bytes: int
    referenced_bytes: int
    runs: list[str]
    """Run folders whose manifests were read."""
    stale_scratch: list[str]
    stale_scratch_bytes: int


class GcResult(BaseModel):
    """``cache gc``: what was (or, with ``dry_run``, would be) removed and what was kept."""

    dry_run: bool
    removed: list[StageUsage]
    removed_bytes: int
    kept: int
    kept_bytes: int
    scratch_removed: list[str]
    scratch_bytes: int


def cache_usage(root: Path | None = None) -> CacheUsage:
    """Sizes of the stage cache at ``root`` (default: the workspace's) and which stages recorded runs need."""
    cache = StageCache(root, sweep=False)
    manifests = _recorded_runs(cache)
    names: dict[str, tuple[str, list[str]]] = {}
    for folder, manifest in manifests.items():
        for step in manifest.steps:
            names.setdefault(step.key, (f"{step.name} ({step.stage})", []))[1].append(folder)
    stages = []
    for path in sorted(p for p in cache.root.glob("??/*") if p.is_dir()):
        step, runs = names.get(path.name, ("", []))
        stats = path / "stats.json"
        docs = StageStats.model_validate_json(stats.read_text()).docs_out if stats.is_file() else None
        stages.append(StageUsage(key=path.name, bytes=_size(path), docs=docs, step=step, runs=runs))
    scratch = stale_scratch(cache.root)
    return CacheUsage(
        root=str(cache.root),
        stages=stages,
        total_bytes=sum(s.bytes for s in stages),
        referenced_bytes=sum(s.bytes for s in stages if s.referenced),
        runs=sorted(manifests),
        stale_scratch=[str(p) for p in scratch],
        stale_scratch_bytes=sum(_size(p) for p in scratch),
    )


def collect_garbage(root: Path | None = None, dry_run: bool = False) -> GcResult:
    """Remove the stages no recorded run names, and stale scratch folders (nothing with ``dry_run``).

    Raises ``CacheBusyError`` while a run holds the cache: a stage is never removed under a reader."""
    cache = StageCache(root, sweep=False)
    if dry_run:
        return _plan(cache_usage(cache.root), dry_run=True)
    with cache.exclusive():
        usage = cache_usage(cache.root)
        result = _plan(usage, dry_run=False)
        for stage in result.removed:  # out of the key space in one rename, then deleted
            trash = cache.scratch()
            cache.path(stage.key).rename(trash / stage.key)
        cache.release_scratch()
        for path in usage.stale_scratch:
            shutil.rmtree(path, ignore_errors=True)
        _forget_missing_runs(cache)
    return result


def _plan(usage: CacheUsage, dry_run: bool) -> GcResult:
    removed = [s for s in usage.stages if not s.referenced]
    return GcResult(
        dry_run=dry_run,
        removed=removed,
        removed_bytes=sum(s.bytes for s in removed),
        kept=len(usage.stages) - len(removed),
        kept_bytes=usage.referenced_bytes,
        scratch_removed=usage.stale_scratch,
        scratch_bytes=usage.stale_scratch_bytes,
    )


def _recorded_runs(cache: StageCache) -> dict[str, Manifest]:
    """Run folder -> manifest, for every run the cache recorded and every manifest in the workspace."""
    candidates = {Path(p.read_text()) / "manifest.json" for p in (cache.root / RUNS).glob("*")}
    candidates |= {p for p in workspace().rglob("manifest.json") if cache.root not in p.parents}
    found = {}
    for path in sorted(candidates):
        try:
            found[str(path.parent)] = load_manifest(path)
        except RecipeError:  # gone, or another tool's manifest.json (a demo corpus)
            continue
    return found


def _forget_missing_runs(cache: StageCache) -> None:
    """Drop the records of run folders that no longer hold a manifest."""
    for record in (cache.root / RUNS).glob("*"):
        if not (Path(record.read_text()) / "manifest.json").is_file():
            record.unlink(missing_ok=True)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
