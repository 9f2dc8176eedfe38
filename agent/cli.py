"""The ``dataplan`` command: the composition root that wires the layers together.

Exit codes: 0 success, 1 the work ran but failed its check (replay mismatch, ledger violation),
2 refused before any work (invalid recipe, missing input, bad arguments).
"""

from __future__ import annotations

import typer

from agent import cli_ops, cli_run, cli_train

app = typer.Typer(
    name="dataplan",
    help="Find the best way to prepare LLM training data, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_ops.app, name="ops")
cli_run.register(app)
cli_train.register(app)

if __name__ == "__main__":
    app()
