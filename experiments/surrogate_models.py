"""The surrogates' common ground: ``Points`` (trials or candidates in the forms every surrogate
reads), the ``Surrogate`` interface, the regressor features (``encode``), candidates drawn from the
space, and the two regressors over the whole space: a Gaussian process and RegMix.

A surrogate has ``name``, ``min_points`` (trials one fit needs: a law's parameter count),
``unusable`` (why it cannot model these points at all), ``describe`` (what it fits, in words),
``fit(points)``, ``predict(points)`` (the objective at each point, at the search's training length)
and ``fitted()`` (fitted parameters by name). The mixing laws are in ``experiments.mixing_laws``;
``experiments.surrogate`` scores them all and picks one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution

from experiments.space import SearchSpace, simplex_weights

DISABLED = -1.0
"""Feature value of a parameter whose step is switched off (trees split on it cleanly)."""


@dataclass(frozen=True)
class Points:
    """Trials (or candidates: no ``y``) in the forms the surrogates read."""

    X: np.ndarray
    """(n, d) regressor features (``encode``)."""
    R: np.ndarray
    """(n, m) mixture proportions; m == 0 when the space does not search the mixture."""
    Z: np.ndarray
    """(n, p) processing features in [0, 1] (``law_features``)."""
    sources: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    y: np.ndarray | None = None
    """(n,) the objective (weighted bits per byte)."""
    Y: np.ndarray | None = None
    """(n, T) bits per byte per target, or None; ``weights`` (T,) makes the objective from it."""
    weights: np.ndarray | None = None
    targets: tuple[str, ...] = ()
    steps: np.ndarray | None = None
    """(n,) training steps behind ``y``, or None."""
    curves: tuple[np.ndarray, ...] | None = None
    """Per point, a (k, 2) array of (training steps, objective) at intermediate evaluations."""

    def __len__(self) -> int:
        return len(self.X)

    def take(self, idx: np.ndarray) -> Points:
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        curves = None if self.curves is None else tuple(self.curves[i] for i in idx)
        return replace(
            self,
            X=self.X[idx],
            R=self.R[idx],
            Z=self.Z[idx],
            y=cut(self.y),
            Y=cut(self.Y),
            steps=cut(self.steps),
            curves=curves,
        )


class Surrogate:
    """The interface every surrogate implements."""

    name = ""

    def min_points(self, pts: Points) -> int:
        """Trials one fit needs: for a law, its parameter count (per target)."""
        return 3

    def unusable(self, pts: Points) -> str | None:
        """Why this surrogate cannot model these points at all, or None."""
        return None

    def describe(self, pts: Points) -> str:
        """What is fitted, in words (the report's `parameters` column)."""
        return ""

    def fit(self, pts: Points) -> Surrogate:
        raise NotImplementedError

    def predict(self, pts: Points) -> np.ndarray:
        raise NotImplementedError

    def fitted(self) -> dict[str, float]:
        return {}


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
        for name in space.schedule_dims():
            values[name] = _draw(dists[name], rng)
        out.append(values)
    return out


def local_candidates(
    space: SearchSpace, around: dict[str, Any], n: int, scale: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``n`` points near ``around``: each numeric parameter moved by a normal step of ``scale`` times
    its range (in log where the dimension is log), the proportions by ``scale`` (clipped at 0 and
    renormalised; written back as draws ``u = exp(-r)``); choices and on/off switches kept."""
    dists, out = space.distributions(), []
    r0 = np.array([simplex_weights({s: around[f"mixture.{s}"] for s in space.simplex})[s] for s in space.simplex])
    for _ in range(n):
        values = dict(around)
        for name, dist in dists.items():
            if name.startswith("mixture.") or name not in around or isinstance(dist, CategoricalDistribution):
                continue
            lo, hi = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
            x = (math.log(around[name]) if dist.log else around[name]) + rng.normal(0, scale * (hi - lo))
            x = min(max(x, lo), hi)
            x = min(max(math.exp(x), dist.low), dist.high) if dist.log else x
            values[name] = round(x) if isinstance(dist, IntDistribution) else float(x)
        if space.simplex:
            r = np.maximum(r0 + rng.normal(0, scale, len(r0)), 0.0)
            r = r / r.sum() if r.sum() > 0 else r0
            values.update({f"mixture.{s}": math.exp(-float(x)) for s, x in zip(space.simplex, r, strict=True)})
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


class _Regressor(Surrogate):
    """A surrogate backed by a fitted scikit-learn-style regressor over the encoded features ``X``."""

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.model = seed, None

    def predict(self, pts: Points) -> np.ndarray:
        return np.asarray(self.model.predict(pts.X), dtype=float)


class GaussianProcess(_Regressor):
    """Gaussian-process regression (scikit-learn; constant x Matérn 5/2 + white-noise kernel on
    standardised features, normalised targets) over the encoded trial values: the model behind
    Bayesian optimisation (and Optuna's GP sampler)."""

    name = "gp"

    def describe(self, pts: Points) -> str:
        return "3 kernel hyperparameters (scale, Matérn length, noise)"

    def fit(self, pts: Points) -> GaussianProcess:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        kernel = ConstantKernel() * Matern(nu=2.5) + WhiteKernel()
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=self.seed)
        self.model = make_pipeline(StandardScaler(), gp).fit(pts.X, pts.y)
        return self


class RegMix(_Regressor):
    """RegMix (Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model
    Pre-training", arXiv 2407.01492): a LightGBM regression from the mixture (here with the
    processing parameters) to the loss, fitted on many small runs. Their notebook
    (sail-sg/regmix ``regression_fitting/regression.ipynb``): gbdt, L2 objective, learning rate
    0.01, up to 1000 rounds with early stopping on held-out runs. Here 1000 rounds without early
    stopping (every trial is needed for the leave-one-out score) and ``min_child_samples`` 3
    instead of 20 (RegMix fitted 512 runs, a search has tens)."""

    name = "regmix"

    def describe(self, pts: Points) -> str:
        return "1000 boosted trees (LightGBM, learning rate 0.01)"

    def fit(self, pts: Points) -> RegMix:
        import lightgbm

        self.model = lightgbm.LGBMRegressor(
            n_estimators=1000,
            learning_rate=0.01,
            min_child_samples=3,
            min_data_in_bin=1,
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,
            random_state=self.seed,
            verbosity=-1,
        ).fit(pts.X, pts.y)
        return self


__all__ = [
    "DISABLED",
    "GaussianProcess",
    "Points",
    "RegMix",
    "Surrogate",
    "encode",
    "local_candidates",
    "sample_candidates",
]
