"""``dataplan mix doremi|doge RECIPE``: learn a recipe's mixture weights while a proxy trains.

Runs the recipe's pipeline (or reads ``--run-dir``), trains DoReMi's reference and reweighted
proxies (or DoGE's one proxy) on its output, and writes the recipe with the averaged domain weights
as ``mixture.weights``, a provenance ``manifest.json``, the weight-trajectory plot and an MLflow run
(``experiments.reweighting``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from agent.cli.console import EXIT_REFUSED, console, fail, print_json
from agent.cli.train import parse_tokens
from evaluators.model import get_preset
from operators import RecipeError, load_recipe, ray_session, workspace

app = typer.Typer(help="Learn mixture weights during proxy training (DoReMi, DoGE).", no_args_is_help=True)
TITLES = {
    "doremi": "DoReMi (Xie et al. 2023): exponentiated gradient on the excess loss over a reference proxy",
    "doge": "DoGE (Fan et al. 2023): exponentiated gradient on each domain's gradient alignment with the others",
}


def _options(method: str):
    def command(
        recipe_path: Path = typer.Argument(..., help="recipe YAML; its sources are the domains"),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="the recipe with learned weights (default: DIR/recipe.yaml)"
        ),
        folder: Path | None = typer.Option(
            None, "--dir", "-d", help=f"work folder (default: <workspace>/mix/<recipe name>-{method})"
        ),
        run_dir: Path | None = typer.Option(
            None, "--run-dir", help="an existing run of the recipe (default: run it into DIR/run)"
        ),
        preset: str = typer.Option("nano", "--preset", help="proxy size (DoReMi's reference has the same)"),
        tokens: str | None = typer.Option(
            None, "--tokens", help="tokens per proxy, e.g. 500k (default: the mixture's, else 1M)"
        ),
        seed: int = typer.Option(0, "--seed"),
        param: list[str] = typer.Option(
            [], "--param", help="method parameter KEY=VALUE, e.g. eta=1 (default: the paper's)"
        ),
        device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda when present)"),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: all cores)"),
        experiment: str = typer.Option("dataplan-mix", "--experiment", help="MLflow experiment"),
        no_mlflow: bool = typer.Option(False, "--no-mlflow", help="do not log to MLflow"),
        ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
        as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON on stdout"),
    ) -> None:
        from experiments.reweighting import check_method, learn_mixture

        try:
            recipe = load_recipe(recipe_path)
            params = dict(_pair(p) for p in param)
            check_method(method, params)
            get_preset(preset)  # a count-model or unknown preset is refused here, not after the run
            budget = parse_tokens(tokens) if tokens else recipe.mixture.total_tokens or 1_000_000
            pipeline = ray_session(ray_address) if run_dir is None else contextlib.nullcontext()
            with pipeline, console.status(f"{method}: proxy training ({preset}, {budget:,} tokens)"):
                outcome = learn_mixture(
                    recipe,
                    folder or workspace() / "mix" / f"{recipe.name}-{method}",
                    method=method,
                    params=params,
                    preset=preset,
                    tokens=budget,
                    seed=seed,
                    run_dir=run_dir,
                    out=out,
                    mlflow=not no_mlflow,
                    experiment=experiment,
                    device=device,
                    threads=threads,
                )
        except RecipeError as err:
            fail(str(err))
        except (ValueError, FileNotFoundError) as err:
            fail(str(err), EXIT_REFUSED)
        if as_json:
            print_json(outcome.model_dump(exclude={"result": {"trajectory", "scores", "domain_loss"}}))
            return
        r = outcome.result
        shares, stream = (r.reference, "the reference's stream") if r.reference else (r.sampling, "the proxy's stream")
        for domain, weight in outcome.weights.items():
            console.print(f"  {domain}: {weight:.3f}  ({stream}: {shares[domain]:.3f})", highlight=False)
        reused = " (recorded earlier, reused)" if outcome.reused else ""
        console.print(
            f"{method}: {r.steps} steps, {r.proxy_runs:.2f} proxy runs, {r.seconds:.0f} s{reused}; recipe: {outcome.recipe}; "
            f"manifest: {outcome.manifest}; plot: {outcome.plot}",
            highlight=False,
            soft_wrap=True,
        )

    command.__doc__ = f"Learn RECIPE's mixture weights with {TITLES[method]}; write the recipe with them."
    return command


def _pair(text: str) -> tuple[str, float]:
    if "=" not in text:
        raise ValueError(f"--param {text!r}: give KEY=VALUE, e.g. eta=1")
    key, value = text.split("=", 1)
    try:
        return key.strip(), float(value)
    except ValueError:
        raise ValueError(f"--param {text!r}: VALUE must be a number, e.g. eta=1") from None


app.command("doremi")(_options("doremi"))
app.command("doge")(_options("doge"))
