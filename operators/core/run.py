"""Run a recipe into a folder (data/, ledger.parquet, manifest.json), and replay a recorded run."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from operators.core.digest import sha256_file
from operators.core.executor import Executor
from operators.core.manifest import Manifest, build_manifest, load_manifest
from operators.core.plan import ProgressFn
from operators.core.recipe import Recipe, RecipeError, recipe_from_yaml


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    use_cache: bool = True,
    num_blocks: int | None = None,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Execute ``recipe`` into ``out_dir`` (data/, ledger.parquet, manifest.json); returns the manifest."""
    out = Path(out_dir).resolve()
    start = time.perf_counter()
    executor = Executor(recipe, use_cache=use_cache, num_blocks=num_blocks, progress=progress)
    inputs = executor.input_hashes
    result = executor.run(out)
    seconds = round(time.perf_counter() - start, 3)
    manifest = build_manifest(recipe, out, inputs, result, executor.num_blocks, seconds)
    manifest.write(out / "manifest.json")
    return manifest


class ReplayResult(BaseModel):
    """A replay: ``ok`` when the output hash matches; else ``diverged_at`` names the first step whose
    output differs (None: only the final output differs)."""

    ok: bool
    expected: str
    actual: str
    diverged_at: str | None
    manifest: Manifest
    """The replayed run's manifest."""


def replay(
    manifest_path: str | Path, out_dir: str | Path, *, use_cache: bool = False, progress: ProgressFn | None = None
) -> ReplayResult:
    """Re-execute a recorded run and compare output hashes; reports the first diverging step."""
    old = load_manifest(manifest_path)
    recipe = recipe_from_yaml(old.recipe, base_dir=old.base_dir)
    changed = [p for p, h in old.inputs.items() if not Path(p).is_file() or sha256_file(p) != h]
    if changed:
        raise RecipeError(
            f"replay: input files changed or missing since the run: {changed[:5]}; restore them to replay"
        )
    new = run_recipe(recipe, out_dir, use_cache=use_cache, progress=progress)
    diverged = None
    if new.output_sha256 != old.output_sha256:
        for a, b in zip(old.steps, new.steps, strict=False):
            if a.output_sha256 != b.output_sha256:
                diverged = f"step {a.index} {a.name} ({a.stage})"
                break
    return ReplayResult(
        ok=new.output_sha256 == old.output_sha256,
        expected=old.output_sha256,
        actual=new.output_sha256,
        diverged_at=diverged,
        manifest=new,
    )
