"""Recipe recovery: does the agent find, keep and justify the processing a task needs by construction?

Each task is built by ``benchmarks/corpora.py`` from shared data with known junk in the one source
close to the targets (held-out Wikipedia articles and PubMed abstracts, in no source):

- ``dirty_web``: ``web`` holds spam floods (near-duplicate SEO pages), boilerplate-only pages,
  pages in other languages, gibberish and repeated-sentence pages beside its clean documents
  (``DirtyRates`` defaults); ``books``, ``legal`` and ``code`` are clean and far from the targets.
- ``duplicate_flood``: the same sources, but ``web``'s only junk is a flood of near-duplicates
  (40 % of its documents are copies of 6 pages).
- ``diluted_target``: the target domain diluted in a large generic source
  (``build_diluted_task``): ``generic`` is 10 % PubMed abstracts among books, dialogues,
  instructions, math word problems and licences; ``code`` and ``plays`` are clean and far from the
  held-out abstracts, the only target. Its "junk" is ``generic``'s generic documents.

The agent runs its own path on each: goal -> profile -> proposal (rule-based planner) -> search ->
finalize (paired confirmation against the proposal and the baselines, and the per-step ablation).

Scoring, per task, from ground truth the task carries (``meta.kind`` of every document of its
marked source, ``web`` or ``generic``, in its id):

- the *junk-removing* steps: the proposal's filter, dedup and selection steps that, each run alone
  (the proposal with the others off), remove at least ``MIN_KIND_SHARE`` of the marked source's
  documents of some junk kind, and whose drops are at least ``MIN_JUNK_SHARE`` junk (read from the
  ledger);
- the *recovered* steps: filter, dedup and selection steps enabled in the final (recommended)
  recipe and shown to help by its ablation (the paired interval of "recipe minus recipe without the
  step" below zero; a step the search switched off is in the final recipe when the confirmation
  switched it back on because it helps, ``restored_steps``), alone or, for steps that stand in for
  each other, by doing the work of a group ablated together (``experiments.redundancy``): the group
  helps, and so does the step kept on alone with the rest of the group off
  (``experiments.confirm``'s ``only_<step>_of_<group>`` rows);
- ``recall`` = junk-removing steps recovered / junk-removing steps; ``precision`` = recovered
  steps that are junk-removing / recovered steps; ``recall_of_kept`` = junk-removing steps
  recovered / those enabled in the final recipe (``kept``): it separates what the search switched
  off (or the confirmation dropped because it hurts) from what the ablation could not show;
- ``alone``: each junk-removing step's own effect, measured with paired seeds like the
  confirmation's: the recommended recipe with every filter, dedup and selection step off but that
  one, against it with all of them off (``alone_effects``). A step that does not help even then
  removes less than the proxy resolves, and no ablation of any final recipe can credit it;
  ``recall_of_measurable`` = junk-removing steps recovered that help alone / those that help alone.
  It separates what the search path or the redundancy of the steps hid from what is not measurable
  at this scale; issue 20's ``recall`` is unchanged;
- ``kind_recall`` = injected junk kinds that some recovered step removes (at least
  ``MIN_KIND_SHARE`` of the kind, run alone) / injected junk kinds (``kinds``: kind -> those
  steps). Where several steps remove the same junk, a search that keeps one of them and switches
  the others off loses step ``recall`` but still recovers the processing the junk needs;
- the confirmed gain of the final recipe over the proposal and over ``no_filtering`` (paired
  difference in target bits per byte, its 95 % interval and verdict), and the wall time. ``final``
  names the final recipe: ``proposal`` when the proposal beat the search's pick beyond the paired
  interval (then ``gaps.predicted_optimal`` is that comparison and there is no gain over itself).

``pooled`` sums the counts over tasks. Issue 20 asks for recall and precision >= 0.8, and for the
final recipe to beat ``no_filtering`` beyond the paired interval on ``dirty_web``.

    python benchmarks/recovery.py --json benchmarks/out/recovery.json [--tasks dirty_web,duplicate_flood,diluted_target]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.planners.choices import switchable  # noqa: E402
from benchmarks.corpora import JUNK_KINDS, DirtyRates, build_diluted_task, build_task, goal_overrides  # noqa: E402
from experiments.progress import listening  # noqa: E402
from operators import load_recipe, ray_session, recipe_from_dict, run_recipe, shared_data_dir  # noqa: E402

GOAL = "a pretraining mix for a small model good at encyclopedic and biomedical English text, 2M tokens"
NO_JUNK = {k: 0.0 for k in JUNK_KINDS}


@dataclass(frozen=True)
class TaskSpec:
    """How a task is built (``build(out, shared, scale=...)``), the source whose ids start with
    each document's ``meta.kind``, and the kinds that are junk there."""

    build: Callable[..., dict]
    source: str
    junk: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    "dirty_web": TaskSpec(partial(build_task, rates=DirtyRates()), "web", JUNK_KINDS),
    "duplicate_flood": TaskSpec(partial(build_task, rates=DirtyRates(**{**NO_JUNK, "spam": 0.4})), "web", JUNK_KINDS),
    "diluted_target": TaskSpec(build_diluted_task, "generic", ("generic",)),
}
MIN_KIND_SHARE = 0.25
"""A junk-removing step removes at least this share of one junk kind's documents..."""
MIN_JUNK_SHARE = 0.5
"""...and at least this share of what it removes is junk."""


def run_agent(task: dict, settings: dict[str, Any]) -> dict[str, Any]:
    """The agent's whole path on ``task``, approved without review; returns its final state.
    ``settings``: Goal fields that differ from the goal's defaults."""
    from agent.graph import build_graph, open_checkpointer, thread

    overrides = {**goal_overrides(task), "max_rounds": 0, **settings}
    run_id = uuid.uuid4().hex[:12]
    state = {
        "run_id": run_id,
        "goal_text": GOAL,
        "data": task["sources"],
        "planner": {"kind": "rules"},
        "auto_approve": True,
        "goal_overrides": overrides,
        "tool_log": [],
        "usage": [],
    }
    graph = build_graph(open_checkpointer())
    with listening(on_trial=lambda row: _line(task, row), on_confirm=lambda row: _line(task, row)):
        for update in graph.stream(state, thread(run_id), stream_mode="updates"):
            print(
                task["name"], *(f"{node}: {(v or {}).get('status', 'done')}" for node, v in update.items()), flush=True
            )
    values = graph.get_state(thread(run_id)).values
    if not values.get("final"):
        raise RuntimeError(f"the agent did not finish on {task['name']}: status {values.get('status')}")
    return values


def _line(task: dict, row: dict[str, Any]) -> None:
    """A trial (``number``) or a confirmation training (``name``, ``seed``) as it finishes."""
    what = f"trial {row['number']}" if "number" in row else f"confirm {row['done']}/{row['planned']} {row['name']}"
    print(task["name"], what, row.get("seed", ""), f"{row['objective']}", flush=True)


def refinalize(task: dict[str, Any]) -> dict[str, Any]:
    """The final state of an earlier agent run on ``task`` in this workspace, finalized again by the
    current code: its recorded confirmation trainings are reused and only what is new is trained
    (the compute budget is re-approved as the current code sizes it)."""
    from agent.goal import Goal
    from agent.graph import build_graph, finalize, open_checkpointer, run_ids, thread

    checkpointer = open_checkpointer()
    graph = build_graph(checkpointer)
    for run_id in run_ids(checkpointer):
        values = graph.get_state(thread(run_id)).values
        if values.get("data") == task["sources"] and values.get("search_dir"):
            values["approved_budget"] = Goal.model_validate(values["goal"]).compute_budget()
            return {**values, **finalize(values)}
    raise RuntimeError(f"no searched agent run on {task['name']} in {os.environ['DATAPLAN_HOME']}")


def junk_removing(proposal: dict, task: dict, spec: TaskSpec, out: Path) -> dict[int, dict[str, Any]]:
    """Step index -> what it removes (per kind), for the proposal's filter, dedup and selection
    steps that remove junk. Each is judged alone (the proposal with every other such step off, the
    cleaning steps kept), so two steps that remove the same junk both count, whichever runs first."""
    totals = {k: n for k, n in task[spec.source]["documents"].items() if k in spec.junk and n}
    found = {}
    for index, step in enumerate(proposal["steps"]):
        if not switchable(step["op"]) or step.get("enabled", True) is False:
            continue
        alone = json.loads(json.dumps(proposal))
        for j, other in enumerate(alone["steps"]):
            if j != index and switchable(other["op"]):
                other["enabled"] = False
        run_recipe(recipe_from_dict(alone, base_dir="/"), out / f"step{index}")
        entry = _removed(out / f"step{index}" / "ledger.parquet", index, spec.source, set(totals))
        shares = {k: n / totals[k] for k, n in entry["kinds"].items()}
        if shares and max(shares.values()) >= MIN_KIND_SHARE and entry["junk"] / entry["dropped"] >= MIN_JUNK_SHARE:
            found[index] = {"op": step["op"], **entry, "kind_shares": shares}
    return found


def alone_effects(values: dict[str, Any], steps: list[int]) -> dict[int, dict[str, Any]]:
    """Each of ``steps`` on its own: the recommended recipe with every filter, dedup and selection
    step off but that one, against it with all of them off, paired by seed at the confirmation's
    scale, seeds and seed cap (``experiments.confirm.run_confirm``, in ``<search>/alone``). A step
    that does not help even alone, with nothing else removing its junk, cannot be shown to help by
    any ablation of the final recipe: what it removes is below what the proxy resolves. ``diff`` is
    the step alone minus nothing (below zero: it lowers bits per byte)."""
    from agent.goal import Goal
    from experiments.confirm import ABLATION_VERDICTS, BASELINE_VERDICTS, PREDICTED, run_confirm, without
    from experiments.study import Search

    if not steps:
        return {}
    search = Search(values["search_dir"])
    confirm = values["final"]["confirm"]
    recommended = load_recipe(values["final"]["recommended_recipe"])
    off = tuple(i for i, step in enumerate(recommended.steps) if switchable(step.op))
    recipes = {PREDICTED: without(recommended, off)}
    recipes.update({f"only_{i}_{recommended.steps[i].op}": without(recommended, off, on=(i,)) for i in steps})
    result = run_confirm(
        search.folder / "alone",
        search.config,
        recipes,
        proxy=search.config.confirm_proxy(confirm["preset"], confirm["tokens"], confirm["tokenizer"]),
        seeds=list(range(Goal.model_validate(values["goal"]).confirm_seeds)),  # the agent's, as it finalized
        max_seeds=confirm["max_seeds"],
        ablate=False,
    )
    gaps = {g.baseline: g for g in result.gaps}
    # a gap is the recipe with nothing on against the rival: "worse" there is "helps" for the step
    verdicts = {BASELINE_VERDICTS[1]: ABLATION_VERDICTS[0], BASELINE_VERDICTS[0]: ABLATION_VERDICTS[1]}
    return {
        i: {
            "op": recommended.steps[i].op,
            "diff": -g.diff,
            "ci95": [-g.ci95[1], -g.ci95[0]],
            "verdict": verdicts.get(g.verdict, ABLATION_VERDICTS[2]),
            "seeds": g.seeds,
        }
        for i, name in zip(steps, list(recipes)[1:], strict=True)
        for g in [gaps[name]]
    }


def _removed(ledger_path: Path, index: int, source: str, kinds: set[str]) -> dict[str, Any]:
    """Documents step ``index`` dropped: how many, how many were junk, per junk kind (the ids of
    ``source`` start with their ``meta.kind``)."""
    entry: dict[str, Any] = {"dropped": 0, "junk": 0, "kinds": {}}
    for row in pq.read_table(ledger_path, columns=["id", "source", "status", "step"]).to_pylist():
        if row["status"] != "dropped" or row["step"] != index:
            continue
        entry["dropped"] += 1
        kind = row["id"].split("/", 1)[0] if row["source"] == source else "clean"
        if kind in kinds:
            entry["junk"] += 1
            entry["kinds"][kind] = entry["kinds"].get(kind, 0) + 1
    return entry


def score(values: dict[str, Any], task: dict, spec: TaskSpec, work: Path) -> dict[str, Any]:
    final = values["final"]
    confirm = final["confirm"]
    proposal = values["proposal"]["recipe"]
    needed = junk_removing(proposal, task, spec, work / "alone")
    recommended = load_recipe(final["recommended_recipe"])
    ablation = {g["step"]: g for g in confirm["ablations"] if g.get("step") is not None}
    doing = {}  # step -> the first helping group whose work it does alone (``only_<i>_of_<group>`` helps)
    for g in confirm["ablations"]:
        if g.get("kept") is not None and g["verdict"] == "helps":
            doing.setdefault(g["kept"], g["steps"])
    recovered = {
        i: "helps" if ablation[i]["verdict"] == "helps" else f"does the work of group {doing[i]} alone"
        for i, step in enumerate(recommended.steps)
        if step.enabled and switchable(step.op) and i in ablation and (ablation[i]["verdict"] == "helps" or i in doing)
    }
    hits = sorted(set(recovered) & set(needed))
    with listening(on_confirm=partial(_line, task)):
        alone = alone_effects(values, sorted(needed))
    measurable = [i for i, e in alone.items() if e["verdict"] == "helps"]
    hits_measurable = len(set(hits) & set(measurable))
    kept = [i for i in needed if recommended.steps[i].enabled]
    injected = [k for k, n in task[spec.source]["documents"].items() if k in spec.junk and n]
    kinds = {
        k: [needed[i]["op"] for i in hits if needed[i]["kind_shares"].get(k, 0) >= MIN_KIND_SHARE] for k in injected
    }
    gaps = {g["baseline"]: {k: g[k] for k in ("diff", "ci95", "verdict")} for g in confirm["gaps"]}
    return {
        "junk_removing": {
            str(i): {k: e[k] for k in ("op", "dropped", "junk", "kind_shares")} for i, e in needed.items()
        },
        "recovered": {str(i): f"{recommended.steps[i].op}: {how}" for i, how in recovered.items()},
        "ablation": {
            str(i): {"op": recommended.steps[i].op, "diff": g["diff"], "ci95": g["ci95"], "verdict": g["verdict"]}
            for i, g in ablation.items()
        },
        "group_ablation": {
            "-".join(map(str, g["steps"])): {k: g[k] for k in ("diff", "ci95", "verdict")}
            for g in confirm["ablations"]
            if g.get("steps") and g.get("kept") is None
        },
        "switched_on": {
            f"{g['added']} {proposal['steps'][g['added']]['op']}": {k: g[k] for k in ("diff", "ci95", "verdict")}
            for g in confirm["ablations"]
            if g.get("added") is not None
        },
        "group_members": {
            f"{g['kept']} of {'-'.join(map(str, g['steps']))}": {k: g[k] for k in ("diff", "ci95", "verdict")}
            for g in confirm["ablations"]
            if g.get("kept") is not None
        },
        "alone": {str(i): e for i, e in alone.items()},
        "hits": len(hits),
        "needed": len(needed),
        "measurable": len(measurable),
        "hits_measurable": hits_measurable,
        "kept": len(kept),
        "found": len(recovered),
        "recall": len(hits) / len(needed) if needed else None,
        "recall_of_measurable": hits_measurable / len(measurable) if measurable else None,
        "precision": len(hits) / len(recovered) if recovered else None,
        "kinds": kinds,
        "kinds_covered": sum(1 for ops in kinds.values() if ops),
        "kind_recall": sum(1 for ops in kinds.values() if ops) / len(kinds) if kinds else None,
        "final": confirm.get("final"),
        "gain_over_proposal": gaps.get("proposal"),
        "gain_over_no_filtering": gaps.get("no_filtering"),
        "gaps": gaps,
        "dropped_steps": final.get("dropped_steps", []),
        "restored_steps": final.get("restored_steps", []),
        "seeds": confirm.get("seeds"),
        "spearman": confirm.get("spearman"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    ap.add_argument("--trials", type=int, default=12, help="search trials per task (the goal's default)")
    ap.add_argument("--scale", type=float, default=1.0, help="share of each task's documents")
    ap.add_argument("--search-seed", type=int, default=None, help="the search's seed (the goal's default, 0)")
    ap.add_argument("--confirm-seeds", type=int, default=None, help="first confirmation seeds (the goal's default)")
    ap.add_argument("--proxy-tokens", type=int, default=None, help="nano proxy tokens (confirmation: twice)")
    ap.add_argument("--confirm-tokens", type=int, default=None, help="tokens per confirmation run (the goal's default)")
    ap.add_argument(
        "--confirm-tokenizer", choices=("byte", "bpe"), default=None, help="confirmation tokenizer (the goal's default)"
    )
    ap.add_argument(
        "--resume",
        default=None,
        help="the folder of an earlier run of this benchmark: finalize its agent runs again (reusing every "
        "recorded training) and score them",
    )
    args = ap.parse_args()
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if unknown := sorted(set(names) - set(TASKS)):
        ap.error(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    root = Path(args.resume).resolve() if args.resume else Path(tempfile.mkdtemp(prefix="dataplan-recovery-"))
    os.environ.setdefault("DATAPLAN_HOME", str(root / "home"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    out: dict[str, Any] = {
        "goal": GOAL,
        "rules": {"min_kind_share": MIN_KIND_SHARE, "min_junk_share": MIN_JUNK_SHARE},
        "args": {k: v for k, v in vars(args).items() if k != "json"},
    }
    with ray_session():
        for name in names:
            spec = TASKS[name]
            start = time.perf_counter()
            if args.resume:
                task = {**json.loads((root / name / "task.json").read_text()), "name": name}
                values = refinalize(task)
            else:
                task = spec.build(root / name, shared_data_dir(), scale=args.scale)
                task["name"] = name
                given = {
                    **{"trials": args.trials, "confirm_seeds": args.confirm_seeds, "proxy_tokens": args.proxy_tokens},
                    **{"confirm_tokens": args.confirm_tokens, "confirm_tokenizer": args.confirm_tokenizer},
                    "search_seed": args.search_seed,
                }
                values = run_agent(task, {k: v for k, v in given.items() if v is not None})
            out[name] = {
                **score(values, task, spec, root / name),
                spec.source: task[spec.source],
                "seconds": time.perf_counter() - start,
            }
            print(
                name,
                json.dumps(
                    {
                        k: out[name][k]
                        for k in ("recall", "recall_of_measurable", "kind_recall", "precision", "recovered")
                    }
                ),
                flush=True,
            )
    done = [out[n] for n in names]
    hits, needed, kept, found = (sum(t[k] for t in done) for k in ("hits", "needed", "kept", "found"))
    measurable, hits_measurable = (sum(t[k] for t in done) for k in ("measurable", "hits_measurable"))
    covered, kinds = sum(t["kinds_covered"] for t in done), sum(len(t["kinds"]) for t in done)
    out["pooled"] = {
        "recall": hits / needed if needed else None,
        "recall_of_kept": hits / kept if kept else None,
        "recall_of_measurable": hits_measurable / measurable if measurable else None,
        "kind_recall": covered / kinds if kinds else None,
        "precision": hits / found if found else None,
        "dirty_web_beats_no_filtering": (out.get("dirty_web", {}).get("gain_over_no_filtering") or {}).get("verdict")
        == "better",
    }
    out["load_average"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out["pooled"], indent=2))


if __name__ == "__main__":
    main()
