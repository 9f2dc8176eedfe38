"""The recipe: the one artifact everything passes around.

A recipe names its raw ``sources``, the ``steps`` applied to them in order, the ``mixture`` that
turns the processed sources into a training stream, and a ``seed``. It is stored as YAML and
identified by ``recipe_id``, a sha256 of its canonical JSON: key order, formatting, the cosmetic
``name`` and params spelled out at their defaults do not change the id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from operators.core.base import Operator, OperatorKind, UnknownOperatorError, get_operator
from operators.core.remote_files import RemoteError, mirror
from operators.core.source_files import (
    by_reader,
    candidate_files,
    extension_counts,
    is_glob,
    named_files,
    reader_for,
    readers,
    remote_scheme,
    strip_file_scheme,
)

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the field and the fix."""


def shared_data_dir() -> Path:
    """Where the shared test/benchmark data lives: ``DATAPLAN_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("DATAPLAN_SHARED_DATA", "../shared/data")).resolve()


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _variables() -> dict[str, str]:
    return {**os.environ, "DATAPLAN_SHARED_DATA": str(shared_data_dir())}


def expand_vars(uri: str) -> str:
    """``${VARS}`` and ``$VARS`` expanded (``DATAPLAN_SHARED_DATA`` has a default); unknown ones kept."""
    env = _variables()
    return _VAR.sub(lambda m: env.get(m[1] or m[2], m[0]), uri)


def expand_uri(uri: str, base_dir: Path) -> str:
    """Expand ``~`` and ``${VARS}`` and anchor relative paths at ``base_dir`` (the recipe file's folder)."""
    expanded = expand_vars(os.path.expanduser(uri))
    return expanded if os.path.isabs(expanded) else str((base_dir / expanded).resolve())


class Source(BaseModel):
    """A raw input: files matched by ``uri`` (a path, a glob or a folder), read by ``format``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    uri: str
    format: str | None = Field(
        None,
        description="reader name; when absent, inferred from the extensions (mixed files: `auto`, one reader each)",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="reader params")


class Step(BaseModel):
    """One operator applied to the documents; ``sources`` restricts it to some sources."""

    model_config = ConfigDict(extra="forbid")
    op: str
    params: dict[str, Any] = Field(default_factory=dict)
    sources: list[str] | None = None
    enabled: bool = True


def _check_weights(weights: dict[str, float] | None) -> dict[str, float] | None:
    if weights is None:
        return None
    negative = [k for k, v in weights.items() if v < 0]
    if negative:
        raise ValueError(f"weights must be >= 0; negative for {negative}")
    if weights and sum(weights.values()) <= 0:
        raise ValueError("weights are all zero; give at least one source a positive weight")
    return weights


Weights = Annotated[dict[str, float] | None, AfterValidator(_check_weights)]
"""Source -> weight (normalised by the sampler); None = the natural mixture."""


class Phase(BaseModel):
    """One phase of a multi-phase mixture: ``weights`` until ``until`` of the token budget is used."""

    model_config = ConfigDict(extra="forbid")
    until: float | None = Field(None, gt=0, le=1, description="fraction of the token budget where the phase ends")
    weights: Weights = Field(None, description="source -> weight in this phase; absent = natural")


class Mixture(BaseModel):
    """How processed sources become a training stream (used by the proxy trainer).

    ``weights`` is one static mixture. ``phases`` is a schedule instead (multi-stage training, e.g.
    the two-phase blends of Feng et al. 2024, "Maximize Your Data's Potential", or annealing on
    high-quality data at the end as in Llama 3, Grattafiori et al. 2024): each phase holds its
    weights until ``until`` (a fraction of the token budget) and the training stream keeps the
    phases in order. The two are mutually exclusive."""

    model_config = ConfigDict(extra="forbid")
    weights: Weights = Field(None, description="source -> weight; normalised; absent = natural mixture")
    phases: list[Phase] | None = Field(
        None, description="a schedule of >= 2 phases in training order; the last one has no `until`"
    )
    total_tokens: int | None = Field(None, gt=0)
    max_epochs: float = Field(4.0, gt=0, description="cap on how often one source's documents repeat (whole run)")
    max_synthetic_share: float | None = Field(
        None, ge=0, le=1, description="cap on the share of the token budget from documents with meta.synthetic=true"
    )

    @model_validator(mode="after")
    def _phases_valid(self) -> Mixture:
        if self.phases is None:
            return self
        if self.weights is not None:
            raise ValueError(
                "give either `weights` (one static mixture) or `phases` (a schedule), not both; "
                "move the weights into the phases"
            )
        if len(self.phases) < 2:
            raise ValueError("phases: a single phase is a static mixture; write `mixture.weights` instead")
        last = self.phases[-1]
        if last.until not in (None, 1.0):
            raise ValueError(f"phases[{len(self.phases) - 1}].until: the last phase runs to the end; remove `until`")
        last.until = None  # canonical: `until: 1.0` and no `until` are the same schedule
        previous = 0.0
        for i, phase in enumerate(self.phases[:-1]):
            if phase.until is None:
                raise ValueError(f"phases[{i}].until: every phase but the last needs `until` (a fraction in (0, 1))")
            if not previous < phase.until < 1:
                raise ValueError(
                    f"phases[{i}].until: {phase.until} must lie strictly between the previous phase's end "
                    f"({previous}) and 1; `until` values increase in training order"
                )
            previous = phase.until
        return self

    def schedule(self) -> list[tuple[float, dict[str, float] | None]]:
        """(end as a fraction of the token budget, weights) per phase in training order; a static
        mixture is one phase to 1.0."""
        if self.phases is None:
            return [(1.0, self.weights)]
        return [(p.until if p.until is not None else 1.0, p.weights) for p in self.phases]


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "recipe"
    sources: list[Source] = Field(min_length=1)
    steps: list[Step] = Field(default_factory=list)
    mixture: Mixture = Field(default_factory=Mixture)
    seed: int = 0
    base_dir: str = Field(".", exclude=True, description="folder relative uris are resolved against")

    @model_validator(mode="after")
    def _cross_check(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: names must be unique; repeated {dupes}")
        for i, step in enumerate(self.steps):
            unknown = sorted(set(step.sources or ()) - set(names))
            if unknown:
                raise ValueError(f"steps[{i}].sources: {unknown} not among the recipe's sources {names}")
        for field, weights in self._mixture_weights():
            unknown = sorted(set(weights or ()) - set(names))
            if unknown:
                raise ValueError(f"{field}: {unknown} not among the recipe's sources {names}")
        return self

    def _mixture_weights(self) -> list[tuple[str, dict[str, float] | None]]:
        phases = self.mixture.phases or []
        return [("mixture.weights", self.mixture.weights)] + [
            (f"mixture.phases[{i}].weights", p.weights) for i, p in enumerate(phases)
        ]

    def trained_sources(self) -> frozenset[str]:
        """The sources whose documents can reach training: a positive weight in some phase (the
        natural mixture weighs every source; a source a weights table leaves out weighs 0)."""
        names = [s.name for s in self.sources]
        return frozenset(
            n for _, weights in self.mixture.schedule() for n in names if weights is None or weights.get(n, 0.0) > 0
        )

    # ---- validation against the operator registry -------------------------------------------

    def operator(self, index: int) -> Operator:
        """The configured operator instance of step ``index``."""
        step = self.steps[index]
        return get_operator(step.op)(step.params)

    def validate_ops(self) -> None:
        """Check every step's op name and params against the registry (raises ``RecipeError``)."""
        for i, step in enumerate(self.steps):
            try:
                cls = get_operator(step.op)
            except UnknownOperatorError as err:
                raise RecipeError(f"steps[{i}].op: {err}") from None
            if cls.kind == OperatorKind.READER:
                raise RecipeError(f"steps[{i}].op: {step.op!r} is a reader; set it as a source's `format` instead")
            try:
                cls.Params.model_validate(step.params)
            except ValidationError as err:
                raise RecipeError(_format_validation(err, f"steps[{i}].params", cls)) from None
        for i, src in enumerate(self.sources):
            reader = self.reader_class(src)
            try:
                reader.Params.model_validate(src.params)
            except ValidationError as err:
                raise RecipeError(_format_validation(err, f"sources[{i}].params", reader)) from None

    def reader_class(self, src: Source) -> type[Operator]:
        """The reader of ``src``: its ``format``, else the one its uri's extension names, else the
        one its files' extensions name (``auto`` when they name several: each file is read by its
        own); see ``operators.core.source_files``."""
        self.local_path(src)  # refuses a missing variable or remote file before anything else
        if src.format:
            return self._named_reader(src)
        return reader_for(src.uri.rstrip("/")) or self._resolve(src)[0]

    def input_files(self) -> dict[str, list[str]]:
        """Source name -> sorted files it reads; refuses a uri that matches nothing readable and
        warns (once) about the files of a folder or glob it skips."""
        out: dict[str, list[str]] = {}
        for src in self.sources:
            _, files, skipped = self._resolve(src)
            unreadable = [f for f in files if not os.access(f, os.R_OK)]
            if unreadable:
                raise RecipeError(f"sources[{src.name}].uri: cannot read {unreadable[:3]}; fix the file permissions")
            if skipped:
                _warn_skipped(src, self.local_path(src), skipped)
            out[src.name] = files
        return out

    def local_path(self, src: Source) -> str:
        """``src.uri`` as a local path (``~``, ``${VARS}``, ``file://`` resolved); a remote URI is
        first mirrored into the workspace (``operators.core.remote_files``)."""
        known = _variables()
        unset = [m[1] for m in _VAR.finditer(src.uri) if m[1] and m[1] not in known]  # ${NAME} only
        if unset:
            raise RecipeError(
                f"sources[{src.name}].uri: {src.uri!r} names the environment variable {unset[0]}, which is not set; "
                f"set it (`{unset[0]}=PATH dataplan ...`) or write the path into the recipe"
            )
        if remote_scheme(src.uri):
            try:
                return mirror(expand_vars(src.uri))
            except RemoteError as err:
                raise RecipeError(f"sources[{src.name}].uri: {err}") from None
        return expand_uri(strip_file_scheme(src.uri), Path(self.base_dir))

    def _named_reader(self, src: Source) -> type[Operator]:
        match = [c for c in readers() if c.name == src.format]
        if not match:
            raise RecipeError(
                f"sources[{src.name}].format: unknown reader {src.format!r}; one of {[c.name for c in readers()]}"
            )
        return match[0]

    def _resolve(self, src: Source) -> tuple[type[Operator], list[str], list[str]]:
        """(reader, files it reads, files of the folder or glob it skips)."""
        path = self.local_path(src)
        found = candidate_files(path)
        if not found:
            raise RecipeError(
                f"sources[{src.name}].uri: {src.uri!r} (resolved to {path}) matches no readable file; check the path or glob"
            )
        named = self._named_reader(src) if src.format else reader_for(src.uri.rstrip("/"))
        if not (os.path.isdir(path) or is_glob(path)):  # one file
            return named or self._inferred(src, path, found), found, []
        if named is not None and named.name != "auto" and not os.path.isdir(path):  # a glob, one reader
            return named, found, []
        reader = named or self._inferred(src, path, found)
        files = [f for f in found if reader.claims(f)]  # type: ignore[attr-defined]
        if not files:
            raise RecipeError(
                f"sources[{src.name}].uri: {src.uri!r} (resolved to {path}) holds no {reader.name} file "
                f"(found {extension_counts(found)}); check `format:` or the path"
            )
        kept = set(files)
        return reader, files, [f for f in found if f not in kept]

    def _inferred(self, src: Source, path: str, found: list[str]) -> type[Operator]:
        """The reader the files' extensions name: one, or ``auto`` for several."""
        groups, _ = by_reader(found)
        if not groups:
            raise RecipeError(
                f"sources[{src.name}].format: cannot infer a reader from {src.uri!r}: no file has a known extension "
                f"(found {extension_counts(found)}); set `format:` to one of {[c.name for c in readers()]}"
            )
        return get_operator(next(iter(groups)) if len(groups) == 1 else "auto")

    # ---- identity and serialisation ----------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The recipe as plain data with every step's params completed with their defaults."""
        self.validate_ops()
        data = self.model_dump(mode="json", exclude={"name"})
        for key in ("max_synthetic_share", "phases"):
            if data["mixture"][key] is None:
                del data["mixture"][key]  # absent = unset: recipe ids from before the field stay
        for step, raw in zip(data["steps"], self.steps, strict=True):
            step["params"] = get_operator(raw.op).Params.model_validate(raw.params).model_dump(mode="json")
        for src, raw in zip(data["sources"], self.sources, strict=True):
            reader = self.reader_class(raw)
            src["format"] = reader.name
            src["params"] = reader.Params.model_validate(raw.params).model_dump(mode="json")
        return data

    def recipe_id(self) -> str:
        return canonical_hash(self.canonical())

    def prefix_hash(self, upto: int) -> str:
        """Hash of the sources and the first ``upto`` steps (the cache key of a step's output)."""
        data = self.canonical()
        return canonical_hash({"sources": data["sources"], "steps": data["steps"][:upto], "seed": data["seed"]})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")


_WARNED: set[tuple[str, str, int]] = set()


def _warn_skipped(src: Source, path: str, skipped: list[str]) -> None:
    """One warning per source and folder listing: which files it does not read, and why."""
    key = (src.name, path, len(skipped))
    if key in _WARNED:
        return
    _WARNED.add(key)
    if src.format and src.format != "auto":
        why, fix = f"not {src.format} files", "`format: auto` reads each file by its extension"
    else:
        why, fix = "no reader reads their extension", "a source of their own with `format: text` reads them as text"
    log.warning(
        "source %r: skipped %d file(s) of %s (%s): %s; %s",
        src.name,
        len(skipped),
        src.uri,
        why,
        named_files(skipped, path),
        fix,
    )


def canonical_hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def recipe_from_dict(data: Any, base_dir: str | Path = ".", origin: str = "recipe") -> Recipe:
    """Build and fully validate a recipe; errors name the field and what is allowed."""
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: expected a mapping with `sources:` and `steps:`, got {type(data).__name__}")
    try:
        recipe = Recipe.model_validate({**data, "base_dir": str(Path(base_dir).resolve())})
    except ValidationError as err:
        raise RecipeError(_format_validation(err, origin)) from None
    recipe.validate_ops()
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe YAML; relative source uris resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    return recipe_from_dict(data, base_dir=path.parent, origin=str(path))


def recipe_from_yaml(text: str, base_dir: str | Path = ".") -> Recipe:
    return recipe_from_dict(yaml.safe_load(text), base_dir=base_dir)


def _format_validation(err: ValidationError, prefix: str, op: type[Operator] | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        where = f"{prefix}.{loc}" if loc else prefix
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and op is not None:
            msg = f"unknown parameter for {op.name!r}; allowed: {sorted(op.Params.model_fields)}"
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"{where}: {msg}")
    return "invalid recipe:\n  " + "\n  ".join(lines)
