"""The ledger: every input document's fate, and the invariant ``input == kept + dropped``.

One row per input record: ``id``, ``source``, ``status`` (kept/dropped), ``step`` (recipe step
index; -1 is reading), ``op``, ``reason`` (a code such as ``too_few_words`` or
``near_duplicate_of:<id>``) and ``detail`` (for threshold filters the signal, its value and the
threshold it failed, as JSON: see ``operators.core.rules``; ``operators.core.fate`` reads it back;
for a kept document, the JSON list of edits text-editing steps made to it, e.g. bytes removed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from operators.core.base import get_operator
from operators.core.plan import StepReport
from operators.core.stage_cache import stage_dataset

LEDGER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("status", pa.string()),
        ("step", pa.int32()),
        ("op", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


class LedgerError(RuntimeError):
    """The ledger does not add up: some document's fate was lost. The run fails."""


def stage_rows(folder: Path, columns: list[str], dropped: bool) -> pa.Table:
    """Rows of a stage folder that it dropped (``dropped=True``) or kept."""
    ds = stage_dataset(folder)
    cond = pc.field("_reason") != "" if dropped else pc.field("_reason") == ""
    return ds.to_table(columns=columns, filter=cond)


def write_ledger(stages: list[tuple[StepReport, Path]], path: Path) -> dict[str, dict[str, int]]:
    """Assemble the ledger from the stage folders, check the invariant and write Parquet.

    Returns per-source ``{input, kept, dropped}``; raises ``LedgerError`` when they do not add up."""
    parts = []
    for report, folder in stages:
        t = stage_rows(folder, ["id", "source", "_reason", "_detail"], dropped=True)
        parts.append(_ledger_part(t, "dropped", report.index, report.name))
    last_folder = stages[-1][1]
    kept = stage_rows(last_folder, ["id", "source"], dropped=False)
    parts.append(_ledger_part(_with_edits(kept, stages), "kept", None, None))
    ledger = pa.concat_tables(parts)
    read_folder = stages[0][1]
    input_rows = stage_dataset(read_folder).to_table(columns=["source"])
    counts = check_invariant(ledger, input_rows.column("source"))
    pq.write_table(ledger.sort_by([("source", "ascending"), ("id", "ascending")]), path)
    return counts


def _with_edits(kept: pa.Table, stages: list[tuple[StepReport, Path]]) -> pa.Table:
    """``kept`` with a ``_detail`` column: per document, the JSON list of the edits that text-editing
    steps made to it (``[{"step": 3, "op": "substring_dedup", "bytes_removed": 120}]``), or null."""
    edits: dict[tuple[str, str], list[dict]] = {}
    for report, folder in stages:
        if report.index < 0 or not get_operator(report.name).edits_text:
            continue
        rows = stage_dataset(folder).to_table(
            columns=["id", "source", "_detail"], filter=(pc.field("_reason") == "") & (pc.field("_detail") != "")
        )
        for doc, src, detail in zip(*(rows.column(c).to_pylist() for c in ("id", "source", "_detail")), strict=True):
            edits.setdefault((src, doc), []).append({"step": report.index, "op": report.name, **json.loads(detail)})
    details = [
        json.dumps(edits[key]) if key in edits else None
        for key in zip(kept.column("source").to_pylist(), kept.column("id").to_pylist(), strict=True)
    ]
    return kept.append_column("_detail", pa.array(details, pa.string()))


def _ledger_part(t: pa.Table, status: str, step: int | None, op: str | None) -> pa.Table:
    n = t.num_rows
    reason = t.column("_reason") if "_reason" in t.column_names else pa.nulls(n, pa.string())
    detail = t.column("_detail") if "_detail" in t.column_names else pa.nulls(n, pa.string())
    return pa.table(
        [
            t.column("id"),
            t.column("source"),
            pa.array([status] * n),
            pa.array([step] * n, pa.int32()),
            pa.array([op] * n, pa.string()),
            reason,
            detail,
        ],
        schema=LEDGER_SCHEMA,
    )


def check_invariant(ledger: pa.Table, input_sources: pa.ChunkedArray) -> dict[str, dict[str, int]]:
    """Per source, the records read must equal the ledger's kept + dropped rows."""
    inputs = _count(input_sources.to_pylist())
    sources = ledger.column("source").to_pylist()
    statuses = ledger.column("status").to_pylist()
    kept = _count(s for s, st in zip(sources, statuses, strict=True) if st == "kept")
    dropped = _count(s for s, st in zip(sources, statuses, strict=True) if st == "dropped")
    counts = {}
    for src in sorted(set(inputs) | set(kept) | set(dropped)):
        c = {"input": inputs.get(src, 0), "kept": kept.get(src, 0), "dropped": dropped.get(src, 0)}
        if c["input"] != c["kept"] + c["dropped"]:
            raise LedgerError(
                f"ledger invariant violated for source {src!r}: input {c['input']} != kept {c['kept']} + dropped {c['dropped']}"
            )
        counts[src] = c
    return counts


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def read_ledger(run_dir: str | Path) -> pa.Table:
    return pq.read_table(Path(run_dir) / "ledger.parquet")
