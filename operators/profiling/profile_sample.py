"""A bounded, deterministic sample of one source's documents, read with its registered reader.

The source is resolved exactly as a recipe source is (``Recipe.reader_class`` picks the reader from
``format`` or the file extension, ``Recipe.input_files`` expands the path, glob or folder), and its
files are streamed record by record: only the sample is held in memory.

Sampling is *bottom-k by hashed id*: every readable document gets the key
``blake2b(seed, id)`` and the ``k`` documents with the smallest keys form the sample (ties broken
by read position). This is a uniform sample without replacement over the documents scanned, it does
not depend on file order, and it is stable as a source grows (a sampled document stays sampled
unless k smaller keys arrive). Documents sharing an id share a key. Besides the sample, the scan
keeps one 8-byte digest per document text, so exact duplicates are counted over everything scanned.

Scanning stops after ``max_scan_docs`` readable documents (at the end of a file, or inside one);
files are visited in a seed-shuffled order so a cut-short scan still spreads over the files. The
document count (``doc_count_method``) is ``exact`` when every file was read to its end; else
``extrapolated_from_files``: documents per byte of the files read completely x total file bytes;
with no file read completely, ``extrapolated_from_record_bytes`` for an uncompressed file (its
documents per UTF-8 byte of the records read x total file bytes, rough: record markup is not
counted, so it overestimates) or ``lower_bound`` (the documents scanned) for a compressed one.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from operators.core.base import Batch, get_operator
from operators.core.recipe import Recipe, Source

SAMPLE_METHOD = "bottom-k by blake2b(seed, id)"
_KNOWN_TAG = re.compile(
    r"<\s*/?\s*(?:html|head|body|div|span|p|a|script|style|meta|link|table|tr|td|th|ul|ol|li|br|img|h[1-6]|"
    r"section|article|nav|header|footer|form|input|button|iframe|title|strong|em|b|i)\b[^<>]{0,1000}>",
    re.I,
)
_HTML_START = re.compile(r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head)\b", re.I | re.S)
HTML_MIN_TAGS = 10
HTML_MIN_TAGS_PER_KCHAR = 2.0
HTML_SOURCE_SHARE = 0.5
MAX_SCAN_DOCS = 200_000
PLAIN_EXTENSIONS = (".jsonl", ".json", ".ndjson", ".txt", ".warc", ".arc")


@dataclass
class SourceSample:
    """What scanning one source produced: counts over everything scanned, documents of the sample."""

    fmt: str
    files: list[str]
    total_bytes: int
    docs_scanned: int = 0
    distinct_texts: set[bytes] = field(default_factory=set, repr=False)
    """8-byte blake2b digests of every scanned document's text (exact duplicates over the whole scan)."""
    rejected: Counter = field(default_factory=Counter)
    complete_files: int = 0
    complete_docs: int = 0
    complete_bytes: int = 0
    cut_file: tuple[str, int] | None = None
    """The file the scan stopped inside, and the UTF-8 bytes of the records read from it."""
    docs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def doc_count_method(self) -> str:
        if self.complete_files == len(self.files):
            return "exact"
        if self.complete_bytes:
            return "extrapolated_from_files"
        path, record_bytes = self.cut_file or ("", 0)
        plain = path.lower().endswith(PLAIN_EXTENSIONS)
        return "extrapolated_from_record_bytes" if plain and record_bytes else "lower_bound"

    @property
    def doc_count(self) -> int:
        method = self.doc_count_method
        if method == "extrapolated_from_files":
            return round(self.complete_docs * self.total_bytes / self.complete_bytes)
        if method == "extrapolated_from_record_bytes":
            path, record_bytes = self.cut_file  # type: ignore[misc]
            return round(self.docs_scanned * self.total_bytes / min(record_bytes, os.path.getsize(path)))
        return self.docs_scanned


def _key(seed: int, doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest(), "big")


def sample_source(
    uri: str,
    *,
    fmt: str | None = None,
    reader_params: dict[str, Any] | None = None,
    sample_docs: int = 500,
    seed: int = 0,
    max_scan_docs: int = MAX_SCAN_DOCS,
    name: str = "source",
) -> SourceSample:
    """Scan a source (path, glob or folder) with its registered reader and keep a bottom-k sample.
    Raises ``RecipeError`` for an unknown format, bad reader params or a uri matching no file; the
    message names the source ``name`` (the user's name for it)."""
    src = Source.model_construct(name=name, uri=uri, format=fmt, params=reader_params or {})
    recipe = Recipe.model_construct(sources=[src], steps=[], base_dir=".")
    recipe.validate_ops()
    src = recipe.sources[0]
    reader_cls = recipe.reader_class(src)
    files = recipe.input_files()[src.name]
    reader = reader_cls(src.params)
    out = SourceSample(fmt=reader_cls.name, files=files, total_bytes=sum(os.path.getsize(f) for f in files))
    order = list(files)
    random.Random(seed).shuffle(order)
    heap: list[tuple[int, int, dict[str, Any]]] = []  # (-key, -position, row): a max-heap on the key
    for path in order:
        if out.docs_scanned >= max_scan_docs:
            break
        docs_before, record_bytes = out.docs_scanned, 0
        for row in reader.read(path, src.name):  # type: ignore[attr-defined]
            if row["_reason"]:
                out.rejected[row["_reason"]] += 1
                continue
            if out.docs_scanned >= max_scan_docs:
                out.cut_file = (path, record_bytes)
                break
            out.docs_scanned += 1
            text = row["text"].encode("utf-8")
            out.distinct_texts.add(hashlib.blake2b(text, digest_size=8).digest())
            record_bytes += len(text) + len(row.get("meta", "")) + len(row.get("url", ""))
            entry = (-_key(seed, row["id"]), -out.docs_scanned, row)
            if len(heap) < sample_docs:
                heapq.heappush(heap, entry)
            elif entry[:2] > heap[0][:2]:
                heapq.heapreplace(heap, entry)
        else:
            out.complete_files += 1
            out.complete_docs += out.docs_scanned - docs_before
            out.complete_bytes += os.path.getsize(path)
            continue
        break
    out.docs = [row for _, _, row in sorted(heap, key=lambda e: (-e[0], -e[1]))]
    return out


def to_batch(docs: list[dict[str, Any]], source: str) -> Batch:
    """Documents -> a numpy batch with the executor's columns (``id``, ``text``, ``url``, ``source``, ``meta``)."""
    cols = {c: np.array([d.get(c, "") for d in docs], dtype=object) for c in ("id", "text", "url", "meta")}
    return {**cols, "source": np.full(len(docs), source, dtype=object)}


def looks_like_html(text: str) -> bool:
    """An HTML page: starts with a doctype/``<html>``/``<head>``, or carries at least 10 known HTML
    tags at 2 or more per 1,000 characters (code with a stray ``<b>`` or ``List<int>`` does not)."""
    if _HTML_START.match(text[:2048]):
        return True
    tags = len(_KNOWN_TAG.findall(text))
    return tags >= HTML_MIN_TAGS and tags * 1000 / max(len(text), 1) >= HTML_MIN_TAGS_PER_KCHAR


def extract_html(batch: Batch) -> tuple[Batch, Counter]:
    """Main text of every page with the ``html_extract`` operator at its defaults; pages yielding no
    text are removed from the batch and counted by reason."""
    mapped = get_operator("html_extract")().map(batch)  # type: ignore[attr-defined]
    keep = mapped["_reason"] == ""
    dropped = Counter(str(r) for r in mapped["_reason"][~keep])
    out = {k: v[keep] for k, v in batch.items()}
    out["text"] = mapped["text"][keep]
    return out, dropped
