"""The agent's only way to act: typed tools with JSON schemas and validated dispatch.

Each tool is a plain function of one pydantic input model. ``dispatch`` validates the arguments
against that model before anything runs and returns errors as data (``ok: false`` with a message
naming the field), so a planner, LLM or rule-based, can read and correct them. No tool runs shell
commands or evaluates text taken from data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from operators import RecipeError


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input: type[BaseModel]
    fn: Callable[[Any], dict[str, Any]]
    cost: Callable[[Any], float] = lambda _args: 0.0
    """Estimated compute in proxy-training tokens; above the approved budget the call is refused."""


TOOLS: dict[str, Tool] = {}


def tool(name: str, description: str, input_model: type[BaseModel], cost: Callable[[Any], float] | None = None):
    """Decorator registering a function as a tool."""

    def wrap(fn: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        TOOLS[name] = Tool(name, description, input_model, fn, cost or (lambda _a: 0.0))
        return fn

    return wrap


def tool_schemas(names: list[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI-style function schemas (what litellm passes as ``tools=``)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.input.model_json_schema()},
        }
        for t in TOOLS.values()
        if names is None or t.name in names
    ]


class ToolResult(BaseModel):
    tool: str
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    output_hash: str | None = None

    def log_entry(self, node: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The ``tool_log`` entry of this call made by graph node ``node``: what ``dataplan replay RUN`` re-executes."""
        return {
            "node": node,
            "tool": name,
            "input": args,
            "ok": self.ok,
            "output_hash": self.output_hash,
            "error": self.error,
        }


def dispatch(
    name: str, args: dict[str, Any] | str, *, allowed: list[str] | None = None, compute_budget: float | None = None
) -> ToolResult:
    """Validate and run one tool call. Never raises for bad input: errors come back as data."""
    if name not in TOOLS or (allowed is not None and name not in allowed):
        known = sorted(TOOLS if allowed is None else allowed)
        return ToolResult(tool=name, ok=False, error=f"unknown or not allowed tool {name!r}; allowed: {known}")
    t = TOOLS[name]
    try:
        parsed = t.input.model_validate_json(args) if isinstance(args, str) else t.input.model_validate(args)
    except ValidationError as err:
        return ToolResult(tool=name, ok=False, error=f"invalid arguments for {name}: {validation_message(err)}")
    if compute_budget is not None and (cost := t.cost(parsed)) > compute_budget:
        return ToolResult(
            tool=name,
            ok=False,
            error=f"{name} would spend ~{cost:,.0f} training tokens, above the approved {compute_budget:,.0f}; needs approval",
        )
    try:
        output = t.fn(parsed)
    except (RecipeError, ValueError, FileNotFoundError) as err:
        return ToolResult(tool=name, ok=False, error=str(err))
    return ToolResult(tool=name, ok=True, output=output, output_hash=stable_hash(output))


def validation_message(err: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it (what a planner reads to retry)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(input)'}: {e['msg']}" for e in err.errors())


def stable_hash(data: Any) -> str:
    """sha256 of canonical JSON, ignoring volatile keys (timings, absolute paths, timestamps)."""
    return hashlib.sha256(json.dumps(_stable(data), sort_keys=True, default=str).encode()).hexdigest()


VOLATILE_KEYS = {
    "seconds",
    "created_at",
    "tokens_per_s",
    "mfu",
    "dir",
    "path",
    "paths",
    "figures",
    "time_split",
    "report",
    "plots",
}


def _stable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if k not in VOLATILE_KEYS}
    if isinstance(data, list):
        return [_stable(v) for v in data]
    return data
