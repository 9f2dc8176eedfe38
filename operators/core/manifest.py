"""``manifest.json``: everything needed to audit and replay a run."""

from __future__ import annotations

import functools
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from operators.core.digest import sha256_file
from operators.core.executor import RunResult
from operators.core.recipe import Recipe, RecipeError
from operators.core.stage_cache import EXECUTOR_VERSION

VERSIONED_PACKAGES = ("dataplan", "ray", "pyarrow", "numpy", "pydantic", "trafilatura", "py3langid", "datasketch")


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


def build_manifest(
    recipe: Recipe, out: Path, inputs: dict[str, str], result: RunResult, num_blocks: int, seconds: float
) -> dict[str, Any]:
    """The manifest of a finished run whose outputs are in ``out``."""
    counts = result.counts
    return {
        "recipe_id": recipe.recipe_id(),
        "recipe_name": recipe.name,
        "recipe": recipe.to_yaml(),
        "base_dir": recipe.base_dir,
        "inputs": inputs,
        "sources": counts,
        "steps": [r.model_dump(mode="json") for r in result.reports],
        "input_docs": sum(c["input"] for c in counts.values()),
        "output_docs": sum(c["kept"] for c in counts.values()),
        "dropped_docs": sum(c["dropped"] for c in counts.values()),
        "output_bytes": result.text_bytes,
        "output_sha256": result.output_sha256,
        "outputs": {p.name: sha256_file(p) for p in sorted((out / "data").glob("*.parquet"))},
        "ledger": "ledger.parquet",
        "versions": package_versions(),
        "seed": recipe.seed,
        "num_blocks": num_blocks,
        "seconds": seconds,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise RecipeError(f"manifest {str(path)!r} does not exist; pass a run folder or its manifest.json")
    return json.loads(path.read_text())
