"""Recipe search on real data: trials, cache reuse, MLflow runs, finalize, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _write_inputs(shared: Path, folder: Path, trials: int) -> tuple[Path, Path]:
    recipe = {
        "name": "tiny",
        "sources": [
            {"name": "code", "uri": str(shared / "domains/code_python_thealgorithms.jsonl")},
            {"name": "legal", "uri": str(shared / "domains/legal_spdx_license_texts.jsonl")},
        ],
        "steps": [{"op": "length_filter", "params": {"min_words": 60}}],
        "mixture": {"weights": {"code": 0.5, "legal": 0.5}, "max_epochs": 4},
    }
    space = {
        "params": {"steps.length_filter.min_words": {"int": [50, 400]}, "mixture.weights": "simplex"},
        "objective": {"targets": [{"name": "code_heldout", "source": "code", "fraction": 0.1, "max_bytes": 20000}]},
        "proxy": {"preset": "nano", "tokens": 16384},
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (folder / "space.yaml").write_text(yaml.safe_dump({**space, "recipe": "recipe.yaml"}))
    return folder / "recipe.yaml", folder / "space.yaml"


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATAPLAN_HOME": str(home),
        "DATAPLAN_NUM_CPUS": "1",
        "COLUMNS": "200",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


def _states(study_db: Path) -> list[str]:
    with sqlite3.connect(study_db) as db:
        try:
            return [r[0] for r in db.execute("select state from trials order by number")]
        except sqlite3.OperationalError:  # the file exists before Optuna has created its tables
            return []


def _mlflow_children(home: Path, parent: str) -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs(
        client.get_experiment_by_name("dataplan").experiment_id, f"tags.mlflow.parentRunId = '{parent}'"
    )
    return sorted((r.data.tags["dataplan.trial"], r.info.status) for r in runs)


def test_small_search_runs_trials_reuses_signals_and_tracks_in_mlflow(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    from experiments.finalize import finalize
    from experiments.study import Search
    from experiments.weights import readable_params
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 5)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        search = Search.create(
            tmp_path / "s",
            load_recipe(recipe_path),
            yaml.safe_load(space_path.read_text()),
            n_trials=5,
            seed=1,
            pruner="none",
        )
        counts = search.run()
        assert counts["complete"] == 5 and counts["finished"] == 5
        import optuna

        assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 's' / 'study.db'}") == ["search:s"]
        trials = search.study().trials
        assert len({t.user_attrs["recipe_id"] for t in trials}) == 5
        for t in trials[1:]:  # only a threshold and weights move: signals come from the cache
            steps = json.loads((tmp_path / "s" / "trials" / f"{t.number:04d}" / "run" / "manifest.json").read_text())[
                "steps"
            ]
            assert [(s["name"], s["stage"], s["cached"]) for s in steps][:3] == [
                ("read", "read", True),
                ("id_filter", "map", True),
                ("length_filter", "annotate", True),
            ]
            held = Path(search.config.held_out_ids).read_text().split()
            assert steps[1]["dropped"] == {"held_out": len(held)}  # the target slice never trains
            assert 0 < t.values[0] < 8 and set(t.user_attrs["bpb"]) == {"code_heldout"}
        children = _mlflow_children(tmp_path, search.config.mlflow_parent_run)
        assert children == [(str(i), "FINISHED") for i in range(5)]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        run = client.get_run(trials[2].user_attrs["mlflow_run"])
        assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())  # beside the store
        assert {"manifest.json", "recipe.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        shown = {k: str(v) for k, v in readable_params(trials[2].params).items()}  # weights, not simplex draws
        assert run.data.params == shown and "weight.code" in shown
        assert run.data.metrics["objective"] == trials[2].values[0]
        curve = client.get_metric_history(run.info.run_id, "intermediate_bpb")
        assert [m.step for m in curve] == sorted(trials[2].intermediate_values)

        final = finalize(tmp_path / "s", confirm=True, confirm_tokens=16384, seeds=(0, 1), max_seeds=3)
        report = (tmp_path / "s" / "report.md").read_text()
        assert "## Predicted-optimal recipe" in report and "## Confirmation" in report
        _check_surrogates_on_real_trials(final["prediction"], trials, report)
        assert "## What each step buys (ablation)" in report and "| without_0_length_filter |" in report
        confirm = final["confirm"]
        assert [g["baseline"] for g in confirm["ablations"]] == ["without_0_length_filter", "mixture_natural"]
        for g in confirm["gaps"] + confirm["ablations"]:  # paired: the mean of per-seed differences
            assert len(g["diffs"]) == len(g["seeds"]) >= 2 and g["diff"] == pytest.approx(
                sum(g["diffs"]) / len(g["diffs"])
            )
        undecided = [g for g in confirm["gaps"] if g["verdict"] == "within noise"]
        assert all(g["seeds"] == [0, 1, 2] for g in undecided) and confirm["seeds"] == (
            [0, 1, 2] if undecided else [0, 1]
        )
        assert Path(final["recommended_recipe"]).is_file()
        parent = client.get_run(search.config.mlflow_parent_run).data.metrics
        natural = next(g for g in confirm["gaps"] if g["baseline"] == "natural_mixture")
        assert parent["paired_natural_mixture"] == pytest.approx(natural["diff"])
        assert (
            parent["paired_natural_mixture_seeds"] == len(natural["seeds"]) and "ablation_mixture_natural_hi" in parent
        )
        recorded = [json.loads(line) for line in (tmp_path / "s" / "confirmations.jsonl").read_text().splitlines()]
        confirmations = client.search_runs(
            [client.get_experiment_by_name("dataplan").experiment_id], "tags.`dataplan.kind` = 'confirmation'"
        )
        assert sorted((r.data.tags["dataplan.name"], r.data.tags["dataplan.seed"]) for r in confirmations) == sorted(
            (e["name"], str(e["seed"])) for e in recorded
        )
        assert all(r.data.tags["mlflow.parentRunId"] == search.config.mlflow_parent_run for r in confirmations)
        names = [s["name"] for s in final["confirm"]["scores"]]
        assert names[:3] == ["predicted_optimal", "best_observed", "proposal"] and {
            "natural_mixture",
            "uniform_mixture",
            "no_filtering",
            "fineweb",
        } <= set(names)
        assert all(Path(p).is_file() and Path(p).stat().st_size > 1000 for p in final["plots"])
        assert final["confirm"]["spearman"] is None or -1 <= final["confirm"]["spearman"] <= 1
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def _check_surrogates_on_real_trials(pred: dict, trials: list, report: str) -> None:
    """Every surrogate is fitted on the 5 real trials (2 sources and one threshold: the laws have 4
    parameters, a leave-one-out fit 4 trials) or says why not; the one used has the lowest error;
    BiMix's steps axis comes from the trials' intermediate evaluations; the decision follows the
    2-sigma rule and the report shows the table."""
    import math

    assert all(t.user_attrs["proxy"]["steps"] > max(t.intermediate_values) for t in trials)
    scores = {s["name"]: s for s in pred["surrogates"]}
    assert set(scores) == {"gp", "regmix", "mixing_law", "bimix"}
    for name in ("gp", "regmix", "bimix"):
        assert scores[name]["skipped"] is None and math.isfinite(scores[name]["loo_mae"]), scores[name]
    assert all((s["loo_mae"] is None) == bool(s["skipped"]) for s in scores.values())
    assert pred["loo"] == {n: s["loo_mae"] for n, s in scores.items() if s["loo_mae"] is not None}
    assert pred["chosen"] == pred["model"] == min(pred["loo"], key=pred["loo"].get)
    assert [n for n, s in scores.items() if s["used"]] == [pred["chosen"]]
    assert "intermediate evaluations" in scores["bimix"]["parameters"] and "B" in scores["bimix"]["fitted"]
    beats = pred["optimum_predicted"] + 2 * pred["optimum_uncertainty"] < pred["best_observed"]
    assert pred["decision"] == ("surrogate_optimum" if beats else "best_observed")
    best = min(trials, key=lambda t: t.values[0])
    assert pred["values"] == (pred["optimum"] if beats else best.params)
    assert "| surrogate | LOO MAE (bpb) | parameters | used |" in report and pred["reason"] in report


def test_resume_after_kill_9_loses_no_trial_and_counts_none_twice(shared_data: Path, tmp_path: Path) -> None:
    _, space_path = _write_inputs(shared_data, tmp_path, 4)
    home, folder = tmp_path / "home", tmp_path / "search"
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "search",
        str(space_path),
        "--dir",
        str(folder),
        "--trials",
        "4",
        "--no-finalize",
        "--pruner",
        "none",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for one finished trial and the next one running
        states = _states(folder / "study.db") if (folder / "study.db").exists() else []
        running = folder / "trials" / f"{len(states) - 1:04d}" / "run"
        if states.count("COMPLETE") >= 1 and states[-1:] == ["RUNNING"] and running.exists():
            break  # well inside the trial: its MLflow run and pipeline have started
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _states(folder / "study.db")
    assert before[-1] == "RUNNING" and "COMPLETE" in before

    res = subprocess.run(  # without --no-finalize: the resumed search does what it was started with
        [sys.executable, "-m", "agent.cli", "search", "--resume", str(folder), "--json"],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    counts = json.loads(res.stdout)["counts"]
    assert counts["complete"] == 4 and counts["interrupted"] == 1 and counts["finished"] == 4
    assert json.loads(res.stdout)["final"] is None and not (folder / "final.json").exists()
    after = _states(folder / "study.db")
    assert after[: len(before) - 1] == before[:-1]  # completed trials kept as they were
    parent = json.loads((folder / "search.json").read_text())["mlflow_parent_run"]
    children = _mlflow_children(home, parent)
    assert sorted(s for _, s in children) == ["FINISHED"] * 4 + ["KILLED"]
    assert len({t for t, s in children if s == "FINISHED"}) == 4


def test_sigterm_marks_the_running_trial_and_exits_130(shared_data: Path, tmp_path: Path) -> None:
    _, space_path = _write_inputs(shared_data, tmp_path, 3)
    home, folder = tmp_path / "home", tmp_path / "search"
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "search",
        str(space_path),
        "--dir",
        str(folder),
        "--trials",
        "50",  # more than can finish before the signal: a trial is always running or next
        "--no-finalize",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        (folder / "study.db").exists() and "RUNNING" in _states(folder / "study.db")
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    said = proc.stderr.read().decode()
    assert "continue with `dataplan search --resume" in " ".join(said.split())
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said[-3000:]
    assert "RUNNING" not in _states(folder / "study.db")
    assert not (folder / "search.pid").exists()


@pytest.mark.parametrize("bad", ["steps.nope.x", "steps.length_filter.min_wrds"])
def test_search_cli_refuses_bad_space_before_any_work(shared_data: Path, tmp_path: Path, bad: str) -> None:
    _, space_path = _write_inputs(shared_data, tmp_path, 2)
    data = yaml.safe_load(space_path.read_text())
    data["params"] = {bad: {"int": [1, 5]}}
    space_path.write_text(yaml.safe_dump(data))
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "search", str(space_path), "--dir", str(tmp_path / "s")],
        cwd=REPO,
        env=_env(tmp_path / "h"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "params[" in res.stderr
    assert not (tmp_path / "s" / "search.json").exists()


def test_proxy_seq_len_of_a_search_is_the_context_the_proxy_trains_with(shared_data: Path, tmp_path: Path) -> None:
    """`proxy.seq_len` reaches the trial's proxy: its packing and the saved model use it, not the preset's 256."""
    from proxy_helpers import domains_run

    from experiments.objective import train_and_score
    from experiments.search_config import SearchConfig
    from experiments.targets import prepare_targets
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 1)
    recipe = load_recipe(recipe_path)
    space = yaml.safe_load(space_path.read_text())
    config = SearchConfig.model_validate(
        {
            "recipe_yaml": recipe.to_yaml(),
            "base_dir": recipe.base_dir,
            "space": {"params": space["params"]},
            "objective": space["objective"],
            "proxy": {"preset": "nano", "tokens": 8192, "seq_len": 64},
        }
    )
    config.targets, config.held_out_ids = prepare_targets(config.objective.targets, recipe, tmp_path / "s")
    sources = {"code": "code_python_thealgorithms.jsonl", "legal": "legal_spdx_license_texts.jsonl"}
    run_dir = domains_run(tmp_path / "run", shared_data, sources, limit=100)
    scores = train_and_score(run_dir, recipe, config, 0, lambda *_: False, tmp_path / "proxy")
    result = json.loads((tmp_path / "proxy" / "result.json").read_text())
    model = json.loads((tmp_path / "proxy" / "model" / "config.json").read_text())
    assert result["packing"]["seq_len"] == model["n_positions"] == 64
    assert set(scores["bpb"]) == {"code_heldout"}


def test_a_search_json_written_before_one_target_model_still_resumes():
    from experiments.search_config import SearchConfig

    old = {
        "recipe_yaml": "sources: []",
        "base_dir": ".",
        "space": {},
        "objective": {
            "targets": [
                {"name": "code", "files": None, "source": "code", "fraction": 0.1, "max_bytes": 200000, "weight": 1.0}
            ]
        },
        "targets": [{"name": "code", "file": "/s/heldout-code.txt", "weight": 1.0, "docs": 12, "bytes": 4096}],
    }
    config = SearchConfig.model_validate(old)
    assert config.targets[0].files == ("/s/heldout-code.txt",)
    assert config.objective.targets[0].source == "code"
    assert config.objective.targets[0].max_docs is None


def _confirm_setup(shared: Path, folder: Path):
    """The tiny recipe and a search configuration with its prepared target, for confirmations."""
    from experiments.search_config import SearchConfig
    from experiments.targets import prepare_targets
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared, folder, 1)
    recipe = load_recipe(recipe_path)
    space = yaml.safe_load(space_path.read_text())
    config = SearchConfig(
        recipe_yaml=recipe.to_yaml(), base_dir=recipe.base_dir, space=space, objective=space["objective"]
    )
    config.targets, config.held_out_ids = prepare_targets(config.objective.targets, recipe, folder / "t")
    return recipe, config


def test_paired_confirmation_is_exactly_zero_against_itself_and_repeats(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    from experiments.confirm import run_confirm
    from experiments.search_config import ProxySpec

    recipe, config = _confirm_setup(shared_data, tmp_path)
    filtered = recipe.model_copy(deep=True)
    filtered.steps[0].params = {"min_words": 300}
    recipes = {"predicted_optimal": recipe, "itself": recipe.model_copy(deep=True), "stricter": filtered}
    runs = [
        run_confirm(
            tmp_path / f"c{i}",
            config,
            recipes,
            proxy=ProxySpec(preset="nano", tokens=16384),
            seeds=[0, 1],
            max_seeds=2,
            ablate=False,
        )
        for i in range(2)
    ]
    first, again = runs
    assert first.gaps == again.gaps and first.scores == again.scores  # the same numbers when re-run
    itself, stricter = first.gaps
    assert (itself.verdict, itself.diff, itself.ci95, itself.diffs) == ("same recipe", 0.0, (0.0, 0.0), [0.0, 0.0])
    assert stricter.diffs != [0.0, 0.0] and stricter.seeds == [0, 1] and first.runs == 4  # 2 recipes x 2 seeds
    assert len({s.recipe_id for s in first.scores}) == 2


def test_a_candidate_that_beats_the_predicted_recipe_becomes_final(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """The search's pick trains mostly on licences for a code target; the proposal, half code, beats
    it beyond the paired interval, so the proposal is final: gaps and ablations are taken against it."""
    from experiments.baselines import natural_mixture
    from experiments.confirm import PREDICTED, run_confirm
    from experiments.search_config import ProxySpec

    proposal, config = _confirm_setup(shared_data, tmp_path)
    predicted = proposal.model_copy(deep=True)
    predicted.mixture.weights = {"code": 0.05, "legal": 0.95}
    recipes = {PREDICTED: predicted, "proposal": proposal, "natural_mixture": natural_mixture(predicted)}
    result = run_confirm(
        tmp_path / "c",
        config,
        recipes,
        proxy=ProxySpec(preset="ngram3", tokens=20000),  # a count model: seconds, and it sees the mixture
        seeds=[0, 1],
        max_seeds=3,
        candidates=("proposal",),
    )
    assert result.final == "proposal"
    gaps = {g.baseline: g for g in result.gaps}
    assert set(gaps) == {PREDICTED, "proposal", "natural_mixture"} and gaps[PREDICTED].verdict == "better"
    assert (gaps["proposal"].verdict, gaps["proposal"].diffs) == ("same recipe", [0.0] * len(gaps["proposal"].seeds))
    assert gaps[PREDICTED].diff < 0 and all(d < 0 for d in gaps[PREDICTED].diffs)  # proposal minus predicted
    assert [g.baseline for g in result.ablations] == ["without_0_length_filter", "mixture_natural"]
    again = run_confirm(
        tmp_path / "c", config, recipes, proxy=ProxySpec(preset="ngram3", tokens=20000), seeds=[0, 1], ablate=False
    )  # the recorded trainings, without candidates: the predicted recipe stays final
    assert again.final == PREDICTED and {g.baseline for g in again.gaps} == {"proposal", "natural_mixture"}


def test_a_resumed_search_does_not_replay_the_first_process_draws(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """Each process opens the study with a fresh sampler: seeded like the first one, its first draw
    would be the first process's first draw again (trial 2 = trial 1)."""
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 2)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        space = yaml.safe_load(space_path.read_text())
        first = Search.create(tmp_path / "s", load_recipe(recipe_path), space, n_trials=2, pruner="none")
        first.run()
        again = Search(tmp_path / "s")  # what `dataplan search --resume` opens in a new process
        again.extend({"params": again.config.space["params"]}, 1)
        again.run()
        trials = again.study().trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 3
        assert trials[2].params != trials[1].params
        assert len({t.user_attrs["recipe_id"] for t in trials}) == 3
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_a_recipe_already_trained_in_the_study_is_never_trained_again(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """A space of one switch holds two recipes: five trials train two proxies, the rest reuse them."""
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 5)
    space = yaml.safe_load(space_path.read_text())
    space["params"] = {"steps.length_filter.enabled": "bool"}
    space["proxy"] = {"preset": "ngram3", "tokens": 20000}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        search = Search.create(tmp_path / "s", load_recipe(recipe_path), space, n_trials=5, pruner="none", seed=1)
        search.run()
        trials = search.study().trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 5
        trained = [t for t in trials if "reused_from" not in t.user_attrs]
        assert len(trained) == len({t.user_attrs["recipe_id"] for t in trials}) == 2
        for t in trials:
            if "reused_from" in t.user_attrs:
                first = trials[t.user_attrs["reused_from"]]
                assert t.user_attrs["recipe_id"] == first.user_attrs["recipe_id"] and t.values == first.values
        assert sorted(p.name for p in (tmp_path / "s/trials").iterdir()) == [f"{t.number:04d}" for t in trained]
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_a_second_resume_of_a_running_search_is_refused_before_ray_starts(shared_data: Path, tmp_path: Path) -> None:
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 2)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'home/mlflow.db'}"
    try:
        search = Search.create(tmp_path / "s", load_recipe(recipe_path), yaml.safe_load(space_path.read_text()))
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (search.folder / "search.pid").write_text(str(holder.pid))  # a live process runs it
        cmd = [sys.executable, "-m", "agent.cli", "search", "--resume", str(search.folder)]
        res = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
    assert res.returncode == 2, res.stderr[-2000:]
    assert f"already running (pid {holder.pid})" in " ".join(res.stderr.split())
    assert "search folder:" not in res.stderr and "Ray" not in res.stderr  # refused before Ray started


def test_rungs_score_trials_on_a_third_and_a_ninth_of_the_tokens_and_halve_them(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    from experiments.fidelity import trials_per_rung
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 8)
    space = yaml.safe_load(space_path.read_text())
    space["proxy"] = {"preset": "ngram3", "tokens": 45000, "rungs": 3}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        search = Search.create(tmp_path / "s", load_recipe(recipe_path), space, n_trials=8, seed=2)
        assert type(search.study().pruner).__name__ == "SuccessiveHalvingPruner"
        search.run()
        trials = search.study().trials
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for t in trials:  # pruned trials are KILLED in MLflow, with Optuna's value as their objective
        if "reused_from" not in t.user_attrs:
            run = client.get_run(t.user_attrs["mlflow_run"])
            assert run.info.status == ("KILLED" if t.state.name == "PRUNED" else "FINISHED")
            assert run.data.metrics["objective"] == t.value
    trained = [t for t in trials if "reused_from" not in t.user_attrs]
    complete = [t for t in trained if t.state.name == "COMPLETE"]
    pruned = [t for t in trained if t.state.name == "PRUNED"]
    assert complete and pruned and len(complete) + len(pruned) == len(trained)
    assert all(set(t.intermediate_values) == {1, 3} for t in complete)
    assert all(t.user_attrs["proxy"]["tokens"] > 15000 for t in complete)
    assert all(max(t.intermediate_values) in (1, 3) for t in pruned)
    assert {t.user_attrs["proxy"]["tokens"] for t in pruned} <= {5000, 15000}  # counting stopped at a rung
    rows = trials_per_rung(trials, 45000, 3)
    assert [r["tokens"] for r in rows] == [5000, 15000, 45000]
    assert rows[0]["trials"] == len(trained) and rows[2]["trials"] == len(complete)
    assert rows[0]["trials"] >= rows[1]["trials"] >= rows[2]["trials"]
    assert sum(r["stopped"] for r in rows) == len(pruned)


def test_a_confirmation_whose_parent_run_is_not_in_the_store_warns_once_and_is_kept_in_the_log(
    tmp_path: Path,
) -> None:
    from experiments.tracking import log_confirmation

    entry = {"name": "proposal", "recipe_id": "abc", "scale": "confirm", "seed": 0, "objective": 3.0, "bpb": {}}
    entry |= {"preset": "nano", "tokens": 2048}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        with pytest.warns(UserWarning, match="parent run 0123456789abcdef is not in sqlite:///"):
            assert log_confirmation("0123456789abcdef", {}, entry) is None
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_a_fixed_proxy_seed_gives_two_sampler_seeds_one_objective(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """``proxy_seed`` fixes the trials' proxies apart from the sampler: the proposal (trial 0) scores
    the same under sampler seeds 1 and 2, and differently when the proxy follows the sampler's seed."""
    from experiments.study import Search
    from operators import load_recipe

    recipe_path, space_path = _write_inputs(shared_data, tmp_path, 1)
    space = yaml.safe_load(space_path.read_text())
    space["proxy"] = {"preset": "ngram3", "tokens": 20000}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        values = {}
        for name, settings in {
            "a": {"seed": 1, "proxy_seed": 7},
            "b": {"seed": 2, "proxy_seed": 7},
            "c": {"seed": 2},
        }.items():
            search = Search.create(
                tmp_path / name, load_recipe(recipe_path), space, n_trials=1, pruner="none", **settings
            )
            search.run()
            values[name] = search.study().trials[0].values[0]
        assert values["a"] == values["b"]
        assert values["c"] != values["a"]
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
