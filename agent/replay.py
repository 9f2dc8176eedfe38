"""``dataplan replay RUN``: re-execute a run's recorded, validated tool calls without any LLM.

Look-and-propose calls (profiling, validation, proposals, pipeline runs) are dispatched again with
their recorded input and must give the same output hash. A search is replayed through its
recipes: every completed trial's pipeline and the predicted-optimal recipe's pipeline are
re-executed from scratch and must reproduce their recorded ``output_sha256``. Calls that read live
state (``trial_summaries``) or were refused when recorded are listed as skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from operators import replay as replay_manifest
from tools.base import dispatch

REDISPATCH = {"list_operators", "describe_operator", "profile_sources", "validate_recipe", "propose", "run_pipeline"}
SEARCH_TOOLS = {"start_search", "run_search", "extend_search", "finalize"}


def replay_run(values: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Replay the tool log of a run's final state into ``out_dir``; ``ok`` when every hash matches."""
    checks: list[dict[str, Any]] = []
    for i, entry in enumerate(values.get("tool_log", [])):
        tool = entry["tool"]
        if not entry["ok"]:
            checks.append(
                {"call": i, "tool": tool, "status": "skipped", "why": f"refused when recorded: {entry['error']}"}
            )
        elif tool in REDISPATCH:
            args = dict(entry["input"])
            if tool == "run_pipeline":
                args["out_dir"] = str(out_dir / f"call{i}")
            res = dispatch(tool, args)
            same = res.ok and res.output_hash == entry["output_hash"]
            checks.append(
                {
                    "call": i,
                    "tool": tool,
                    "status": "match" if same else "MISMATCH",
                    "expected": entry["output_hash"],
                    "actual": res.output_hash,
                }
            )
        elif tool not in SEARCH_TOOLS:
            checks.append({"call": i, "tool": tool, "status": "skipped", "why": "reads live state"})
    if values.get("search_dir"):
        checks += _replay_search(Path(values["search_dir"]), out_dir / "search")
    return {"ok": all(c["status"] != "MISMATCH" for c in checks), "checks": checks}


def _replay_search(folder: Path, out_dir: Path) -> list[dict[str, Any]]:
    manifests = sorted(folder.glob("trials/*/run/manifest.json"))
    predicted = folder / "confirm" / "predicted_optimal" / "search_scale" / "run" / "manifest.json"
    if predicted.exists():
        manifests.append(predicted)
    checks = []
    for manifest in manifests:
        name = manifest.parent.parent.relative_to(folder).as_posix()
        result = replay_manifest(manifest, out_dir / name.replace("/", "_"))
        checks.append(
            {
                "call": name,
                "tool": "pipeline",
                "status": "match" if result.ok else "MISMATCH",
                "expected": result.expected,
                "actual": result.actual,
            }
        )
    return checks
