"""Predicted-optimal recipe: surrogates fitted on all finished trials, the one with the lowest
leave-one-out error used, and its optimum recommended only where it beats the best trial.

Surrogates (``surrogates``): a Gaussian process and RegMix's gradient boosting (Liu et al. 2024)
over the whole space, and the two mixing laws of ``experiments.mixing_laws`` (Ye et al. 2024;
Ge et al. 2025). Each is scored by its leave-one-out mean absolute error over the trials (bits per
byte; 20-fold past 40 trials); one that has more parameters than a leave-one-out fit has trials is
skipped, with the reason. The lowest error wins. As in RegMix, its optimum is searched over
candidates drawn uniformly from the space (plus the trials), here followed by three local rounds
around the best candidate (``REFINE``); a bootstrap of the fit gives the uncertainty (the spread of
the refitted surrogates' predictions at that point).

Decision: the surrogate's optimum is recommended only when ``predicted + 2 * uncertainty`` is below
the best observed objective; otherwise the best observed trial is (``decision``, ``reason``).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import optuna
from pydantic import BaseModel

from experiments.mixing_laws import BiMix, DataMixingLaw, law_features
from experiments.space import SearchSpace, simplex_weights
from experiments.surrogate_models import (
    GaussianProcess,
    Points,
    RegMix,
    Surrogate,
    encode,
    local_candidates,
    sample_candidates,
)

LOO_MAX, FOLDS = 40, 20
"""Exact leave-one-out up to ``LOO_MAX`` trials, ``FOLDS``-fold cross-validation beyond."""
REFINE = (0.1, 0.03, 0.01)
"""Step sizes (share of each range) of the local rounds after the uniform candidates."""


class SurrogateScore(BaseModel):
    name: str
    loo_mae: float | None = None
    """Leave-one-out mean absolute error (bits per byte); None when skipped."""
    parameters: str = ""
    skipped: str | None = None
    fitted: dict[str, float] = {}
    used: bool = False


class Prediction(BaseModel):
    values: dict[str, Any]
    """Space parameter values of the recommended point (feed to ``SearchSpace.apply``)."""
    predicted: float
    """The chosen surrogate's prediction at ``values``."""
    uncertainty: float
    model: str
    n_trials: int
    n_candidates: int
    best_observed: float
    decision: Literal["surrogate_optimum", "best_observed"] = "best_observed"
    reason: str = ""
    chosen: str | None = None
    loo: dict[str, float] = {}
    surrogates: list[SurrogateScore] = []
    optimum: dict[str, Any] | None = None
    """The chosen surrogate's optimum, recommended or not."""
    optimum_predicted: float | None = None
    optimum_uncertainty: float | None = None
    loo_constant: float | None = None
    """Leave-one-out error of predicting every trial by the mean of the others: the bar to beat."""


@dataclass
class Observed:
    """One completed trial as the surrogates see it."""

    values: dict[str, Any]
    objective: float
    bpb: dict[str, float] = field(default_factory=dict)
    curve: dict[int, float] = field(default_factory=dict)
    """Training steps done -> objective at an intermediate evaluation."""
    steps: int | None = None
    """Training steps behind ``objective`` (None: not recorded)."""

    @classmethod
    def from_trial(cls, t: optuna.trial.FrozenTrial) -> Observed:
        steps = (t.user_attrs.get("proxy") or {}).get("steps")
        curve = {int(k) + 1: float(v) for k, v in t.intermediate_values.items()} if steps else {}
        return cls(dict(t.params), float(t.values[0]), dict(t.user_attrs.get("bpb") or {}), curve, steps)


def surrogates(seed: int = 0) -> list[Surrogate]:
    """Every surrogate, unfitted, in the order ties are broken."""
    return [GaussianProcess(seed), RegMix(seed), DataMixingLaw(), BiMix()]


def candidate_points(space: SearchSpace, values: list[dict[str, Any]]) -> Points:
    """Points without outcomes (candidates, or trials before their objectives are attached)."""
    features: list[str] = law_features(space, {})[0]
    R = [[simplex_weights({s: v[f"mixture.{s}"] for s in space.simplex})[s] for s in space.simplex] for v in values]
    return Points(
        X=np.stack([encode(space, v) for v in values]),
        R=np.asarray(R, dtype=float).reshape(len(values), len(space.simplex)),
        Z=np.asarray([law_features(space, v)[1] for v in values], dtype=float).reshape(len(values), len(features)),
        sources=tuple(space.simplex),
        features=tuple(features),
    )


def trial_points(space: SearchSpace, trials: list[Observed], weights: dict[str, float] | None = None) -> Points:
    """The trials as ``Points``: per-target bits per byte when the objective weighs several targets
    and every trial has them all; steps and curves when every trial recorded its step count."""
    pts = replace(candidate_points(space, [t.values for t in trials]), y=np.array([t.objective for t in trials]))
    if weights and len(weights) > 1 and all(set(weights) <= set(t.bpb) for t in trials):
        names = tuple(sorted(weights))
        Y = np.array([[t.bpb[k] for k in names] for t in trials])
        pts = replace(pts, Y=Y, weights=np.array([weights[k] for k in names]), targets=names)
    if all(t.steps for t in trials):
        curves = tuple(np.array(sorted(t.curve.items()), dtype=float).reshape(-1, 2) for t in trials)
        pts = replace(pts, steps=np.array([t.steps for t in trials], dtype=float), curves=curves)
    return pts


def score_surrogates(pts: Points, models: list[Surrogate]) -> list[SurrogateScore]:
    """Each surrogate's leave-one-out mean absolute error on the trials, or why it was skipped."""
    n = len(pts)
    folds = [np.array([i]) for i in range(n)] if n <= LOO_MAX else [np.arange(k, n, FOLDS) for k in range(FOLDS)]
    scores = []
    for model in models:
        score = SurrogateScore(name=model.name, parameters=model.describe(pts))
        need, per_fit = model.min_points(pts), n - max(len(f) for f in folds)
        score.skipped = model.unusable(pts) or (
            f"{per_fit} trials per leave-one-out fit, fewer than the {need} it needs" if per_fit < need else None
        )
        if score.skipped is None:
            errors = np.full(n, np.nan)
            try:
                with warnings.catch_warnings():  # kernel-bound and convergence warnings on tiny data
                    warnings.simplefilter("ignore")
                    for f in folds:
                        keep = np.setdiff1d(np.arange(n), f)
                        errors[f] = copy.deepcopy(model).fit(pts.take(keep)).predict(pts.take(f)) - pts.y[f]
                    score.fitted = copy.deepcopy(model).fit(pts).fitted()
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
                score.skipped = f"the fit failed: {err}"
            if score.skipped is None and not np.all(np.isfinite(errors)):
                score.skipped = "non-finite leave-one-out predictions"
            if score.skipped is None:
                score.loo_mae = float(np.mean(np.abs(errors)))
        scores.append(score)
    return scores


def _finite(pred: np.ndarray) -> np.ndarray:
    """Predictions with non-finite values (a law far outside its data) ranked last."""
    return np.where(np.isfinite(pred), pred, np.inf)


def _bootstrap(model: Surrogate, pts: Points, at: Points, n: int, seed: int) -> np.ndarray:
    """Predictions at ``at`` of the surrogate refitted on ``n`` resamples of the trials (rows)."""
    rng, need, rows = np.random.default_rng(seed), model.min_points(pts), []
    for _ in range(n):
        idx = rng.integers(0, len(pts), len(pts))
        if len(set(idx.tolist())) < need:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows.append(copy.deepcopy(model).fit(pts.take(idx)).predict(at))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            continue
    return np.asarray(rows).reshape(-1, len(at))


def predict_optimum(
    space: SearchSpace,
    trials: list[tuple[dict[str, Any], float] | Observed],
    *,
    n_candidates: int = 4000,
    n_bootstrap: int = 16,
    model: str | None = None,
    seed: int = 0,
    weights: dict[str, float] | None = None,
) -> Prediction:
    """Score every surrogate (or only ``model``) by leave-one-out error on the trials, search the
    best one's optimum over candidates and recommend it only where it beats the best trial beyond
    twice its bootstrap uncertainty. ``weights``: target name -> weight in the objective (per-target
    mixing laws when there are several). With fewer than 3 trials nothing is fitted
    (``model == "best_observed"``, uncertainty NaN)."""
    obs = [t if isinstance(t, Observed) else Observed(dict(t[0]), float(t[1])) for t in trials]
    best_i = int(np.argmin([t.objective for t in obs]))
    best = obs[best_i].objective
    common = {"n_trials": len(obs), "best_observed": best, "values": obs[best_i].values, "predicted": best}
    if len(obs) < 3:
        reason = "fewer than 3 completed trials: no surrogate is fitted; the best observed trial is recommended."
        return Prediction(**common, uncertainty=float("nan"), model="best_observed", n_candidates=0, reason=reason)
    pts = trial_points(space, obs, weights)
    models = [m for m in surrogates(seed) if model is None or m.name == {"gbm": "regmix"}.get(model, model)]
    if not models:
        raise ValueError(f"unknown surrogate {model!r}; one of {[m.name for m in surrogates()]}")
    scores = score_surrogates(pts, models)
    common["loo_constant"] = float(np.mean(np.abs(pts.y - (pts.y.sum() - pts.y) / (len(pts) - 1))))
    loo = {s.name: s.loo_mae for s in scores if s.loo_mae is not None}
    if not loo:
        why = "; ".join(f"{s.name}: {s.skipped}" for s in scores)
        reason = f"no surrogate could be fitted ({why}); the best observed trial is recommended."
        return Prediction(
            **common, uncertainty=float("nan"), model="best_observed", n_candidates=0, surrogates=scores, reason=reason
        )
    chosen = min(loo, key=loo.__getitem__)
    next(s for s in scores if s.name == chosen).used = True
    template = next(m for m in models if m.name == chosen)
    values = sample_candidates(space, n_candidates, seed) + [t.values for t in obs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = copy.deepcopy(template).fit(pts)
        mean = _finite(fitted.predict(candidate_points(space, values)))
        rng = np.random.default_rng(seed + 1)
        for scale in REFINE:  # local rounds around the best candidate so far
            near = local_candidates(space, values[int(np.argmin(mean))], max(1, n_candidates // 8), scale, rng)
            values, mean = values + near, np.r_[mean, _finite(fitted.predict(candidate_points(space, near)))]
    opt, at_best = int(np.argmin(mean)), n_candidates + best_i
    at = candidate_points(space, [values[opt], values[at_best]])
    boot = _bootstrap(template, pts, at, n_bootstrap, seed)
    std = boot.std(axis=0) if len(boot) >= 2 else np.full(2, np.nan)
    found = f"{chosen} (lowest leave-one-out error, {loo[chosen]:.4f} bpb) predicts {mean[opt]:.4f} ± {std[0]:.4f} at its optimum"
    beats = bool(np.isfinite(std[0]) and mean[opt] + 2 * std[0] < best)
    if beats:
        reason = f"{found}, more than 2 standard deviations below the best observed trial ({best:.4f}): its optimum is recommended."
    elif not np.isfinite(std[0]):
        reason = (
            f"{found}, with no bootstrap uncertainty (fewer than 2 resamples could be refitted): "
            "the best observed trial is recommended."
        )
    else:
        reason = (
            f"{found}, not more than 2 standard deviations below the best observed trial ({best:.4f}): "
            "the best observed trial is recommended."
        )
    pick, recommended = (opt, values[opt]) if beats else (at_best, obs[best_i].values)
    return Prediction(
        **{**common, "values": recommended, "predicted": float(mean[pick])},
        uncertainty=float(std[0] if beats else std[1]),
        model=chosen,
        n_candidates=len(values),
        decision="surrogate_optimum" if beats else "best_observed",
        reason=reason,
        chosen=chosen,
        loo=loo,
        surrogates=scores,
        optimum=values[opt],
        optimum_predicted=float(mean[opt]),
        optimum_uncertainty=float(std[0]),
    )


__all__ = [
    "Observed",
    "Prediction",
    "SurrogateScore",
    "encode",
    "predict_optimum",
    "sample_candidates",
    "score_surrogates",
    "surrogates",
    "trial_points",
]
