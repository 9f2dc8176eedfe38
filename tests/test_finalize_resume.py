"""Finalize is resumable and visible: each confirmation training is recorded as it finishes, a killed
finalize resumes without retraining what finished, SIGTERM exits 130 with one line; `plan`'s
confirmation settings reach the budget and the finalize call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_search import _write_inputs

REPO = Path(__file__).resolve().parent.parent
FINALIZE = ["--confirm-tokens", "2048", "--confirm-seeds", "2", "--max-seeds", "2", "--no-ablate"]
"""The cheapest confirmation: nano at 2k tokens, 2 seeds, no ablation (about 15 trainings)."""


def _searched(shared: Path, tmp_path: Path) -> Path:
    """A finished 3-trial search on the cheapest proxy (ngram3, 20k tokens), tracked in tmp_path."""
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared, tmp_path, 3)
    space = {**yaml.safe_load(space_path.read_text()), "proxy": {"preset": "ngram3", "tokens": 20000}}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        search = Search.create(tmp_path / "s", load_recipe(recipe_path), space, n_trials=3, pruner="none")
        assert search.run()["complete"] == 3
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return search.folder


def _finalize(folder: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATAPLAN_NUM_CPUS": "1",
        "COLUMNS": "200",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder.parent / 'mlflow.db'}",
    }
    cmd = [sys.executable, "-m", "agent.cli", "finalize", str(folder), *FINALIZE, *extra]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _records(folder: Path) -> list[dict]:
    path = folder / "confirmations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for_records(proc: subprocess.Popen, folder: Path, n: int) -> int:
    deadline = time.monotonic() + 300
    while len(_records(folder)) < n:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "finalize recorded too few trainings in 300 s"
        time.sleep(0.2)
    return len(_records(folder))


def test_killed_finalize_resumes_and_retrains_only_what_had_not_finished(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    from experiments.study import Search
    from experiments.targets import exclude_held_out
    from operators import load_recipe

    folder = _searched(shared_data, tmp_path)
    first = _finalize(folder)
    kept = _wait_for_records(first, folder, 2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    kept = len(_records(folder))  # a training may have finished between the poll and the kill
    assert kept >= 2

    again = _finalize(folder)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    lines = [line.split() for line in err.splitlines() if line.startswith("confirm ")]
    records = _records(folder)
    keys = [(r["recipe_id"], r["setup"], r["seed"]) for r in records]
    assert len(set(keys)) == len(keys)  # nothing was trained twice
    planned = int(lines[-1][1].split("/")[1])
    assert len(lines) == planned == len(records)  # one progress line per training, n of N
    assert sum(line[-1] == "(recorded)" for line in lines) == kept  # reused what the killed run finished
    assert sum(line[-1] == "(trained)" for line in lines) == planned - kept  # trained only the rest
    final = json.loads((folder / "final.json").read_text())
    confirm = [r for r in records if r["scale"] == "confirm"]
    assert final["confirm"]["runs"] == len(confirm) and {r["tokens"] for r in confirm} == {2048}
    predicted = next(s for s in final["confirm"]["scores"] if s["name"] == "predicted_optimal")
    recorded = {r["seed"]: r["objective"] for r in confirm if r["recipe_id"] == predicted["recipe_id"]}
    assert predicted["confirm"] == [recorded[0], recorded[1]]  # the scores are the recorded trainings
    manifest = json.loads(Path(final["manifest"]).read_text())  # the predicted recipe's, trained or recorded
    recipe = load_recipe(final["predicted_recipe"])
    assert recipe.recipe_id() == predicted["recipe_id"]
    assert manifest["recipe_id"] == exclude_held_out(recipe, Search(folder).config.held_out_ids).recipe_id()


def test_sigterm_during_finalize_exits_130_in_one_line_keeping_finished_trainings(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    folder = _searched(shared_data, tmp_path)
    proc = _finalize(folder, "--json")
    _wait_for_records(proc, folder, 1)  # a training finished: the next one of ~15 is running
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = len(_records(folder))
    assert 1 <= kept < 15 and not (folder / "final.json").exists()
    assert out == "" and "Traceback" not in err and "SIGTERM received" not in err
    message = [line for line in err.splitlines() if "interrupted" in line]
    assert message == [
        f"interrupted during finalize: {kept} finished confirmation trainings are kept in "
        f"{folder / 'confirmations.jsonl'}; continue with `dataplan finalize {folder}`"
    ]
    assert not any(line.startswith("confirm ") for line in err.splitlines())  # --json: no progress lines


def test_a_torn_last_record_is_cut_and_the_next_one_reads(tmp_path: Path) -> None:
    from experiments.confirm_log import ConfirmLog

    entry = {"recipe_id": "r1", "setup": "s", "seed": 0, "objective": 3.5, "bpb": {"t": 3.5}}
    log = ConfirmLog(tmp_path)
    log.append(entry)
    with (tmp_path / "confirmations.jsonl").open("a") as f:
        f.write('{"recipe_id": "r1", "setup": "s", "se')  # a kill in the middle of a write
    again = ConfirmLog(tmp_path)
    assert list(again.entries) == [("r1", "s", 0)]
    again.append({**entry, "seed": 1})
    assert list(ConfirmLog(tmp_path).entries) == [("r1", "s", 0), ("r1", "s", 1)]


def test_plan_confirmation_settings_size_the_budget_and_the_finalize_call() -> None:
    from agent.goal import Goal
    from experiments.confirm import confirm_cost

    base = {"text": "a mix", "sources": {"code": "code.jsonl"}, "trials": 4, "search_tokens": 1000, "max_rounds": 0}
    assert Goal(**base, confirm=False).compute_budget() == 4000
    goal = Goal(**base, confirm_tokens=5000, confirm_seeds=6)
    assert (goal.confirm_run_tokens, goal.confirm_max_seeds) == (5000, 6)
    assert goal.compute_budget() == 4000 + confirm_cost(5000, 10, 6, 6)
    assert Goal(**base, proxy_tokens=700).confirm_run_tokens == 1400  # the default: twice the proxy's
    with pytest.raises(ValueError, match="confirm_seeds"):
        Goal(**base, confirm_seeds=1)


def test_records_stay_valid_when_the_proxy_spec_gains_a_field_that_does_not_change_a_result() -> None:
    """``rungs`` only decides when a search stops a trial; a finished training's record made before
    the field existed (or with another value) is still that training's result."""
    from experiments.confirm_log import setup_fingerprint
    from experiments.search_config import SearchConfig

    config = SearchConfig.model_validate(
        {"recipe_yaml": "", "base_dir": ".", "space": {}, "objective": {"targets": [{"name": "t", "files": ["t"]}]}}
    )
    rungs = config.model_copy(update={"proxy": config.proxy.model_copy(update={"rungs": 3})})
    tokens = config.model_copy(update={"proxy": config.proxy.model_copy(update={"tokens": 1000})})
    assert setup_fingerprint(rungs) == setup_fingerprint(config) != setup_fingerprint(tokens)
