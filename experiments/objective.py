"""One trial's work: run the recipe, train a proxy on its output, score it on the targets."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.fidelity import rung_step, rung_tokens
from experiments.search_config import SearchConfig
from experiments.targets import exclude_held_out
from operators import Manifest, Recipe, run_recipe

ReportFn = Callable[[int, float], bool]
"""(step, weighted bpb so far) -> True to prune."""


@dataclass
class TrialOutcome:
    objective: float = float("nan")
    bpb: dict[str, float] = field(default_factory=dict)
    retained_tokens: int = 0
    drop_rates: dict[str, float] = field(default_factory=dict)
    pruned: bool = False
    pruned_at: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    manifest_path: Path | None = None
    proxy: dict[str, Any] = field(default_factory=dict)

    def attrs(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "bpb": self.bpb,
            "retained_tokens": self.retained_tokens,
            "drop_rates": self.drop_rates,
            "seconds": self.seconds,
            "proxy": self.proxy,
        }


def weighted(bpb: dict[str, float], config: SearchConfig) -> float:
    weights = {t.name: t.weight for t in config.targets}
    total = sum(weights[k] for k in bpb)
    return sum(weights[k] * v for k, v in bpb.items()) / total if total else float("nan")


def evaluate_trial(
    recipe: Recipe, trial_dir: Path, config: SearchConfig, report: ReportFn | None, seed: int | None = None
) -> TrialOutcome:
    """Run, train, score. ``report`` is called on every intermediate evaluation (the pruner); without
    one (a confirmation training) the proxy is only scored once trained."""
    start = time.perf_counter()
    out = TrialOutcome()
    run_dir = trial_dir / "run"
    manifest = run_recipe(exclude_held_out(recipe, config.held_out_ids), run_dir)
    out.manifest_path = run_dir / "manifest.json"
    out.seconds["pipeline"] = time.perf_counter() - start
    out.retained_tokens = sum(manifest.output_bytes.values())  # byte-level tokenizer: bytes = tokens
    out.drop_rates = drop_rates(manifest)

    reporting = 0.0  # the pruner's storage writes happen inside training, but are search overhead
    rung = iter(rung_step(k) for k in range(config.proxy.rungs - 1)) if config.proxy.rungs > 1 else None

    def on_eval(step: int, tokens_seen: int, scores: dict[str, float]) -> bool:
        nonlocal reporting
        began = time.perf_counter()
        stop = report(next(rung) if rung else step, weighted(scores, config))
        reporting += time.perf_counter() - began
        if stop:
            out.pruned, out.pruned_at = True, step
        return stop

    result = train_and_score(
        run_dir,
        recipe,
        config,
        seed if seed is not None else config.trial_seed,
        on_eval if report else None,
        trial_dir / "proxy",
    )
    out.bpb = result["bpb"]
    out.objective = weighted(out.bpb, config)
    out.seconds.update({"train": result["train_seconds"], "eval": result["eval_seconds"] - reporting})
    out.seconds["total"] = time.perf_counter() - start
    out.seconds["overhead"] = max(
        0.0, out.seconds["total"] - out.seconds["pipeline"] - out.seconds["train"] - out.seconds["eval"]
    )
    out.proxy = {k: result[k] for k in ("tokens_per_s", "mfu", "params", "tokens", "steps", "sources") if k in result}
    return out


def train_and_score(
    run_dir: Path, recipe: Recipe, config: SearchConfig, seed: int, on_eval, out_dir: Path
) -> dict[str, Any]:
    """Train the configured proxy on ``run_dir`` with the recipe's mixture; bpb per target (and, when
    ``on_eval`` is given, at each rung or every ``eval_every`` tokens on the way)."""
    from evaluators.proxy import evaluate_recipe_output

    p = config.proxy
    lower_rungs = rung_tokens(p.tokens, p.rungs)[:-1] if on_eval else []
    res = evaluate_recipe_output(
        run_dir,
        recipe.mixture,
        config.targets,
        preset=p.preset,
        tokens=p.tokens,
        seed=seed,
        eval_every=None if lower_rungs or not on_eval else p.eval_every or max(1, p.tokens // 4),
        eval_at=lower_rungs or None,
        on_eval=on_eval,
        out_dir=out_dir,
        preset_overrides={"seq_len": p.seq_len},
        tokenizer=config.tokenizer(),
    )
    return {
        "bpb": dict(res.bpb),
        "train_seconds": res.train_seconds,
        "eval_seconds": max(0.0, res.seconds - res.train_seconds),
        "tokens_per_s": res.tokens_per_s,
        "mfu": res.mfu,
        "params": res.params,
        "tokens": res.tokens,
        "steps": res.steps,
        "sources": res.sources,  # per source: the weight the sampler used, tokens it realised, capped
    }


def drop_rates(manifest: Manifest) -> dict[str, float]:
    """Fraction of input documents dropped per reason code (held-out exclusions not counted)."""
    n = max(1, manifest.input_docs)
    rates: dict[str, float] = {}
    for step in manifest.steps:
        for reason, count in step.dropped.items():
            if reason != "held_out":
                rates[reason] = rates.get(reason, 0.0) + count / n
    return rates


def failure_text(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip()[:2000]
