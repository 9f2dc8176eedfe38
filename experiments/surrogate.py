"""Predicted-optimal recipe: a surrogate fitted on all finished trials (RegMix, Liu et al. 2024).

RegMix fits a regression model on many small runs and searches the fitted model over a large
number of sampled candidates. We do the same over the whole search space (operator settings and
mixture weights): a Gaussian process (few trials) or gradient boosting (many trials) from
scikit-learn, candidates drawn uniformly from the space, and an uncertainty from a bootstrap of
the fit (the spread of the refitted models' predictions at the chosen point).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from pydantic import BaseModel

from experiments.space import SearchSpace, simplex_weights

DISABLED = -1.0
"""Feature value of a parameter whose step is switched off (trees split on it cleanly)."""


class Prediction(BaseModel):
    values: dict[str, Any]
    """Space parameter values of the predicted-optimal point (feed to ``SearchSpace.apply``)."""
    predicted: float
    uncertainty: float
    model: str
    n_trials: int
    n_candidates: int
    best_observed: float


def encode(space: SearchSpace, values: dict[str, Any]) -> np.ndarray:
    """A trial's values as a feature vector (log scale where the dimension is log, weights normalised)."""
    feats: list[float] = []
    for name, dist in space.distributions().items():
        if name.startswith("mixture."):
            continue
        if name not in values:
            feats.append(DISABLED)
        elif isinstance(dist, CategoricalDistribution):
            feats.append(float(dist.choices.index(values[name])))
        else:
            v = float(values[name])
            feats.append(math.log(v) if dist.log else v)
    if space.simplex:
        weights = simplex_weights({s: values[f"mixture.{s}"] for s in space.simplex})
        feats.extend(weights[s] for s in space.simplex)
    return np.asarray(feats, dtype=float)


def sample_candidates(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points drawn uniformly from the space, respecting on/off conditions."""
    rng = np.random.default_rng(seed)
    dists = space.distributions()
    out = []
    for _ in range(n):
        values: dict[str, Any] = {}
        for name, dist in dists.items():
            if name.endswith(".enabled"):
                values[name] = _draw(dist, rng)
        for p in space.params:
            name = f"steps.{p.step}.{p.op}.{p.param}"
            if p.param != "enabled" and space.step_enabled(p.step, values):
                values[name] = _draw(dists[name], rng)
        for s in space.simplex:
            values[f"mixture.{s}"] = float(rng.uniform(1e-6, 1.0))
        out.append(values)
    return out


def _draw(dist: optuna.distributions.BaseDistribution, rng: np.random.Generator) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    lo, hi = dist.low, dist.high
    if dist.log:
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        x = rng.uniform(lo, hi)
    return round(min(max(x, lo), hi)) if isinstance(dist, IntDistribution) else float(x)


def _model(kind: str, seed: int):
    if kind == "gp":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        kernel = ConstantKernel() * Matern(nu=2.5) + WhiteKernel()
        return make_pipeline(
            StandardScaler(), GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed)
        )
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(
        n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
    )


def predict_optimum(
    space: SearchSpace,
    trials: list[tuple[dict[str, Any], float]],
    *,
    n_candidates: int = 4000,
    n_bootstrap: int = 16,
    model: str | None = None,
    seed: int = 0,
) -> Prediction:
    """Fit on (values, objective) pairs and return the candidate with the lowest predicted objective.

    With fewer than 3 trials no model is fitted: the best observed trial is returned as such
    (``model == "best_observed"``, uncertainty NaN)."""
    if len(trials) < 3:
        values, best = min(trials, key=lambda t: t[1])
        return Prediction(
            values=values,
            predicted=best,
            uncertainty=float("nan"),
            model="best_observed",
            n_trials=len(trials),
            n_candidates=0,
            best_observed=best,
        )
    kind = model or ("gp" if len(trials) < 30 else "gbm")
    X = np.stack([encode(space, v) for v, _ in trials])
    y = np.asarray([o for _, o in trials], dtype=float)
    candidates = sample_candidates(space, n_candidates, seed) + [v for v, _ in trials]
    C = np.stack([encode(space, v) for v in candidates])
    with warnings.catch_warnings():  # kernel-bound warnings on tiny data, without a process-wide filter
        warnings.simplefilter("ignore")
        fitted = _model(kind, seed).fit(X, y)
    mean = fitted.predict(C)
    best = int(np.argmin(mean))
    rng = np.random.default_rng(seed)
    boot = []
    for b in range(n_bootstrap):
        idx = rng.integers(0, len(y), len(y))
        if len(set(idx.tolist())) < 3:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot.append(_model(kind, seed + b + 1).fit(X[idx], y[idx]).predict(C[best : best + 1])[0])
    return Prediction(
        values=candidates[best],
        predicted=float(mean[best]),
        uncertainty=float(np.std(boot)) if boot else float("nan"),
        model=kind,
        n_trials=len(trials),
        n_candidates=len(candidates),
        best_observed=float(y.min()),
    )


__all__ = ["Prediction", "encode", "predict_optimum", "sample_candidates"]
