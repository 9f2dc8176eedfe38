"""The ``dataplan`` command: the composition root that wires the layers together.

Exit codes: 0 success, 1 the work ran but failed its check (replay mismatch, ledger violation),
2 refused before any work (invalid recipe, missing input, bad arguments).
"""

from __future__ import annotations

import typer

from agent import cli_agent, cli_classifier, cli_demo, cli_ops, cli_profile, cli_run, cli_search, cli_train

app = typer.Typer(
    name="dataplan",
    help="Find the best way to prepare LLM training data, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_ops.app, name="ops")
app.add_typer(cli_classifier.app, name="classifier")
cli_run.register(app)
cli_search.register(app)
cli_agent.register(app)
cli_profile.register(app)
cli_demo.register(app)
cli_train.register(app)

if __name__ == "__main__":
    app()
