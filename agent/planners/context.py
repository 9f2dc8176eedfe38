"""What an LLM planner may see of the user's data: numbers, and a few quoted, capped excerpts.

Document text is untrusted: it may contain instructions ("ignore previous instructions, ..."). It
reaches a model only through ``data_block``: whitespace collapsed, markup escaped (so no ``</data>``
or other tag from a document survives), cut to a length cap and wrapped in
``<data source="NAME" excerpt="I">...</data>``, which the system prompt declares to be data and never
instructions. Profiles and trial tables pass through ``numbers_only``: numbers and booleans under
identifier-like keys; every string value is dropped.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from operators import Recipe, RecipeError, Source

EXCERPTS_PER_SOURCE = 2
EXCERPT_CHARS = 400
EXCERPTS_TOTAL_CHARS = 3000
SUMMARY_CHARS = 8000
LIST_ITEMS = 20
_KEY = re.compile(r"^[A-Za-z0-9_.:+\-]{1,64}$")
_PARTIAL_ENTITY = re.compile(r"&[#a-z0-9]{0,6}$")


def data_block(source: str, index: int, text: str, cap: int = EXCERPT_CHARS) -> str:
    """One excerpt as a quoted data block; ``cap`` bounds the characters inside the block."""
    body = html.escape(" ".join(text.split()), quote=False)
    if len(body) > cap:
        body = _PARTIAL_ENTITY.sub("", body[:cap]) + " [...]"
    return f'<data source="{html.escape(source)}" excerpt="{index}">{body}</data>'


def source_excerpts(
    sources: dict[str, str],
    per_source: int = EXCERPTS_PER_SOURCE,
    chars: int = EXCERPT_CHARS,
    total_chars: int = EXCERPTS_TOTAL_CHARS,
) -> list[str]:
    """The first ``per_source`` readable documents of each source (in file order) as data blocks,
    at most ``chars`` each and ``total_chars`` together. Unreadable sources give no excerpt."""
    blocks: list[str] = []
    left = total_chars
    for name, uri in sources.items():
        for index, text in enumerate(_first_texts(name, uri, per_source)):
            cap = min(chars, left)
            if cap <= 0:
                return blocks
            blocks.append(data_block(name, index, text, cap))
            left -= cap
    return blocks


def _first_texts(name: str, uri: str, n: int) -> Iterator[str]:
    try:
        recipe = Recipe(sources=[Source(name=name, uri=uri)], base_dir=".")
        recipe.validate_ops()
        src = recipe.sources[0]
        reader = recipe.reader_class(src)(src.params)
        files = recipe.input_files()[name]
    except (RecipeError, ValueError, OSError):
        return
    found = 0
    for path in files:
        for row in reader.read(path, name):  # type: ignore[attr-defined]
            if not row["_reason"] and row["text"].strip():
                yield row["text"]
                found += 1
                if found >= n:
                    return


def numbers_only(data: Any) -> Any:
    """Numbers and booleans of a nested mapping, under keys that look like identifiers; strings,
    odd keys and non-finite numbers are dropped, lists keep their first ``LIST_ITEMS`` items."""
    if isinstance(data, bool):
        return data
    if isinstance(data, int | float):
        return round(data, 6) if math.isfinite(data) else None
    if isinstance(data, dict):
        kept = {str(k): numbers_only(v) for k, v in data.items() if _KEY.match(str(k))}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])} or None
    if isinstance(data, list | tuple):
        kept = [v for v in (numbers_only(v) for v in data[:LIST_ITEMS]) if v not in (None, {}, [])]
        return kept or None
    return None


def summary_json(data: Any, cap: int = SUMMARY_CHARS) -> str:
    """``numbers_only(data)`` as compact JSON, cut at ``cap`` characters."""
    text = json.dumps(numbers_only(data) or {}, separators=(",", ":"))
    return text if len(text) <= cap else text[:cap] + " ...(cut)"
