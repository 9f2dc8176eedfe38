"""Published pipelines against datatrove: do ``recipes/fineweb.yaml`` and ``recipes/c4.yaml`` keep and
drop the same documents as datatrove's own filters with the same parameters?

    python benchmarks/pipelines.py --json benchmarks/out/pipelines.json

(The first run creates datatrove's venv with ``benchmarks/peers/datatrove/setup.sh`` when it is missing.)

Method, per recipe, on ``web/crawl_sample.warc.gz``: the recipe runs on Ray as ``dataplan run`` runs it
(its extraction, language ID and filters). For every stage datatrove has a filter for, the recipe cut
just before that stage is run again (every step comes from the stage cache): its output is the set of
documents that reach the stage, with exactly the text the stage saw. That text goes to datatrove's
filter (``GopherRepetitionFilter``, ``GopherQualityFilter``, ``C4QualityFilter``,
``FineWebQualityFilter``), built with the stage's parameters translated to datatrove's arguments by
``benchmarks/filters.py``, in its venv (``peers/datatrove/run_filters.py``). Our decision is the
stage's row in the full run's ledger.

``stages.<recipe>.<op>``: ``agreement`` (share of the ``n`` documents both keep or both drop),
``reason_agreement`` (same first reason among documents both drop), ``disagreements`` (ids, ours and
datatrove's reason). ``chain.<recipe>``: datatrove's filters applied in the recipe's order to the
documents our language stage keeps, each on the text the previous one left (datatrove's C4 filter
rewrites the text of the documents it keeps, removing the lines its line rules reject), against the
recipe's own fate of the same documents: whether the recipe as a whole keeps what datatrove's
pipeline keeps.

Not compared: language ID (datatrove's ``LanguageFilter`` needs fastText's lid.176 model, downloaded at
run time: not available offline; our stand-in, py3langid, decides for both sides which documents reach
the later stages), extraction (both sides get our trafilatura text), the URL filter (no blocklist is
bundled with our recipe; it keeps every page) and deduplication (the sample holds no duplicates).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.filters import DATATROVE_REASONS, PEER, Datatrove  # noqa: E402
from operators import (  # noqa: E402
    Recipe,
    get_operator,
    load_recipe,
    ray_session,
    read_ledger,
    read_output,
    run_recipe,
    shared_data_dir,
)

RECIPES = ("fineweb", "c4")
COMPARED = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
"""Our operators that have a datatrove filter (``peers/datatrove/run_filters.py``)."""
LINE_REMOVAL = ("c4_line_filter",)
"""Our steps that datatrove's ``C4QualityFilter`` does in its own pass (it rewrites the text it keeps)."""
PEER_PYTHON = PEER / "venv" / "bin" / "python"
SHOWN = 20
"""Disagreeing documents listed per stage."""


def pipeline(name: str, warc: Path) -> Recipe:
    """``recipes/<name>.yaml`` over the WARC sample (its ``${SOURCE}``)."""
    os.environ["SOURCE"] = str(warc)
    return load_recipe(REPO / "recipes" / f"{name}.yaml")


def cut(recipe: Recipe, k: int) -> Recipe:
    """The recipe's first ``k`` steps."""
    return recipe.model_copy(update={"steps": recipe.steps[:k]}, deep=True)


def stage_params(recipe: Recipe, k: int) -> dict:
    """Step ``k``'s parameters, every default filled in."""
    step = recipe.steps[k]
    return get_operator(step.op)(step.params).params.model_dump(mode="json")


KEPT = (sys.maxsize, "")


def fates(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Document id -> (step that dropped it, reason code), or ``KEPT``."""
    ledger = read_ledger(run_dir).to_pylist()
    return {r["id"]: (r["step"], r["reason"].split(":")[0]) if r["status"] == "dropped" else KEPT for r in ledger}


def agreement(ids: list[str], ours: list[str], theirs: list[str]) -> dict:
    """Keep/drop agreement of two reason lists ("" = kept) over the same documents."""
    same = [(a == "") == (b == "") for a, b in zip(ours, theirs, strict=True)]
    both = [(a, b) for a, b in zip(ours, theirs, strict=True) if a and b]
    return {
        "agreement": round(sum(same) / max(len(ids), 1), 6),
        "n": len(ids),
        "ours_dropped": sum(1 for r in ours if r),
        "datatrove_dropped": sum(1 for r in theirs if r),
        "reason_agreement": round(sum(map(_same_reason, *zip(*both, strict=True))) / len(both), 6) if both else None,
        "disagreements": [
            {"id": i, "ours": a, "datatrove": b} for i, a, b, s in zip(ids, ours, theirs, same, strict=True) if not s
        ][:SHOWN],
    }


def _same_reason(ours: str, theirs: str) -> bool:
    """``[op:]reason`` of ours and datatrove's name the same stage and the same rule."""
    op, _, reason = ours.rpartition(":")
    their_op, _, their_reason = theirs.rpartition(":")
    return op == their_op and DATATROVE_REASONS.get(reason) == their_reason


def compare_recipe(name: str, warc: Path, work: Path, peer: Path) -> dict:
    """Per compared stage of recipe ``name``: our decisions against datatrove's on the same text."""
    recipe = pipeline(name, warc)
    manifest = run_recipe(recipe, work / name / "full")
    fate = fates(work / name / "full")
    compared = [k for k, step in enumerate(recipe.steps) if step.op in COMPARED]
    params = {recipe.steps[k].op: stage_params(recipe, k) for k in compared}
    stages: dict = {}
    first: list[dict] = []
    for k in compared:
        op = recipe.steps[k].op
        docs = reaching(recipe, k, work / name / f"upto{k}")
        first = first or docs
        ours = [fate[d["id"]][1] if fate[d["id"]][0] == k else "" for d in docs]
        theirs = Datatrove(peer, _folder(work / name / f"datatrove{k}"), docs, params).run("each", (op,))[op]["reasons"]
        stages[op] = {"step": k, **agreement([d["id"] for d in docs], ours, theirs), "params": params[op]}
    span = [k for k, step in enumerate(recipe.steps) if step.op in (*COMPARED, *LINE_REMOVAL)]
    kept = {d["id"]: _sha1(d["text"]) for d in reaching(recipe, span[-1] + 1, work / name / "through")}
    ops = tuple(params)
    ours = [_chain_reason(recipe, fate[d["id"]], span) for d in first]
    peer_run = Datatrove(peer, _folder(work / name / "datatrove_chain"), first, params).run("chain", ops)["chain"]
    chain = {"stages": list(ops), **agreement([d["id"] for d in first], ours, peer_run["reasons"])}
    both = [(kept[d["id"]], h) for d, h in zip(first, peer_run["text_sha1"], strict=True) if d["id"] in kept and h]
    chain["text_agreement"] = round(sum(a == b for a, b in both) / max(len(both), 1), 6)
    return {"stages": stages, "chain": chain, "counts": manifest.sources["web"]}


def reaching(recipe: Recipe, k: int, run_dir: Path) -> list[dict]:
    """The documents that reach step ``k`` and the text they reach it with: the output of the
    recipe's first ``k`` steps (every step is in the stage cache of the full run)."""
    run_recipe(cut(recipe, k), run_dir)
    out = read_output(run_dir)
    return [{"id": i, "text": t} for i, t in zip(out["id"].to_pylist(), out["text"].to_pylist(), strict=True)]


def _chain_reason(recipe: Recipe, fate: tuple[int, str], span: list[int]) -> str:
    """``<op>:<reason>`` of the step of ``span`` that dropped a document, "" if none did."""
    step, reason = fate
    return f"{recipe.steps[step].op}:{reason}" if step in span else ""


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--data", default=str(shared_data_dir()), help="the shared data folder")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), help="recipes/ names to compare")
    parser.add_argument("--peer-python", default=str(PEER_PYTHON), help="datatrove's venv python")
    args = parser.parse_args()
    if not Path(args.peer_python).is_file():
        if Path(args.peer_python) != PEER_PYTHON:
            sys.exit(f"{args.peer_python} not found")
        print(f"{PEER_PYTHON} not found: creating it with {PEER / 'setup.sh'}", file=sys.stderr)
        subprocess.run(["bash", str(PEER / "setup.sh")], check=True)
    warc = Path(args.data) / "web" / "crawl_sample.warc.gz"
    result: dict = {"data": str(warc), "stages": {}, "chain": {}, "counts": {}}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATAPLAN_HOME"] = str(Path(tmp) / "home")  # a cold cache: nothing from earlier runs
        with ray_session():
            for name in args.recipes:
                found = compare_recipe(name, warc, Path(tmp), Path(args.peer_python))
                result["stages"][name] = found["stages"]
                result["chain"][name] = found["chain"]
                result["counts"][name] = found["counts"]
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    summary = {
        r: {op: {k: v[k] for k in ("agreement", "n")} for op, v in {**s, "chain": result["chain"][r]}.items()}
        for r, s in result["stages"].items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
