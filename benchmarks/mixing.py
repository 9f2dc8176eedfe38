"""Mixtures learned during training against fixed ones, on held-out text of every domain.

The task: five domains of the shared data (``DOMAINS``: Python code, Gutenberg books, SPDX
licence texts, PubMed abstracts, GSM8K word problems), one recipe that reads them (no steps,
natural mixture), and a held-out slice of each domain (``Target(source=...)``: 10 % of its raw
documents by a hash of the id, at most ``--target-bytes``) that no training sees.

Mixtures compared, each scored by proxies of the same preset and token budget (equal compute per
evaluation) with paired seeds (seed k: the same initialisation and sampling for every mixture):

- ``natural`` (proportional to each domain's tokens) and ``uniform``;
- ``doremi``: DoReMi's averaged weights (``evaluators.domain_reweighting``), learned once (seed 0)
  with a reference proxy on the natural mixture and a reweighted proxy, both at the evaluation
  budget: 7/3 proxy runs of compute;
- ``doge``: DoGE's averaged weights, learned with the token budget that gives it DoReMi's compute
  (its cost per token is ``(1 + 2k) / 3`` runs for ``k`` domains);
- ``two_phase`` (when ``Mixture.phases`` exists): uniform for the first 80 % of the budget, then
  DoReMi's weights;
- ``searched``: the predicted-optimal mixture of dataplan's own search over the same task, run as
  ``dataplan search SPACE --trials N --seed 0 --no-confirm --no-ablate`` would
  (``experiments.study.Search`` then ``experiments.finalize.finalize``): ``mixture.weights: simplex``
  over the five sources, the five held-out slices as targets (equal weights: the objective is their
  average bpb), the default search proxy (``ngram5`` count model at 300k tokens), TPE, ``N`` trials
  (``search_trials``); the surrogate's optimum where it beats the best trial beyond its uncertainty,
  else the best trial. The search's targets are the same slices cut by ``experiments.targets`` (the
  last document may cross ``--target-bytes``); it only chooses the weights, every mixture is scored
  on the benchmark's targets.

``proxy_runs`` in the output is the compute each method spent learning its weights, in
evaluation-proxy runs: training FLOPs at the evaluation budget for DoReMi and DoGE; for the search,
whose count-model trials have no comparable FLOPs, its wall time (trials and finalize) divided by
the median wall time of one evaluation run of its mixture (timed right after the search, in the
same process: same machine, same load). Per mixture and seed: bits per byte on each domain's
held-out slice, their average and their maximum (the worst domain). Each learned mixture is compared with ``uniform`` and ``natural`` by the
mean of its paired per-seed differences and their 95 % Student-t interval (``experiments.confirm``:
``paired_ci``); "better" means the whole interval is below zero. Results are stored per mixture
and seed under ``--work`` and reused by a re-run.

    python benchmarks/mixing.py --json benchmarks/out/mixing.json      # about 40 min on 2 busy cores
    python benchmarks/mixing.py --small --json /tmp/mixing_small.json  # a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evaluators.domain_reweighting import DoGE, reweight_domains  # noqa: E402
from evaluators.proxy import STREAM_VERSION, evaluate_recipe_output  # noqa: E402
from evaluators.sampler import SAMPLER_VERSION, load_pools  # noqa: E402
from evaluators.targets import Target, resolve_targets  # noqa: E402
from experiments.confirm import paired_ci  # noqa: E402
from experiments.finalize import finalize  # noqa: E402
from experiments.report import SAME_DATA  # noqa: E402
from experiments.study import Search  # noqa: E402
from operators import (  # noqa: E402
    Mixture,
    Recipe,
    load_recipe,
    ray_session,
    recipe_from_dict,
    run_recipe,
    shared_data_dir,
)

DOMAINS = {
    "code": "code_python_thealgorithms.jsonl",
    "books": "books_gutenberg.jsonl",
    "legal": "legal_spdx_license_texts.jsonl",
    "medical": "medical_pubmedqa_abstracts.jsonl",
    "math": "math_gsm8k_train.jsonl",
}
FULL = {"preset": "nano", "tokens": 500_000, "seeds": 5, "target_bytes": 65_536, "search_trials": 20}
SMALL = {"preset": "nano", "tokens": 60_000, "seeds": 2, "target_bytes": 16_384, "search_trials": 6}


def task_recipe() -> Recipe:
    sources = [{"name": n, "uri": str(shared_data_dir() / "domains" / f)} for n, f in DOMAINS.items()]
    return recipe_from_dict({"name": "mixing-task", "sources": sources, "steps": [], "mixture": {"max_epochs": 4}})


def learn(run_dir: Path, recipe: Recipe, excluded: dict, config: dict, work: Path) -> dict:
    """DoReMi's and DoGE's weights at equal compute, stored in ``work/learned.json``."""
    path = work / "learned.json"
    key = {**{k: config[k] for k in ("preset", "tokens")}, "stream": STREAM_VERSION}
    if path.is_file() and (stored := json.loads(path.read_text()))["key"] == key:
        return stored
    pools = load_pools(run_dir, exclude_ids=excluded)
    doremi = reweight_domains(pools, recipe.mixture, method="doremi", preset=config["preset"], tokens=config["tokens"])
    doge_tokens = round(config["tokens"] * doremi.proxy_runs / DoGE.proxy_runs(len(pools)))
    doge = reweight_domains(pools, recipe.mixture, method="doge", preset=config["preset"], tokens=doge_tokens)
    learned = {
        "key": key,
        **{
            r.method: {
                "weights": r.weights,
                "budget": budget,
                "steps": r.steps,
                "proxy_runs": r.proxy_runs * budget / config["tokens"],
                "seconds": r.seconds,
                "final": r.final,
                "mean_score": dict(zip(r.domains, np.mean(r.scores, axis=0).tolist(), strict=True)),
            }
            for r, budget in ((doremi, config["tokens"]), (doge, doge_tokens))
        },
    }
    path.write_text(json.dumps(learned, indent=2))
    return learned


def search(recipe: Recipe, targets: list[Target], config: dict, work: Path) -> dict:
    """The search's predicted-optimal weights and its wall time, stored in ``work/searched.json``."""
    path = work / "searched.json"
    key = {
        "trials": config["search_trials"],
        "seed": 0,
        "target_bytes": config["target_bytes"],
        "sampler": SAMPLER_VERSION,
    }
    if path.is_file() and (stored := json.loads(path.read_text()))["key"] == key:
        return stored
    folder = work / f"search-{config['search_trials']}-{config['target_bytes']}"
    space = {
        "params": {"mixture.weights": "simplex"},
        "objective": {"targets": [t.model_dump(mode="json", exclude={"files"}) for t in targets]},
    }
    start = time.perf_counter()
    with ray_session():
        s = Search(folder) if (folder / "search.json").is_file() else Search.create(
            folder, recipe, space, n_trials=config["search_trials"], seed=0, mlflow_experiment="mixing-benchmark",
            finalize={"confirm": False, "ablate": False},
        )  # fmt: skip
        counts = s.run()
        final = finalize(folder)
    seconds = time.perf_counter() - start
    searched = {
        "key": key,
        "weights": load_recipe(final["recommended_recipe"]).mixture.weights,
        "proxy": s.config.proxy.model_dump(),
        "counts": counts,
        "model": final["prediction"]["model"],
        "predicted": final["prediction"]["predicted"],
        "best_observed": final["best_observed"],
        "seconds": seconds,
        "folder": str(folder),
    }
    path.write_text(json.dumps(searched, indent=2))
    return searched


def search_cost(searched: dict, config: dict, work: Path) -> float:
    """The search's wall time in evaluation-proxy runs: over the median stored wall time of one
    evaluation run of its mixture at this preset and budget."""
    runs = [json.loads(p.read_text())["seconds"] for p in (work / "results").glob(_stored("searched", config, "*"))]
    return searched["seconds"] / float(np.median(runs))


def _stored(name: str, config: dict, seed: int | str) -> str:
    """The file name of one mixture's evaluation at one seed (``*``: a glob of every seed's)."""
    return f"{name}-{config['preset']}-{config['tokens']}-v{STREAM_VERSION}-seed{seed}.json"


def mixtures(learned: dict, searched: dict) -> dict[str, Mixture]:
    out = {
        "natural": Mixture(max_epochs=4),
        "uniform": Mixture(weights=dict.fromkeys(DOMAINS, 1.0), max_epochs=4),
        "doremi": Mixture(weights=learned["doremi"]["weights"], max_epochs=4),
        "doge": Mixture(weights=learned["doge"]["weights"], max_epochs=4),
    }
    if "phases" in Mixture.model_fields:
        phases = [{"until": 0.8, "weights": dict.fromkeys(DOMAINS, 1.0)}, {"weights": learned["doremi"]["weights"]}]
        out["two_phase"] = Mixture.model_validate({"phases": phases, "max_epochs": 4})
    out["searched"] = Mixture(weights=searched["weights"], max_epochs=4)
    return out


def evaluate(run_dir: Path, mixes: dict[str, Mixture], targets: list[Target], config: dict, work: Path) -> dict:
    """Held-out bpb per mixture, seed and domain (stored per mixture and seed)."""
    store = work / "results"
    store.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[int, dict[str, float]]] = {}
    for seed in range(config["seeds"]):
        for name, mixture in mixes.items():
            path = store / _stored(name, config, seed)
            key = mixture.model_dump(mode="json")
            if path.is_file() and (stored := json.loads(path.read_text()))["mixture"] == key:
                scores.setdefault(name, {})[seed] = stored["bpb"]
                continue
            start = time.perf_counter()
            result = evaluate_recipe_output(
                run_dir, mixture, targets, preset=config["preset"], tokens=config["tokens"], seed=seed
            )
            path.write_text(json.dumps({"mixture": key, "bpb": result.bpb, "seconds": time.perf_counter() - start}))
            scores.setdefault(name, {})[seed] = result.bpb
            print(
                f"{name} seed {seed}: worst {max(result.bpb.values()):.4f} avg {np.mean(list(result.bpb.values())):.4f}"
            )
    return scores


def summarise(scores: dict[str, dict[int, dict[str, float]]]) -> dict:
    def stat(name: str, how) -> list[float]:
        return [float(how(list(bpb.values()))) for _, bpb in sorted(scores[name].items())]

    table = {
        name: {
            "worst": {"mean": float(np.mean(stat(name, max))), "per_seed": stat(name, max)},
            "average": {"mean": float(np.mean(stat(name, np.mean))), "per_seed": stat(name, np.mean)},
            "worst_domain": _mode([max(b, key=b.get) for b in scores[name].values()]),
            "per_domain": {d: float(np.mean([b[d] for b in scores[name].values()])) for d in DOMAINS},
        }
        for name in scores
    }
    comparisons = {}
    for name in [n for n in scores if n not in ("natural", "uniform")]:
        for other in ("uniform", "natural"):
            for metric, how in (("worst", max), ("average", np.mean)):
                diffs = [a - b for a, b in zip(stat(name, how), stat(other, how), strict=True)]
                lo, hi = paired_ci(diffs)
                verdict = "better" if hi < 0 else "worse" if lo > 0 else "within noise" if any(diffs) else SAME_DATA
                comparisons[f"{name}_vs_{other}.{metric}"] = {
                    "diff": float(np.mean(diffs)), "ci95": [lo, hi], "verdict": verdict, "diffs": diffs,
                }  # fmt: skip
    return {"table": table, "comparisons": comparisons}


def _mode(names: list[str]) -> str:
    return max(set(names), key=names.count)


def run(config: dict, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    recipe = task_recipe()
    run_dir = work / "run" / recipe.recipe_id()
    start = time.perf_counter()
    with ray_session():
        if not (run_dir / "manifest.json").is_file():
            run_recipe(recipe, run_dir)
    pipeline = time.perf_counter() - start
    max_bytes = config["target_bytes"]
    targets = [Target(name=d, source=d, fraction=0.1, max_docs=None, max_bytes=max_bytes) for d in DOMAINS]
    _, excluded = resolve_targets(run_dir, targets)
    learned = learn(run_dir, recipe, excluded, config, work)
    searched = search(recipe, targets, config, work)
    mixes = mixtures(learned, searched)
    scores = evaluate(run_dir, mixes, targets, config, work)
    searched["proxy_runs"] = search_cost(searched, config, work)
    summary = summarise(scores)
    key = summary["comparisons"]["doremi_vs_uniform.worst"]
    return {
        "acceptance": {
            "claim": "DoReMi weights beat uniform on worst-domain held-out bpb beyond the paired 95 % interval",
            "met": key["verdict"] == "better",
            "doremi_minus_uniform_worst": key,
            "doremi_cost_proxy_runs": learned["doremi"]["proxy_runs"],
        },
        "config": config,
        "domains": DOMAINS,
        "mixtures": {n: m.model_dump(mode="json", exclude_none=True) for n, m in mixes.items()},
        "learned": learned,
        "searched": searched,
        **summary,
        "scores": {n: {str(s): b for s, b in v.items()} for n, v in scores.items()},
        "pipeline_seconds": pipeline,
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the result")
    ap.add_argument("--small", action="store_true", help="tiny budgets, two seeds")
    ap.add_argument("--work", default=str(REPO / "benchmarks/out/mixing"), help="pipeline run and stored results")
    ap.add_argument("--preset", help="proxy preset (default: nano)")
    ap.add_argument("--tokens", type=int, help="tokens per proxy (default: 500000)")
    ap.add_argument("--seeds", type=int, help="paired seeds (default: 5)")
    args = ap.parse_args(argv)
    config = dict(SMALL if args.small else FULL)
    config.update({k: v for k in ("preset", "tokens", "seeds") if (v := getattr(args, k)) is not None})
    result = run(config, Path(args.work))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps({"acceptance": result["acceptance"], "comparisons": {
        k: {"diff": round(v["diff"], 4), "ci95": [round(x, 4) for x in v["ci95"]], "verdict": v["verdict"]}
        for k, v in result["comparisons"].items()
    }}, indent=2))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
