"""Reference (target) texts for the selection operators: a recipe source by name, or files.

A reference set is small by construction (a target domain sample, a held-out set, a quality
corpus), so it is read into the driver; the pool being selected from never is.
"""

from __future__ import annotations

from pathlib import Path

from operators.core.base import StepContext
from operators.core.recipe import RecipeError, expand_uri
from operators.readers.texts import read_text_set


def reference_texts(ctx: StepContext, source: str | None, files: list[str], field: str) -> list[str]:
    """Texts of the recipe source named ``source`` (raw files, as read), or of ``files``; the
    records skipped as unreadable are logged (``operators.readers.texts``)."""
    if source:
        if source not in ctx.sources:
            raise RecipeError(f"{field}: source {source!r} is not among the recipe's sources {sorted(ctx.sources)}")
        spec = ctx.sources[source]
        read = read_text_set(spec["files"], spec["format"], spec["params"])
    else:
        read = read_text_set([expand_uri(f, Path.cwd()) for f in files])
    texts = read.report(f"{field}: reference set").texts
    if not texts:
        raise RecipeError(f"{field}: the reference set is empty; name a source or files with documents")
    return texts
