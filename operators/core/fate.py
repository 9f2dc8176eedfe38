"""A document's fate in a run, read back from the run folder: ``dataplan explain`` and ``samples``.

The ledger says whether a document was kept or at which step it was dropped, with the reason code
and a ``detail`` (for threshold filters the signal, its value and the threshold it failed, see
``operators.core.rules``). The text comes from the run's output for kept documents and, for dropped
ones, from the stage that dropped them (the stage cache keeps dropped rows with their reason); when
that cache entry is gone the fate is still told, without the text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from operators.core.ledger import read_ledger
from operators.core.manifest import Manifest, load_manifest
from operators.core.output import read_output
from operators.core.plan import Chain
from operators.core.recipe import RecipeError
from operators.core.stage_cache import StageCache, stage_dataset

EXCERPT_CHARS = 300


class Fate(BaseModel):
    """What happened to one document of a run."""

    id: str
    source: str
    status: str
    """``kept`` or ``dropped``."""
    step: int | None = None
    """The recipe step that dropped it (-1: reading); None when kept."""
    op: str | None = None
    reason: str | None = None
    detail: dict[str, Any] | str | None = None
    """The ledger detail, parsed when it is JSON (threshold filters: signal, value, op, threshold, param)."""
    why: str
    """One sentence for a human."""
    excerpt: str | None = None
    """The start of the text as it was at that step (None when no longer available)."""


def explain_document(run_dir: str | Path, doc_id: str, source: str | None = None) -> list[Fate]:
    """The fate of document ``doc_id`` in ``run_dir`` (one per source carrying that id); raises
    ``RecipeError`` naming the fix when the run or the id is not found."""
    manifest = load_manifest(run_dir)
    ledger = _ledger(run_dir)
    cond = pc.equal(ledger.column("id"), doc_id)
    if source is not None:
        cond = pc.and_(cond, pc.equal(ledger.column("source"), source))
    rows = ledger.filter(cond).to_pylist()
    if not rows:
        where = f" in source {source!r}" if source else ""
        raise RecipeError(
            f"no document with id {doc_id!r}{where} in {run_dir}'s ledger ({ledger.num_rows} documents); "
            "ids are the ledger's `id` column: try `dataplan samples` to see some"
        )
    cache = StageCache()
    return [_fate(row, manifest, run_dir, cache) for row in rows]


def sample_dropped(
    run_dir: str | Path,
    *,
    step: str | None = None,
    reason: str | None = None,
    n: int = 5,
    seed: int = 0,
) -> list[Fate]:
    """Up to ``n`` documents dropped at ``step`` (its index, or its operator's name) for ``reason``
    (a code; ``near_duplicate_of`` matches every ``near_duplicate_of:<id>``), drawn with ``seed``."""
    manifest = load_manifest(run_dir)
    ledger = _ledger(run_dir)
    dropped = ledger.filter(pc.equal(ledger.column("status"), "dropped"))
    if step is not None:
        dropped = dropped.filter(_step_condition(dropped, step, manifest))
    if reason is not None:
        codes = pc.utf8_slice_codeunits(dropped.column("reason"), 0, len(reason) + 1)
        dropped = dropped.filter(pc.or_(pc.equal(codes, reason), pc.equal(codes, reason + ":")))
    if dropped.num_rows == 0:
        raise RecipeError(f"no document of {run_dir} was dropped{_scope(step, reason)}; {_reasons_hint(ledger)}")
    picked = np.random.default_rng(seed).permutation(dropped.num_rows)[:n]
    cache = StageCache()
    return [_fate(row, manifest, run_dir, cache) for row in dropped.take(pa.array(np.sort(picked))).to_pylist()]


def describe_detail(detail: dict[str, Any] | str | None) -> str:
    """``n_words = 12 < 50 (min_words)`` for a threshold detail; other details as they are."""
    if isinstance(detail, dict) and "threshold" in detail:
        param = f" ({detail['param']})" if detail.get("param") else ""
        return f"{detail['signal']} = {detail['value']} {detail['op']} {detail['threshold']}{param}"
    if isinstance(detail, dict) and "keep" in detail:
        return f"{detail['signal']} = {detail['value']}, not in {detail['keep']}"
    return "" if detail is None else str(detail) if isinstance(detail, str) else json.dumps(detail)


def _ledger(run_dir: str | Path) -> pa.Table:
    if not (Path(run_dir) / "ledger.parquet").is_file():
        raise RecipeError(f"{run_dir}: no ledger.parquet; pass the folder `dataplan run --out` wrote")
    return read_ledger(run_dir)


def _step_condition(ledger: pa.Table, step: str, manifest: Manifest) -> pa.ChunkedArray:
    if step.lstrip("-").isdigit():
        return pc.equal(ledger.column("step"), int(step))
    names = {s.name for s in manifest.steps if s.index >= 0}
    if step not in names:
        raise RecipeError(f"step {step!r} is not in this run; give an index or one of {sorted(names)}")
    return pc.equal(ledger.column("op"), step)


def _scope(step: str | None, reason: str | None) -> str:
    return (f" at step {step}" if step is not None else "") + (f" for {reason!r}" if reason else "")


def _reasons_hint(ledger: pa.Table) -> str:
    dropped = ledger.filter(pc.equal(ledger.column("status"), "dropped"))
    pairs = sorted({(r["step"], r["reason"].split(":")[0]) for r in dropped.select(["step", "reason"]).to_pylist()})
    listed = ", ".join(f"step {s}: {r}" for s, r in pairs[:12])
    return f"its drops are {listed}" if pairs else "it dropped nothing"


def _fate(row: dict[str, Any], manifest: Manifest, run_dir: str | Path, cache: StageCache) -> Fate:
    detail = _parse(row["detail"])
    if row["status"] == "kept":
        why = f"kept: it passed every step and is in data/{row['source']}.parquet"
        text = _kept_text(run_dir, row["source"], row["id"])
        return Fate(id=row["id"], source=row["source"], status="kept", why=why, excerpt=_excerpt(text))
    where = "reading" if row["step"] == -1 else f"step {row['step']} ({row['op']})"
    said = describe_detail(detail)
    why = f"dropped at {where}: {row['reason']}" + (f", {said}" if said else "")
    return Fate(
        id=row["id"],
        source=row["source"],
        status="dropped",
        step=row["step"],
        op=row["op"],
        reason=row["reason"],
        detail=detail,
        why=why,
        excerpt=_excerpt(_dropped_text(manifest, row, cache)),
    )


def _parse(detail: str | None) -> dict[str, Any] | str | None:
    if not detail:
        return None
    if detail.startswith("{"):
        try:
            return json.loads(detail)
        except json.JSONDecodeError:
            return detail
    return detail


def _kept_text(run_dir: str | Path, source: str, doc_id: str) -> str | None:
    table = read_output(run_dir, source)
    hit = table.filter(pc.equal(table.column("id"), doc_id))
    return hit.column("text")[0].as_py() if hit.num_rows else None


def _dropped_text(manifest: Manifest, row: dict[str, Any], cache: StageCache) -> str | None:
    """The text in the decision stage that dropped the row, while that stage is still cached."""
    stages = [s for s in manifest.steps if s.index == row["step"] and s.chain == Chain.DECISION]
    if not stages:
        return None
    folder = cache.path(stages[-1].key)
    if not (folder / "stats.json").is_file():
        return None
    cond = (pc.field("id") == row["id"]) & (pc.field("source") == row["source"])
    hit = stage_dataset(folder).to_table(columns=["text"], filter=cond)
    return hit.column("text")[0].as_py() if hit.num_rows else None


def _excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
