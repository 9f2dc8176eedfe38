"""The mixture numbers people read are the weights trials trained on, not Optuna's simplex draws."""

from __future__ import annotations

import math
import os
from pathlib import Path

import optuna
import pytest

from experiments.weights import params_text, readable_params, trial_weights, weight_importances

PROPOSAL = {"code": 0.5, "books": 0.3, "legal": 0.2}


def _recipe(shared: Path) -> dict:
    files = {
        "code": "code_python_thealgorithms.jsonl",
        "books": "books_tinyshakespeare.jsonl",
        "legal": "legal_spdx_license_texts.jsonl",
    }
    return {
        "name": "three",
        "sources": [{"name": n, "uri": str(shared / "domains" / f)} for n, f in files.items()],
        "steps": [{"op": "length_filter", "params": {"min_words": 20}}],
        "mixture": {"weights": PROPOSAL, "max_epochs": 4},
    }


def test_a_small_search_logs_and_shows_the_weights_it_trained_on(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """Two trials with the count-model proxy (seconds each): the proposal enqueued as trial 0 shows
    exactly 0.5/0.3/0.2; every trial's weights sum to 1 and are what the mixture sampler used."""
    from mlflow.tracking import MlflowClient

    import tools.catalog  # noqa: F401  (registers the tools)
    from experiments.study import Search, load_trials
    from operators import recipe_from_dict
    from tools.base import dispatch

    space = {
        "params": {"mixture.weights": "simplex"},
        "objective": {"targets": [{"name": "code_heldout", "source": "code", "fraction": 0.1, "max_bytes": 20000}]},
        "proxy": {"preset": "ngram3", "tokens": 16384},
    }
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        search = Search.create(
            tmp_path / "s", recipe_from_dict(_recipe(shared_data)), space, n_trials=2, sampler="random", seed=3
        )
        assert search.run()["complete"] == 2
        trials = search.study().trials
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        proposal = trials[0]
        assert proposal.user_attrs["source"] == "proposal" and proposal.user_attrs["weights"] == PROPOSAL
        assert client.get_run(proposal.user_attrs["mlflow_run"]).data.params == {
            "weight.code": "0.5",
            "weight.books": "0.3",
            "weight.legal": "0.2",
        }
        for t in trials:
            _check_trial(t, client)
        rows = load_trials(tmp_path / "s")
        assert rows[0]["recipe_params"] == {f"weight.{s}": w for s, w in PROPOSAL.items()}
        assert params_text(rows[0]) == "weight.code=0.5, weight.books=0.3, weight.legal=0.2"
        assert rows[1]["weights"] == trials[1].user_attrs["weights"] and rows[1]["params"] == trials[1].params
        seen = dispatch("trial_summaries", {"dir": str(tmp_path / "s")}).output["best"]  # what the agent reads
        assert sorted(r["params"]["weight.code"] for r in seen) == sorted(
            t.user_attrs["weights"]["code"] for t in trials
        )
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def _check_trial(t: optuna.trial.FrozenTrial, client) -> None:
    weights = t.user_attrs["weights"]
    assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-12)
    assert weights == trial_weights(t.params)  # the draws behind them, normalised
    realised = t.user_attrs["proxy"]["sources"]  # what the mixture sampler used and produced
    assert {s: r["weight"] for s, r in realised.items()} == pytest.approx(weights, abs=1e-12)
    run = client.get_run(t.user_attrs["mlflow_run"]).data
    assert {k: float(v) for k, v in run.params.items()} == {f"weight.{s}": w for s, w in weights.items()}
    assert not any(k.startswith("mixture.") for k in run.params)  # no raw draws in MLflow
    total = sum(r["tokens"] for r in realised.values())
    assert {k: v for k, v in run.metrics.items() if k.startswith("realised_share.")} == pytest.approx(
        {f"realised_share.{s}": r["tokens"] / total for s, r in realised.items()}
    )


def test_readable_params_and_importances_speak_in_weights() -> None:
    """A draw near 1 is a small weight; importances are computed over weight.<source>."""
    params = {"steps.0.length_filter.min_words": 120, "mixture.code": 0.9256, "mixture.legal": 0.05}
    shown = readable_params(params)
    assert list(shown) == ["steps.0.length_filter.min_words", "weight.code", "weight.legal"]
    assert shown["weight.code"] == pytest.approx(-math.log(0.9256) / (-math.log(0.9256) - math.log(0.05)), abs=1e-6)
    assert shown["weight.code"] < 0.03 and sum(v for k, v in shown.items() if k.startswith("weight.")) == 1.0
    study = optuna.create_study()
    rng = optuna.samplers.RandomSampler(seed=0)
    study.sampler = rng
    for _ in range(12):
        trial = study.ask()
        draws = {s: trial.suggest_float(f"mixture.{s}", 1e-6, 1.0) for s in ("code", "legal")}
        trial.suggest_int("steps.0.length_filter.min_words", 20, 200)
        study.tell(trial, 1.0 - trial_weights({f"mixture.{s}": u for s, u in draws.items()})["code"])
    importances = weight_importances(study)
    assert set(importances) == {"weight.code", "weight.legal", "steps.0.length_filter.min_words"}
    assert max(importances, key=importances.get) in ("weight.code", "weight.legal")
