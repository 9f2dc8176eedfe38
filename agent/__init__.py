"""The agent: LangGraph graph, planners, the ``dataplan`` CLI and the demo corpus.

dataplan's top-level packages have the names its layout requires (``agent``, ``tools``,
``experiments``, ``evaluators``, ``operators``); ``agent`` and ``tools`` are generic enough that
another installed distribution may claim them too. Importing ``agent`` checks that each of them
resolves to this checkout and refuses to go on, naming the conflicting path, when one does not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGES = ("agent", "tools", "experiments", "evaluators", "operators")
ROOT = Path(__file__).resolve().parent.parent


def shadowed_packages() -> dict[str, str]:
    """dataplan's top-level package names that resolve outside this checkout: name -> where."""
    found = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or origin.parent.parent != ROOT:
            found[name] = str(origin) if origin else "not importable"
    return found


if shadowed := shadowed_packages():
    name, where = next(iter(shadowed.items()))
    raise ImportError(
        f"dataplan: the package {name!r} resolves to {where}, not to this checkout ({ROOT}): another installed "
        "distribution uses the same top-level name. Install dataplan in its own virtual environment "
        "(`make install` creates .venv) or uninstall the other distribution."
    )
