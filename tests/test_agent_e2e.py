"""The main job end to end, as a user runs it: demo corpus -> plan -> review (rejected, revised, then
approved at a terminal) in new processes -> search -> finalize -> report; then history, status and
replay of the run (slow, run by make test)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATAPLAN_HOME": str(home),
        "COLUMNS": "200",
        "DATAPLAN_NUM_CPUS": "2",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


@contextlib.contextmanager
def mlflow_server(db: Path) -> Iterator[str]:
    """``mlflow server`` on the store, on a free local port: the base URL of its REST API."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=db.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _up(f"http://127.0.0.1:{port}/health"):
            assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/api/2.0/mlflow"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def dataplan(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=REPO,
        env=_env(home),
        input=input,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def dataplan_tty(home: Path, args: list[str], answers: list[str], timeout: float = 1200) -> tuple[int, str]:
    """Run ``dataplan`` on a pseudo-terminal, typing the next answer each time the review prompt shows."""
    main, child = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *args], cwd=REPO, env=_env(home), stdin=child, stdout=child, stderr=child
    )
    os.close(child)
    screen, typed, deadline = b"", 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([main], [], [], 1.0)[0]:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        screen += chunk
        if typed < len(answers) and screen.count(b"approve / edit / reject") > typed:
            os.write(main, answers[typed].encode())
            typed += 1
    os.close(main)
    return proc.wait(timeout=60), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))


def test_demo_review_resume_report_and_replay(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = dataplan(home, "demo", "--review", "--trials", "3", "--proxy-tokens", "16384", "--scale", "0.15")
    assert res.returncode == 0, res.stderr[-3000:]
    run_id = res.stdout.strip().splitlines()[-1].removeprefix("run_id: ")
    assert "proposal ready for review" in res.stderr
    assert f"run {run_id} " in res.stderr.split("profile:")[0]  # named before any work
    assert (home / "last_run").read_text().strip() == run_id
    assert "awaiting_review: True" in dataplan(home, "status", run_id).stdout
    listed = json.loads(dataplan(home, "runs", "--json").stdout)
    assert [(r["run_id"], r["next"]) for r in listed] == [(run_id, ["review"])]
    assert dataplan(home, "runs").stdout.startswith(f"{run_id}  proposed")

    status = json.loads(dataplan(home, "status", run_id, "--json").stdout)
    assert status["awaiting_review"] and status["next"] == ["review"] and status.get("search_dir") is None

    res = dataplan(home, "review", run_id, input="yes please\n")  # not an answer; then end of input
    assert res.returncode == 2 and "'yes please' is not an answer" in res.stderr
    assert f"no answer (end of input): run {run_id} is unchanged" in " ".join(res.stderr.split())
    assert json.loads(dataplan(home, "status", run_id, "--json").stdout)["awaiting_review"]
    proposal = yaml.safe_load((home / "runs" / run_id / "proposal.yaml").read_text())
    assert proposal["sources"] and "params" in yaml.safe_load((home / "runs" / run_id / "space.yaml").read_text())

    # rejected, then revised: the edited recipe is proposed again and the run waits for review
    assert "proposal rejected" in dataplan(home, "review", run_id, "--reject").stderr
    assert json.loads(dataplan(home, "status", run_id, "--json").stdout)["status"] == "rejected"
    length = next(s for s in proposal["steps"] if s["op"] == "length_filter")
    length["params"]["min_words"] = edited = length["params"].get("min_words", 1) + 7
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(proposal))
    res = dataplan(home, "review", run_id, "--recipe", str(tmp_path / "edited.yaml"), input="")
    assert res.returncode == 2 and f"run {run_id} was rejected; revised and proposed again" in res.stderr
    assert json.loads(dataplan(home, "status", run_id, "--json").stdout)["awaiting_review"]
    revised = yaml.safe_load((home / "runs" / run_id / "proposal.yaml").read_text())
    assert next(s for s in revised["steps"] if s["op"] == "length_filter")["params"]["min_words"] == edited

    # a new process resumes the checkpointed graph; typed at a real terminal: "" and "what" re-ask, "y" approves
    code, screen = dataplan_tty(home, ["review", run_id], answers=["\n", "what\n", "y\n"])
    assert code == 0, screen[-3000:]
    assert screen.count("approve / edit / reject") == 3 and "review: approved" in screen
    assert "predicted-optimal recipe" in screen and f"run_id: {run_id}" in screen

    status = json.loads(dataplan(home, "status", run_id, "--json").stdout)
    assert status["status"] == "done" and status["trials"]["complete"] + status["trials"]["pruned"] == 3
    report = Path(status["final"]["report"]).read_text()
    assert "## Confirmation" in report and "natural_mixture" in report

    with mlflow_server(home / "mlflow.db") as api:  # through MLflow's REST API, as a dashboard would
        exp = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": f"dataplan:{run_id}"}).json()
        exp = exp["experiment"]  # the run's own experiment, described by its goal
        assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.note.content"].startswith("a pretraining mix")
        query = {"experiment_ids": [exp["experiment_id"]], "filter": f"tags.`dataplan.run_id` = '{run_id}'"}
        found = requests.post(f"{api}/runs/search", json={**query, "max_results": 1000}).json()["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in found]
    parent = [r for r, t in zip(found, tags, strict=True) if t.get("dataplan.kind") == "search"]
    assert len(parent) == 1 and parent[0]["info"]["run_name"] == f"search:{run_id}"
    trials = [r for r, t in zip(found, tags, strict=True) if "dataplan.trial" in t]
    assert len(trials) == 3 and all(t["dataplan.goal"].startswith("a pretraining mix") for t in tags)
    for r in trials:  # the weights trained on, summing to 1, not the simplex draws
        weights = [float(p["value"]) for p in r["data"]["params"] if p["key"].startswith("weight.")]
        assert len(weights) >= 2 and sum(weights) == pytest.approx(1.0, abs=1e-4)

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
