"""``dataplan demo``: build the demo corpus (or take the user's folder of sources), then run the agent
on the demo goal with the rule-based planner and a small budget."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from agent.cli.console import console, fail
from agent.goal import GOAL_DEFAULTS

DEMO_GOAL = (
    "a pretraining mix for a small Python coding assistant, good at Python code and its documentation, "
    "no PII, {tokens} tokens"
)
SOURCE_PATTERNS = ("*.jsonl", "*.warc.gz")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="a folder of your own sources: each *.jsonl and *.warc.gz file in it is a source named by its stem "
        "(default: build the demo corpus)",
    ),
    corpus_dir: Path | None = typer.Option(
        None, "--corpus-dir", help="where to build the demo corpus (default: <workspace>/demo/corpus-seed<SEED>)"
    ),
    trials: int = typer.Option(6, "--trials", min=1, help="search trials"),
    tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="token budget of the mix: the N of the goal"),
    proxy_tokens: int = typer.Option(
        25_000,
        "--proxy-tokens",
        min=1,
        help="the nano proxies that confirm the result train on twice this many BPE tokens",
    ),
    search_preset: str = typer.Option(
        GOAL_DEFAULTS["search_preset"], "--search-preset", help="fidelity of the search trials (see README)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the demo corpus"),
    scale: float = typer.Option(1.0, "--scale", min=0.01, help="size of the demo corpus (1.0: about 3.3 MB)"),
    yes: bool = typer.Option(True, "--yes/--review", help="approve the proposal (default) or stop for review"),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS"),
) -> None:
    """Run the agent end to end on a corpus made from this Python installation (code, docs, licences,
    a noisy web crawl) with the goal of a small Python coding assistant; or on your own folder."""
    from agent.cli.agent_runs import parse_sources, start_run

    overrides = {
        "token_budget": tokens,
        "trials": trials,
        "proxy_tokens": proxy_tokens,
        "preset": "nano",
        "search_preset": search_preset,
        "max_rounds": 0,
        "ablation_max_seeds": 3,  # the ablation table at 3 seeds keeps the demo within 10 minutes
    }
    if data is not None:
        if not data.is_dir():
            fail(f"--data: {data} is not a folder")
        files = sorted(p for pattern in SOURCE_PATTERNS for p in data.glob(pattern))
        if not files:
            fail(f"--data: no *.jsonl or *.warc.gz files in {data}")
        sources = parse_sources([str(p) for p in files])
    else:
        sources, target = _build_corpus(corpus_dir, seed, scale)
        overrides["target_files"] = {target.stem: [str(target)]}
    goal = DEMO_GOAL.format(tokens=_human(tokens))
    console.print(f"goal: {goal}", highlight=False)
    console.print(
        f"planner: rule-based; {trials} trials of {search_preset} at {GOAL_DEFAULTS['search_tokens']:,} tokens, "
        f"confirmed by nano proxies at {2 * proxy_tokens:,} BPE tokens",
        highlight=False,
    )
    start_run(goal, sources, {"kind": "rules"}, auto_approve=yes, ray_address=ray_address, goal_overrides=overrides)


def _build_corpus(corpus_dir: Path | None, seed: int, scale: float) -> tuple[dict[str, str], Path]:
    """Build the demo corpus, print what it holds and where; returns its sources and target file."""
    from agent.demo.corpus import DemoDataError, build_demo_corpus
    from operators import workspace

    out = (corpus_dir or workspace() / "demo" / f"corpus-seed{seed}").resolve()
    start = time.perf_counter()
    try:
        with console.status("building the demo corpus from this Python installation"):
            manifest = build_demo_corpus(out, seed=seed, scale=scale)
    except DemoDataError as err:
        fail(str(err))
    table = Table(title=f"demo corpus (seed {seed}, built in {time.perf_counter() - start:.1f}s)")
    for col in ("source", "file", "docs", "bytes"):
        table.add_column(col, justify="right" if col in ("docs", "bytes") else "left")
    entries = {**manifest["sources"], **{f"target: {k}": v for k, v in manifest["target"].items()}}
    for name, e in entries.items():
        table.add_row(name, e["file"], str(e["docs"]), f"{e['bytes']:,}")
    console.print(table)
    for note in manifest["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"corpus: {out} (manifest.json lists sizes, sha256s and provenance)", highlight=False)
    sources = {name: str(out / e["file"]) for name, e in manifest["sources"].items()}
    (target,) = (out / e["file"] for e in manifest["target"].values())
    return sources, target


def _human(n: int) -> str:
    """1000000 -> "1M", 250000 -> "250k" (as the goal parser reads them); other numbers stay digits."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
