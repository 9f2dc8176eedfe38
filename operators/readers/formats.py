"""Readers: JSONL (plain or gzip), Parquet and plain-text files.

A reader turns one file into documents. A record that cannot be read becomes a ledger entry
(a row with a non-empty ``_reason``) instead of an exception, and reading goes on with the next
record, so bad input is never a crash and never a silent skip.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from operators.core.base import OperatorParams, Reader, register

READ_REASONS = (
    "malformed_json",
    "invalid_utf8",
    "not_an_object",
    "missing_text",
    "text_not_string",
    "record_too_large",
    "truncated_gzip",
    "empty_file",
    "unreadable_file",
)


def rejected(path: str, offset: int | str, reason: str, detail: str = "") -> dict[str, Any]:
    """A ledger entry for an unreadable record, identified by file name and byte offset."""
    doc_id = f"{os.path.basename(path)}@{offset}"
    return {"id": doc_id, "text": "", "url": "", "meta": "{}", "_reason": reason, "_detail": detail[:300]}


def document(doc_id: str, text: str, meta: dict[str, Any], url: str = "") -> dict[str, Any]:
    """A readable document; ``meta`` is stored as a JSON string, ``url`` is "" when unknown."""
    meta_json = json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)
    return {"id": doc_id, "text": text, "url": url, "meta": meta_json, "_reason": "", "_detail": ""}


class RecordParams(OperatorParams):
    text_field: str = "text"
    id_field: str = Field("id", description="field holding a stable id; absent -> '<file>@<byte offset>'")
    max_record_bytes: int = Field(8 << 20, gt=0, description="longer records are dropped as record_too_large")


def record_to_doc(record: Any, path: str, offset: int, p: RecordParams) -> dict[str, Any]:
    """Validate one decoded record (a JSON object or a Parquet row) into a document or a ledger entry."""
    if not isinstance(record, dict):
        return rejected(path, offset, "not_an_object", type(record).__name__)
    if p.text_field not in record:
        return rejected(path, offset, "missing_text", f"no {p.text_field!r} field")
    text = record[p.text_field]
    if not isinstance(text, str):
        return rejected(path, offset, "text_not_string", type(text).__name__)
    given = record.get(p.id_field)
    doc_id = str(given) if given not in (None, "") else f"{os.path.basename(path)}@{offset}"
    meta = {k: v for k, v in record.items() if k not in (p.text_field, p.id_field, "url")}
    url = record.get("url")
    return document(doc_id, text, meta, url if isinstance(url, str) else "")


@register
class JsonlReader(Reader):
    """JSON Lines, plain or gzip-compressed: one JSON object per line, text in ``text_field``."""

    name = "jsonl"
    extensions = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
    reasons = READ_REASONS
    Params = RecordParams

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        p: RecordParams = self.params
        opener = gzip.open if path.endswith(".gz") else open
        seen = 0
        offset = 0
        try:
            with opener(path, "rb") as fh:
                for raw in fh:
                    start, offset = offset, offset + len(raw)
                    if not raw.strip():
                        continue
                    seen += 1
                    if len(raw) > p.max_record_bytes:
                        yield rejected(path, start, "record_too_large", f"{len(raw)} bytes > {p.max_record_bytes}")
                        continue
                    yield self._parse(raw, path, start, p)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            seen += 1
            yield rejected(path, offset, "truncated_gzip", str(err))
        except OSError as err:
            seen += 1
            yield rejected(path, offset, "unreadable_file", str(err))
        if seen == 0:
            yield rejected(path, 0, "empty_file", "no records")

    def _parse(self, raw: bytes, path: str, offset: int, p: RecordParams) -> dict[str, Any]:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return rejected(path, offset, "invalid_utf8", str(err))
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            return rejected(path, offset, "malformed_json", str(err))
        return self.to_document(record, path, offset, p)

    def to_document(self, record: Any, path: str, offset: int, p: RecordParams) -> dict[str, Any]:
        """One decoded JSON value -> a document or a ledger entry (``record_to_doc``; a subclass may
        take a record's text differently)."""
        return record_to_doc(record, path, offset, p)


@register
class ParquetReader(Reader):
    """Parquet files: one row per document; ids default to '<file>@<row number>'."""

    name = "parquet"
    extensions = (".parquet",)
    reasons = READ_REASONS
    Params = RecordParams

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        p: RecordParams = self.params
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as err:
            yield rejected(path, 0, "unreadable_file", str(err))
            return
        if table.num_rows == 0:
            yield rejected(path, 0, "empty_file", "no rows")
        for row_number, record in enumerate(table.to_pylist()):
            text = record.get(p.text_field)
            if isinstance(text, str) and len(text.encode("utf-8")) > p.max_record_bytes:
                yield rejected(path, row_number, "record_too_large", f"> {p.max_record_bytes} bytes")
                continue
            yield record_to_doc(record, path, row_number, p)


class TextParams(OperatorParams):
    max_record_bytes: int = Field(8 << 20, gt=0, description="longer files are dropped as record_too_large")
    encoding: str = "utf-8"


@register
class TextReader(Reader):
    """Plain-text files (a folder of ``.txt`` or a glob): one file is one document, id = file name."""

    name = "text"
    extensions = (".txt",)
    reasons = READ_REASONS
    Params = TextParams

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        p: TextParams = self.params
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            yield rejected(path, 0, "unreadable_file", str(err))
            return
        if not raw.strip():
            yield rejected(path, 0, "empty_file", "no text")
        elif len(raw) > p.max_record_bytes:
            yield rejected(path, 0, "record_too_large", f"{len(raw)} bytes > {p.max_record_bytes}")
        else:
            try:
                yield document(os.path.basename(path), raw.decode(p.encoding), {"path": path})
            except UnicodeDecodeError as err:
                yield rejected(path, 0, "invalid_utf8", str(err))
