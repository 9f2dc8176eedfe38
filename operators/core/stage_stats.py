"""A written stage's counts and kept-document hash (its ``stats.json``).

Beside the stats every computed stage keeps ``digests.arrow``: (source, id, digest) of each kept
document. A stage that cannot change any document's content (a ``decide`` or ``join`` stage only
sets ``_reason`` or attaches signal columns) takes its kept documents' digests from its parent's
file by (source, id) and so reads no text; any other stage hashes its documents' content columns.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from operators.core.base import KEEP
from operators.core.digest import DOC_COLUMNS, combine, doc_digests
from operators.core.stage_cache import StageStats, scan_stage, stage_dataset

DIGESTS = "digests.arrow"
KEY = ["source", "id"]


def stage_stats(folder: Path, unchanged_from: Path | None = None) -> StageStats:
    """Counts and kept hash of the stage written in ``folder``. ``unchanged_from``: the parent stage's
    folder when this stage keeps every document's content as its parent had it."""
    rows = _derived(folder, unchanged_from) if unchanged_from is not None else None
    if rows is None:
        rows = _computed(folder)
    kept = rows.filter(pc.equal(rows["reason"], KEEP))
    feather.write_feather(kept.select([*KEY, "digest"]), str(folder / DIGESTS))
    dropped = rows.filter(pc.not_equal(rows["reason"], KEEP))
    return StageStats(
        docs_in=rows.num_rows,
        docs_out=kept.num_rows,
        dropped=_counts(dropped["reason"]),
        dropped_by_source=_counts(dropped["source"]),
        kept_by_source=_counts(kept["source"]),
        kept_sha256=combine(kept["digest"].to_pylist()),
    )


def repeated_ids(folder: Path) -> dict[str, list[str]]:
    """Per source, the ids that more than one kept document of a stage carries, read from the
    ``digests.arrow`` that ``stage_stats`` wrote (unreadable records have unique file@offset ids)."""
    t = feather.read_table(str(folder / DIGESTS), columns=KEY)
    counts = t.group_by(KEY).aggregate([("id", "count")])
    repeated = counts.filter(pc.greater(counts["id_count"], 1))
    found: dict[str, list[str]] = {}
    for src, doc_id in zip(repeated["source"].to_pylist(), repeated["id"].to_pylist(), strict=True):
        found.setdefault(src, []).append(doc_id)
    return {src: sorted(ids) for src, ids in sorted(found.items())}


def _computed(folder: Path) -> pa.Table:
    parts = []
    ds = stage_dataset(folder)
    columns = [c for c in ds.schema.names if c in DOC_COLUMNS or c == "_reason"]
    for batch in scan_stage(folder, columns):
        cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names if n in DOC_COLUMNS}
        digests = doc_digests(cols)
        parts.append(
            pa.table(
                {
                    "source": batch.column("source"),
                    "id": batch.column("id"),
                    "reason": _reason_codes(batch.column("_reason")),
                    "digest": pa.array(digests.tolist(), type=pa.binary()),
                }
            )
        )
    return pa.concat_tables(parts) if parts else _empty()


def _derived(folder: Path, parent: Path) -> pa.Table | None:
    """Digests looked up in the parent's ``digests.arrow``; None when it is missing (a stage cached
    before these files existed) or does not match one digest to each kept row, so the caller hashes
    the content instead."""
    if not (parent / DIGESTS).is_file():
        return None
    t = stage_dataset(folder).to_table(columns=[*KEY, "_reason"])
    rows = pa.table({"source": t["source"], "id": t["id"], "reason": _reason_codes(t["_reason"])})
    alive = rows.filter(pc.equal(rows["reason"], KEEP))
    kept = alive.join(feather.read_table(str(parent / DIGESTS)), KEY, join_type="left outer")
    if kept.num_rows != alive.num_rows or kept["digest"].null_count:
        return None
    dropped = rows.filter(pc.not_equal(rows["reason"], KEEP))
    dropped = dropped.append_column("digest", pa.nulls(dropped.num_rows, pa.binary()))
    return pa.concat_tables([kept.select(dropped.column_names), dropped])


def _reason_codes(reasons: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The code of each drop reason: the part before any ``:detail``."""
    return pa.array([r.split(":", 1)[0] for r in reasons.to_pylist()], type=pa.string())


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column)
    return dict(sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)))


def _empty() -> pa.Table:
    return pa.table({"source": [], "id": [], "reason": [], "digest": []}, schema=_SCHEMA)


_SCHEMA = pa.schema([("source", pa.string()), ("id", pa.string()), ("reason", pa.string()), ("digest", pa.binary())])
