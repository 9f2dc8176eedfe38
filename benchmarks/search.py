"""Search benchmark: which sampler finds a good recipe soonest, on the agent's own search space.

The task is the dirty-web task of ``benchmarks/corpora.py`` (``web`` with injected spam floods,
boilerplate, foreign, gibberish and repeated pages, the only source close to the targets; ``books``,
``legal``, ``code``; targets: held-out Wikipedia articles and PubMed abstracts). The recipe and the
space are the rule-based planner's proposal for it, made through the agent's own nodes (goal ->
profile -> proposal): its processing choices (steps on/off and their main thresholds) and the
mixture simplex. Every arm searches that same space at the search's default fidelity:

- ``random``: random search (no proposal);
- ``tpe``: multivariate TPE from scratch (no proposal);
- ``planner_tpe``: the proposal as trial 0, then TPE;
- ``planner_tpe_prior``: the proposal, then ``PRIOR_TRIALS`` trials whose mixtures are drawn from a
  Dirichlet around the proposal's weights (``SearchSpace.around``), then TPE;
- ``planner_cmaes``: the proposal, then CMA-ES whose search distribution starts at the proposal
  (TPE for the on/off switches).
- ``planner_gp``: the proposal, then Optuna's Gaussian-process sampler fitted on the Gaussian
  copula of the values (``experiments.warped_gp``; 5 random trials first, a noiseless kernel: every
  trial's proxy trains with one seed, so the objective is deterministic).

Each arm runs ``--reps`` repetitions (sampler seeds; every proxy trains with ``PROXY_SEED``) of
``--trials`` trials. Reported: the best objective after k trials (mean and std over repetitions),
each arm against random (the difference of the means against twice the larger std, issue 20's bar),
and for ``DEFAULT_ARM`` (the search's defaults) ``default_vs_random``, with the bar set against the
best trial of the whole run (``bar``). The time per trial is split into pipeline, training,
evaluation and the rest (sampling, Optuna, MLflow). Then the default arm's first study is finalized:
its predicted-optimal recipe is confirmed with paired seeds against the proposal and the baselines.

    python benchmarks/search.py --json benchmarks/out/search.json [--trials 20] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.corpora import build_task, planned  # noqa: E402
from operators import ray_session, recipe_from_dict, shared_data_dir  # noqa: E402

GOAL = "a pretraining mix for a small model good at encyclopedic and biomedical English text, 2M tokens"
PRIOR_TRIALS = 4
ARMS = {
    "random": {"sampler": "random", "warm_start": False},
    "tpe": {"sampler": "tpe", "warm_start": False},
    "planner_tpe": {"sampler": "tpe", "warm_start": True},
    "planner_tpe_prior": {"sampler": "tpe", "warm_start": True, "prior_trials": PRIOR_TRIALS},
    "planner_cmaes": {"sampler": "cmaes", "warm_start": True},
    "planner_gp": {"sampler": "gp", "warm_start": True},
}
PROXY_SEED = 0
"""Every trial of every arm and repetition trains its proxy with this seed, so all of them search
one objective function and a repetition varies only the sampler's seed (common random numbers).
With the proxy seed varying too, the spread over repetitions mixed in the proxy's own noise (the
same recipe scored 3.178 / 3.011 / 3.078 under seeds 0-2) and measured no sampler."""
DEFAULT_ARM = "planner_gp"
"""The arm the search's defaults (``SearchConfig``) correspond to."""


def run_one(root: Path, name: str, recipe: dict, space: dict, arm: dict, seed: int, trials: int) -> dict:
    from experiments.study import Search

    s = Search.create(
        root / f"{name}-{seed}",
        recipe_from_dict(recipe),
        space,
        seed=seed,
        proxy_seed=PROXY_SEED,
        n_trials=trials,
        pruner="none",
        **arm,
    )
    s.run()
    done = sorted((t for t in s.study().trials if t.values), key=lambda t: t.number)
    values = [t.values[0] for t in done]
    split = [
        {**t.user_attrs["seconds"], "wall": (t.datetime_complete - t.datetime_start).total_seconds()}
        for t in done[1:]
        if "reused_from" not in t.user_attrs
    ]
    reused = sum(1 for t in done if "reused_from" in t.user_attrs)
    return {"values": values, "split": split, "folder": s.folder, "reused": reused}


def best_after(curves: list[list[float]], trials: int) -> dict:
    best = {}
    for k in (5, 10, 20, trials):
        if k <= trials:
            vals = [min(c[:k]) for c in curves]
            best[str(k)] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return best


def versus(arm: dict, random: dict) -> dict:
    """At the largest k: the arm's mean best minus random's (lower bpb is better) against the larger
    std; issue 20 asks the default to win by twice that spread."""
    k = max(arm, key=int)
    diff = arm[k]["mean"] - random[k]["mean"]
    spread = max(arm[k]["std"], random[k]["std"])
    return {
        "k": int(k),
        "diff": diff,
        "spread": spread,
        "better_beyond_spread": diff < -spread,
        "better_beyond_twice_spread": diff < -2 * spread,
    }


def bar(out: dict, arms: list[str]) -> dict:
    """Issue 20's bar against the best recipe the run saw. Whatever the default's own spread, its
    mean best must be at least twice random's spread below random's mean (``at_most``); when the
    lowest objective any trial of any arm reached (``best_trial``) is above that, no sampler clears
    the bar with the recipes this run found, only with better ones it never met."""
    best_after = out["random"]["best_after"]
    random = best_after[max(best_after, key=int)]
    at_most = random["mean"] - 2 * random["std"]
    best_trial = min(v for name in arms for curve in out[name]["curves"] for v in curve)
    return {"at_most": at_most, "best_trial": best_trial, "best_trial_clears": best_trial <= at_most}


def time_split(splits: list[dict]) -> dict:
    """Mean seconds per trained trial. ``wall`` is Optuna's start-to-complete time (sampling, MLflow
    and storage included); ``other`` is what is left after pipeline, training and evaluation;
    ``search_overhead_fraction`` = (wall - train - eval) / wall."""
    split = {k: statistics.mean(s[k] for s in splits) for k in ("pipeline", "train", "eval", "wall")}
    split["other"] = split["wall"] - split["pipeline"] - split["train"] - split["eval"]
    split["search_overhead_fraction"] = (split["wall"] - split["train"] - split["eval"]) / split["wall"]
    return split


def confirm(folder: Path) -> dict:
    from experiments.finalize import finalize

    final = finalize(folder)
    result = final["confirm"]
    return {
        "predicted": final["prediction"]["predicted"],
        "scores": {s["name"]: {"mean": s["mean"], "std": s["std"]} for s in result["scores"]},
        "gaps": {
            g["baseline"]: {"diff": g["diff"], "ci95": g["ci95"], "verdict": g["verdict"]} for g in result["gaps"]
        },
        "spearman": result["spearman"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--scale", type=float, default=1.0, help="share of the task's documents to use")
    ap.add_argument("--no-confirm", action="store_true", help="skip finalizing the default arm's first study")
    args = ap.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := sorted(set(arms) - set(ARMS)):
        ap.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    root = Path(tempfile.mkdtemp(prefix="dataplan-search-bench-"))
    os.environ.setdefault("DATAPLAN_HOME", str(root / "home"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    task = build_task(root / "task", shared_data_dir(), scale=args.scale)
    out: dict = {"task": {"goal": GOAL, "sources": list(task["sources"]), "targets": list(task["targets"])}}
    splits: list[dict] = []
    start = time.perf_counter()
    with ray_session():
        proposal = planned(task, GOAL)
        recipe, space = proposal["recipe"], proposal["space"]
        out["task"].update(
            {"space": space["params"], "proxy": space["proxy"], "trials": args.trials, "reps": args.reps}
        )
        folders = {}
        for name in arms:
            curves, reused = [], 0
            for rep in range(args.reps):
                res = run_one(root, name, recipe, space, ARMS[name], rep, args.trials)
                curves.append(res["values"])
                splits += res["split"]
                reused += res["reused"]
                folders.setdefault(name, res["folder"])
            out[name] = {"best_after": best_after(curves, args.trials), "curves": curves, "reused_trials": reused}
            print(name, json.dumps(out[name]["best_after"]), flush=True)
        if "random" in arms:
            out["vs_random"] = {
                n: versus(out[n]["best_after"], out["random"]["best_after"]) for n in arms if n != "random"
            }
            if DEFAULT_ARM in arms:
                out["default_vs_random"] = {"arm": DEFAULT_ARM, **out["vs_random"][DEFAULT_ARM], "bar": bar(out, arms)}
        if not args.no_confirm and DEFAULT_ARM in folders:
            out["confirm"] = confirm(folders[DEFAULT_ARM])
    out["time_split"] = time_split(splits) if splits else {}
    out["seconds"] = time.perf_counter() - start
    out["load_average"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("vs_random", "time_split", "seconds") if k in out}, indent=2))


if __name__ == "__main__":
    main()
