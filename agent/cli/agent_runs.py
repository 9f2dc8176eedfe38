"""``dataplan plan | review | resume | history | status``: the agent from the command line."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import typer
import yaml
from langgraph.types import Command
from rich.markup import escape

from agent.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, console, fail, print_json
from agent.cli.search import confirm_line, trial_line
from operators import RecipeError, ray_session, remote_scheme, workspace

YES = typer.Option(False, "--yes", "-y", help="approve the proposal without review")


def register(app: typer.Typer) -> None:
    for fn in (plan, review, resume, history, status, runs):
        app.command(fn.__name__)(fn)


def plan(
    goal: str = typer.Argument(
        ..., help='the goal in plain language, e.g. "a 2M-token mix for a Python assistant, no PII"'
    ),
    data: list[str] = typer.Option(
        ..., "--data", "-d", help="a source: name=path_or_glob, or a path (name = file stem); repeat"
    ),
    yes: bool = YES,
    model: str | None = typer.Option(
        None, "--model", help="litellm model string for an LLM planner (default: DATAPLAN_MODEL, else rule-based)"
    ),
    api_base: str | None = typer.Option(
        None, "--api-base", help="base URL of an OpenAI-compatible server (e.g. a local vLLM)"
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
    trials: int | None = typer.Option(None, "--trials", help="search trials (overrides the goal text)"),
    preset: str | None = typer.Option(
        None, "--preset", help="neural proxy that confirms the result: nano, micro, mini, small"
    ),
    proxy_tokens: int | None = typer.Option(None, "--proxy-tokens", help="its training tokens (confirmation: twice)"),
    search_preset: str | None = typer.Option(
        None, "--search-preset", help="fidelity of the search trials: ngram3..ngram7 (count model) or a neural preset"
    ),
    search_tokens: int | None = typer.Option(None, "--search-tokens", help="training tokens per search trial"),
    search_seed: int | None = typer.Option(
        None, "--search-seed", min=0, help="seed of the search's sampler and trial proxies (default: 0)"
    ),
    rounds: int | None = typer.Option(None, "--rounds", help="reflect rounds after the first search"),
    confirm: bool | None = typer.Option(
        None, "--confirm/--no-confirm", help="confirm the result with neural proxies (default: yes)"
    ),
    confirm_tokens: int | None = typer.Option(
        None, "--confirm-tokens", min=1, help="tokens per confirmation run (default: 2x --proxy-tokens)"
    ),
    confirm_tokenizer: str | None = typer.Option(
        None, "--confirm-tokenizer", help="bpe (default: fitted on every source and target) or byte"
    ),
    confirm_seeds: int | None = typer.Option(
        None, "--confirm-seeds", min=2, help="paired seeds each recipe is confirmed with (default: 3)"
    ),
) -> None:
    """Understand the goal, profile the data, propose a recipe and search space; search after review."""
    from agent.planners.base import planner_config

    given = {
        "trials": trials,
        "preset": preset,
        "proxy_tokens": proxy_tokens,
        "search_preset": search_preset,
        "search_tokens": search_tokens,
        "search_seed": search_seed,
        "max_rounds": rounds,
        "confirm": confirm,
        "confirm_tokens": confirm_tokens,
        "confirm_tokenizer": confirm_tokenizer,
        "confirm_seeds": confirm_seeds,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    start_run(
        goal,
        parse_sources(data),
        planner_config(model, api_base),
        auto_approve=yes,
        ray_address=ray_address,
        goal_overrides=overrides,
    )


def start_run(
    goal_text: str,
    data: dict[str, str],
    planner: dict[str, Any],
    *,
    auto_approve: bool,
    ray_address: str | None,
    goal_overrides: dict[str, Any] | None = None,
) -> None:
    """Start a new agent run on ``data`` ({source: path}) and drive it until it ends or waits for
    review. ``goal_overrides`` (Goal fields) win over what the planner reads from the goal text."""
    run_id = uuid.uuid4().hex[:12]
    state = {
        "run_id": run_id,
        "goal_text": goal_text,
        "data": data,
        "planner": planner,
        "auto_approve": auto_approve,
        "goal_overrides": goal_overrides or {},
        "tool_log": [],
        "usage": [],
    }
    announce(run_id)
    _drive(run_id, state, ray_address)


def announce(run_id: str) -> None:
    """Name a new run before any work, and write its id to ``$DATAPLAN_HOME/last_run``: after a
    crash or a kill the user resumes it without listing folders."""

    (workspace() / "last_run").write_text(run_id + "\n")
    console.print(f"run {run_id} (`dataplan resume {run_id}` continues it after an interruption)", highlight=False)


def review(
    run_id: str = typer.Argument(..., help="run id printed by `dataplan plan`"),
    approve: bool = typer.Option(False, "--approve", help="approve without prompting"),
    reject: bool = typer.Option(False, "--reject", help="reject without prompting"),
    recipe: Path | None = typer.Option(None, "--recipe", help="edited recipe YAML to use instead of the proposal"),
    space: Path | None = typer.Option(None, "--space", help="edited search-space YAML"),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
) -> None:
    """Show the proposal (goal as understood, recipe, space, diff) and approve, edit or reject it.
    A rejected run is proposed again (revised by --recipe / --space when given) and reviewed."""
    from agent.cli.render import render_review

    snapshot = _snapshot(run_id)
    pending = _pending_review(snapshot)
    if pending is None and snapshot.values.get("status") == "rejected":
        pending = _repropose(run_id, recipe, space)
        recipe = space = None  # they are the proposal now
    if pending is None:
        fail(f"run {run_id} is not waiting for review (status: {snapshot.values.get('status')})")
    render_review(pending)
    files = write_proposal(run_id, pending["proposal"])
    console.print(f"proposal written to {files[0]} and {files[1]}", highlight=False)
    if recipe or space:
        answer: dict[str, Any] = {"action": "edit"}
        if recipe:
            answer["recipe"] = _edited(recipe)
        if space:
            answer["space"] = _edited(space)
    elif approve or reject:
        answer = {"action": "approve" if approve else "reject"}
    else:
        action = ask_review(run_id)
        if action == "edit":
            console.print(
                f"edit {files[0]} and/or {files[1]}, then run "
                f"`dataplan review {run_id} --recipe {files[0]} --space {files[1]}`; the run is unchanged",
                highlight=False,
            )
            return
        answer = {"action": action}
    _drive(run_id, Command(resume=answer), ray_address)


def _repropose(run_id: str, recipe: Path | None, space: Path | None) -> dict[str, Any]:
    """A rejected run proposed again, revised by the edited files when given; what review shows."""
    from agent.graph import build_graph, open_checkpointer, repropose

    edits = {name: _edited(path) for name, path in (("recipe", recipe), ("space", space)) if path}
    try:
        pending = repropose(build_graph(open_checkpointer()), run_id, **edits)
    except ValueError as err:
        fail(f"the revised proposal is not valid, run {run_id} stays rejected: {err}")
    what = "revised and proposed again" if edits else "proposed again"
    console.print(f"run {run_id} was rejected; {what}", highlight=False)
    return pending


def _edited(path: Path) -> Any:
    """An edited proposal file's YAML; exit 2 naming the file when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        fail(f"cannot read {path} as YAML: {' '.join(str(err).split())}; the run is unchanged")


ANSWERS = {
    "approve": ("approve", "a", "yes", "y"),
    "reject": ("reject", "r", "no", "n"),
    "edit": ("edit", "e"),
}
"""The words ``review`` acts on (case and surrounding spaces ignored); anything else is asked again."""


def review_action(text: str) -> str | None:
    """``approve``, ``reject`` or ``edit`` for one of their words, None for anything else."""
    word = text.strip().lower()
    return next((action for action, words in ANSWERS.items() if word in words), None)


def ask_review(run_id: str) -> str:
    """Ask until the answer is a review word; at end of input, leave the run as it is and exit 2."""
    while True:
        try:
            text = typer.prompt("approve / edit / reject", default="", show_default=False)
        except typer.Abort:  # end of input, or Ctrl-C
            fail(
                f"no answer (end of input): run {run_id} is unchanged; `dataplan review {run_id} --approve` or --reject"
            )
        if (action := review_action(text)) is not None:
            return action
        console.print(f"{text.strip()!r} is not an answer: type approve (a, yes, y), edit (e) or reject (r, no, n)")


def write_proposal(run_id: str, proposal: dict[str, Any]) -> tuple[Path, Path]:
    """The proposal's recipe and space as YAML files in the run folder, to read or edit."""
    from agent.graph import run_dir

    folder = run_dir(run_id)
    paths = (folder / "proposal.yaml", folder / "space.yaml")
    for path, data in zip(paths, (proposal["recipe"], proposal["space"]), strict=True):
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return paths


def resume(
    run_id: str = typer.Argument(...),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
) -> None:
    """Continue a run from its last checkpoint (after a crash, a kill or a stop)."""
    snapshot = _snapshot(run_id)
    if _pending_review(snapshot) is not None:
        fail(f"run {run_id} waits for review: `dataplan review {run_id}`")
    if not snapshot.next:
        console.print(f"run {run_id} has finished (status: {snapshot.values.get('status')})")
        return
    _drive(run_id, None, ray_address)


def history(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """The run's checkpoints: step, node that wrote it, what runs next, time."""
    from agent.graph import build_graph, open_checkpointer, thread

    graph = build_graph(open_checkpointer())
    snaps = list(graph.get_state_history(thread(run_id)))[::-1]  # oldest first
    rows = []
    for before, snap in zip([None, *snaps], snaps, strict=False):
        # the node that wrote a checkpoint is what the previous checkpoint said would run next
        node = ",".join(before.next) if before is not None else (snap.metadata or {}).get("source", "input")
        rows.append(
            {
                "step": (snap.metadata or {}).get("step"),
                "node": node,
                "next": list(snap.next),
                "created_at": snap.created_at,
                "checkpoint_id": snap.config["configurable"]["checkpoint_id"],
            }
        )
    if not rows:
        fail(f"no run {run_id!r} in this workspace")
    if as_json:
        print_json(rows)
        return
    for r in rows:
        console.print(
            f"{r['step']:>3}  {r['created_at']}  {r['node'] or '-':<16} -> {', '.join(r['next']) or 'end'}",
            highlight=False,
        )


def status(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Where a run stands: node, decision, search progress, final result."""
    snapshot = _snapshot(run_id)
    v = snapshot.values
    out = {
        "run_id": run_id,
        "status": v.get("status"),
        "next": list(snapshot.next),
        "search_dir": v.get("search_dir") or _started_search(run_id),
        "awaiting_review": _pending_review(snapshot) is not None,
        "tool_calls": len(v.get("tool_log", [])),
    }
    if out["search_dir"]:
        from experiments.study import Search

        out["trials"] = Search(out["search_dir"]).counts()
    if v.get("final"):
        out["final"] = {k: v["final"][k] for k in ("predicted_recipe", "report", "best_observed") if k in v["final"]}
    if as_json:
        print_json(out)
        return
    for key, value in out.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {n}" for k, n in value.items() if n)
        else:
            shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key + ':':<16} {shown if shown not in (None, [], '') else '-'}")


def runs(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The agent runs in this workspace, most recently updated first: id, status, what runs next,
    last update and the goal."""
    from agent.graph import build_graph, open_checkpointer, run_ids, thread

    checkpointer = open_checkpointer()
    graph = build_graph(checkpointer)
    rows = []
    for run_id in run_ids(checkpointer):
        snap = graph.get_state(thread(run_id))
        if not snap.values:
            continue
        rows.append(
            {
                "run_id": run_id,
                "status": snap.values.get("status"),
                "next": list(snap.next),
                "updated": snap.created_at,
                "goal": snap.values.get("goal_text", ""),
            }
        )
    rows.sort(key=lambda r: r["updated"] or "", reverse=True)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no agent runs in this workspace; start one with `dataplan plan GOAL --data SRC`")
        return
    for r in rows:
        goal = r["goal"] if len(r["goal"]) <= 60 else r["goal"][:57] + "..."
        print(
            f"{r['run_id']}  {r['status'] or '-':<10} {', '.join(r['next']) or 'end':<10} {r['updated'][:19]}  {goal}"
        )


def _started_search(run_id: str) -> str | None:
    """The search folder of a run whose search node started but never returned (killed mid-search)."""

    folder = workspace() / "runs" / run_id / "search"
    return str(folder) if (folder / "search.json").exists() else None


def parse_sources(items: list[str]) -> dict[str, str]:
    """``name=path`` or ``path`` (name = file stem, before any extension) -> {name: absolute path}.
    A path is a file, a folder or a glob; a remote URI (``s3://...``) is kept as given: the recipe
    mirrors it into the workspace."""
    out: dict[str, str] = {}
    for item in items:
        name, _, path = item.partition("=") if "=" in item.split("://", 1)[0] else ("", "", item)
        name = name or Path(path.rstrip("/")).name.split(".")[0]
        if name in out:
            fail(f"--data: source name {name!r} given twice; use name=path")
        out[name] = _absolute(path)
    return out


def _absolute(path: str) -> str:
    if remote_scheme(path):
        return path
    local = Path(path).expanduser()
    return str(local.resolve()) if not any(c in path for c in "*?[") else str(Path.cwd() / local)


def _snapshot(run_id: str):
    from agent.graph import build_graph, open_checkpointer, thread

    snap = build_graph(open_checkpointer()).get_state(thread(run_id))
    if not snap.values:
        fail(f"no run {run_id!r} in this workspace (DATAPLAN_HOME); `dataplan plan` prints the id")
    return snap


def _pending_review(snapshot) -> dict[str, Any] | None:
    for task in snapshot.tasks:
        for intr in task.interrupts:
            return intr.value
    return None


def _drive(run_id: str, payload: Any, ray_address: str | None) -> None:
    """Run the graph until it ends or interrupts; print where things are; last line `run_id: <id>`."""
    from agent.graph import build_graph, open_checkpointer, thread
    from experiments.progress import listening

    graph = build_graph(open_checkpointer())
    try:
        with ray_session(ray_address), listening(trial_line, confirm_line):
            for update in graph.stream(payload, thread(run_id), stream_mode="updates"):
                for node, values in update.items():
                    if node != "__interrupt__":
                        console.print(f"[bold]{node}[/]: {escape(str((values or {}).get('status', 'done')))}")
    except (RecipeError, RuntimeError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        console.print(f"fix the cause, then `dataplan resume {run_id}`")
        print(f"run_id: {run_id}")
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a search or finalize: their work is kept
        console.print(f"[yellow]interrupted[/]: finished work is kept; continue with `dataplan resume {run_id}`")
        print(f"run_id: {run_id}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    snapshot = graph.get_state(thread(run_id))
    if _pending_review(snapshot) is not None:
        console.print(f"proposal ready for review: `dataplan review {run_id}`")
    elif snapshot.values.get("final"):
        from agent.cli.render import render_final

        render_final(snapshot.values["final"])
    elif snapshot.values.get("status") == "rejected":
        console.print("proposal rejected; nothing was run")
    print(f"run_id: {run_id}")
