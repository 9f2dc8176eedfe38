"""The vocabulary of an execution plan: stage kinds, chains, one planned ``Stage`` and the
``StepReport`` a stage leaves behind (a line of the per-step table and of ``manifest.json``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel


class StageKind(StrEnum):
    """What a stage does to its parent's rows."""

    READ = "read"
    """Reader output: documents and ledger entries for unreadable records."""
    MAP = "map"
    """A mapper's rewritten columns."""
    ANNOTATE = "annotate"
    """Signal columns (computed once, over every readable document)."""
    DECIDE = "decide"
    """A filter's keep/drop reasons from signals joined in by (source, id)."""
    JOIN = "join"
    """Signals joined in by (source, id), nothing dropped (a plain annotator)."""
    APPLY = "apply"
    """A global operator (dedup, selection) over the whole dataset."""


class Chain(StrEnum):
    """Which of the executor's two chains a stage belongs to."""

    CONTENT = "content"
    """Not part of the ledger: computed over every readable document, whatever earlier decisions
    kept (or, from a ``survivors_only`` operator on, over what they kept)."""
    DECISION = "decision"
    """Applies decisions to the surviving documents; the ledger is assembled from these stages."""


CONTENT_KEEPING = frozenset({StageKind.DECIDE, StageKind.JOIN})
"""Stages that only set ``_reason`` or attach signals: cheap per document, and every kept document's
content is its parent's."""


class StepReport(BaseModel):
    """One line of the per-step table and of ``manifest.json``'s ``steps``."""

    index: int
    name: str
    stage: StageKind
    key: str
    docs_in: int
    docs_out: int
    dropped: dict[str, int]
    seconds: float
    cached: bool
    output_sha256: str
    chain: Chain = Chain.DECISION


@dataclass(kw_only=True)
class Stage:
    """One planned stage: its cache key, how to build its dataset, and the stages it reads."""

    index: int
    """The recipe step's index (-1 for reading)."""
    name: str
    stage: StageKind
    key: str
    build: Callable  # (parent Dataset, join folder or None) -> Dataset
    parent: str | None = None
    """Key of the stage whose output this one reads (None for reading)."""
    join: str | None = None
    """Key of the annotate stage whose signal columns are joined in by (source, id)."""
    chain: Chain = Chain.DECISION


ProgressFn = Callable[[str, StepReport | None], None]
"""Called with a stage's label before it runs (report None) and after (its report)."""
