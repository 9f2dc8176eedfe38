"""Target sets: fixed held-out texts every trial is scored on, prepared once per search.

A target (``evaluators.targets.Target``) given as ``source`` + ``fraction`` is the held-out slice
of that source's *raw* documents (``held_out_slice``: a hash of the id, so it does not depend on
file order), taken in id order up to ``max_bytes`` (and ``max_docs``). Its texts are written to
``DIR/targets/<name>.jsonl`` and its ids to a file that every trial's recipe excludes with an
``id_filter`` step (ledger reason ``held_out``), so no trial trains on what it is scored on and
every recipe is scored on the same bytes. The trials score the written files: ``prepare_targets``
returns each target as a ``files`` target of its file, with its name and weight.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from evaluators.targets import Target, held_out_slice, source_documents
from operators import Recipe, RecipeError, Step


def prepare_targets(targets: list[Target], recipe: Recipe, folder: Path) -> tuple[list[Target], str | None]:
    """Write the target files; returns the targets the trials score (those files) and the held-out
    ids file (None when no source slice)."""
    out_dir = folder / "targets"
    out_dir.mkdir(parents=True, exist_ok=True)
    held_out: list[str] = []
    prepared = []
    for target in targets:
        field = f"objective.targets[{target.name}]"
        if target.files:
            texts = target.file_texts()
        else:
            chosen = sorted(held_out_slice(source_documents(recipe, target.source, f"{field}.source"), target.fraction))
            kept = _first(chosen, target)
            if not kept:
                raise RecipeError(
                    f"{field}: the {target.fraction:.0%} slice of {target.source!r} is empty; raise `fraction`"
                )
            held_out.extend(i for i, _ in chosen)
            texts = [t for _, t in kept]
        path = out_dir / f"{target.name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        prepared.append(Target(name=target.name, files=(str(path),), weight=target.weight))
    if not held_out:
        return prepared, None
    blob = "\n".join(sorted(set(held_out))) + "\n"
    ids_file = out_dir / f"heldout-{hashlib.sha256(blob.encode()).hexdigest()[:12]}.txt"
    ids_file.write_text(blob, encoding="utf-8")
    return prepared, str(ids_file)


def _first(docs: list[tuple[str, str]], target: Target) -> list[tuple[str, str]]:
    """The leading documents until ``max_bytes`` is reached (the last one may cross it) or ``max_docs``."""
    kept, size = [], 0
    for doc in docs:
        if size >= target.max_bytes or (target.max_docs is not None and len(kept) >= target.max_docs):
            break
        kept.append(doc)
        size += len(doc[1].encode())
    return kept


def exclude_held_out(recipe: Recipe, ids_file: str | None) -> Recipe:
    """The recipe with a first step dropping the held-out target documents."""
    if ids_file is None:
        return recipe
    step = Step(op="id_filter", params={"ids_file": ids_file, "reason": "held_out"})
    return recipe.model_copy(update={"steps": [step, *recipe.steps]})
