"""``manifest.json``: everything needed to audit and replay a run, and ``run_recipe``/``replay``."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from operators.executor import Executor, ProgressFn
from operators.recipe import Recipe, RecipeError, recipe_from_yaml
from operators.stage_cache import EXECUTOR_VERSION

VERSIONED_PACKAGES = ("dataplan", "ray", "pyarrow", "numpy", "pydantic", "trafilatura", "py3langid", "datasketch")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "executor": EXECUTOR_VERSION}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    use_cache: bool = True,
    num_blocks: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Execute ``recipe`` into ``out_dir`` (data/, ledger.parquet, manifest.json); returns the manifest."""
    out = Path(out_dir).resolve()
    start = time.perf_counter()
    executor = Executor(recipe, use_cache=use_cache, num_blocks=num_blocks, progress=progress)
    inputs = executor.input_hashes
    reports, counts, text_bytes = executor.run(out)
    manifest = {
        "recipe_id": recipe.recipe_id(),
        "recipe_name": recipe.name,
        "recipe": recipe.to_yaml(),
        "base_dir": recipe.base_dir,
        "inputs": inputs,
        "sources": counts,
        "steps": [r.model_dump() for r in reports],
        "input_docs": sum(c["input"] for c in counts.values()),
        "output_docs": sum(c["kept"] for c in counts.values()),
        "dropped_docs": sum(c["dropped"] for c in counts.values()),
        "output_bytes": text_bytes,
        "output_sha256": [r for r in reports if r.chain == "decision"][-1].output_sha256,
        "outputs": {p.name: sha256_file(p) for p in sorted((out / "data").glob("*.parquet"))},
        "ledger": "ledger.parquet",
        "versions": package_versions(),
        "seed": recipe.seed,
        "num_blocks": executor.num_blocks,
        "seconds": round(time.perf_counter() - start, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise RecipeError(f"manifest {str(path)!r} does not exist; pass a run folder or its manifest.json")
    return json.loads(path.read_text())


class ReplayResult(dict):
    """``ok``, ``expected``/``actual`` output hashes, ``diverged_at`` (first differing step) and the new manifest."""

    @property
    def ok(self) -> bool:
        return bool(self["ok"])


def replay(
    manifest_path: str | Path, out_dir: str | Path, *, use_cache: bool = False, progress: ProgressFn | None = None
) -> ReplayResult:
    """Re-execute a recorded run and compare output hashes; reports the first diverging step."""
    old = load_manifest(manifest_path)
    recipe = recipe_from_yaml(old["recipe"], base_dir=old["base_dir"])
    changed = [p for p, h in old["inputs"].items() if not Path(p).is_file() or sha256_file(p) != h]
    if changed:
        raise RecipeError(
            f"replay: input files changed or missing since the run: {changed[:5]}; restore them to replay"
        )
    new = run_recipe(recipe, out_dir, use_cache=use_cache, progress=progress)
    diverged = None
    if new["output_sha256"] != old["output_sha256"]:
        for a, b in zip(old["steps"], new["steps"], strict=False):
            if a["output_sha256"] != b["output_sha256"]:
                diverged = f"step {a['index']} {a['name']} ({a['stage']})"
                break
    return ReplayResult(
        ok=new["output_sha256"] == old["output_sha256"],
        expected=old["output_sha256"],
        actual=new["output_sha256"],
        diverged_at=diverged,
        manifest=new,
    )
