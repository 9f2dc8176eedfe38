"""Planner selection: the rule-based planner (offline default) or an LLM through litellm."""

from __future__ import annotations

import os
from typing import Any, Protocol

from agent.goal import Goal


class Planner(Protocol):
    name: str

    def understand(self, text: str, data: dict[str, str]) -> Goal: ...

    def propose(self, goal: Goal, profile: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(validated proposal {recipe, space, rationale, recipe_id}, tool-log entries)."""
        ...

    def reflect(self, goal: Goal, proposal: dict[str, Any], trials: dict[str, Any]) -> dict[str, Any] | None:
        """A refined search space, or None to stop searching."""
        ...

    def drain_usage(self) -> list[dict[str, Any]]: ...


def planner_config(model: str | None = None, api_base: str | None = None) -> dict[str, Any]:
    """What the graph stores to rebuild the planner in every node (``--model`` or ``DATAPLAN_MODEL``)."""
    model = model or os.environ.get("DATAPLAN_MODEL")
    return {"kind": "llm", "model": model, "api_base": api_base} if model else {"kind": "rules"}


def planner_for(config: dict[str, Any]) -> Planner:
    if config.get("kind") == "llm":
        from agent.planners.llm import LLMPlanner

        return LLMPlanner(config["model"], api_base=config.get("api_base"), mock=config.get("mock"))
    from agent.planners.rules import RulePlanner

    return RulePlanner()
