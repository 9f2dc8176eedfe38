"""Search benchmark: TPE vs random vs TPE warm-started by the rule-based planner.

A fixed multi-domain task from ../shared/data (code, books, legal, wiki; target: a held-out slice
of code), a fixed trial budget, 3 repetitions each. Reports the best objective after k trials
(mean and std over repetitions), whether TPE beats random beyond the spread, and the time per
trial after the first split into pipeline, training, evaluation and the rest (sampling, Optuna,
MLflow); ``search_overhead_fraction`` is everything but training and evaluation over the trial's
wall time. Training is the proxy's optimizer steps; evaluation is the rest of the proxy's work
(sampling and packing its tokens from the run's output, intermediate and final bits-per-byte, the
contamination check, saving the model); the pruner's storage writes during training are overhead. Then the first TPE study is finalized: the predicted-optimal recipe is confirmed with 3 seeds
at twice the tokens against the natural, uniform, unfiltered and FineWeb-style baselines.

    python benchmarks/search.py --json search.json [--trials 20] [--reps 3] [--tokens 1000000] [--preset ngram5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from operators import ray_session, recipe_from_dict, shared_data_dir


def task(shared: Path, tokens: int, preset: str) -> tuple[dict, dict]:
    sources = {
        "code": "domains/code_python_thealgorithms.jsonl",
        "books": "domains/books_gutenberg.jsonl",
        "legal": "domains/legal_spdx_license_texts.jsonl",
        "wiki": "domains/wiki_wikitext2_valid.jsonl",
    }
    recipe = {
        "name": "bench",
        "sources": [{"name": n, "uri": str(shared / p)} for n, p in sources.items()],
        "steps": [{"op": "text_normalize"}, {"op": "length_filter", "params": {"min_words": 50}}],
        "mixture": {"weights": {n: 1.0 for n in sources}, "max_epochs": 4},
    }
    space = {
        "params": {"steps.length_filter.min_words": {"int": [20, 1500], "log": True}, "mixture.weights": "simplex"},
        "objective": {"targets": [{"name": "code_heldout", "source": "code", "fraction": 0.1, "max_bytes": 60000}]},
        "proxy": {"preset": preset, "tokens": tokens},
    }
    return recipe, space


def planner_recipe(recipe: dict) -> dict:
    """The rule-based planner's proposal on this task, restricted to the benchmark's dimensions."""
    from agent.planners.rules import RulePlanner
    from tools.base import dispatch

    data = {s["name"]: s["uri"] for s in recipe["sources"]}
    planner = RulePlanner()
    goal = planner.understand("good at Python code", data)
    profile = dispatch("profile_sources", {"sources": data, "sample_docs": 200}).output
    proposal, _ = planner.propose(goal, profile)
    words = next(s["params"]["min_words"] for s in proposal["recipe"]["steps"] if s["op"] == "length_filter")
    out = json.loads(json.dumps(recipe))
    out["steps"][1]["params"]["min_words"] = words
    out["mixture"]["weights"] = proposal["recipe"]["mixture"]["weights"]
    return out


def run_one(root: Path, name: str, recipe: dict, space: dict, sampler: str, seed: int, trials: int, warm: bool) -> dict:
    from experiments.study import Search

    s = Search.create(
        root / f"{name}-{seed}",
        recipe_from_dict(recipe),
        space,
        sampler=sampler,
        seed=seed,
        n_trials=trials,
        warm_start=warm,
        pruner="none",
    )
    s.run()
    done = sorted((t for t in s.study().trials if t.values), key=lambda t: t.number)
    values = [t.values[0] for t in done]
    split = [
        {**t.user_attrs["seconds"], "wall": (t.datetime_complete - t.datetime_start).total_seconds()} for t in done[1:]
    ]
    return {"values": values, "split": split, "folder": s.folder}


def time_split(splits: list[dict]) -> dict:
    """Mean seconds per trial. ``wall`` is Optuna's start-to-complete time of the trial (sampling,
    MLflow logging and storage included); ``other`` is what is left of it after pipeline, training
    and evaluation, and ``search_overhead_fraction`` = (wall - train - eval) / wall."""
    split = {k: statistics.mean(s[k] for s in splits) for k in ("pipeline", "train", "eval", "wall")}
    split["other"] = split["wall"] - split["pipeline"] - split["train"] - split["eval"]
    split["search_overhead_fraction"] = (split["wall"] - split["train"] - split["eval"]) / split["wall"]
    return split


def beyond_spread(tpe: dict, random: dict) -> dict:
    """At the largest k: TPE's mean best minus random's (lower bpb is better) against the larger std
    (issue 20 asks for a margin of twice that spread)."""
    k = max(tpe, key=int)
    diff = tpe[k]["mean"] - random[k]["mean"]
    spread = max(tpe[k]["std"], random[k]["std"])
    return {
        "k": int(k),
        "diff": diff,
        "spread": spread,
        "tpe_better_beyond_spread": diff < -spread,
        "tpe_better_beyond_twice_spread": diff < -2 * spread,
    }


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
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--preset", default="ngram5", help="proxy of every trial (the search's default fidelity)")
    ap.add_argument("--no-confirm", action="store_true", help="skip finalizing the first TPE study")
    args = ap.parse_args()
    shared = shared_data_dir()
    recipe, space = task(shared, args.tokens, args.preset)
    root = Path(tempfile.mkdtemp(prefix="dataplan-search-bench-"))
    os.environ.setdefault("DATAPLAN_HOME", str(root / "home"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    out: dict = {
        "task": {
            "sources": [s["name"] for s in recipe["sources"]],
            "target": "code_heldout",
            "tokens": args.tokens,
            "preset": args.preset,
            "trials": args.trials,
            "reps": args.reps,
        }
    }
    splits: list[dict] = []
    start = time.perf_counter()
    with ray_session():
        planned = planner_recipe(recipe)
        arms = {
            "tpe": (recipe, "tpe", False),
            "random": (recipe, "random", False),
            "planner_tpe": (planned, "tpe", True),
        }
        folders = {}
        for name, (base, sampler, warm) in arms.items():
            curves = []
            for rep in range(args.reps):
                res = run_one(root, name, base, space, sampler, rep, args.trials, warm)
                curves.append(res["values"])
                splits += res["split"]
                folders.setdefault(name, res["folder"])
            best = {}
            for k in (5, 10, 20):
                if k <= args.trials:
                    vals = [min(c[:k]) for c in curves]
                    best[str(k)] = {
                        "mean": statistics.mean(vals),
                        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    }
            out[name] = {"best_after": best, "curves": curves}
            print(name, json.dumps(best))
        if not args.no_confirm:
            out["confirm"] = confirm(folders["tpe"])
    out["tpe_vs_random"] = beyond_spread(out["tpe"]["best_after"], out["random"]["best_after"])
    out["time_split"] = time_split(splits)
    out["seconds"] = time.perf_counter() - start
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out["time_split"], indent=2))


if __name__ == "__main__":
    main()
