"""The agent's tools: ``tools.base`` (the ``tool`` registry, validated ``dispatch``, results) and
``tools.catalog`` (every tool). Importing this package imports the catalog, which registers the tools."""

from tools import catalog  # noqa: F401  (registers the tools)
