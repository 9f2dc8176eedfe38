"""``dataplan train``: train proxy LMs on a run's output, score them, write metrics JSON, log to MLflow.

Targets (``--eval``, repeatable): ``SOURCE`` holds out a slice of that source (excluded from
training), ``NAME=PATH`` or ``PATH`` scores a JSONL/text file. ``--lm-eval`` names multiple-choice
files of the shared ``eval/`` folder (``arc_easy`` -> ``eval/arc_easy_dev_half.jsonl``) or
``NAME=PATH``. MLflow: ``MLFLOW_TRACKING_URI`` or ``sqlite:///<workspace>/mlflow.db``; one parent
run per command, one child per seed (params, per-step loss, final metrics, model folder).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.cli.console import EXIT_REFUSED, console, fail, print_json
from evaluators.model import PRESETS
from evaluators.targets import Target
from operators import Mixture, RecipeError, apply_offline_defaults, load_manifest, recipe_from_yaml, shared_data_dir

if TYPE_CHECKING:
    from evaluators.proxy import SeedSummary

EXPERIMENT = "dataplan-train"


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)


def parse_tokens(text: str) -> int:
    """``2M`` -> 2_000_000, ``150k`` -> 150_000, ``1.5e6`` -> 1_500_000."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r}: a token count like 2M, 150k or 1000000")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match[2].lower()]
    return int(float(match[1]) * scale)


def parse_target(spec: str, sources: list[str]) -> Target:
    """``SOURCE`` (held-out slice), ``NAME=PATH`` or ``PATH`` (a file target named by its stem)."""
    if "=" in spec:
        name, path = spec.split("=", 1)
        return Target(name=name, files=(str(Path(path).resolve()),))
    if spec in sources:
        return Target(name=spec, source=spec)
    path = Path(spec)
    if path.is_file():
        return Target(name=re.sub(r"[^A-Za-z0-9_\-]", "_", path.stem), files=(str(path.resolve()),))
    raise typer.BadParameter(f"--eval {spec!r}: not a source of the run ({sources}) and not a file")


def parse_mc(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or a shared eval name (``arc_easy`` -> ``eval/arc_easy_dev_half.jsonl``)."""
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, Path(path).resolve()
    path = shared_data_dir() / "eval" / f"{spec}_dev_half.jsonl"
    if not path.is_file():
        raise typer.BadParameter(f"--lm-eval {spec!r}: {path} does not exist; give NAME=PATH")
    return spec, path


def run_mixture(run_dir: Path, weights: str | None, max_epochs: float | None) -> Mixture:
    """The run recipe's mixture (natural when the run has no manifest), with CLI overrides."""
    mixture = Mixture()
    if (run_dir / "manifest.json").is_file():
        manifest = load_manifest(run_dir)
        mixture = recipe_from_yaml(manifest.recipe, base_dir=manifest.base_dir).mixture
    update: dict = {}
    if weights:
        update["weights"] = {k: float(v) for k, v in (kv.split("=", 1) for kv in weights.split(","))}
        update["phases"] = None  # static weights replace a recipe's schedule
    if max_epochs:
        update["max_epochs"] = max_epochs
    return Mixture.model_validate({**mixture.model_dump(), **update})


def train_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (data/<source>.parquet, manifest.json)"),
    preset: str = typer.Option("micro", "--preset", help=f"model size: {', '.join(PRESETS)}"),
    tokens: str | None = typer.Option(
        None, "--tokens", help="training tokens (bytes), e.g. 2M; default: the mixture's"
    ),
    evals: list[str] = typer.Option([], "--eval", help="target: SOURCE (held-out slice), NAME=PATH or PATH"),
    lm_eval: list[str] = typer.Option([], "--lm-eval", help="multiple-choice task: shared eval name or NAME=PATH"),
    lm_eval_limit: int | None = typer.Option(None, "--lm-eval-limit", help="first N examples per lm-eval task"),
    lm_eval_ppl: bool = typer.Option(False, "--lm-eval-ppl", help="also run lm-eval perplexity on the targets"),
    seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds; more than one reports the spread"),
    weights: str | None = typer.Option(None, "--weights", help="override mixture weights: code=0.6,books=0.4"),
    max_epochs: float | None = typer.Option(None, "--max-epochs", help="override the mixture's max_epochs"),
    packing: str = typer.Option("concat", "--packing", help="concat or best_fit"),
    eval_every: str | None = typer.Option(None, "--eval-every", help="intermediate eval every N tokens, e.g. 250k"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda when present)"),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: all cores)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default: RUN_DIR/proxy/<preset>)"),
    experiment: str = typer.Option(EXPERIMENT, "--experiment", help="MLflow experiment name"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="do not log to MLflow"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics JSON on stdout"),
) -> None:
    """Train proxy LMs on RUN_DIR's output and report bits per byte per target (mean and seed spread)."""
    apply_offline_defaults()
    from evaluators.proxy import evaluate_seeds, write_json  # torch: imported only when training

    if not (run_dir / "data").is_dir():
        fail(f"{run_dir}: not a run folder (no data/); run `dataplan run RECIPE --out {run_dir}` first")
    sources = sorted(p.stem for p in (run_dir / "data").glob("*.parquet"))
    try:
        mixture = run_mixture(run_dir, weights, max_epochs)
        targets = [parse_target(s, sources) for s in evals] or [Target(name=s, source=s) for s in sources]
        mc = dict(parse_mc(s) for s in lm_eval)
        seed_list = [int(s) for s in seeds.split(",")]
    except (RecipeError, ValueError) as err:
        fail(str(err))
    out = out or run_dir / "proxy" / preset
    with console.status(f"training {preset} proxies (seeds {seed_list})"):
        try:
            summary = evaluate_seeds(
                run_dir,
                mixture,
                targets,
                seeds=seed_list,
                out_dir=out,
                preset=preset,
                tokens=parse_tokens(tokens) if tokens else None,
                eval_every=parse_tokens(eval_every) if eval_every else None,
                device=device,
                threads=threads,
                packing=packing,
                lm_eval_tasks=mc or None,
                lm_eval_perplexity=lm_eval_ppl,
                lm_eval_limit=lm_eval_limit,
            )
        except (ValueError, FileNotFoundError) as err:
            fail(str(err), EXIT_REFUSED)
    metrics = write_json(summary, out / "metrics.json")
    if not no_mlflow:
        log_to_mlflow(summary, experiment, run_dir, metrics)
    if as_json:
        print_json(summary.model_dump(exclude={"results": {"__all__": {"losses"}}}))
        return
    for name in summary.bpb_mean:
        console.print(
            f"  {name}: {summary.bpb_mean[name]:.4f} bits/byte ± {summary.bpb_std[name]:.4f}", highlight=False
        )
    first = summary.results[0]
    console.print(
        f"{first.params:,} params, {first.tokens:,} tokens, {first.tokens_per_s:,.0f} tokens/s, MFU {first.mfu:.0%}; "
        f"metrics: {metrics}",
        highlight=False,
    )


def log_to_mlflow(summary: SeedSummary, experiment: str, run_dir: Path, metrics_path: Path) -> str:
    """One parent run (mean/std per target, metrics.json) and one child per seed; returns the parent id."""
    from mlflow.entities import Metric

    from experiments.tracking import mlflow_client

    mlflow = mlflow_client(experiment)
    client = mlflow.MlflowClient()
    first = summary.results[0]
    with mlflow.start_run(run_name=f"train-{first.preset}") as parent:
        mlflow.log_params({"run_dir": str(run_dir.resolve()), "preset": first.preset, "budget": first.budget})
        mlflow.log_params({"seeds": ",".join(map(str, summary.seeds))})
        for name in summary.bpb_mean:
            mlflow.log_metrics({f"bpb_mean.{name}": summary.bpb_mean[name], f"bpb_std.{name}": summary.bpb_std[name]})
        mlflow.log_artifact(str(metrics_path))
        for result in summary.results:
            with mlflow.start_run(run_name=f"seed-{result.seed}", nested=True) as child:
                mlflow.log_params(
                    {
                        "seed": result.seed,
                        "preset": result.preset,
                        "params": result.params,
                        "model_dir": result.model_dir,
                    }
                )
                mlflow.log_params({f"weight.{s}": round(st["weight"], 6) for s, st in result.sources.items()})
                now = int(time.time() * 1000)
                losses = [Metric("train_loss", loss, now, step) for step, _, loss in result.losses]
                losses += [Metric(f"eval_bpb.{n}", v, now, p.step) for p in result.curve for n, v in p.bpb.items()]
                for lo in range(0, len(losses), 1000):
                    client.log_batch(child.info.run_id, metrics=losses[lo : lo + 1000])
                final = {f"bpb.{n}": v for n, v in result.bpb.items()}
                final |= {"tokens": result.tokens, "tokens_per_s": result.tokens_per_s, "mfu": result.mfu}
                final |= {f"epochs.{s}": st["epochs"] for s, st in result.sources.items()}
                final |= {f"{t}.{m}": v for t, ms in result.lm_eval.items() for m, v in ms.items()}
                mlflow.log_metrics(final)
        return parent.info.run_id
