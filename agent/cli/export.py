"""``dataplan export``: a run's (or a recipe's) final training set, mixture applied, as shards."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.cli.console import EXIT_FAILED, console, fail, print_json
from agent.cli.run import NUM_CPUS, RAY_ADDRESS, _progress
from evaluators.export import FORMATS, ExportManifest, ExportRefused, export_run, parse_size
from operators import LedgerError, RecipeError, load_manifest, load_recipe, ray_session, run_recipe


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    target: Path = typer.Argument(..., help="a run folder (`dataplan run --out`), or a recipe YAML to run first"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the shards and manifest.json"),
    fmt: str = typer.Option("jsonl", "--format", "-f", help=f"one of {', '.join(FORMATS)}"),
    tokens: int | None = typer.Option(
        None, "--tokens", min=1, help="token budget (default: the recipe's mixture.total_tokens, else everything)"
    ),
    docs: int | None = typer.Option(None, "--docs", min=1, help="export this many documents instead of a token budget"),
    seed: int = typer.Option(
        0, "--seed", help="sampling and shuffle seed (a proxy trained with this seed sees this stream)"
    ),
    shard_size: str = typer.Option("256MB", "--shard-size", help="shard size, e.g. 256MB, 1GiB, 500k"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute every step when TARGET is a recipe"),
    ray_address: str | None = RAY_ADDRESS,
    num_cpus: int | None = NUM_CPUS,
    as_json: bool = typer.Option(False, "--json", help="print the export manifest as JSON on stdout"),
) -> None:
    """Write the training set a recipe produces: its mixture applied with the proxies' sampler,
    shuffled by --seed, as jsonl/parquet shards or uint16 token shards with a Megatron index, plus
    manifest.json (per-source shares against the weights, shard hashes, one overall sha256)."""
    try:
        if fmt not in FORMATS:
            raise ExportRefused(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if tokens is not None and docs is not None:
            raise ExportRefused("give --tokens or --docs, not both")
        shard_bytes = parse_size(shard_size)
        run_dir = _run_folder(target, out, no_cache, ray_address, num_cpus)
        with _bar() as progress:
            task = progress.add_task("writing shards", total=None)
            manifest = export_run(
                run_dir,
                out,
                fmt,
                tokens=tokens,
                docs=docs,
                seed=seed,
                shard_bytes=shard_bytes,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (ExportRefused, RecipeError) as err:
        fail(str(err))
    except LedgerError as err:
        fail(str(err), EXIT_FAILED)
    for warning in manifest.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(manifest.model_dump(mode="json"))
    else:
        _show(manifest, out)


def _run_folder(target: Path, out: Path, no_cache: bool, ray_address: str | None, num_cpus: int | None) -> Path:
    """``target`` if it is a run folder; a recipe YAML is run first into ``out/run``."""
    if target.is_dir():
        load_manifest(target)  # refuses a folder that is not a run
        return target
    if target.suffix not in (".yaml", ".yml") or not target.is_file():
        raise RecipeError(f"{target}: neither a run folder (with manifest.json) nor a recipe YAML file")
    recipe = load_recipe(target)
    run_dir = out / "run"
    with ray_session(ray_address, num_cpus), _progress() as progress:
        run_recipe(recipe, run_dir, use_cache=not no_cache, progress=progress)
    return run_dir


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _show(manifest: ExportManifest, out: Path) -> None:
    """The per-source table and the shards, on stdout."""
    table = Table(title=f"export of {manifest.recipe_name} ({manifest.recipe_id[:12]}), seed {manifest.seed}")
    for col in ("source", "weight", "target", "share", "docs", "unique", "tokens", "epochs", "note"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in manifest.sources.items():
        table.add_row(
            name,
            f"{s.weight:.3f}",
            f"{s.target_share:.3f}",
            f"{s.share:.3f}",
            str(s.documents),
            str(s.unique_documents),
            str(s.tokens),
            f"{s.epochs:.2f}",
            "empty" if s.available_tokens == 0 else "capped" if s.capped else "",
        )
    stdout = Console()
    stdout.print(table)
    stdout.print(
        f"{manifest.documents} documents, {manifest.tokens} tokens in {len(manifest.shards)} {manifest.format} "
        f"shard(s) under {out}; sha256 {manifest.sha256}",
        highlight=False,
    )
