"""``python -m agent.cli``: the ``dataplan`` command."""

from agent.cli import app

app()
