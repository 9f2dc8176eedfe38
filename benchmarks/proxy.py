"""Proxy LM throughput and noise: presets nano and micro on this machine.

Data: ``recipes/domains_basic.yaml`` run on Ray Data (code, books, legal); two targets, held-out
slices of ``code`` and ``books`` (excluded from training). For each preset: ``--tokens`` training
tokens with the recipe's mixture, seeds 0, 1, 2. Reported per preset: ``params``,
``tokens_per_s`` (mean over seeds, sequence positions per second of optimiser steps), ``mfu``
(model FLOPs per second / the best fp32 matmul FLOP/s measured in this run right before the
preset, same thread count), ``bpb_mean``/``bpb_std`` per target over the seeds, and the wall
seconds of one training run. Usage: python benchmarks/proxy.py --json OUT [--tokens 1M] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from operators import apply_offline_defaults  # noqa: E402

apply_offline_defaults()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agent.cli.train import parse_tokens  # noqa: E402
from evaluators.hardware import matmul_ceiling, set_threads  # noqa: E402
from evaluators.model import flops_per_token, get_preset  # noqa: E402
from evaluators.proxy import evaluate_seeds  # noqa: E402
from evaluators.targets import Target  # noqa: E402
from operators import load_recipe, ray_session, run_recipe  # noqa: E402

TARGETS = [Target(name="code", source="code"), Target(name="books", source="books")]


def bench_preset(run_dir: Path, preset: str, tokens: int, threads: int, seeds: tuple[int, ...]) -> dict:
    set_threads(threads)
    ceiling = matmul_ceiling.__wrapped__("cpu", torch.float32, threads)  # fresh, not the cached value
    mixture = load_recipe(REPO / "recipes" / "domains_basic.yaml").mixture
    summary = evaluate_seeds(run_dir, mixture, TARGETS, seeds=seeds, preset=preset, tokens=tokens, threads=threads)
    first = summary.results[0]
    tps = float(np.mean([r.tokens_per_s for r in summary.results]))
    flops = flops_per_token(get_preset(preset), first.params)
    return {
        "params": first.params,
        "tokens_per_s": round(tps),
        "mfu": round(tps * flops / ceiling, 4),
        "matmul_gflops": round(ceiling / 1e9, 1),
        "bpb_mean": {k: round(v, 4) for k, v in summary.bpb_mean.items()},
        "bpb_std": {k: round(v, 4) for k, v in summary.bpb_std.items()},
        "tokens": first.tokens,
        "train_seconds": round(float(np.mean([r.train_seconds for r in summary.results])), 2),
        "wall_seconds": round(float(np.mean([r.seconds for r in summary.results])), 2),
        "flops_per_token": flops,
        "threads": threads,
        "epochs": {k: round(v["epochs"], 3) for k, v in first.sources.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="output JSON path")
    parser.add_argument("--tokens", default="1M", help="training tokens per run (default 1M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default="nano,micro")
    args = parser.parse_args()
    tokens = parse_tokens(args.tokens)
    out: dict = {"tokens": tokens, "threads": args.threads, "torch": torch.__version__}
    out["load_avg_start"] = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        with ray_session(num_cpus=args.threads):
            run_recipe(load_recipe(REPO / "recipes" / "domains_basic.yaml"), run_dir)
        out["recipe_seconds"] = round(time.perf_counter() - start, 1)
        for preset in args.presets.split(","):
            out[preset] = bench_preset(run_dir, preset, tokens, args.threads, (0, 1, 2))
            print(preset, json.dumps(out[preset]), flush=True)
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
