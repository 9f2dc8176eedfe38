"""Content hashes: of files, and order-independent ones of document sets (the manifest's ``output_sha256``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

DOC_COLUMNS = ("source", "id", "text", "url", "meta", "weight")
"""Columns that make up a document's content; signal columns are derived data and not hashed."""


def doc_digests(batch: dict[str, np.ndarray]) -> np.ndarray:
    """sha256 of each row's document columns, as an array of 32-byte ``bytes``."""
    cols = [c for c in DOC_COLUMNS if c in batch]
    n = len(batch["id"]) if "id" in batch else 0
    out = np.empty(n, dtype=object)
    for i in range(n):
        h = hashlib.sha256()
        for c in cols:
            h.update(str(batch[c][i]).encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        out[i] = h.digest()
    return out


def combine(digests: list[bytes] | np.ndarray) -> str:
    """Hash of a multiset of document digests: sorted, then hashed, so order never matters."""
    h = hashlib.sha256()
    for d in sorted(digests):
        h.update(d)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
