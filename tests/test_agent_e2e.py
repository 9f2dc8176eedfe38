"""The main job end to end, as a user runs it: demo corpus -> plan -> review in a new process ->
search -> finalize -> report; then history, status and replay of the run (slow, run by make test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def dataplan(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATAPLAN_HOME": str(home),
        "COLUMNS": "200",
        "DATAPLAN_NUM_CPUS": "2",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
    )


def test_demo_review_resume_report_and_replay(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = dataplan(home, "demo", "--review", "--trials", "3", "--proxy-tokens", "16384", "--scale", "0.15")
    assert res.returncode == 0, res.stderr[-3000:]
    run_id = res.stdout.strip().splitlines()[-1].removeprefix("run_id: ")
    assert "proposal ready for review" in res.stderr

    status = json.loads(dataplan(home, "status", run_id, "--json").stdout)
    assert status["awaiting_review"] and status["next"] == ["review"] and status.get("search_dir") is None

    res = dataplan(home, "review", run_id, "--approve")  # a new process resumes the checkpointed graph
    assert res.returncode == 0, res.stderr[-3000:]
    assert "predicted-optimal recipe" in res.stderr and res.stdout.strip().endswith(f"run_id: {run_id}")

    status = json.loads(dataplan(home, "status", run_id, "--json").stdout)
    assert status["status"] == "done" and status["trials"]["complete"] + status["trials"]["pruned"] == 3
    report = Path(status["final"]["report"]).read_text()
    assert "## Confirmation" in report and "natural_mixture" in report

    nodes = [r["node"] for r in json.loads(dataplan(home, "history", run_id, "--json").stdout)]
    for node in ("understand_goal", "profile", "propose", "review", "search", "reflect", "finalize"):
        assert node in nodes

    manifest = Path(status["search_dir"]) / "confirm/predicted_optimal/search_scale/run/manifest.json"
    m = json.loads(manifest.read_text())
    for counts in m["sources"].values():  # the ledger invariant of the predicted-optimal recipe
        assert counts["input"] == counts["kept"] + counts["dropped"]
    assert pq.read_table(manifest.parent / "ledger.parquet").num_rows == m["input_docs"]

    res = dataplan(home, "replay", run_id, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    checks = json.loads(res.stdout[res.stdout.index("{\n") :])["checks"]  # Ray's raylet may print before it
    assert {c["status"] for c in checks} <= {"match", "skipped"}
    assert sum(c["tool"] == "pipeline" and c["status"] == "match" for c in checks) == 4  # 3 trials + predicted optimal
    assert any(c["tool"] == "profile_sources" and c["status"] == "match" for c in checks)
