"""Target sets: the held-out texts every proxy is scored on, identical for every recipe.

A ``Target`` is either ``files`` (read with ``operators.read_text_set``: JSONL with a text field,
Parquet, or plain-text files) or the held-out slice of one ``source``. The slice
(``held_out_slice``) is chosen from the source's *raw input* (read with the recipe's reader, found
through the run's ``manifest.json``) by a hash of each document id, so every recipe over the same
inputs is scored on the same texts whatever its steps did; the sampler then excludes those ids
from training. A run folder without a manifest takes the slice from its output instead. Sources
whose raw records are not text (e.g. WARC) should use ``files`` targets. Records that cannot be
read are skipped, counted and logged, never a crash.

The recipe search (``experiments``) uses the same model and the same slice: it writes each
target's texts once to a file and scores every trial on that file, as a ``files`` target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from operators import NAME_PATTERN, Recipe, RecipeError, load_manifest, read_output, read_text_set, recipe_from_yaml


class Target(BaseModel):
    """A named held-out text set (``files`` or a ``source`` slice), capped at ``max_docs``/``max_bytes``;
    ``weight`` is its share of a search's objective."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    files: tuple[str, ...] = ()
    source: str | None = None
    fraction: float = Field(0.05, gt=0, lt=1, description="share of the source's documents held out")
    max_docs: int | None = Field(64, gt=0, description="None: no cap on the number of documents")
    max_bytes: int = Field(131_072, gt=0, description="documents are added (in a fixed order) while they fit")
    text_field: str = "text"
    weight: float = Field(1.0, ge=0, description="its weight in a search's objective")

    @field_validator("files", mode="before")
    @classmethod
    def _no_files(cls, files: object) -> object:
        return () if files is None else files

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if bool(self.files) == bool(self.source):
            raise ValueError(f"target {self.name!r}: give either `files` or `source`, not both or neither")
        return self

    def file_texts(self) -> list[str]:
        """The texts of a ``files`` target (``text_field`` of JSONL/Parquet records); skips are logged."""
        read = read_text_set(self.files, params={"text_field": self.text_field})
        return read.report(f"target {self.name!r}").texts


def holdout_rank(doc_id: str) -> float:
    """A stable pseudo-random number in [0, 1) per document id (sha256), the held-out order."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64


def held_out_slice(docs: Iterable[tuple[str, str]], fraction: float) -> list[tuple[str, str]]:
    """The (id, text) documents held out of a source as a target: those whose ``holdout_rank`` is
    below ``fraction``, in that rank order (ties by id). It depends on the ids only, so the same
    raw input gives the same slice whatever a recipe does to it."""
    ranked = sorted((holdout_rank(i), i, t) for i, t in docs)
    return [(i, t) for r, i, t in ranked if r < fraction]


def source_documents(recipe: Recipe, source: str, field: str) -> list[tuple[str, str]]:
    """(id, text) of the readable raw documents of the recipe's ``source``; skipped records are logged."""
    match = [s for s in recipe.sources if s.name == source]
    if not match:
        raise RecipeError(f"{field}: {source!r} is not a source of the recipe ({[s.name for s in recipe.sources]})")
    read = read_text_set(recipe.input_files()[source], recipe.reader_class(match[0]).name, match[0].params)
    return read.report(f"{field}: source {source!r}").documents()


def resolve_targets(run_dir: str | Path, targets: list[Target]) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Target name -> texts, and source -> ids that training must not see."""
    texts: dict[str, list[str]] = {}
    excluded: dict[str, set[str]] = {}
    for target in targets:
        if target.files:
            docs = target.file_texts()
        else:
            held = held_out_slice(_source_documents(run_dir, target), target.fraction)
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
        if target.max_docs is not None and len(out) >= target.max_docs:
            break
    return out


def _source_documents(run_dir: str | Path, target: Target) -> list[tuple[str, str]]:
    """(id, text) of a source's raw input (via the manifest's recipe), or of the run output."""
    if not (Path(run_dir) / "manifest.json").is_file():
        table = read_output(run_dir, target.source)
        return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    manifest = load_manifest(run_dir)
    recipe = recipe_from_yaml(manifest.recipe, base_dir=manifest.base_dir)
    return source_documents(recipe, target.source, f"target {target.name!r}")
