"""Target sets: fixed held-out texts every trial is scored on, prepared once per search.

A target given as ``source`` + ``fraction`` is a deterministic slice of that source's *raw*
documents (chosen by a hash of the id, so it does not depend on file order), capped at
``max_bytes``. Its texts are written to ``DIR/targets/<name>.jsonl`` and its ids to a file that
every trial's recipe excludes with an ``id_filter`` step (ledger reason ``held_out``), so no trial
trains on what it is scored on and every recipe is scored on the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from operators import Recipe, RecipeError, Step, get_operator


class ResolvedTarget(BaseModel):
    name: str
    file: str
    weight: float
    docs: int
    bytes: int


def _in_slice(doc_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def prepare_targets(specs: list, recipe: Recipe, folder: Path) -> tuple[list[ResolvedTarget], str | None]:
    """Write the target files; returns them and the held-out ids file (None when no source slice)."""
    out_dir = folder / "targets"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = recipe.input_files()
    held_out: list[str] = []
    resolved = []
    for spec in specs:
        if spec.files:
            texts = [t for f in spec.files for t in _texts_of_file(f)]
        elif spec.source:
            if spec.source not in files:
                raise RecipeError(
                    f"objective.targets[{spec.name}].source: {spec.source!r} is not a source of the recipe"
                )
            docs = _raw_documents(recipe, spec.source, files[spec.source])
            chosen = [(i, t) for i, t in docs if _in_slice(i, spec.fraction)]
            kept, size = [], 0
            for doc_id, text in chosen:
                if size >= spec.max_bytes:
                    break
                kept.append((doc_id, text))
                size += len(text.encode())
            if not kept:
                raise RecipeError(
                    f"objective.targets[{spec.name}]: the {spec.fraction:.0%} slice of {spec.source!r} is empty; raise `fraction`"
                )
            held_out.extend(i for i, _ in chosen)
            texts = [t for _, t in kept]
        else:
            raise RecipeError(f"objective.targets[{spec.name}]: give `files:` or `source:`")
        path = out_dir / f"{spec.name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        resolved.append(
            ResolvedTarget(
                name=spec.name,
                file=str(path),
                weight=spec.weight,
                docs=len(texts),
                bytes=sum(len(t.encode()) for t in texts),
            )
        )
    if not held_out:
        return resolved, None
    blob = "\n".join(sorted(set(held_out))) + "\n"
    ids_file = out_dir / f"heldout-{hashlib.sha256(blob.encode()).hexdigest()[:12]}.txt"
    ids_file.write_text(blob, encoding="utf-8")
    return resolved, str(ids_file)


def exclude_held_out(recipe: Recipe, ids_file: str | None) -> Recipe:
    """The recipe with a first step dropping the held-out target documents."""
    if ids_file is None:
        return recipe
    step = Step(op="id_filter", params={"ids_file": ids_file, "reason": "held_out"})
    return recipe.model_copy(update={"steps": [step, *recipe.steps]})


def _raw_documents(recipe: Recipe, source: str, paths: list[str]) -> list[tuple[str, str]]:
    src = next(s for s in recipe.sources if s.name == source)
    reader = recipe.reader_class(src)(src.params)
    docs = []
    for path in paths:
        for row in reader.read(path, source):  # type: ignore[attr-defined]
            if not row["_reason"] and row["text"].strip():
                docs.append((row["id"], row["text"]))
    return sorted(docs)


def _texts_of_file(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"target file {path!r} does not exist")
    if p.suffix == ".txt":
        return [p.read_text(encoding="utf-8")]
    reader = get_operator("jsonl")()
    return [r["text"] for r in reader.read(str(p), "target") if not r["_reason"]]  # type: ignore[attr-defined]
