"""Target and reference texts: one reader, one error behaviour, for every small text set.

The proxies' targets and the search's held-out slices, the selection operators' reference sets, the
decontamination evaluation sets and a quality classifier's examples are all read here, with the
recipe readers: the format is named, or inferred from each file's extension (a file no reader
claims is one plain-text document, like a ``.txt``). A record that cannot be read (malformed JSON,
invalid UTF-8, not an object, no text, a text that is not a string or only whitespace, a truncated
gzip, an empty file, ...) is skipped and counted by reason: never a crash and never silent, as
``TextSet.report`` logs the count (``read_texts`` always does). A file that does not exist is
refused.

``records=True`` reads evaluation records: a JSONL record's text is every string inside it
(``record_text``: query, choices, context, answer, ...), minus id-like fields.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from operators.core.base import OperatorKind, Reader, all_operators, get_operator
from operators.core.recipe import RecipeError
from operators.readers.formats import JsonlReader, RecordParams, record_to_doc, rejected

log = logging.getLogger(__name__)

SKIP_FIELDS = ("id", "benchmark", "source", "domain", "gold", "meta")
EXAMPLES = 5
"""How many skipped records a ``TextSet`` describes (all of them are counted)."""


class TextSet(BaseModel):
    """The readable texts of some files, with their document ids, and the records skipped."""

    ids: list[str] = Field(default_factory=list)
    texts: list[str] = Field(default_factory=list)
    skipped: dict[str, int] = Field(default_factory=dict, description="reason -> records skipped")
    examples: list[str] = Field(default_factory=list, description="the first skipped records: 'id reason: detail'")

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def documents(self) -> list[tuple[str, str]]:
        """(id, text) of every readable document, in reading order."""
        return list(zip(self.ids, self.texts, strict=True))

    def summary(self) -> str:
        """``skipped 3 unreadable records (2 malformed_json, 1 missing_text); first: ...``."""
        reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
        return f"skipped {self.n_skipped} unreadable records ({reasons}); first: {'; '.join(self.examples)}"

    def report(self, what: str) -> TextSet:
        """Log the skipped records, if any, as one warning about ``what`` was read; returns self."""
        if self.skipped:
            log.warning("%s: %s", what, self.summary())
        return self


def read_text_set(
    files: Sequence[str | Path], fmt: str | None = None, params: dict[str, Any] | None = None, *, records: bool = False
) -> TextSet:
    """The texts of ``files`` (reader ``fmt``, or inferred per file) and the records skipped.

    ``params`` are reader params; with the format inferred, a file's reader ignores those it does
    not take (``text_field`` means nothing to a ``.txt`` file)."""
    out, skipped = TextSet(), Counter()
    for path in map(str, files):
        if not os.path.isfile(path):
            raise RecipeError(f"text file {path!r} does not exist; check the path")
        for row in _reader(path, fmt, params, records).read(path, "texts"):
            reason = row.get("_reason") or ("" if row["text"].strip() else "empty_text")
            if not reason:
                out.ids.append(row["id"])
                out.texts.append(row["text"])
                continue
            skipped[reason] += 1
            if len(out.examples) < EXAMPLES:
                detail = row.get("_detail") or ""
                out.examples.append(f"{row['id']} {reason}" + (f": {detail}" if detail else ""))
    out.skipped = dict(sorted(skipped.items()))
    return out


def read_texts(
    files: Sequence[str | Path],
    fmt: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    records: bool = False,
    what: str | None = None,
) -> list[str]:
    """``read_text_set(...).texts``, the skipped records logged as a warning about ``what``."""
    read = read_text_set(files, fmt, params, records=records)
    return read.report(what or ", ".join(map(str, files))).texts


def record_text(record: Any) -> str:
    """Every string inside an evaluation record (recursively), space-joined, minus id-like fields."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        return " ".join(record_text(v) for k, v in record.items() if k not in SKIP_FIELDS)
    if isinstance(record, list | tuple):
        return " ".join(record_text(v) for v in record)
    return ""


class _EvalRecords(JsonlReader):
    """JSONL evaluation records (not registered): a record's text is ``record_text`` of it."""

    def to_document(self, record: Any, path: str, offset: int, p: RecordParams) -> dict[str, Any]:
        text = record_text(record)
        if not text.strip():
            return rejected(path, offset, "missing_text", "no string field")
        return record_to_doc({**(record if isinstance(record, dict) else {}), p.text_field: text}, path, offset, p)


def _reader(path: str, fmt: str | None, params: dict[str, Any] | None, records: bool) -> Reader:
    if fmt:
        cls = get_operator(fmt)
    else:
        readers = [c for c in all_operators() if c.kind == OperatorKind.READER]
        claims = [c for c in readers if path.lower().endswith(c.extensions)]  # type: ignore[attr-defined]
        cls = claims[0] if claims else get_operator("text")
        params = {k: v for k, v in (params or {}).items() if k in cls.Params.model_fields}
    if records and cls is JsonlReader:
        cls = _EvalRecords
    return cls(params or {})  # type: ignore[return-value]
