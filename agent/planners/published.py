"""Starting from a published pipeline: a goal that asks for one ("start from FineWeb's pipeline",
"use the C4 recipe", "based on RefinedWeb") gets a proposal whose steps are that pipeline's
(``recipes/<name>.yaml``: C4, Raffel et al. 2020; Gopher, Rae et al. 2021; RefinedWeb, Penedo et al.
2023; FineWeb, Penedo et al. 2024; DCLM-baseline, Li et al. 2024), in its order and with its
parameters, over the goal's sources. Shared by both planners: the rule-based one finds the name in
the goal text, an LLM sets ``Goal.pipeline`` itself; both state it in the rationale, and an LLM's
proposal must keep the pipeline's steps in order.
"""

from __future__ import annotations

import re
from typing import Any

from experiments.baselines import EXTRACTION, pipeline_steps

NAMES = {
    "c4": r"c4",
    "gopher": r"gopher|massivetext",
    "refinedweb": r"refined[- ]?web",
    "fineweb": r"fine[- ]?web(?![- ]?edu)",
    "dclm_baseline": r"dclm(?:[-_ ]baseline)?",
}
"""How a goal names each pipeline (FineWeb-Edu is not FineWeb: it has no recipe here)."""
_BEFORE = (
    r"\b(?:start(?:ing|s)?\s+(?:from|with)|begin(?:ning|s)?\s+with|based\s+on|build(?:ing|s)?\s+on"
    r"|follow(?:ing|s)?|us(?:e|es|ing))\s+(?:the\s+)?"
)
_ONE_FILTER = r"(?![- ](?:quality|repetition|rules?|heuristics?)\b)"
"""Not "use Gopher quality rules": that names one of its filters, not the pipeline."""
_AFTER = r"(?:['’]s|[- ]style)?\s+(?:pipeline|recipe|filters|filtering|processing|preprocessing)\b"


def named_pipeline(text: str) -> str | None:
    """The published pipeline a goal asks to start from: its name after "start from", "use",
    "based on", "follow" (not followed by "quality", "repetition", "rules": one of its filters), or
    before "pipeline", "recipe", "filters"; None when the goal only mentions one ("better than C4")
    or names none."""
    low = text.lower()
    for name, pattern in NAMES.items():
        if re.search(rf"{_BEFORE}(?:{pattern})\b{_ONE_FILTER}|\b(?:{pattern}){_AFTER}", low):
            return name
    return None


def pipeline_note(name: str) -> str:
    """The rationale's line saying where the steps come from."""
    return (
        f"- steps: the published {name} pipeline (recipes/{name}.yaml), as the goal asks: its steps in its "
        "order with its parameters, over the goal's sources (text extraction on the HTML ones)"
    )


def pipeline_problem(name: str, recipe: dict[str, Any]) -> str | None:
    """Why a proposed recipe does not start from the pipeline ``name``: some of its steps are missing
    or out of order (steps added between them are allowed; text extraction depends on the sources).
    None when it does."""
    wanted = [s["op"] for s in pipeline_steps(name, []) if s["op"] != EXTRACTION]
    ops = iter(s.get("op") for s in recipe.get("steps") or [] if isinstance(s, dict))
    if all(op in ops for op in wanted):  # an ordered subsequence: ``in`` consumes the iterator
        return None
    return (
        f"the goal asks to start from the published {name} pipeline: the recipe's steps must include its steps "
        f"in this order: {wanted} (recipes/{name}.yaml; its text extraction on the HTML sources)"
    )
