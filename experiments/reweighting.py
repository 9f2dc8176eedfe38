"""A recipe's mixture learned during proxy training (DoReMi, DoGE), with its provenance.

``learn_mixture(recipe, folder, method="doremi", ...)``:

1. runs the recipe's pipeline into ``folder/run`` (its sources are the domains; held-out target
   ids, when given, are excluded first), or reads an existing ``run_dir``;
2. learns domain weights on that output with ``evaluators.domain_reweighting.reweight_domains``
   (DoReMi's reference proxy trains on the recipe's own mixture, DoGE needs none);
3. writes the recipe with the averaged weights as ``mixture.weights`` (``folder/recipe.yaml``, or
   ``out``), ``folder/manifest.json`` (the provenance: method and parameters, the input recipe, its
   id and the pipeline run's manifest and output hash, the proxy setup and its cost, the weight
   trajectory, package versions), ``folder/weights.png`` (the trajectory), and one MLflow run (the
   trajectory as metric series ``weight.<domain>`` and ``score.<domain>`` by step, the averaged
   weights as ``avg_weight.<domain>``, the plot, manifest and recipe as artifacts).

A folder whose manifest records the same input recipe, method, parameters and proxy setup is
reused, not retrained (``finalize --baselines doremi`` resumes through it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from evaluators.domain_reweighting import METHODS, ReweightResult, check_budget, reweight_domains
from evaluators.sampler import load_pools
from experiments.search_config import SearchConfig
from experiments.targets import exclude_held_out
from experiments.tracking import flat_params, mlflow_client
from operators import Recipe, expand_uri, load_manifest, load_recipe, run_recipe

EXPERIMENT = "dataplan-mix"


class MixOutcome(BaseModel):
    """Where ``learn_mixture`` wrote what, and the weights."""

    recipe: str
    recipe_id: str
    weights: dict[str, float]
    manifest: str
    plot: str
    mlflow_run: str | None
    reused: bool
    result: ReweightResult


def learn_mixture(
    recipe: Recipe,
    folder: str | Path,
    *,
    method: str = "doremi",
    params: dict[str, float] | None = None,
    preset: str = "nano",
    tokens: int = 1_000_000,
    seed: int = 0,
    run_dir: str | Path | None = None,
    held_out_ids: str | None = None,
    out: str | Path | None = None,
    mlflow: bool = True,
    experiment: str = EXPERIMENT,
    device: str | None = None,
    threads: int | None = None,
) -> MixOutcome:
    """The recipe with the domain weights ``method`` learns on its output (see the module docstring)."""
    check_method(method, params or {})  # before any work
    check_budget(preset, tokens)
    if len(recipe.sources) < 2:
        names = [s.name for s in recipe.sources]
        raise ValueError(f"{method} reweights domains: the recipe needs at least two sources, it has {names}")
    folder = Path(folder).resolve()
    setup = {"method": method, "params": params or {}, "preset": preset, "tokens": tokens, "seed": seed}
    key = {"input_recipe_id": recipe.recipe_id(), "held_out_ids": held_out_ids, **setup}
    if (reused := _recorded(folder, key)) is not None:
        return reused
    folder.mkdir(parents=True, exist_ok=True)
    if run_dir is None:
        run_dir = folder / "run"
        run_recipe(exclude_held_out(recipe, held_out_ids), run_dir)
    run = load_manifest(run_dir)
    pools = load_pools(run_dir)
    result = reweight_domains(
        pools, recipe.mixture, method=method, params=params, preset=preset, tokens=tokens, seed=seed,
        device=device, threads=threads,
    )  # fmt: skip
    learned = _with_weights(recipe, result, method)
    recipe_path = Path(out).resolve() if out else folder / "recipe.yaml"
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    learned.save(recipe_path)
    plot = plot_trajectory(result, folder / "weights.png")
    manifest = {
        **key,
        "kind": "learned_mixture",
        "input_recipe": recipe.to_yaml(),
        "input_recipe_name": recipe.name,
        "recipe": str(recipe_path),
        "recipe_id": learned.recipe_id(),
        "weights": learned.mixture.weights,
        "run_manifest": str(Path(run_dir).resolve() / "manifest.json"),
        "run_output_sha256": run.output_sha256,
        "versions": {p: version(p) for p in ("torch", "transformers")},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "result": result.model_dump(),
        "mlflow_run": None,
    }
    if mlflow:
        manifest["mlflow_run"] = log_mixture(result, manifest, [plot, recipe_path], experiment, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return _outcome(manifest, folder, reused=False)


def check_method(method: str, params: dict[str, float]) -> None:
    """Refuse an unknown method or parameter, naming what there is."""
    if method not in METHODS:
        raise ValueError(f"mixture method {method!r}: use one of {sorted(METHODS)}")
    known = METHODS[method].Params.model_fields
    if unknown := sorted(set(params) - set(known)):
        raise ValueError(f"{method} has no parameter {unknown}; its parameters are {sorted(known)}")
    try:
        METHODS[method].Params.model_validate(params)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{method} parameters: {problems}") from None


def _with_weights(recipe: Recipe, result: ReweightResult, method: str) -> Recipe:
    """The recipe with the learned weights; relative source paths anchored (it may be saved elsewhere)."""
    data = recipe.model_dump(mode="json")
    data["name"] = f"{recipe.name}-{method}"
    data["mixture"]["weights"] = {d: round(w, 6) for d, w in result.weights.items()}
    data["mixture"].pop("phases", None)  # learned weights are one static mixture
    for source in data["sources"]:
        if not os.path.isabs(os.path.expanduser(source["uri"])) and "$" not in source["uri"]:
            source["uri"] = expand_uri(source["uri"], Path(recipe.base_dir))
    return Recipe.model_validate({**data, "base_dir": recipe.base_dir})


def _recorded(folder: Path, key: dict[str, Any]) -> MixOutcome | None:
    """The outcome recorded in ``folder`` for the same inputs and setup (its recipe file still there)."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if any(manifest.get(k) != v for k, v in key.items()) or not Path(manifest["recipe"]).is_file():
        return None
    return _outcome(manifest, folder, reused=True)


def _outcome(manifest: dict[str, Any], folder: Path, reused: bool) -> MixOutcome:
    return MixOutcome(
        recipe=manifest["recipe"],
        recipe_id=manifest["recipe_id"],
        weights=manifest["weights"],
        manifest=str(folder / "manifest.json"),
        plot=str(folder / "weights.png"),
        mlflow_run=manifest["mlflow_run"],
        reused=reused,
        result=ReweightResult.model_validate(manifest["result"]),
    )


def plot_trajectory(result: ReweightResult, path: Path) -> Path:
    """The domain weights per step (solid) and their running mean, the output (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    alphas = np.array(result.trajectory)
    running = np.cumsum(alphas, axis=0) / np.arange(1, len(alphas) + 1)[:, None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, domain in enumerate(result.domains):
        ax.plot(alphas[:, i], color=f"C{i}", lw=1, label=domain)
        ax.plot(running[:, i], color=f"C{i}", lw=1.5, ls="--")
    ax.set_xlabel(f"step ({result.preset}, {result.tokens:,} tokens)")
    ax.set_ylabel(f"{result.method} domain weight (dashed: mean)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_mixture(
    result: ReweightResult, manifest: dict[str, Any], artifacts: list[Path], experiment: str, folder: Path
) -> str:
    """One MLflow run: setup as params, the trajectory as metric series, the files as artifacts."""
    from mlflow.entities import Metric

    mlflow = mlflow_client(experiment)
    client = mlflow.MlflowClient()
    tags = {"dataplan.kind": "learned_mixture", "dataplan.recipe_id": manifest["input_recipe_id"]}
    with mlflow.start_run(run_name=f"mix-{result.method}:{manifest['input_recipe_name']}", tags=tags) as run:
        setup = {k: manifest[k] for k in ("method", "preset", "tokens", "seed", "input_recipe_id", "recipe_id")}
        mlflow.log_params({**setup, **flat_params("param", result.params), "steps": result.steps})
        now = int(time.time() * 1000)
        series = [
            Metric(f"{name}.{d}", row[i], now, step)
            for name, rows in (("weight", result.trajectory), ("score", result.scores))
            for step, row in enumerate(rows)
            for i, d in enumerate(result.domains)
        ]
        for lo in range(0, len(series), 1000):
            client.log_batch(run.info.run_id, metrics=series[lo : lo + 1000])
        mlflow.log_metrics(
            {f"avg_weight.{d}": w for d, w in result.weights.items()} | {"proxy_runs": result.proxy_runs}
        )
        for path in artifacts:
            mlflow.log_artifact(str(path))
        (folder / "manifest.json").write_text(json.dumps({**manifest, "mlflow_run": run.info.run_id}, indent=2))
        mlflow.log_artifact(str(folder / "manifest.json"))
        return run.info.run_id


LEARNED_BASELINES = ("doremi", "doge")
"""Methods ``finalize --baselines`` can add as rivals, named ``<method>_mixture``."""


def learned_baseline(
    recipe: Recipe, folder: Path, config: SearchConfig, method: str, preset: str, tokens: int
) -> Recipe:
    """``recipe`` with the mixture ``method`` learns on its output at the confirmation's proxy scale
    (the search's held-out target documents excluded), named ``<method>_mixture``; recorded in
    ``folder`` and reused by a resumed finalize."""
    if method not in LEARNED_BASELINES:
        raise ValueError(f"baseline {method!r}: learned baselines are {list(LEARNED_BASELINES)}")
    out = learn_mixture(
        recipe, folder, method=method, preset=preset, tokens=tokens, seed=config.seed,
        held_out_ids=config.held_out_ids, experiment=config.mlflow_experiment,
    )  # fmt: skip
    learned = load_recipe(out.recipe)
    learned.name = f"{method}_mixture"
    return learned
