"""Which files a source reads, and with which reader (the helpers behind ``Recipe.input_files``).

A source ``uri`` is a file, a folder (every file under it, recursively; hidden files and folders are
not looked at) or a glob (``data/*.jsonl*``; ``**`` recurses). A file's reader is the one its
extension names (``reader_for``): ``.jsonl``/``.json``/``.ndjson`` (and ``.gz``) JSONL, ``.parquet``,
``.txt`` text, ``.warc``/``.arc`` (and ``.gz``) WARC. Remote URIs (``s3://``, ``gs://``, ``hf://``;
any ``scheme://`` but ``file://``) are mirrored into the workspace first (``remote_files``).
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from pathlib import Path

from operators.core.base import Operator, OperatorKind, all_operators

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_MAGIC = re.compile(r"[*?\[]")
SHOWN = 5
"""How many skipped files a warning names (all of them are counted)."""


def remote_scheme(uri: str) -> str | None:
    """``s3`` for ``s3://bucket/x``; None for a local path or a ``file://`` URI."""
    m = _SCHEME.match(uri)
    return m[1].lower() if m and m[1].lower() != "file" else None


def strip_file_scheme(uri: str) -> str:
    """``file:///data/x.jsonl`` -> ``/data/x.jsonl``; other uris unchanged."""
    return uri[len("file://") :] if uri.lower().startswith("file://") else uri


def is_glob(path: str) -> bool:
    return bool(_MAGIC.search(path))


def candidate_files(path: str) -> list[str]:
    """The files a resolved path names: itself, every non-hidden file under a folder, or a glob's matches."""
    if os.path.isdir(path):
        root = Path(path)
        return sorted(
            str(p)
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    return sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))


def readers() -> list[type[Operator]]:
    return [c for c in all_operators() if c.kind == OperatorKind.READER]


def extension_table() -> list[tuple[str, type[Operator]]]:
    """(extension, reader) for every registered reader, longest extension first."""
    pairs = [(ext, cls) for cls in readers() for ext in cls.extensions]  # type: ignore[attr-defined]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def reader_for(path: str, table: list[tuple[str, type[Operator]]] | None = None) -> type[Operator] | None:
    """The reader whose extension ``path`` ends with (the longest such extension wins), or None."""
    low = path.lower()
    return next((cls for ext, cls in table or extension_table() if low.endswith(ext)), None)


def by_reader(files: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Files grouped by the reader their extension names, and the files no reader claims."""
    table = extension_table()
    groups: dict[str, list[str]] = {}
    unclaimed = []
    for f in files:
        cls = reader_for(f, table)
        if cls is None:
            unclaimed.append(f)
        else:
            groups.setdefault(cls.name, []).append(f)
    return groups, unclaimed


def extension_counts(files: list[str]) -> str:
    """``.csv x2, .md x1`` (the last suffix of each file; ``(none)`` without one)."""
    counts = Counter(Path(f).suffix.lower() or "(none)" for f in files)
    return ", ".join(f"{ext} x{n}" for ext, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def named_files(files: list[str], root: str) -> str:
    """The first ``SHOWN`` files relative to ``root``, and how many more."""
    base = root if os.path.isdir(root) else os.path.dirname(root)
    names = [os.path.relpath(f, base) for f in files[:SHOWN]]
    more = f" and {len(files) - SHOWN} more" if len(files) > SHOWN else ""
    return ", ".join(names) + more
