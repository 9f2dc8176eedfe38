"""Surrogates: each mixing law recovers the parameters and the optimum of data it generated, the
leave-one-out score picks the law that generated the data, skips a surrogate with more parameters
than trials, and the optimum is only recommended when it beats the best trial beyond its
uncertainty (a stub surrogate pins the 2-sigma rule). Real trials are scored in
tests/test_search.py (the small search's finalize)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import surrogate
from experiments.mixing_laws import BiMix, DataMixingLaw
from experiments.space import Dist, SearchSpace, StepParam, simplex_weights
from experiments.surrogate import Observed, predict_optimum, score_surrogates, trial_points
from experiments.surrogate_models import Points, Surrogate

MW = "steps.0.length_filter.min_words"
SPACE = SearchSpace(
    params=[StepParam(step=0, op="length_filter", param="min_words", dist=Dist.model_validate({"int": [50, 400]}))],
    simplex=["a", "b", "c"],
)
NOISE = 0.002  # bpb, the noise added to every synthetic loss

# Data Mixing Laws, one law per target: c + k * exp(t_a r_a + t_b r_b + b z) (t_c = 0, the reference).
DML = {"code": (1.0, 2.0, (-1.5, 0.5), 0.3), "docs": (1.2, 1.5, (0.8, -1.2), -0.2)}
# BiMix: A / (r_a^.3 r_b^.15 r_c^.05) * exp(b z) * (B / s^beta + 1), s in units of the final step.
BIMIX = {"A": 1.5, "alpha": (0.3, 0.15, 0.05), "b": -0.1, "B": 0.8, "beta": 0.7}
STEPS = 400


def _draws(n: int = 25, seed: int = 0) -> list[tuple[dict, np.ndarray, float]]:
    """``n`` deterministic mixtures of 3 sources with a processing value: (values, r, z)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        u = {s: float(rng.uniform(1e-3, 1.0)) for s in SPACE.simplex}
        words = int(rng.integers(50, 401))
        r = simplex_weights(u)
        out.append(
            ({MW: words, **{f"mixture.{s}": u[s] for s in u}}, np.array([r[s] for s in "abc"]), (words - 50) / 350)
        )
    return out


def _dml(target: str, r: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    c, k, (ta, tb), b = DML[target]
    return c + k * np.exp(ta * r[..., 0] + tb * r[..., 1] + b * z)


def _bimix(r: np.ndarray, z: float, s: float) -> float:
    p = BIMIX
    return p["A"] / np.prod(r ** np.array(p["alpha"])) * np.exp(p["b"] * z) * (p["B"] / s ** p["beta"] + 1.0)


def _dml_trials(seed: int = 0) -> list[Observed]:
    rng = np.random.default_rng(seed + 100)
    trials = []
    for values, r, z in _draws(seed=seed):
        bpb = {t: float(_dml(t, r, z) + rng.normal(0, NOISE)) for t in DML}
        trials.append(Observed(values, float(np.mean(list(bpb.values()))), bpb))
    return trials


def _bimix_trials(curves: bool = True) -> list[Observed]:
    rng = np.random.default_rng(200)
    trials = []
    for values, r, z in _draws(seed=1):
        curve = {s: float(_bimix(r, z, s / STEPS) + rng.normal(0, NOISE)) for s in (100, 200, 300)}
        final = float(_bimix(r, z, 1.0) + rng.normal(0, NOISE))
        trials.append(Observed(values, final, curve=curve if curves else {}, steps=STEPS if curves else None))
    return trials


def _simplex_grid(step: float = 0.005) -> np.ndarray:
    a, b = np.meshgrid(np.arange(0, 1 + step, step), np.arange(0, 1 + step, step))
    keep = a + b <= 1 + 1e-9
    return np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)


def _proportions(values: dict) -> np.ndarray:
    w = simplex_weights({s: values[f"mixture.{s}"] for s in SPACE.simplex})
    return np.array([w[s] for s in SPACE.simplex])


def test_data_mixing_law_recovers_its_parameters_and_optimum() -> None:
    """25 mixtures, two targets, noise 0.002 bpb: every fitted parameter within 0.05 of the truth;
    the optimum of the weighted sum (over 2,000 sampled candidates) within 0.06 of the true
    optimum in every proportion."""
    trials = _dml_trials()
    fitted = DataMixingLaw().fit(trial_points(SPACE, trials, {"code": 1.0, "docs": 1.0})).fitted()
    for target, (c, k, (ta, tb), b) in DML.items():
        truth = {"c": c, "k": k, "t_a": ta, "t_b": tb, f"b_{MW}": b}
        for name, value in truth.items():
            assert fitted[f"{target}.{name}"] == pytest.approx(value, abs=0.05), (target, name)

    pred = predict_optimum(
        SPACE, trials, model="mixing_law", weights={"code": 1.0, "docs": 1.0}, n_candidates=2000, n_bootstrap=8
    )
    grid = _simplex_grid()
    zs = np.linspace(0, 1, 51)
    total = np.stack([(_dml("code", grid, z) + _dml("docs", grid, z)) / 2 for z in zs])
    iz, ir = np.unravel_index(np.argmin(total), total.shape)
    assert np.abs(_proportions(pred.optimum) - grid[ir]).max() < 0.06
    assert abs((pred.optimum[MW] - 50) / 350 - zs[iz]) < 0.1
    assert pred.optimum_predicted == pytest.approx(total[iz, ir], abs=0.01)


def test_bimix_recovers_its_parameters_and_optimum_with_and_without_the_steps_axis() -> None:
    """25 mixtures x 3 intermediate evaluations + the final one, noise 0.002 bpb: A, B within 0.05,
    alphas within 0.02, b and beta within 0.05; the optimum's proportions (alpha / sum(alpha) =
    0.6, 0.3, 0.1) within 0.05. With one training length only the proportion part is fitted, with
    A * (B + 1) as its scale."""
    law = BiMix().fit(trial_points(SPACE, _bimix_trials()))
    fitted = law.fitted()
    assert law.with_steps
    for name, value in (("A", BIMIX["A"]), ("B", BIMIX["B"])):
        assert fitted[name] == pytest.approx(value, abs=0.05), name
    assert fitted["beta"] == pytest.approx(BIMIX["beta"], abs=0.05)
    assert fitted[f"b_{MW}"] == pytest.approx(BIMIX["b"], abs=0.05)
    for src, alpha in zip("abc", BIMIX["alpha"], strict=True):
        assert fitted[f"alpha_{src}"] == pytest.approx(alpha, abs=0.02), src

    pred = predict_optimum(SPACE, _bimix_trials(), model="bimix", n_candidates=2000, n_bootstrap=8)
    truth = np.array(BIMIX["alpha"]) / sum(BIMIX["alpha"])
    assert np.abs(_proportions(pred.optimum) - truth).max() < 0.05
    assert pred.optimum[MW] > 350  # b < 0: the stricter filter is better

    short = BiMix().fit(trial_points(SPACE, _bimix_trials(curves=False)))
    assert not short.with_steps and "B" not in short.fitted()
    assert short.fitted()["A"] == pytest.approx(BIMIX["A"] * (BIMIX["B"] + 1), abs=0.1)
    assert short.fitted()["alpha_a"] == pytest.approx(BIMIX["alpha"][0], abs=0.03)


@pytest.mark.parametrize(("make", "law"), [(_dml_trials, "mixing_law"), (_bimix_trials, "bimix")])
def test_leave_one_out_picks_the_law_that_generated_the_data(make, law: str) -> None:
    trials = make()
    weights = {"code": 1.0, "docs": 1.0} if law == "mixing_law" else None
    pred = predict_optimum(SPACE, trials, weights=weights, n_candidates=2000, n_bootstrap=8)
    assert set(pred.loo) == {"gp", "regmix", "mixing_law", "bimix"}
    assert all(np.isfinite(v) and v >= 0 for v in pred.loo.values())
    assert pred.chosen == law == min(pred.loo, key=pred.loo.__getitem__)
    assert pred.loo[law] < 3 * NOISE
    assert [s.name for s in pred.surrogates if s.used] == [law]
    assert pred.decision == "surrogate_optimum"  # every synthetic trial is far from the optimum
    assert pred.values == pred.optimum and pred.predicted + 2 * pred.uncertainty < pred.best_observed


def test_a_surrogate_with_more_parameters_than_trials_is_skipped_with_the_reason() -> None:
    trials = _dml_trials()[:5]  # the law has 5 parameters (c, k, t_a, t_b, b); leave-one-out fits have 4
    (score,) = score_surrogates(trial_points(SPACE, trials), [DataMixingLaw()])
    assert score.loo_mae is None and score.skipped == "4 trials per leave-one-out fit, fewer than the 5 it needs"
    (score,) = score_surrogates(trial_points(SPACE, _dml_trials()[:6]), [DataMixingLaw()])
    assert score.skipped is None and np.isfinite(score.loo_mae)
    no_mixture = SearchSpace(params=SPACE.params)
    (score,) = score_surrogates(
        trial_points(no_mixture, [Observed({MW: 60 + i}, 2.0 + i) for i in range(6)]), [BiMix()]
    )
    assert "no mixture" in score.skipped


def test_pure_noise_recommends_the_best_observed_trial() -> None:
    """A flat objective with noise: no surrogate's optimum is 2 standard deviations below the best
    trial (the luckiest draw), so the best trial is recommended, as such."""
    rng = np.random.default_rng(3)
    trials = [(values, float(2.0 + rng.normal(0, 0.05))) for values, _, _ in _draws(n=15, seed=4)]
    pred = predict_optimum(SPACE, trials, n_candidates=2000, n_bootstrap=8)
    best = min(trials, key=lambda t: t[1])
    assert pred.decision == "best_observed" and pred.values == best[0]
    assert not pred.optimum_predicted + 2 * pred.optimum_uncertainty < pred.best_observed
    assert "the best observed trial is recommended" in pred.reason and pred.chosen in pred.reason


class _Bowl(Surrogate):
    """A stub whose optimum (the uniform mixture) sits ``below`` the best trial; refitted on a
    resample it shifts by the resample's mean minus the trials' mean, so its bootstrap spread is
    about the standard error of the mean (0.05 / sqrt(15) = 0.013 here)."""

    name = "bowl"

    def __init__(self, floor: float, center: float) -> None:
        self.floor, self.center, self.shift = floor, center, 0.0

    def fit(self, pts: Points) -> _Bowl:
        self.shift = float(pts.y.mean()) - self.center
        return self

    def predict(self, pts: Points) -> np.ndarray:
        return self.floor + self.shift + np.sum((pts.R - 1 / 3) ** 2, axis=1)


@pytest.mark.parametrize(("below", "decision"), [(0.005, "best_observed"), (0.1, "surrogate_optimum")])
def test_the_optimum_is_recommended_only_2_standard_deviations_below_the_best_trial(
    monkeypatch: pytest.MonkeyPatch, below: float, decision: str
) -> None:
    rng = np.random.default_rng(5)
    trials = [(values, float(2.0 + rng.normal(0, 0.05))) for values, _, _ in _draws(n=15, seed=6)]
    best = min(t[1] for t in trials)
    center = float(np.mean([t[1] for t in trials]))
    monkeypatch.setattr(surrogate, "surrogates", lambda seed=0: [_Bowl(best - below, center)])
    pred = predict_optimum(SPACE, trials, n_candidates=2000, n_bootstrap=16)
    assert pred.chosen == "bowl" and pred.optimum_predicted == pytest.approx(best - below, abs=1e-3)
    assert 0.005 < pred.optimum_uncertainty < 0.03
    assert pred.decision == decision
    if decision == "best_observed":  # better than the best trial, but within twice its uncertainty
        assert pred.values == min(trials, key=lambda t: t[1])[0]
    else:
        assert pred.values == pred.optimum


def test_fewer_than_three_trials_fit_nothing() -> None:
    trials = [(values, 2.0 + i) for i, (values, _, _) in enumerate(_draws(n=2))]
    pred = predict_optimum(SPACE, trials)
    assert (pred.model, pred.decision, pred.values, pred.chosen) == (
        "best_observed",
        "best_observed",
        trials[0][0],
        None,
    )
