"""Target sets: the held-out texts every proxy is scored on, identical for every recipe.

A target is either ``files`` (JSONL with a text field, or plain-text files) or a held-out slice of
one ``source``. The slice is chosen from the source's *raw input* (read with the recipe's reader,
found through the run's ``manifest.json``) by a hash of each document id, so every recipe over the
same inputs is scored on the same texts whatever its steps did; the sampler then excludes those
ids from training. A run folder without a manifest takes the slice from its output instead.
Sources whose raw records are not text (e.g. WARC) should use ``files`` targets.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from operators import NAME_PATTERN, load_manifest, read_output, recipe_from_yaml


class Target(BaseModel):
    """A named held-out text set (``files`` or a ``source`` slice), capped at ``max_docs``/``max_bytes``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    files: tuple[str, ...] = ()
    source: str | None = None
    holdout_fraction: float = Field(0.05, gt=0, lt=1, description="share of the source's documents held out")
    max_docs: int = Field(64, gt=0)
    max_bytes: int = Field(131_072, gt=0, description="documents are added (in a fixed order) while they fit")
    text_field: str = "text"

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if bool(self.files) == bool(self.source):
            raise ValueError(f"target {self.name!r}: give either `files` or `source`, not both or neither")
        return self


def holdout_rank(doc_id: str) -> float:
    """A stable pseudo-random number in [0, 1) per document id (sha256), the held-out order."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64


def resolve_targets(run_dir: str | Path, targets: list[Target]) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Target name -> texts, and source -> ids that training must not see."""
    texts: dict[str, list[str]] = {}
    excluded: dict[str, set[str]] = {}
    for target in targets:
        if target.files:
            docs = [t for f in target.files for t in _read_file(Path(f), target.text_field)]
        else:
            ranked = sorted((holdout_rank(i), i, t) for i, t in _source_documents(run_dir, target.source))
            held = [(i, t) for r, i, t in ranked if r < target.holdout_fraction]
            excluded.setdefault(target.source, set()).update(i for i, _ in held)
            docs = [t for _, t in held]
        texts[target.name] = _cap(docs, target)
        if not texts[target.name]:
            raise ValueError(f"target {target.name!r} has no text (files {target.files}, source {target.source})")
    return texts, excluded


def _cap(docs: list[str], target: Target) -> list[str]:
    out, used = [], 0
    for text in docs:
        size = len(text.encode("utf-8"))
        if text and used + size <= target.max_bytes:
            out.append(text)
            used += size
        if len(out) >= target.max_docs:
            break
    return out


def _read_file(path: Path, field: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"target file {path} does not exist")
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line)[field] for line in fh if line.strip()]
    return [path.read_text(encoding="utf-8")]


def _source_documents(run_dir: str | Path, source: str) -> list[tuple[str, str]]:
    """(id, text) of a source's raw input (via the manifest's recipe), or of the run output."""
    if not (Path(run_dir) / "manifest.json").is_file():
        table = read_output(run_dir, source)
        return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    manifest = load_manifest(run_dir)
    recipe = recipe_from_yaml(manifest["recipe"], base_dir=manifest["base_dir"])
    match = [s for s in recipe.sources if s.name == source]
    if not match:
        raise ValueError(f"target source {source!r} is not a source of the run ({[s.name for s in recipe.sources]})")
    reader = recipe.reader_class(match[0])(match[0].params)
    docs = []
    for path in recipe.input_files()[source]:
        docs += [(d["id"], d["text"]) for d in reader.read(path, source) if not d.get("_reason")]
    return docs
