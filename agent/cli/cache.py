"""``dataplan cache du|gc``: what the stage cache holds, and removing what no recorded run needs."""

from __future__ import annotations

import typer
from rich.table import Table

from agent.cli.console import console, fail, print_json
from operators import CacheBusyError, cache_usage, collect_garbage

app = typer.Typer(help="Inspect and prune the stage cache (<workspace>/cache/stages).", no_args_is_help=True)
AS_JSON = typer.Option(False, "--json", help="machine-readable output on stdout")


@app.command("du")
def du(as_json: bool = AS_JSON) -> None:
    """Size of every cached stage, the total, and which stages recorded runs need for replay."""
    usage = cache_usage()
    if as_json:
        print_json(usage.model_dump(mode="json"))
        return
    table = Table(title=f"stage cache {usage.root}")
    for col in ("stage key", "step", "docs", "size", "runs"):
        table.add_column(col, justify="right" if col in ("docs", "size", "runs") else "left")
    for s in sorted(usage.stages, key=lambda s: -s.bytes):
        table.add_row(s.key[:16], s.step or "[dim]unreferenced[/]", str(s.docs), _mb(s.bytes), str(len(s.runs)))
    console.print(table)
    unreferenced = sum(not s.referenced for s in usage.stages)
    console.print(
        f"total {_mb(usage.total_bytes)} in {len(usage.stages)} stages; {_mb(usage.referenced_bytes)} referenced by "
        f"{len(usage.runs)} recorded runs; {unreferenced} stages and {len(usage.stale_scratch)} stale scratch "
        f"folders ({_mb(usage.stale_scratch_bytes)}) removable by `dataplan cache gc`",
        highlight=False,
    )


@app.command("gc")
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be removed, remove nothing"),
    as_json: bool = AS_JSON,
) -> None:
    """Remove the stages no recorded run's manifest names, and scratch folders of killed runs.
    Refused (exit 2) while a run holds the cache."""
    try:
        result = collect_garbage(dry_run=dry_run)
    except CacheBusyError as err:
        fail(str(err))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {len(result.removed)} stages ({_mb(result.removed_bytes)}) and {len(result.scratch_removed)} "
        f"scratch folders ({_mb(result.scratch_bytes)}); kept {result.kept} stages ({_mb(result.kept_bytes)}) "
        "that recorded runs need",
        highlight=False,
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
