"""Reference (target) texts for the selection operators: a recipe source by name, or files.

A reference set is small by construction (a target domain sample, a held-out set, a quality
corpus), so it is read into the driver; the pool being selected from never is.
"""

from __future__ import annotations

from pathlib import Path

from operators.core.base import OperatorKind, StepContext, all_operators, get_operator
from operators.core.recipe import RecipeError, expand_uri


def read_texts(files: list[str], fmt: str | None = None, params: dict | None = None) -> list[str]:
    """The readable documents' texts of ``files`` (reader by ``fmt`` or by file extension)."""
    texts: list[str] = []
    for path in files:
        reader = get_operator(fmt)(params or {}) if fmt else _reader_for(path)
        texts.extend(row["text"] for row in reader.read(path, "reference") if not row.get("_reason"))  # type: ignore[attr-defined]
    return texts


def reference_texts(ctx: StepContext, source: str | None, files: list[str], field: str) -> list[str]:
    """Texts of the recipe source named ``source`` (raw files, as read), or of ``files``."""
    if source:
        if source not in ctx.sources:
            raise RecipeError(f"{field}: source {source!r} is not among the recipe's sources {sorted(ctx.sources)}")
        spec = ctx.sources[source]
        texts = read_texts(spec["files"], spec["format"], spec["params"])
    else:
        texts = read_texts([expand_uri(f, Path.cwd()) for f in files])
    if not texts:
        raise RecipeError(f"{field}: the reference set is empty; name a source or files with documents")
    return texts


def _reader_for(path: str):
    for cls in all_operators():
        if cls.kind == OperatorKind.READER and path.lower().endswith(cls.extensions):  # type: ignore[attr-defined]
            return cls()
    raise RecipeError(f"cannot infer a reader for {path!r}; use .jsonl, .parquet or .txt files")
