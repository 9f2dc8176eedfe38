"""Operator base classes and the registry.

Every data step is one small class registered by name. Its parameters are a pydantic ``Params``
model whose defaults are the published values of the method it implements. Kinds:

- ``reader``: bytes on disk -> documents (and ledger entries for unreadable records);
- ``mapper``: rewrites columns (usually ``text``); may drop a row by returning a ``_reason``;
- ``annotator``: adds signal columns, computed once and cached;
- ``filter``: an annotator plus a cheap ``decide`` that turns signals into keep/drop reasons;
- ``global``: needs the whole dataset (dedup, selection); runs a multi-stage Ray Data plan;
- ``mixer``: combines sources into a training stream.

"Annotate once, decide cheaply": the executor caches ``annotate`` output keyed only by the params
named in ``annotate_params``, so a trial that moves a threshold reruns ``decide`` alone.
Operators marked ``survivors_only`` (LLM calls) trade that for cost: they see only the documents
earlier decisions kept.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    import ray.data

Batch = dict[str, np.ndarray]
"""A Ray Data numpy batch: column name -> array (``text``/``id``/``source``/``meta`` are object arrays)."""


class OperatorKind(StrEnum):
    """What an operator does; decides the stages the executor plans for it."""

    READER = "reader"
    MAPPER = "mapper"
    ANNOTATOR = "annotator"
    FILTER = "filter"
    GLOBAL = "global"
    MIXER = "mixer"


KINDS = tuple(OperatorKind)
KEEP = ""
"""The reason code that keeps a document; any other string drops it."""

SIGNAL_FILL = {"float64": np.nan, "int64": -1, "str": "", "bool": False, "bytes": b""}
"""Value a signal column takes on rows outside a step's ``sources:``."""


class OperatorParams(BaseModel):
    """Base of every operator's ``Params``: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Operator:
    """One registered data operator. Subclasses set the class attributes and a ``Params`` model."""

    name: ClassVar[str] = ""
    kind: ClassVar[OperatorKind]
    version: ClassVar[str] = "1"
    """Bump when the code's output changes: it is part of every cache key."""
    reasons: ClassVar[tuple[str, ...]] = ()
    """Drop reason codes this operator can emit (a ``:`` suffix may carry detail)."""
    signals: ClassVar[dict[str, str]] = {}
    """Signal columns it adds, name -> dtype (one of ``SIGNAL_FILL``'s keys)."""
    annotate_params: ClassVar[tuple[str, ...]] = ()
    """Params that change ``annotate`` output; the rest only change ``decide``."""
    survivors_only: ClassVar[bool] = False
    """True for operators that are costly per document (LLM calls): they run only on what the
    decisions before them kept, and so re-run when an earlier threshold moves (their backends
    cache answers), instead of running once over every readable document."""

    edits_text: ClassVar[bool] = False
    """True for global operators whose ``apply`` rewrites ``text`` (substring or paragraph dedup):
    later steps annotate the edited text, and each kept row's ``_detail`` JSON (e.g.
    ``{"bytes_removed": 120}``) becomes an entry of that document's edit list in the ledger."""

    Params: ClassVar[type[OperatorParams]] = OperatorParams

    def __init__(self, params: OperatorParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(params, OperatorParams):
            self.params = params
        else:
            self.params = self.Params.model_validate({**(params or {}), **kwargs})

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, kind, docstring, params JSON schema, signals and reasons, for ``dataplan ops``."""
        return {
            "name": cls.name,
            "kind": cls.kind,
            "version": cls.version,
            "doc": inspect.getdoc(cls) or "",
            "params_schema": cls.Params.model_json_schema(),
            "defaults": default_params(cls),
            "signals": dict(cls.signals),
            "annotate_params": list(cls.annotate_params),
            "survivors_only": cls.survivors_only,
            "reasons": list(cls.reasons),
        }

    def ray_args(self) -> dict[str, Any]:
        """Extra ``map_batches`` arguments of this operator's ``map``/``annotate`` stages, e.g.
        ``{"num_gpus": 1, "batch_size": 256}`` for a model on a GPU (Ray hides the GPUs from tasks
        that reserve none)."""
        return {}

    def annotate_key(self) -> dict[str, Any]:
        """The part of the params that ``annotate`` depends on (part of the annotation cache key)."""
        dumped = self.params.model_dump(mode="json")
        return {k: dumped[k] for k in self.annotate_params}


class Reader(Operator):
    """Reads one file into documents. ``read`` yields dicts with ``id``, ``text``, ``meta`` and,
    for records that could not be read, a non-empty ``_reason`` (and ``_detail``)."""

    kind = OperatorKind.READER
    extensions: ClassVar[tuple[str, ...]] = ()

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def claims(cls, path: str) -> bool:
        """Whether this reader reads ``path`` when it lies in a source's folder (by its extension)."""
        return path.lower().endswith(cls.extensions)


class Mapper(Operator):
    """Rewrites columns row by row. ``map`` returns the changed columns; a ``_reason`` column,
    if returned, drops the rows where it is non-empty."""

    kind = OperatorKind.MAPPER

    def map(self, batch: Batch) -> Batch:
        raise NotImplementedError


class Annotator(Operator):
    """Adds the columns named in ``signals``; expensive, run once and cached."""

    kind = OperatorKind.ANNOTATOR

    def annotate(self, batch: Batch) -> Batch:
        raise NotImplementedError


class Filter(Annotator):
    """An annotator plus a cheap threshold decision: ``decide`` returns one reason per row,
    ``KEEP`` ("") to keep it."""

    kind = OperatorKind.FILTER

    def decide(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def details(self, batch: Batch, reasons: np.ndarray) -> np.ndarray:
        """Per row, the ledger ``detail`` of its drop (what was measured, the bound it failed; see
        ``operators.core.rules``); "" where there is nothing to add, as here."""
        return np.full(len(reasons), "", dtype=object)


class GlobalOperator(Operator):
    """Needs the whole dataset. May define ``annotate`` (a cached row-local stage, e.g. MinHash
    signatures); ``apply`` gets the annotated dataset and returns it with a ``_reason`` column."""

    kind = OperatorKind.GLOBAL

    def annotate(self, batch: Batch) -> Batch:
        return {}

    def apply(self, ds: ray.data.Dataset, ctx: StepContext) -> ray.data.Dataset:
        raise NotImplementedError


class StepContext(BaseModel):
    """What a global operator may know about its run: seed, block count, a scratch folder and the
    recipe's raw sources (name -> ``{"format", "params", "files"}``), so that a selection step can
    read a target or reference set named by source."""

    model_config = ConfigDict(frozen=True)
    seed: int = 0
    num_blocks: int = 4
    scratch_dir: str
    step_index: int = 0
    sources: dict[str, dict[str, Any]] = {}


REGISTRY: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    """Class decorator: add an operator to the registry under its ``name``."""
    if not cls.name or getattr(cls, "kind", None) not in KINDS:
        raise TypeError(f"{cls.__name__}: set `name` and a `kind` in {KINDS}")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"operator name {cls.name!r} registered twice")
    for col, dtype in cls.signals.items():
        if dtype not in SIGNAL_FILL:
            raise TypeError(f"{cls.__name__}.signals[{col!r}]: dtype {dtype!r} not in {list(SIGNAL_FILL)}")
    REGISTRY[cls.name] = cls
    return cls


class UnknownOperatorError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_operator(name: str) -> type[Operator]:
    """The operator class registered as ``name``; the error lists the closest valid names.

    The built-in operators are registered when their family packages are imported, which the
    ``operators`` package does before any of its modules (this one included) can be used."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `dataplan ops list`"
        raise UnknownOperatorError(f"unknown operator {name!r}: {hint}")
    return REGISTRY[name]


def is_registered(name: str) -> bool:
    """Whether an operator named ``name`` is registered (e.g. an optional one whose extra is installed)."""
    return name in REGISTRY


def all_operators() -> list[type[Operator]]:
    """Every registered operator, sorted by kind then name."""
    return sorted(REGISTRY.values(), key=lambda c: (KINDS.index(c.kind), c.name))


def default_params(cls: type[Operator]) -> dict[str, Any] | None:
    """The operator's params at their defaults, or None when it needs some (e.g. a list file)."""
    try:
        return cls.Params().model_dump(mode="json")
    except ValidationError:
        return None
