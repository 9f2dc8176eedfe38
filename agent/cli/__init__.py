"""The ``dataplan`` command: the composition root that wires the layers together.

Exit codes: 0 success, 1 the work ran but failed its check (replay mismatch, ledger violation),
2 refused before any work (invalid recipe, missing input, bad arguments).
"""

from __future__ import annotations

import typer

from agent.cli import (
    agent_runs,
    cache,
    classifier,
    demo,
    explain,
    export,
    mix,
    ops,
    profile,
    recipes,
    run,
    search,
    train,
)

app = typer.Typer(
    name="dataplan",
    help="Find the best way to prepare LLM training data, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(ops.app, name="ops")
app.add_typer(classifier.app, name="classifier")
app.add_typer(cache.app, name="cache")
app.add_typer(recipes.app, name="recipes")
app.add_typer(mix.app, name="mix")
run.register(app)
search.register(app)
agent_runs.register(app)
profile.register(app)
demo.register(app)
train.register(app)
export.register(app)
explain.register(app)
