"""Decision accuracy of cheap proxy fidelities against a larger reference (DataDecide's method,
Magnusson et al. 2025, "DataDecide: How to Predict Best Pretraining Data with Small Experiments").

A fixed set of recipe pairs over the dirty-web task of ``benchmarks/corpora.py`` (sources ``web``
with injected junk, ``books``, ``legal``, ``code``; targets: held-out Wikipedia articles and PubMed
abstracts, equally weighted) covers mixture changes, filters on/off, threshold changes and dedup
on/off. Each recipe runs once through the pipeline; every fidelity (preset x tokens x tokenizer)
trains one proxy per recipe and seed on its output. The reference outcome of a pair is the sign
of its mean paired difference at the reference fidelity (3 paired seeds); a cheaper fidelity's
decision is the sign of its own mean paired difference. ``decision_accuracy`` is the share of
pairs where the two agree (all pairs, as DataDecide counts them); ``decided_accuracy`` counts only
the pairs whose reference 95 % paired interval excludes zero. ``spearman`` ranks all recipes by
their mean at that fidelity against the reference. ``seconds_per_trial`` is the wall time of one
proxy evaluation (sampling, training or counting, scoring; the pipeline run is shared by every
fidelity and reported apart), timed afresh for every fidelity one after another on the same recipe
and seed so that all of them see the same machine load; ``cost_ratio`` divides it by the
reference's. ``stored_seconds_per_trial`` averages the times recorded with the stored results.
``search_vs_confirm`` ranks the recipes by the search's default proxy (``ProxySpec``) against the
proxy that confirms its result (``ProxySpec.confirm_default``: BPE ``nano`` at 100k tokens): the
search-scale vs confirm-scale Spearman on this task.

A ``tokenizer="bpe"`` fidelity trains on a byte-level BPE (``evaluators.bpe_tokenizer``, 4,096
ids) fitted once per benchmark run on a 256 KiB head sample of every source and target file; its
``tokens`` count BPE tokens and it is still scored in bits per byte. The result records the
tokenizer's ``tokenizer_sha256``.

Results are stored per (recipe id, preset, tokens, tokenizer, seed) under ``--store`` and reused,
so adding a fidelity or a pair costs only the new trainings; a BPE fidelity's results are stored
under its tokenizer's sha256 too, so another tokenizer never reuses them.

    python benchmarks/decisions.py --json benchmarks/out/decisions.json            # about 2 hours
    python benchmarks/decisions.py --small --json /tmp/decisions_small.json        # a minute
    python benchmarks/decisions.py --json F --fidelities ngram5_300k,nano_bpe_100k  # the reference and two
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.corpora import build_task  # noqa: E402
from evaluators.bpe_tokenizer import BpeTokenizer, fit_on_files  # noqa: E402
from evaluators.proxy import STREAM_VERSION, evaluate_recipe_output  # noqa: E402
from evaluators.targets import Target  # noqa: E402
from experiments.confirm import paired_ci  # noqa: E402
from experiments.search_config import ProxySpec  # noqa: E402
from operators import Recipe, ray_session, recipe_from_dict, run_recipe, shared_data_dir  # noqa: E402

TOKENIZER = "byte"
MIXTURES = {
    "natural": None,
    "uniform": {"web": 0.25, "books": 0.25, "legal": 0.25, "code": 0.25},
    "web_heavy": {"web": 0.55, "books": 0.15, "legal": 0.15, "code": 0.15},
    "code_heavy": {"web": 0.1, "books": 0.1, "legal": 0.1, "code": 0.7},
}
WEB = ["web"]
STEPS = {
    "quality": {"op": "gopher_quality", "sources": WEB},
    "quality_loose": {"op": "gopher_quality", "sources": WEB, "params": {"min_stop_words": 1, "min_words": 20}},
    "quality_strict": {"op": "gopher_quality", "sources": WEB, "params": {"min_words": 300}},
    "repetition": {"op": "gopher_repetition", "sources": WEB},
    "langid": {"op": "language_id", "sources": WEB, "params": {"keep": ["en"]}},
    "dedup": {"op": "minhash_dedup", "sources": WEB},
}
ALL_FILTERS = ["quality", "repetition", "langid", "dedup"]
RECIPES: dict[str, tuple[str, list[str]]] = {
    "natural_raw": ("natural", []),
    "uniform_raw": ("uniform", []),
    "web_heavy_raw": ("web_heavy", []),
    "code_heavy_raw": ("code_heavy", []),
    "natural_all": ("natural", ALL_FILTERS),
    "web_heavy_quality": ("web_heavy", ["quality"]),
    "web_heavy_quality_loose": ("web_heavy", ["quality_loose"]),
    "web_heavy_quality_strict": ("web_heavy", ["quality_strict"]),
    "web_heavy_langid": ("web_heavy", ["langid"]),
    "web_heavy_dedup": ("web_heavy", ["dedup"]),
    "web_heavy_langid_dedup": ("web_heavy", ["langid", "dedup"]),
    "web_heavy_all": ("web_heavy", ALL_FILTERS),
}
"""Single-step changes are made on the web-heavy mixture (web 55 %, as in most LLM training sets):
with fixed weights a filter changes only *which* web text fills the web share. On the natural
mixture a filter also shrinks web's share, and web is about a quarter of the bytes, so a reference
proxy can hardly tell such a pair apart (stop 22: language ID on/off +0.003 [-0.007, +0.013])."""
PAIRS: list[tuple[str, str, str]] = [
    ("natural_raw", "uniform_raw", "mixture"),
    ("natural_raw", "web_heavy_raw", "mixture"),
    ("uniform_raw", "web_heavy_raw", "mixture"),
    ("natural_raw", "code_heavy_raw", "mixture"),
    ("natural_all", "web_heavy_all", "mixture"),
    ("web_heavy_raw", "web_heavy_quality", "filter"),
    ("web_heavy_raw", "web_heavy_langid", "filter"),
    ("natural_raw", "natural_all", "filter"),
    ("web_heavy_raw", "web_heavy_all", "filter"),
    ("web_heavy_dedup", "web_heavy_all", "filter"),
    ("web_heavy_quality", "web_heavy_quality_loose", "threshold"),
    ("web_heavy_quality", "web_heavy_quality_strict", "threshold"),
    ("web_heavy_raw", "web_heavy_dedup", "dedup"),
    ("web_heavy_langid", "web_heavy_langid_dedup", "dedup"),
]


class Fidelity(BaseModel):
    """A proxy configuration: ``preset`` with ``overrides`` (labelled ``variant``) at ``tokens``."""

    preset: str
    tokens: int
    seeds: int = 3
    tokenizer: Literal["byte", "bpe"] = TOKENIZER
    variant: str = ""
    overrides: dict[str, Any] = {}

    @property
    def name(self) -> str:
        bpe = "_bpe" if self.tokenizer == "bpe" else ""
        return f"{self.preset}{'_' + self.variant if self.variant else ''}{bpe}_{self.tokens // 1000}k"

    @property
    def key(self) -> str:
        """The store's file stem for one seed (minus ``-s<seed>``; a BPE's sha256 is added there)."""
        return f"{self.preset}{'+' + self.variant if self.variant else ''}-{self.tokens}-{self.tokenizer}"


FULL = {
    "reference": Fidelity(preset="micro", tokens=1_000_000),
    "fidelities": [
        Fidelity(preset="ngram3", tokens=1_000_000),
        Fidelity(preset="ngram5", tokens=1_000_000),
        Fidelity(preset="ngram7", tokens=1_000_000),
        Fidelity(preset="ngram5", tokens=300_000),
        Fidelity(preset="nano", tokens=100_000),
        Fidelity(preset="nano", tokens=100_000, variant="llama", overrides={"arch": "llama"}),
        Fidelity(preset="nano", tokens=100_000, variant="wsd", overrides={"schedule": "wsd", "lr": 4e-3}),
        Fidelity(preset="nano", tokens=300_000),
        Fidelity(preset="nano", tokens=400_000),  # the confirmation proxy before BPE
        Fidelity(preset="nano", tokens=100_000, tokenizer="bpe"),
        Fidelity(preset="nano", tokens=300_000, tokenizer="bpe"),
        Fidelity(
            preset="nano",
            tokens=100_000,
            tokenizer="bpe",
            variant="llama_wsd",
            overrides={"arch": "llama", "schedule": "wsd", "lr": 4e-3},
        ),
    ],
    "scale": 1.0,
}
BPE_VOCAB = 4096
BPE_SAMPLE_BYTES = 256 * 1024
"""Head sample of each source and target file that the benchmark's BPE is fitted on."""
SMALL = {
    "reference": Fidelity(preset="nano", tokens=40_000, seeds=2),
    "fidelities": [
        Fidelity(preset="ngram5", tokens=40_000, seeds=2),
        Fidelity(preset="nano", tokens=4_000, seeds=2),
        Fidelity(preset="nano", tokens=4_000, seeds=2, tokenizer="bpe"),
    ],
    "scale": 0.05,
    "target_bytes": 16_384,
    "recipes": ["natural_raw", "web_heavy_raw", "web_heavy_quality", "natural_all"],
}


def recipe_for(name: str, task: dict) -> Recipe:
    mixture, steps = RECIPES[name]
    weights = MIXTURES[mixture]
    return recipe_from_dict(
        {
            "name": name,
            "sources": [{"name": n, "uri": uri} for n, uri in task["sources"].items()],
            "steps": [{"op": "text_normalize"}, *(STEPS[s] for s in steps)],
            "mixture": {"weights": weights, "max_epochs": 4},
        }
    )


Tokenizers = dict[str, BpeTokenizer | None]
"""A fidelity's ``tokenizer`` name -> what the proxy takes (``None``: bytes)."""


def stored(store: Path, recipe_id: str, fid: Fidelity, seed: int, tokenizer: BpeTokenizer | None) -> Path:
    sha = f"-{tokenizer.sha256[:16]}" if tokenizer else ""
    return store / recipe_id / f"{fid.key}{sha}-v{STREAM_VERSION}-s{seed}.json"


def score(
    run_dir: Path, recipe: Recipe, targets: list[Target], fid: Fidelity, seed: int, store: Path, tokenizers: Tokenizers
) -> dict:
    """One proxy evaluation, from the store when it was measured before."""
    path = stored(store, recipe.recipe_id(), fid, seed, tokenizers[fid.tokenizer])
    if path.is_file():
        return json.loads(path.read_text())
    res = evaluate_recipe_output(
        run_dir,
        recipe.mixture,
        targets,
        preset=fid.preset,
        tokens=fid.tokens,
        seed=seed,
        preset_overrides=fid.overrides,
        tokenizer=tokenizers[fid.tokenizer],
    )
    row = {"bpb": res.bpb, "objective": float(np.mean(list(res.bpb.values()))), "seconds": res.seconds}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row))
    return row


def measure(
    fid: Fidelity, runs: dict[str, tuple[Path, Recipe]], targets: list[Target], store: Path, tokenizers: Tokenizers
) -> dict:
    """objective[recipe][seed] and the seconds of each evaluation at one fidelity."""
    objective: dict[str, list[float]] = {}
    seconds: list[float] = []
    for name, (run_dir, recipe) in runs.items():
        rows = [score(run_dir, recipe, targets, fid, s, store, tokenizers) for s in range(fid.seeds)]
        objective[name] = [r["objective"] for r in rows]
        seconds += [r["seconds"] for r in rows]
        print(f"  {fid.name:>12} {name:<24} {np.mean(objective[name]):.4f}", file=sys.stderr, flush=True)
    return {"objective": objective, "seconds_per_trial": float(np.mean(seconds))}


def time_side_by_side(
    fids: list[Fidelity], run: tuple[Path, Recipe], targets: list[Target], tokenizers: Tokenizers
) -> dict[str, float]:
    """Seconds of one fresh evaluation per fidelity, one after another on the same recipe and seed,
    so every cost ratio is measured under the same machine load (stored results may not be)."""
    run_dir, recipe = run
    out = {}
    for fid in fids:
        start = time.perf_counter()
        evaluate_recipe_output(
            run_dir,
            recipe.mixture,
            targets,
            preset=fid.preset,
            tokens=fid.tokens,
            preset_overrides=fid.overrides,
            tokenizer=tokenizers[fid.tokenizer],
        )
        out[fid.name] = time.perf_counter() - start
    return out


def decisions(objective: dict[str, list[float]], pairs: list[tuple[str, str, str]]) -> list[dict]:
    out = []
    for a, b, kind in pairs:
        diffs = [x - y for x, y in zip(objective[a], objective[b], strict=True)]
        lo, hi = paired_ci(diffs) if len(diffs) > 1 else (float("nan"), float("nan"))
        out.append({"a": a, "b": b, "kind": kind, "diff": float(np.mean(diffs)), "ci": [lo, hi]})
    return out


def compare(fid: dict, ref: dict, ref_pairs: list[dict], pairs: list[tuple[str, str, str]]) -> dict:
    mine = decisions(fid["objective"], pairs)
    agree = [np.sign(m["diff"]) == np.sign(r["diff"]) for m, r in zip(mine, ref_pairs, strict=True)]
    decided = [r["ci"][0] > 0 or r["ci"][1] < 0 for r in ref_pairs]
    names = sorted(fid["objective"])
    return {
        "decision_accuracy": float(np.mean(agree)),
        "decided_accuracy": float(np.mean([a for a, d in zip(agree, decided, strict=True) if d]))
        if any(decided)
        else None,
        "decided_pairs": int(sum(decided)),
        "spearman": spearman(fid["objective"], ref["objective"]),
        "seconds_per_trial": fid["seconds_per_trial"],
        "stored_seconds_per_trial": fid["stored_seconds_per_trial"],
        "cost_ratio": fid["seconds_per_trial"] / ref["seconds_per_trial"],
        "pairs": [{**m, "agrees": bool(a)} for m, a in zip(mine, agree, strict=True)],
        "recipe_means": {n: float(np.mean(fid["objective"][n])) for n in names},
    }


def spearman(a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
    """Rank correlation of the recipes' mean objectives under two fidelities."""
    from scipy import stats

    names = sorted(a)
    return float(stats.spearmanr([np.mean(a[n]) for n in names], [np.mean(b[n]) for n in names]).statistic)


def search_and_confirm_fidelities() -> tuple[str, str]:
    """Names of the search's default proxy (``ProxySpec``) and of the proxy that confirms it."""
    spec = ProxySpec()
    confirm = spec.confirm_default()
    return (
        Fidelity(preset=spec.preset, tokens=spec.tokens).name,
        Fidelity(preset=confirm.preset, tokens=confirm.tokens, tokenizer=confirm.tokenizer).name,
    )


def same_training_data(pairs: list[tuple[str, str, str]], runs: dict[str, tuple[Path, Recipe]]) -> None:
    """Refuse a pair whose two recipes give the proxies the same data (the same output and mixture):
    every fidelity scores it exactly 0, as the reference does, so it would count as an agreement
    without deciding anything. (Dedup after quality and repetition filters removed nothing here.)"""
    for a, b, kind in pairs:
        (dir_a, rec_a), (dir_b, rec_b) = runs[a], runs[b]
        out_a, out_b = (json.loads((d / "manifest.json").read_text())["output_sha256"] for d in (dir_a, dir_b))
        if out_a == out_b and rec_a.mixture == rec_b.mixture:
            raise ValueError(f"{kind} pair {a} / {b}: both recipes give the same training data; change one of them")


def run(config: dict, work: Path, store: Path) -> dict:
    task = build_task(work / "task", shared_data_dir(), scale=config["scale"])
    cap = config.get("target_bytes", Target.model_fields["max_bytes"].default)
    targets = [Target(name=n, files=(p,), max_bytes=cap) for n, p in task["targets"].items()]
    names = config.get("recipes") or list(RECIPES)
    pairs = [p for p in PAIRS if p[0] in names and p[1] in names]
    runs, pipeline = {}, {}
    with ray_session():
        for name in names:
            recipe = recipe_for(name, task)
            run_dir = work / "runs" / recipe.recipe_id()
            start = time.perf_counter()
            if not (run_dir / "manifest.json").is_file():
                run_recipe(recipe, run_dir)
            pipeline[name] = time.perf_counter() - start
            runs[name] = (run_dir, recipe)
    same_training_data(pairs, runs)
    ref_fid: Fidelity = config["reference"]
    tokenizers: Tokenizers = {"byte": None, "bpe": None}
    if any(f.tokenizer == "bpe" for f in [ref_fid, *config["fidelities"]]):
        files = [*task["sources"].values(), *task["targets"].values()]
        tokenizers["bpe"] = fit_on_files(files, BPE_SAMPLE_BYTES, BPE_VOCAB)
    ref = measure(ref_fid, runs, targets, store, tokenizers)
    ref_pairs = decisions(ref["objective"], pairs)
    measured = {f.name: measure(f, runs, targets, store, tokenizers) for f in config["fidelities"]}
    timing = time_side_by_side([ref_fid, *config["fidelities"]], runs[names[0]], targets, tokenizers)
    for name, m in [(ref_fid.name, ref), *measured.items()]:
        m["stored_seconds_per_trial"], m["seconds_per_trial"] = m["seconds_per_trial"], timing[name]
    fidelities = {n: compare(m, ref, ref_pairs, pairs) for n, m in measured.items()}
    eligible = [n for n, f in fidelities.items() if f["decision_accuracy"] >= 0.85]
    search, confirm = search_and_confirm_fidelities()
    decided = [n for n, f in fidelities.items() if (f["decided_accuracy"] or 0) >= 0.85]
    return {
        "reference": {
            **ref_fid.model_dump(),
            **{k: ref[k] for k in ("seconds_per_trial", "stored_seconds_per_trial")},
        },
        "reference_pairs": ref_pairs,
        "reference_means": {n: float(np.mean(v)) for n, v in ref["objective"].items()},
        "fidelities": fidelities,
        "cheapest_accurate": min(eligible, key=lambda n: fidelities[n]["seconds_per_trial"]) if eligible else None,
        "cheapest_accurate_on_decided": min(decided, key=lambda n: fidelities[n]["seconds_per_trial"])
        if decided
        else None,
        "search_vs_confirm": {
            "search": search,
            "confirm": confirm,
            "spearman": spearman(measured[search]["objective"], measured[confirm]["objective"])
            if search in measured and confirm in measured
            else None,
        },
        "pairs": len(pairs),
        "tokenizer_sha256": tokenizers["bpe"].sha256 if tokenizers["bpe"] else None,
        "bpe_bytes_per_token": tokenizers["bpe"].bytes_per_token if tokenizers["bpe"] else None,
        "recipes": {n: {"mixture": RECIPES[n][0], "steps": RECIPES[n][1]} for n in names},
        "pipeline_seconds": pipeline,
        "task": {k: task[k] for k in ("web", "rates", "scale")},
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version()},
    }


def chosen(fidelities: list[Fidelity], names: list[str]) -> list[Fidelity]:
    """The fidelities called ``names``, in the benchmark's order; an unknown name is refused with the known ones."""
    known = [f.name for f in fidelities]
    if unknown := sorted(set(names) - set(known)):
        raise SystemExit(f"unknown fidelities {unknown}: choose from {', '.join(known)}")
    return [f for f in fidelities if f.name in names]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the result")
    ap.add_argument("--small", action="store_true", help="4 recipes, tiny budgets (the test's mode)")
    ap.add_argument("--work", default=str(REPO / "benchmarks/out/decisions"), help="task and pipeline runs")
    ap.add_argument("--store", default=None, help="stored proxy results (default: WORK/results)")
    ap.add_argument(
        "--fidelities",
        default=None,
        help="comma-separated fidelities to measure beside the reference (default: all), e.g. ngram5_300k,nano_bpe_100k",
    )
    args = ap.parse_args(argv)
    work = Path(args.work)
    config = SMALL if args.small else FULL
    if args.fidelities:
        config = {**config, "fidelities": chosen(config["fidelities"], args.fidelities.split(","))}
    result = run(config, work, Path(args.store) if args.store else work / "results")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    summary = {
        n: {k: f[k] for k in ("decision_accuracy", "spearman", "cost_ratio")} for n, f in result["fidelities"].items()
    }
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
