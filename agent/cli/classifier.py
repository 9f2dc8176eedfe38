"""``dataplan classifier train``: fit the DCLM-style quality classifier used by ``quality_classifier``."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.console import console, fail, print_json
from operators import RecipeError, read_texts, train_classifier

app = typer.Typer(
    help="Train the quality classifier that the `quality_classifier` step scores with.", no_args_is_help=True
)


@app.command("train")
def train(
    positive: list[Path] = typer.Option(
        ..., "--positive", help="high-quality documents (jsonl/parquet/txt); repeatable"
    ),
    negative: list[Path] = typer.Option(..., "--negative", help="ordinary pool documents; repeatable"),
    out: Path = typer.Option(..., "--out", "-o", help="model file to write (.npz); metrics go to <out>.json"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON on stdout"),
) -> None:
    """Fit hashed word 1-2-gram logistic regression on positive vs negative documents."""
    missing = [str(p) for p in [*positive, *negative] if not p.is_file()]
    if missing:
        fail(f"input files not found: {missing}")
    try:
        metrics = train_classifier(
            read_texts([str(p) for p in positive]), read_texts([str(p) for p in negative]), out, seed=seed
        )
    except (RecipeError, ValueError) as err:
        fail(str(err))
    if as_json:
        print_json(metrics)
    else:
        console.print(
            f"saved {out}: held-out accuracy {metrics['test_accuracy']}, AUC {metrics['test_auc']} "
            f"({metrics['n_positive']} positive, {metrics['n_negative']} negative)",
            highlight=False,
        )
