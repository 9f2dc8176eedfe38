"""``manifest.json``: everything needed to audit and replay a run."""

from __future__ import annotations

import functools
import json
import platform
import time
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ValidationError

from operators.core.digest import sha256_file
from operators.core.executor import RunResult
from operators.core.plan import StepReport
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


class Manifest(BaseModel):
    """``manifest.json``: what a run read, did and wrote; ``replay`` re-executes it."""

    recipe_id: str
    recipe_name: str
    recipe: str
    """The recipe as YAML."""
    base_dir: str
    """The folder relative source paths of the recipe resolve against."""
    inputs: dict[str, str]
    """Input file -> sha256."""
    sources: dict[str, dict[str, int]]
    """Per source: ``input``, ``kept``, ``dropped`` (the ledger's invariant)."""
    steps: list[StepReport]
    input_docs: int
    output_docs: int
    dropped_docs: int
    output_bytes: dict[str, int]
    """Per source: UTF-8 bytes of the kept text."""
    output_sha256: str
    """Order-independent hash of the output documents."""
    outputs: dict[str, str]
    """Output file name -> sha256."""
    ledger: str = "ledger.parquet"
    versions: dict[str, str]
    seed: int
    num_blocks: int
    seconds: float
    created_at: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False))


def build_manifest(
    recipe: Recipe, out: Path, inputs: dict[str, str], result: RunResult, num_blocks: int, seconds: float
) -> Manifest:
    """The manifest of a finished run whose outputs are in ``out``."""
    counts = result.counts
    return Manifest(
        recipe_id=recipe.recipe_id(),
        recipe_name=recipe.name,
        recipe=recipe.to_yaml(),
        base_dir=recipe.base_dir,
        inputs=inputs,
        sources=counts,
        steps=result.reports,
        input_docs=sum(c["input"] for c in counts.values()),
        output_docs=sum(c["kept"] for c in counts.values()),
        dropped_docs=sum(c["dropped"] for c in counts.values()),
        output_bytes=result.text_bytes,
        output_sha256=result.output_sha256,
        outputs={p.name: sha256_file(p) for p in sorted((out / "data").glob("*.parquet"))},
        versions=package_versions(),
        seed=recipe.seed,
        num_blocks=num_blocks,
        seconds=seconds,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def load_manifest(path: str | Path) -> Manifest:
    """The manifest of a run folder, or of a ``manifest.json`` file."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise RecipeError(f"manifest {str(path)!r} does not exist; pass a run folder or its manifest.json")
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        more = f" and {err.error_count() - 1} more problems" if err.error_count() > 1 else ""
        raise RecipeError(
            f"{path}: not a dataplan manifest ({where}: {first['msg']}{more}); pass the manifest.json a run wrote"
        ) from err
