"""The search's GP sampler sees ranks, not magnitudes: one degenerate trial cannot flatten the rest."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from experiments.study import make_sampler
from experiments.warped_gp import WarpedGPSampler, gaussian_copula


def test_the_copula_keeps_the_order_shares_ties_and_forgets_how_far_an_outlier_lies() -> None:
    bpb = np.array([[2.70], [2.90], [2.80], [11.65], [2.80]])
    warped = gaussian_copula(bpb)[:, 0]
    assert list(np.argsort(warped, kind="stable")) == [0, 2, 4, 1, 3]
    assert warped[2] == warped[4]
    assert warped[3] == pytest.approx(1.2816, abs=1e-4)  # Phi^-1(0.9): the worst of five, whatever its value
    moved = bpb.copy()
    moved[3] = 1e6
    assert np.array_equal(gaussian_copula(moved), gaussian_copula(bpb))


def _search(sampler: optuna.samplers.BaseSampler, degenerate: float) -> optuna.Study:
    """12 trials on a smooth bowl whose corner x + y > 1.6 is a degenerate recipe (an emptied stream)."""

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        return degenerate if x + y > 1.6 else 2.7 + (x - 0.35) ** 2 + (y - 0.6) ** 2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"x": 0.95, "y": 0.95})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=12)
    return study


def _params(study: optuna.Study) -> list[tuple[float, float]]:
    return [(t.params["x"], t.params["y"]) for t in study.trials]


def test_the_search_gp_proposes_the_same_whether_the_degenerate_trial_scored_12_or_a_million() -> None:
    near, far = (_search(make_sampler("gp", seed=3, multi=False), bad) for bad in (11.65, 1e6))
    assert isinstance(near.sampler, WarpedGPSampler)
    assert _params(near) == _params(far)
    assert far.trials[0].value == 1e6  # the study keeps what the trial measured
    assert far.best_value < 2.7 + 0.01
    plain = [
        _search(optuna.samplers.GPSampler(seed=3, n_startup_trials=5, deterministic_objective=True), bad)
        for bad in (11.65, 1e6)
    ]
    assert _params(plain[0]) != _params(plain[1])  # Optuna's own GP: the outlier's size steers it
