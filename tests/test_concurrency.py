"""Commands started at once on one fresh workspace, and the stage cache's hygiene: atomic commits,
scratch folders of killed processes, `dataplan cache du|gc`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _recipe(shared: Path, folder: Path, min_words: int = 50) -> Path:
    recipe = {
        "name": "concurrent",
        "sources": [{"name": "instr", "uri": str(shared / "domains/instruction_selfinstruct_human.jsonl")}],
        "steps": [{"op": "text_normalize"}, {"op": "length_filter", "params": {"min_words": min_words}}],
    }
    path = folder / f"recipe-{min_words}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _space(recipe: Path) -> dict:
    """A two-trial-sized search of ``min_words`` scored by a 3-gram proxy on held-out instructions."""
    return {
        "recipe": str(recipe),
        "params": {"steps.length_filter.min_words": {"int": [20, 200]}},
        "objective": {"targets": [{"name": "instr_heldout", "source": "instr", "fraction": 0.1, "max_bytes": 20000}]},
        "proxy": {"preset": "ngram3", "tokens": 20000},
    }


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATAPLAN_HOME": str(home),
        "DATAPLAN_NUM_CPUS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


def _at_once(commands: list[list[str]], home: Path) -> list[subprocess.CompletedProcess]:
    """Start every command, then wait for all (10 minutes at most)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *cmd],
            cwd=REPO,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    done = []
    for proc, cmd in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return done


def test_two_runs_at_once_on_a_fresh_cache_both_match_a_single_run(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    from operators import load_recipe, run_recipe

    recipe = _recipe(shared_data, tmp_path)
    single = run_recipe(load_recipe(recipe), tmp_path / "single", use_cache=False)
    home = tmp_path / "home"
    runs = _at_once([["run", str(recipe), "--out", str(tmp_path / f"r{i}"), "--json"] for i in range(2)], home)
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    hashes = [json.loads(r.stdout)["output_sha256"] for r in runs]
    assert hashes == [single.output_sha256] * 2 and (single.input_docs, single.output_docs) == (427, 255)
    stages = home / "cache" / "stages"
    assert list((stages / "tmp").iterdir()) == []  # no scratch folder left behind by either
    committed = {p.name for p in stages.glob("??/*")}
    assert committed == {s.key for s in single.steps}  # one entry per stage, however many computed it


def test_two_searches_at_once_on_a_fresh_home_both_succeed(shared_data: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    space = _space(_recipe(shared_data, tmp_path))
    for name in ("a", "b"):
        (tmp_path / f"space_{name}.yaml").write_text(yaml.safe_dump(space))
    home = tmp_path / "home"
    cmd = ["--trials", "2", "--no-finalize", "--pruner", "none", "--json"]
    runs = _at_once([["search", str(tmp_path / f"space_{n}.yaml"), *cmd] for n in ("a", "b")], home)
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    assert [json.loads(r.stdout)["counts"]["complete"] for r in runs] == [2, 2]
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dataplan").experiment_id
    for name in ("space_a", "space_b"):
        parent = json.loads((home / "searches" / name / "search.json").read_text())["mlflow_parent_run"]
        children = client.search_runs(experiment, f"tags.mlflow.parentRunId = '{parent}'")
        assert sorted(c.info.status for c in children) == ["FINISHED", "FINISHED"]


def test_gc_removes_unreferenced_stages_and_keeps_what_recorded_runs_replay(
    shared_data: Path, ray_started: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from typer.testing import CliRunner

    from agent.cli import app
    from operators import load_recipe, replay, run_recipe
    from operators.core.stage_cache import StageCache

    monkeypatch.setenv("DATAPLAN_HOME", str(tmp_path / "home"))
    kept = run_recipe(load_recipe(_recipe(shared_data, tmp_path, 50)), tmp_path / "kept")
    gone = run_recipe(load_recipe(_recipe(shared_data, tmp_path, 200)), tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")  # its run no longer exists: only its own stages are garbage
    needed = {s.key for s in kept.steps}
    garbage = {s.key for s in gone.steps} - needed
    assert [s.stage for s in gone.steps if s.key in garbage] == ["decide"]  # read, map, annotate are shared

    du = json.loads(CliRunner().invoke(app, ["cache", "du", "--json"]).stdout)
    assert {s["key"]: s["referenced"] for s in du["stages"]} == {k: k in needed for k in needed | garbage}
    assert du["total_bytes"] == sum(s["bytes"] for s in du["stages"]) > du["referenced_bytes"] > 0
    assert du["runs"] == [str(tmp_path / "kept")]

    with StageCache().in_use():  # a run holds the cache: gc refuses before removing anything
        busy = CliRunner().invoke(app, ["cache", "gc"])
    assert busy.exit_code == 2 and "in use by a running command" in busy.output
    dry = json.loads(CliRunner().invoke(app, ["cache", "gc", "--dry-run", "--json"]).stdout)
    assert {s["key"] for s in dry["removed"]} == garbage and all(StageCache().path(k).is_dir() for k in garbage)
    result = CliRunner().invoke(app, ["cache", "gc", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["kept"] == len(needed)
    assert {p.name for p in StageCache().root.glob("??/*")} == needed

    again = replay(tmp_path / "kept", tmp_path / "replayed", use_cache=True)
    assert again.ok and all(s.cached for s in again.manifest.steps)  # every stage it needs survived


def test_scratch_of_a_killed_process_is_removed_on_the_next_start(tmp_path: Path) -> None:
    from operators.core.stage_cache import StageCache

    killed = (  # a process that dies by SIGKILL while writing a stage
        "import os, signal; from operators.core.stage_cache import StageCache; "
        "p = StageCache().scratch(); (p / 'part-0.parquet').write_bytes(b'x' * 1000); print(p, flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {**os.environ, "DATAPLAN_HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", killed], cwd=REPO, env=env, capture_output=True, text=True)
    left = Path(res.stdout.strip())
    assert res.returncode == -9 and (left / "part-0.parquet").is_file()
    root = tmp_path / "cache" / "stages"
    mine = StageCache(root).scratch()  # this process is alive: its scratch stays
    legacy = root / "tmp" / "0123456789abcdef0123456789abcdef"  # named before scratch folders had owners
    legacy.mkdir()
    StageCache(root)
    assert sorted((root / "tmp").iterdir()) == [mine]
