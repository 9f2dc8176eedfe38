"""``dataplan run`` and ``dataplan replay``: execute a recipe, re-execute a manifest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.cli.console import EXIT_FAILED, console, fail, print_json
from operators import (
    LedgerError,
    Manifest,
    RecipeError,
    StepReport,
    load_manifest,
    load_recipe,
    ray_session,
    replay,
    run_recipe,
)

RAY_ADDRESS = typer.Option(
    None, "--ray-address", envvar="RAY_ADDRESS", help="join this Ray cluster (default: local Ray)"
)
NUM_CPUS = typer.Option(None, "--num-cpus", help="CPUs for local Ray (default: all)")
AS_JSON = typer.Option(False, "--json", help="also print the result as JSON on stdout")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("replay")(replay_cmd)


def run(
    recipe_path: Path = typer.Argument(..., help="recipe YAML"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (data/, ledger.parquet, manifest.json)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute every step"),
    ray_address: str | None = RAY_ADDRESS,
    num_cpus: int | None = NUM_CPUS,
    as_json: bool = AS_JSON,
) -> None:
    """Run a recipe on Ray Data and print a per-step table (docs in, out, dropped by reason, time)."""
    try:
        recipe = load_recipe(recipe_path)
        with ray_session(ray_address, num_cpus), _progress() as progress:
            manifest = run_recipe(recipe, out, use_cache=not no_cache, progress=progress)
    except RecipeError as err:
        fail(str(err))
    except LedgerError as err:
        fail(str(err), EXIT_FAILED)
    _show(manifest, as_json)


def replay_cmd(
    target: str = typer.Argument(..., help="a run folder or its manifest.json, or an agent run id"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for the re-executed outputs (default: <target>-replay)"
    ),
    use_cache: bool = typer.Option(False, "--use-cache", help="reuse cached stages (default: recompute all)"),
    ray_address: str | None = RAY_ADDRESS,
    num_cpus: int | None = NUM_CPUS,
    as_json: bool = AS_JSON,
) -> None:
    """Re-execute a recorded pipeline run (or every recorded tool call of an agent run); exit 0 only
    when every output hash matches the recorded one."""
    if not Path(target).exists():
        return _replay_agent_run(target, out, ray_address, as_json)
    out = out or Path(f"{Path(target).resolve().parent if target.endswith('.json') else Path(target).resolve()}-replay")
    try:
        load_manifest(target)
        with ray_session(ray_address, num_cpus), _progress() as progress:
            result = replay(target, out, use_cache=use_cache, progress=progress)
    except RecipeError as err:
        fail(str(err))
    if as_json:
        print_json(result.model_dump(mode="json", exclude={"manifest"}))
    if not result.ok:
        fail(
            f"replay diverged at {result.diverged_at or 'output'}: expected {result.expected}, got {result.actual}",
            EXIT_FAILED,
        )
    console.print(f"[green]replay ok[/]: output_sha256 {result.actual}")


def _replay_agent_run(run_id: str, out: Path | None, ray_address: str | None, as_json: bool) -> None:
    from agent.graph import build_graph, open_checkpointer, run_dir, thread
    from agent.replay import replay_run

    values = build_graph(open_checkpointer()).get_state(thread(run_id)).values
    if not values:
        fail(f"{run_id!r} is neither a path nor a run id in this workspace")
    with ray_session(ray_address):
        result = replay_run(values, out or run_dir(run_id) / "replay")
    if as_json:
        print_json(result)
    for c in result["checks"]:
        console.print(f"  {c['call']!s:<28} {c['tool']:<18} {c['status']}", highlight=False)
    if not result["ok"]:
        fail("replay found calls whose output differs from the recording", EXIT_FAILED)
    console.print(f"[green]replay ok[/]: {sum(c['status'] == 'match' for c in result['checks'])} outputs reproduced")


class _progress:
    """A rich spinner per stage, fed by the executor's progress callback."""

    def __enter__(self):
        self.bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        )
        self.bar.__enter__()
        self.task = None
        return self

    def __call__(self, message: str, report: StepReport | None) -> None:
        if report is None:
            self.task = self.bar.add_task(message)
        elif self.task is not None:
            self.bar.remove_task(self.task)
            state = "cached" if report.cached else f"{report.seconds:.1f}s"
            console.print(f"  {message}: {report.docs_in} -> {report.docs_out} ({state})", highlight=False)

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)


def _show(manifest: Manifest, as_json: bool) -> None:
    """The per-step table on stderr; with ``--json`` the manifest also goes to stdout."""
    if as_json:
        print_json(manifest.model_dump(mode="json"))
    table = Table(title=f"recipe {manifest.recipe_name} ({manifest.recipe_id[:12]})")
    for col in ("#", "step", "stage", "docs in", "docs out", "dropped by reason", "time"):
        table.add_column(col, justify="right" if col.startswith("docs") else "left")
    for s in manifest.steps:
        reasons = ", ".join(f"{k}={v}" for k, v in s.dropped.items())
        time = "cached" if s.cached else f"{s.seconds:.2f}s"
        table.add_row(str(s.index), s.name, s.stage, str(s.docs_in), str(s.docs_out), reasons, time)
    console.print(table)
    for name, c in manifest.sources.items():
        console.print(f"  {name}: {c['input']} in = {c['kept']} kept + {c['dropped']} dropped", highlight=False)
    console.print(f"output_sha256 {manifest.output_sha256}")
