"""The ``dataplan`` command as a user runs it: separate processes, exit codes, JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATAPLAN = [sys.executable, "-m", "agent.cli"]


def dataplan(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DATAPLAN, *args], capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=600
    )


def _ray_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_ops_list_json_has_every_operator_with_schema() -> None:
    from operators import all_operators

    res = dataplan("ops", "list", "--json")
    assert res.returncode == 0, res.stderr
    ops = json.loads(res.stdout)
    assert [o["name"] for o in ops] == [c.name for c in all_operators()]
    by_name = {o["name"]: o for o in ops}
    assert by_name["length_filter"]["params_schema"]["properties"]["min_words"]["default"] == 1
    assert by_name["jsonl"]["kind"] == "reader" and "malformed_json" in by_name["jsonl"]["reasons"]
    assert all(o["params_schema"]["type"] == "object" for o in ops)


def test_ops_show_and_unknown_operator() -> None:
    res = dataplan("ops", "show", "length_filter", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["signals"] == {"n_chars": "int64", "n_words": "int64"}
    res = dataplan("ops", "show", "lenght_filter")
    assert res.returncode == 2 and "did you mean length_filter" in res.stderr


def test_run_then_replay_from_the_command_line(shared_data: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: cli\nsources:\n  - {{name: legal, uri: {shared_data}/domains/legal_spdx_license_texts.jsonl}}\n"
        "steps:\n  - {op: length_filter, params: {min_words: 100}}\n"
    )
    ray_tmp = tempfile.mkdtemp(prefix="dpray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {"DATAPLAN_NUM_CPUS": "1", "COLUMNS": "200", "RAY_TMPDIR": ray_tmp}
    res = dataplan("run", str(recipe), "--out", str(tmp_path / "out"), "--json", env=env)
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    assert manifest["sources"]["legal"] == {"input": 460, "kept": 401, "dropped": 59}
    assert "too_few_words=59" in res.stderr and "legal: 460 in = 401 kept + 59 dropped" in res.stderr

    res = dataplan("replay", str(tmp_path / "out" / "manifest.json"), "--out", str(tmp_path / "again"), env=env)
    assert res.returncode == 0, res.stderr
    assert f"replay ok: output_sha256 {manifest['output_sha256']}" in " ".join(res.stderr.split())
    assert _ray_processes(ray_tmp) == []  # the local Ray each command started is gone


def test_refusals_exit_2_before_any_work(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sources:\n  - {name: a, uri: /nonexistent/*.jsonl}\nsteps: [{op: length_filter}]\n")
    res = dataplan("run", str(recipe), "--out", str(tmp_path / "o"))
    assert (
        res.returncode == 2
        and "sources[a].uri: '/nonexistent/*.jsonl'" in res.stderr
        and "matches no readable file" in res.stderr
    )
    assert not (tmp_path / "o").exists()
    res = dataplan("replay", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "is neither a path nor a run id in this workspace" in " ".join(res.stderr.split())


def test_offline_defaults_are_set_on_import_unless_user_set_them() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "RAY_USAGE_STATS_ENABLED", "MLFLOW_DISABLE_TELEMETRY")
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "False"
    code = "import os, operators; print(os.environ['HF_HUB_OFFLINE'], os.environ['RAY_USAGE_STATS_ENABLED'], os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.stdout.split() == ["1", "0", "False"]


@pytest.mark.parametrize(("require", "outcome", "code"), [("0", "1 skipped", 0), ("1", "1 error", 1)])
def test_shared_data_absent_skips_or_fails_under_ci(tmp_path: Path, require: str, outcome: str, code: int) -> None:
    shutil.copy(REPO / "tests/conftest.py", tmp_path / "conftest.py")
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_data(shared_data):\n    assert shared_data.exists()\n")
    env = {**os.environ, "DATAPLAN_SHARED_DATA": str(tmp_path / "absent"), "DATAPLAN_REQUIRE_SHARED": require}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(probe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert outcome in res.stdout and res.returncode == code, res.stdout
    assert "shared data not found" in res.stdout


def test_readme_operator_table_is_the_generated_one() -> None:
    res = dataplan("ops", "list", "--markdown")
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- ops-table:start -->\n", 1)[1].split("\n<!-- ops-table:end -->", 1)[0]
    assert table == res.stdout.strip(), "README.md is stale: paste `dataplan ops list --markdown` between the markers"


@pytest.mark.parametrize(
    ("typed", "action"),
    [
        ("yes", "approve"),
        ("y", "approve"),
        (" Approve ", "approve"),
        ("a", "approve"),
        ("n", "reject"),
        ("reject", "reject"),
        ("e", "edit"),
        ("", None),
        ("yes please", None),
        ("ok", None),
        ("abort", None),
    ],
)
def test_only_review_words_act(typed: str, action: str | None) -> None:
    from agent.cli.agent_runs import review_action

    assert review_action(typed) == action
