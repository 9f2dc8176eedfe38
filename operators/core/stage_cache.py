"""Content-addressed cache of executor stages.

A stage's key chains its parent's key with the operator name, its code version and the params the
stage depends on, so a key transitively covers (input file hashes, recipe prefix, code version).
Each entry is a folder of Parquet parts plus ``stats.json``, written under a temporary name and
renamed into place, so an interrupted run never leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from operators.core.env import workspace
from operators.core.recipe import canonical_hash

EXECUTOR_VERSION = "1"
ENGINE = "operators.core."
"""Modules whose edits do not invalidate cached stages (bump ``EXECUTOR_VERSION`` when they must)."""


class StageStats(BaseModel):
    """What one stage did: counts in/out, drops by reason and by source, time, kept-docs hash."""

    docs_in: int
    docs_out: int
    dropped: dict[str, int] = Field(default_factory=dict)
    dropped_by_source: dict[str, int] = Field(default_factory=dict)
    kept_by_source: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    kept_sha256: str = ""


def stage_key(parent: str, **parts: Any) -> str:
    return canonical_hash({"parent": parent, "executor": EXECUTOR_VERSION, **parts})


@cache
def code_version(cls: type) -> str:
    """The operator's declared version plus a hash of its module's source and of the ``operators``
    helper modules it imports names from (e.g. shared text statistics; the engine, ``operators.core``,
    excepted): editing an operator's code invalidates its stages, editing the engine does not."""
    module = inspect.getmodule(cls)
    modules = [module, *_helper_modules(module)]
    h = hashlib.sha256()
    for mod in modules:
        try:
            h.update(inspect.getsource(mod).encode())  # type: ignore[arg-type]
        except (OSError, TypeError):
            continue
    return f"{getattr(cls, 'version', '0')}-{h.hexdigest()[:12]}"


def _helper_modules(module: Any) -> list[Any]:
    """The ``operators.*`` modules outside the engine (other than ``module``) that ``module``'s
    global names come from, sorted by name."""
    found = {}
    for value in vars(module).values() if module is not None else ():
        source = value if inspect.ismodule(value) else inspect.getmodule(value)
        name = getattr(source, "__name__", "")
        if name.startswith("operators.") and not name.startswith(ENGINE) and name != module.__name__:
            found[name] = source
    return [found[k] for k in sorted(found)]


class StageCache:
    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = (root or workspace() / "cache" / "stages").resolve()
        self.enabled = enabled
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> StageStats | None:
        stats = self.path(key) / "stats.json"
        if self.enabled and stats.is_file():
            return StageStats.model_validate_json(stats.read_text())
        return None

    def scratch(self) -> Path:
        path = self.root / "tmp" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def commit(self, key: str, tmp: Path, stats: StageStats) -> Path:
        (tmp / "stats.json").write_text(json.dumps(stats.model_dump(), indent=1))
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return final


def parquet_parts(folder: Path) -> list[str]:
    """The Parquet part files of a stage folder (``stats.json`` beside them is not data)."""
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


def read_stage(folder: Path, num_blocks: int):
    """A stage's parts as a Ray Dataset of ``num_blocks`` read tasks.

    Uses Ray's file-based Parquet reader, which honours ``override_num_blocks``: the V2 reader
    (Ray 2.60's default) bin-packs parts into 128 MiB read units, so a stage of a few tens of MB
    became one read task and every map fused after it ran on a single CPU."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    v2 = ctx.use_datasource_v2
    ctx.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(parquet_parts(folder), override_num_blocks=num_blocks)
    finally:
        ctx.use_datasource_v2 = v2


def stage_dataset(folder: Path):
    """A pyarrow dataset over a stage folder's parts."""
    import pyarrow.dataset as pads

    return pads.dataset(parquet_parts(folder), format="parquet")
