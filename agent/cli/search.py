"""``dataplan search`` and ``dataplan finalize``: the overnight recipe search."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agent.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, console, fail, print_json
from agent.cli.render import render_comparisons
from operators import RecipeError, load_recipe, ray_session

if TYPE_CHECKING:
    from experiments.search_config import FinalizeSpec

CONFIRM = typer.Option(
    None, "--confirm/--no-confirm", help="confirm the result against baselines with neural proxies (yes)"
)
CONFIRM_PRESET = typer.Option(
    None, "--confirm-preset", help="proxy preset for confirmation (default: the search's; nano after an ngram search)"
)
CONFIRM_TOKENS = typer.Option(
    None,
    "--confirm-tokens",
    min=1,
    help="tokens per confirmation run (default: 2x the search's; 100k BPE tokens after an ngram search)",
)
CONFIRM_TOKENIZER = typer.Option(
    None,
    "--confirm-tokenizer",
    help="byte or bpe (the search's BPE, fitted on every source and target) for the confirmation proxies "
    "(default: the search's; bpe after an ngram search)",
)
CONFIRM_SEEDS = typer.Option(None, "--confirm-seeds", min=2, help="paired seeds each recipe is confirmed with (3)")
MAX_SEEDS = typer.Option(
    None,
    "--max-seeds",
    min=2,
    help="confirmation adds seeds up to this many while a baseline comparison is undecided (5)",
)
ABLATE = typer.Option(
    None,
    "--ablate/--no-ablate",
    help="retrain the final recipe with each step switched off, and each step the search switched off back on (yes)",
)


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("finalize")(finalize_cmd)


def search(
    space: Path | None = typer.Argument(None, help="search-space YAML (omit with --resume)"),
    recipe: Path | None = typer.Option(
        None, "--recipe", "-r", help="base recipe (default: `recipe:` in the space file)"
    ),
    folder: Path | None = typer.Option(
        None, "--dir", "-d", help="search folder (default: <workspace>/searches/<space name>)"
    ),
    resume: Path | None = typer.Option(None, "--resume", help="continue the search in this folder"),
    trials: int | None = typer.Option(
        None, "--trials", "-n", help="trials to finish in total (with --resume: raises the total)"
    ),
    time_budget: str | None = typer.Option(
        None, "--time-budget", help="stop starting trials after this long, e.g. 8h, 30m"
    ),
    sampler: str = typer.Option(
        "gp",
        "--sampler",
        help="gp (Gaussian process, the default), tpe (multivariate), cmaes (started at the proposal) or random",
    ),
    prior_trials: int = typer.Option(
        0, "--prior-trials", min=0, help="trials after the proposal whose mixtures are drawn around its weights"
    ),
    pruner: str = typer.Option("hyperband", "--pruner", help="hyperband, halving or none"),
    seed: int = typer.Option(0, "--seed"),
    finalize: bool | None = typer.Option(
        None,
        "--finalize/--no-finalize",
        help="fit the surrogate, confirm and report at the end (default: yes; --resume: as the search was started)",
    ),
    confirm: bool | None = CONFIRM,
    confirm_preset: str | None = CONFIRM_PRESET,
    confirm_tokens: int | None = CONFIRM_TOKENS,
    confirm_tokenizer: str | None = CONFIRM_TOKENIZER,
    confirm_seeds: int | None = CONFIRM_SEEDS,
    max_seeds: int | None = MAX_SEEDS,
    ablate: bool | None = ABLATE,
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
    experiment: str = typer.Option("dataplan", "--experiment", help="MLflow experiment of the search's runs"),
    as_json: bool = typer.Option(False, "--json", help="print the final summary as JSON on stdout"),
) -> None:
    """Search recipe settings and mixture weights jointly; resumable after Ctrl-C, SIGTERM or kill -9.
    The finalize options are stored with the search: `--resume` does what the search was started with,
    unless they are given again."""
    from experiments.search_config import parse_duration
    from experiments.study import Search

    given = {
        "enabled": finalize,
        "confirm": confirm,
        "confirm_preset": confirm_preset,
        "confirm_tokens": confirm_tokens,
        "confirm_tokenizer": confirm_tokenizer,
        "seeds": confirm_seeds,
        "max_seeds": max_seeds,
        "ablate": ablate,
    }
    given = {k: v for k, v in given.items() if v is not None}
    s = None
    finalizing = False
    try:
        budget = parse_duration(time_budget)
        if resume:
            s = Search(resume)
            s.ensure_idle()
            if trials and trials > s.config.n_trials:
                s.extend({"params": s.config.space["params"]}, trials - s.config.n_trials)
            if given:
                s.config.finalize = _finalize_spec({**s.config.finalize.model_dump(), **given})
                s.config.save(s.folder)
        else:
            if space is None:
                fail("give a search-space YAML, or --resume DIR")
            data = _load_yaml(space)
            base = load_recipe(recipe or _recipe_from_space(space, data))
            target = folder or _default_dir(space)
            settings = {
                "sampler": sampler,
                "pruner": pruner,
                "seed": seed,
                "time_budget_s": budget,
                "prior_trials": prior_trials,
                "mlflow_experiment": experiment,
            }
            settings["finalize"] = _finalize_spec(given).model_dump()
            if trials:
                settings["n_trials"] = trials
            s = Search.create(target, base, data, **settings)
        console.print(f"search folder: {s.folder}")
        spec: FinalizeSpec = s.config.finalize
        with ray_session(ray_address), _trial_progress(s.config.n_trials, s.counts()["finished"]) as on_trial:
            counts = s.run(budget, on_trial=on_trial)
            final = None
            if spec.enabled and counts["complete"] >= 1:
                from experiments.finalize import finalize as do_finalize

                console.print("finalizing: surrogate, confirmation runs, report")
                finalizing = True
                final = do_finalize(s.folder, on_run=None if as_json else confirm_line)
    except KeyboardInterrupt:
        if finalizing:
            _interrupted_finalize(s.folder, f"dataplan search --resume {s.folder}")
        where = s.folder if s else "DIR"
        console.print(
            f"[yellow]interrupted[/]: the running trial was marked; continue with `dataplan search --resume {where}`"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except RecipeError as err:
        fail(str(err))
    summary = {"dir": str(s.folder), "counts": counts, "final": final}
    if as_json:
        print_json(summary)
    console.print(f"trials: {counts}")
    if final:
        _show_final(final)
    elif spec.enabled:
        console.print("[yellow]no completed trial: nothing to finalize[/]")


def finalize_cmd(
    folder: Path = typer.Argument(..., help="search folder"),
    confirm: bool | None = CONFIRM,
    confirm_preset: str | None = CONFIRM_PRESET,
    confirm_tokens: int | None = CONFIRM_TOKENS,
    confirm_tokenizer: str | None = CONFIRM_TOKENIZER,
    confirm_seeds: int | None = CONFIRM_SEEDS,
    max_seeds: int | None = MAX_SEEDS,
    ablate: bool | None = ABLATE,
    baselines: str = typer.Option(
        "",
        "--baselines",
        help="also confirm against (comma-separated): the published pipelines c4, gopher, refinedweb, dclm_baseline "
        "(recipes/; natural, uniform, no_filtering and fineweb always are), mixtures learned on the recipe's "
        "output: doremi, doge",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predicted-optimal recipe, confirmation against baselines and report for a finished search.
    Options not given are as the search was started; confirmation trainings already recorded in the
    folder (an interrupted finalize) are reused."""
    from experiments.finalize import finalize as do_finalize

    try:
        with ray_session():
            final = do_finalize(
                folder,
                confirm=confirm,
                confirm_preset=confirm_preset,
                confirm_tokens=confirm_tokens,
                confirm_tokenizer=confirm_tokenizer,
                seeds=tuple(range(confirm_seeds)) if confirm_seeds else None,
                max_seeds=max_seeds,
                ablate=ablate,
                on_run=None if as_json else confirm_line,
                baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
            )
    except KeyboardInterrupt:
        _interrupted_finalize(folder.resolve(), f"dataplan finalize {folder}")
    except (RecipeError, ValueError) as err:
        fail(str(err), EXIT_FAILED)
    if as_json:
        print_json(final)
    _show_final(final)


def _finalize_spec(values: dict) -> FinalizeSpec:
    """The finalize settings, or a refusal (exit 2) naming the bad option."""
    from pydantic import ValidationError

    from experiments.search_config import FinalizeSpec

    try:
        return FinalizeSpec.model_validate(values)
    except ValidationError as err:
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'finalize'}: {e['msg']}" for e in err.errors()))


def trial_line(row: dict) -> None:
    """One line per search trial as it finishes (an agent run's search, which draws no bar)."""
    value = f"{row['objective']:.4f} bpb" if row["objective"] is not None else row["state"]
    mix = "  ".join(f"{source} {w:.2f}" for source, w in row["weights"].items())
    took = f"{row['seconds']['total']:.1f} s" if "total" in row["seconds"] else ""
    console.print(f"trial {row['number']}  {value}  {took}  {mix}".rstrip(), highlight=False)


def confirm_line(row: dict) -> None:
    """One line per confirmation training as it finishes (or is reused from the record)."""
    scale = f"seed {row['seed']}" if row["scale"] == "confirm" else "search scale"
    done = "recorded" if row["reused"] else "trained"
    console.print(
        f"confirm {row['done']}/{row['planned']}  {row['name']}  {scale}  {row['objective']:.4f} bpb  ({done})",
        highlight=False,
    )


def _interrupted_finalize(folder: Path, again: str) -> NoReturn:
    """Exit 130 with one line: how many trainings are kept and the command that resumes."""
    from experiments.confirm_log import ConfirmLog

    kept = len(ConfirmLog(folder).entries)
    console.print(
        f"[yellow]interrupted[/] during finalize: {kept} finished confirmation trainings are kept in "
        f"{folder / 'confirmations.jsonl'}; continue with `{again}`",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_INTERRUPTED)


def _show_final(final: dict) -> None:
    p = final["prediction"]
    console.print(
        f"predicted-optimal: {p['predicted']:.4f} ± {p['uncertainty']:.4f} bpb  ({final['predicted_recipe']})"
    )
    if p.get("reason"):
        console.print(p["reason"], highlight=False, markup=False)
    if final["confirm"]:
        render_comparisons(final)
    console.print(f"report: {final['report']}")


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RecipeError(f"search space {path}: {err}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"search space {path}: expected a mapping with `params:` and `objective:`")
    return data


def _recipe_from_space(space: Path, data: dict) -> Path:
    if "recipe" not in data:
        raise RecipeError(f"{space}: no `recipe:` in the space file; pass --recipe RECIPE.yaml")
    return (space.parent / data["recipe"]).resolve()


def _default_dir(space: Path) -> Path:
    from operators import workspace

    return workspace() / "searches" / space.stem


class _trial_progress:
    def __init__(self, total: int, done: int) -> None:
        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.total, self.done = total, done

    def __enter__(self):
        self.bar.__enter__()
        self.task = self.bar.add_task("", total=self.total, completed=self.done)
        return self

    def __call__(self, row: dict) -> None:
        if row["state"] != "interrupted":
            self.bar.advance(self.task)
        obj = f"{row['objective']:.4f}" if row["objective"] is not None else row["state"]
        self.bar.update(self.task, description=f"last #{row['number']}: {obj}")

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)
