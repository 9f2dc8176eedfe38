"""``dataplan explain`` and ``dataplan samples``: why a document was kept or dropped, read from a
run folder's ledger (no recomputation)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from agent.cli.console import fail, print_json
from operators import Fate, RecipeError, explain_document, sample_dropped

AS_JSON = typer.Option(False, "--json", help="print the result as JSON on stdout")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("samples")(samples)


def explain(
    run_dir: Path = typer.Argument(..., help="a run folder (`dataplan run --out`)"),
    doc_id: str = typer.Argument(..., help="the document's id (the ledger's `id`)"),
    source: str | None = typer.Option(None, "--source", help="only this source (when sources share ids)"),
    as_json: bool = AS_JSON,
) -> None:
    """A document's fate: kept, or dropped at which step, for which reason, and for threshold
    filters the signal's value and the threshold it failed."""
    try:
        fates = explain_document(run_dir, doc_id, source)
    except RecipeError as err:
        fail(str(err))
    _print(fates, as_json)


def samples(
    run_dir: Path = typer.Argument(..., help="a run folder (`dataplan run --out`)"),
    step: str | None = typer.Option(None, "--step", "-k", help="a step index (-1: reading) or operator name"),
    reason: str | None = typer.Option(None, "--reason", "-r", help="a reason code, e.g. too_few_words"),
    n: int = typer.Option(5, "-n", min=1, help="documents to show"),
    seed: int = typer.Option(0, "--seed", help="sampling seed"),
    as_json: bool = AS_JSON,
) -> None:
    """Sample dropped documents by step and reason: id, reason, detail and the start of the text."""
    try:
        fates = sample_dropped(run_dir, step=step, reason=reason, n=n, seed=seed)
    except RecipeError as err:
        fail(str(err))
    _print(fates, as_json)


def _print(fates: list[Fate], as_json: bool) -> None:
    if as_json:
        print_json([f.model_dump(mode="json") for f in fates])
        return
    out = Console()
    for f in fates:
        out.print(f"[bold]{escape(f.source)}/{escape(f.id)}[/]: {escape(f.why)}", highlight=False, soft_wrap=True)
        if f.excerpt is not None:
            out.print(f"  [dim]{escape(repr(f.excerpt))}[/]", highlight=False, soft_wrap=True)
        elif f.status == "dropped":
            out.print("  [dim](text no longer in the stage cache)[/]", highlight=False)
