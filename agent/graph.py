"""The agent: a LangGraph ``StateGraph`` checkpointed in SQLite, one thread per run.

understand_goal -> profile -> propose -> review (interrupt unless auto-approved) -> search ->
reflect (may extend the search over a refined space, at most ``max_rounds`` times) -> finalize.
Nodes are plain functions of the state; the work is done by ``tools`` (validated dispatch) and the
planner. Every tool call is appended to ``tool_log`` with its input and output hash, which is what
``dataplan replay RUN`` re-executes.
"""

from __future__ import annotations

import operator
import sqlite3
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from agent.goal import Goal
from agent.planners.base import planner_for
from operators import workspace
from tools.base import ToolResult, dispatch

UNAPPROVED_BUDGET = 1_000_000.0
"""Training tokens a tool may spend without an approved plan."""


class PlanState(TypedDict, total=False):
    run_id: str
    goal_text: str
    data: dict[str, str]
    goal_overrides: dict[str, Any]
    planner: dict[str, Any]
    auto_approve: bool
    goal: dict[str, Any]
    profile: dict[str, Any]
    proposal: dict[str, Any]
    previous_proposal: dict[str, Any] | None
    decision: str
    review_error: str | None
    approved_budget: float
    search_dir: str
    round: int
    refined: bool
    final: dict[str, Any]
    status: str
    tool_log: Annotated[list[dict[str, Any]], operator.add]
    usage: Annotated[list[dict[str, Any]], operator.add]


def run_dir(run_id: str) -> Path:
    path = workspace() / "runs" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _call(node: str, name: str, args: dict[str, Any], budget: float | None = None) -> tuple[ToolResult, dict[str, Any]]:
    res = dispatch(name, args, compute_budget=budget)
    return res, res.log_entry(node, name, args)


# ---- nodes ------------------------------------------------------------------------------------


def understand_goal(state: PlanState) -> PlanState:
    planner = planner_for(state["planner"])
    goal = planner.understand(state["goal_text"], state["data"])
    if overrides := state.get("goal_overrides"):  # explicit settings (CLI options) beat the text
        kept = [d for d in goal.defaults if d not in overrides]
        goal = Goal.model_validate({**goal.model_dump(), **overrides, "defaults": kept})
    return {"goal": goal.model_dump(), "status": "understood", "round": 0, "usage": planner.drain_usage()}


def profile(state: PlanState) -> PlanState:
    goal = Goal.model_validate(state["goal"])
    sources = {n: u for n, u in goal.sources.items() if n not in goal.exclude_sources}
    args = {"sources": sources, "targets": goal.target_files, "sample_docs": 300}
    res, log = _call("profile", "profile_sources", args)
    if not res.ok:
        raise RuntimeError(f"profiling failed: {res.error}")
    return {"profile": res.output, "status": "profiled", "tool_log": [log]}


def propose(state: PlanState) -> PlanState:
    planner = planner_for(state["planner"])
    proposal, calls = planner.propose(Goal.model_validate(state["goal"]), state["profile"])
    return {
        "proposal": proposal,
        "previous_proposal": state.get("proposal"),
        "status": "proposed",
        "tool_log": calls,
        "usage": planner.drain_usage(),
    }


def review(state: PlanState) -> PlanState:
    budget = Goal.model_validate(state["goal"]).compute_budget()
    if state.get("auto_approve"):
        return {"decision": "approved", "approved_budget": budget, "status": "approved"}
    answer = interrupt(
        {
            "goal": state["goal"],
            "proposal": state["proposal"],
            "previous_proposal": state.get("previous_proposal"),
            "review_error": state.get("review_error"),
            "compute_budget": budget,
        }
    )
    action = answer.get("action")
    if action == "approve":
        return {"decision": "approved", "approved_budget": budget, "status": "approved", "review_error": None}
    if action == "reject":
        return {"decision": "rejected", "status": "rejected"}
    args = {
        "recipe": answer.get("recipe", state["proposal"]["recipe"]),
        "space": answer.get("space", state["proposal"]["space"]),
        "rationale": "edited at review",
    }
    res, log = _call("review", "propose", args)
    if not res.ok:
        return {"decision": "edit", "review_error": res.error, "tool_log": [log]}
    return {
        "decision": "edit",
        "proposal": res.output,
        "previous_proposal": state["proposal"],
        "review_error": None,
        "tool_log": [log],
    }


def search(state: PlanState) -> PlanState:
    folder = str(run_dir(state["run_id"]) / "search")
    goal = Goal.model_validate(state["goal"])
    logs = []
    if not (Path(folder) / "search.json").exists():
        p = state["proposal"]
        labels = {"dataplan.run_id": state["run_id"], "dataplan.goal": goal.text[:500]}
        args = {
            "dir": folder,
            "recipe": p["recipe"],
            "space": p["space"],
            "trials": goal.trials,
            "seed": goal.search_seed,
            "labels": labels,
            "experiment": f"dataplan:{state['run_id']}",
        }
        res, log = _call("search", "start_search", args, state["approved_budget"])
        logs.append(log)
        if not res.ok:
            raise RuntimeError(f"could not start the search: {res.error}")
    args = {"dir": folder, "time_budget_s": goal.hours * 3600 if goal.hours else None}
    res, log = _call("search", "run_search", args, state["approved_budget"])
    if not res.ok:
        raise RuntimeError(f"search failed: {res.error}")
    return {"search_dir": folder, "status": "searched", "tool_log": [*logs, log]}


def reflect(state: PlanState) -> PlanState:
    goal = Goal.model_validate(state["goal"])
    if state.get("round", 0) >= goal.max_rounds:
        return {"refined": False}
    res, log = _call("reflect", "trial_summaries", {"dir": state["search_dir"], "top": 20})
    planner = planner_for(state["planner"])
    new_space = planner.reflect(goal, state["proposal"], res.output or {})
    logs = [log]
    refined = False
    if new_space is not None:
        args = {"dir": state["search_dir"], "space": new_space, "more_trials": max(3, goal.trials // 2)}
        ext, ext_log = _call("reflect", "extend_search", args)
        logs.append(ext_log)
        refined = ext.ok
    return {"round": state.get("round", 0) + 1, "refined": refined, "tool_log": logs, "usage": planner.drain_usage()}


def finalize(state: PlanState) -> PlanState:
    goal = Goal.model_validate(state["goal"])
    args = {
        "dir": state["search_dir"],
        "confirm": goal.confirm,
        "confirm_preset": goal.preset,
        "confirm_tokens": goal.confirm_run_tokens,
        "confirm_tokenizer": goal.confirm_tokenizer,
        "seeds": list(range(goal.confirm_seeds)),
        "max_seeds": goal.confirm_max_seeds,
        "ablation_max_seeds": goal.ablation_max_seeds,
    }
    res, log = _call("finalize", "finalize", args, state["approved_budget"])
    if not res.ok:
        raise RuntimeError(f"finalize failed: {res.error}")
    return {"final": res.output, "status": "done", "tool_log": [log]}


# ---- wiring -----------------------------------------------------------------------------------


def _after_review(state: PlanState) -> str:
    return {"approved": "search", "rejected": END}.get(state["decision"], "review")


def _after_reflect(state: PlanState) -> str:
    return "search" if state.get("refined") else "finalize"


def build_graph(checkpointer: SqliteSaver):
    g = StateGraph(PlanState)
    for fn in (understand_goal, profile, propose, review, search, reflect, finalize):
        g.add_node(fn.__name__, fn)
    g.add_edge(START, "understand_goal")
    g.add_edge("understand_goal", "profile")
    g.add_edge("profile", "propose")
    g.add_edge("propose", "review")
    g.add_conditional_edges("review", _after_review, ["search", "review", END])
    g.add_edge("search", "reflect")
    g.add_conditional_edges("reflect", _after_reflect, ["search", "finalize"])
    g.add_edge("finalize", END)
    return g.compile(checkpointer=checkpointer)


def repropose(graph, run_id: str, recipe: dict | None = None, space: dict | None = None) -> dict[str, Any]:
    """Open a rejected run again: its proposal, revised by ``recipe`` and/or ``space`` when given
    (validated by the ``propose`` tool, as an edit at review is), is proposed again and the run
    stops at review. Returns what review shows; raises ``ValueError`` naming what is invalid."""
    state = graph.get_state(thread(run_id)).values
    args = {
        "recipe": recipe or state["proposal"]["recipe"],
        "space": space or state["proposal"]["space"],
        "rationale": "revised after rejection",
    }
    res, log = _call("propose", "propose", args)
    if not res.ok:
        raise ValueError(res.error)
    revised = {"proposal": res.output, "previous_proposal": state["proposal"], "decision": None, "tool_log": [log]}
    graph.update_state(thread(run_id), {**revised, "status": "proposed", "review_error": None}, as_node="propose")
    for _ in graph.stream(None, thread(run_id)):  # runs review, which stops at its interrupt
        pass
    return next(i.value for task in graph.get_state(thread(run_id)).tasks for i in task.interrupts)


def run_ids(checkpointer: SqliteSaver) -> list[str]:
    """Every run (thread) the checkpointer holds."""
    checkpointer.setup()
    return [row[0] for row in checkpointer.conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]


def open_checkpointer() -> SqliteSaver:
    """The SQLite checkpointer in ``<workspace>/agent.db`` (one thread per run id)."""
    conn = sqlite3.connect(workspace() / "agent.db", check_same_thread=False)
    return SqliteSaver(conn)


def thread(run_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_id}, "recursion_limit": 100}
