"""The two published mixing laws as surrogates (the ``Surrogate`` interface of
``experiments.surrogate_models``): Data Mixing Laws (Ye et al. 2024) and BiMix (Ge et al. 2025).

The laws only take mixture proportions ``r`` (the normalised weights, ``simplex_weights``). The
space's processing parameters enter each law linearly in its exponent, as features ``z`` scaled to
[0, 1] (``law_features``): one shared law with a shift per processing setting, rather than one law
per processing configuration, which would need the mixture trials repeated for every configuration.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from scipy.optimize import least_squares

from experiments.space import SearchSpace
from experiments.surrogate_models import Points, Surrogate

R_FLOOR = 1e-4
"""Smallest proportion a law sees: at the simplex floor (1e-6) ``r ** -alpha`` is numerically wild."""


def law_features(space: SearchSpace, values: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The processing parameters of a point as features in [0, 1] for the laws' exponents: a numeric
    parameter scaled within its range (log-scaled where the dimension is log), 0 while its step is
    off; a choice (``enabled`` included) one-hot, its first choice the reference."""
    names: list[str] = []
    feats: list[float] = []
    for name, dist in space.distributions().items():
        if name.startswith("mixture."):
            continue
        if isinstance(dist, CategoricalDistribution):
            for choice in dist.choices[1:]:
                names.append(f"{name}={choice}")
                feats.append(float(name in values and values[name] == choice))
            continue
        names.append(name)
        lo, hi, v = float(dist.low), float(dist.high), values.get(name)
        if v is None or hi <= lo:
            feats.append(0.0)
        elif dist.log:
            feats.append((math.log(float(v)) - math.log(lo)) / (math.log(hi) - math.log(lo)))
        else:
            feats.append((float(v) - lo) / (hi - lo))
    return names, feats


def _mixture_needed(pts: Points) -> str | None:
    if pts.R.shape[1] < 2:
        return "the space searches no mixture of two or more sources (the law's only input)"
    return None


def _solve(residual, jac, starts: list[np.ndarray], bounds=None, refine: int = 3) -> np.ndarray:
    """The least-squares fit with the lowest cost from the ``refine`` starts that fit best as they
    are (deterministic: fixed starts); Levenberg-Marquardt (MINPACK) without bounds, trust-region
    reflective with them."""
    if bounds is not None:
        starts = [np.clip(x0, *bounds) for x0 in starts]
    with np.errstate(all="ignore"):
        initial = [float(np.sum(residual(x0) ** 2)) for x0 in starts]
    order = sorted((c, i) for i, c in enumerate(initial) if np.isfinite(c))
    best = None
    for _, i in order[:refine]:
        with np.errstate(all="ignore"):
            if bounds is None:
                res = least_squares(residual, starts[i], jac=jac, method="lm", max_nfev=100 * (len(starts[i]) + 1))
            else:
                res = least_squares(residual, starts[i], jac=jac, bounds=bounds, method="trf", max_nfev=200)
        if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise ValueError("no start converged to a finite fit")
    return best.x


class DataMixingLaw(Surrogate):
    """Data Mixing Laws (Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting
    Language Modeling Performance", arXiv 2403.16952): the loss on a validation domain as
    ``L(r) = c + k * exp(sum_j t_j r_j)`` over the training proportions ``r``.

    Here ``L(r, z) = c + k * exp(sum_j t_j r_j + sum_l b_l z_l)`` with the processing features ``z``
    added in the exponent. Proportions sum to 1, so a shift of every ``t_j`` is a change of ``k``:
    the last source is the reference (``t = 0``): ``2 + (m - 1) + p`` parameters per law.
    As in the paper, one law is fitted per target when the objective weighs several (its weighted
    sum is the prediction); with one target a single law's optimum lies on a vertex of the simplex
    (the exponent is linear in ``r``), which is the law's shape, not a fitting artefact.
    Fitted by ``scipy.optimize.least_squares`` from fixed starts: for ``c`` on a grid below the
    smallest (or above the largest) loss, ``log|L - c|`` is linear in ``(r, z)`` and its linear
    least-squares solution starts the non-linear fit."""

    name = "mixing_law"

    def __init__(self) -> None:
        self.laws: list[np.ndarray] = []
        self.w = np.ones(1)
        self.names: list[str] = []
        self.targets: tuple[str, ...] = ()

    def min_points(self, pts: Points) -> int:
        return 2 + pts.R.shape[1] - 1 + pts.Z.shape[1]

    def unusable(self, pts: Points) -> str | None:
        return _mixture_needed(pts)

    def describe(self, pts: Points) -> str:
        k, per = self.min_points(pts), self._per_target(pts)
        where = f"{pts.Y.shape[1]} targets x " if per and pts.Y is not None else ""
        return f"{where}{k} (c, k, t per source, b per processing feature)"

    @staticmethod
    def _per_target(pts: Points) -> bool:
        return pts.Y is not None and pts.weights is not None and pts.Y.shape[1] > 1

    def fit(self, pts: Points) -> DataMixingLaw:
        R, Z = np.maximum(pts.R, R_FLOOR), pts.Z
        cols = list(pts.Y.T) if self._per_target(pts) else [pts.y]
        self.w = pts.weights if self._per_target(pts) else np.ones(1)
        self.laws = [self._fit_one(R, Z, np.asarray(y, float)) for y in cols]
        self.names = [*(f"t_{s}" for s in pts.sources[:-1]), *(f"b_{f}" for f in pts.features)]
        self.targets = pts.targets if self._per_target(pts) else ("objective",)
        return self

    @staticmethod
    def _law(theta: np.ndarray, R: np.ndarray, Z: np.ndarray) -> np.ndarray:
        m = R.shape[1]
        expo = R[:, : m - 1] @ theta[2 : m + 1] + Z @ theta[m + 1 :]
        return theta[0] + theta[1] * np.exp(np.clip(expo, -50.0, 50.0))

    def _fit_one(self, R: np.ndarray, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        design = np.hstack([np.ones((len(y), 1)), R[:, :-1], Z])
        span = max(float(np.ptp(y)), 1e-3)
        starts = []
        for d in (0.02, 0.1, 0.5, 2.0):
            for sign, c in ((1.0, y.min() - d * span), (-1.0, y.max() + d * span)):
                coef = np.linalg.lstsq(design, np.log(sign * (y - c)), rcond=None)[0]
                starts.append(np.concatenate([[c, sign * math.exp(min(coef[0], 50.0))], coef[1:]]))

        def jac(th: np.ndarray) -> np.ndarray:
            m = R.shape[1]
            e = np.exp(np.clip(R[:, : m - 1] @ th[2 : m + 1] + Z @ th[m + 1 :], -50.0, 50.0))
            return np.hstack([np.ones((len(y), 1)), e[:, None], th[1] * e[:, None] * np.hstack([R[:, : m - 1], Z])])

        return _solve(lambda th: self._law(th, R, Z) - y, jac, starts)

    def predict(self, pts: Points) -> np.ndarray:
        R = np.maximum(pts.R, R_FLOOR)
        preds = np.stack([self._law(th, R, pts.Z) for th in self.laws])
        return self.w @ preds / self.w.sum()

    def fitted(self) -> dict[str, float]:
        out = {}
        for target, th in zip(self.targets, self.laws, strict=True):
            prefix = "" if len(self.laws) == 1 else f"{target}."
            out |= {f"{prefix}c": th[0], f"{prefix}k": th[1]}
            out |= {f"{prefix}{n}": v for n, v in zip(self.names, th[2:], strict=True)}
        return {k: float(v) for k, v in out.items()}


class BiMix(Surrogate):
    """BiMix (Ge et al. 2025, "BiMix: A Bivariate Data Mixing Law for Language Model Pretraining",
    arXiv 2405.14908): the loss on domain i after ``s`` training steps with proportion ``r_i`` of
    that domain is ``L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)``, five coefficients
    per domain.

    Here ``L(r, s, z) = A / prod_j r_j^alpha_j * exp(sum_l b_l z_l) * (B / s^beta + 1)``:
    a search's target need not be one source (a file, or several weighted targets), so every source
    has an exponent ``alpha_j >= 0``, which is the paper's law when only the target's own source has
    a non-zero one (its optimum on the simplex is ``r_j = alpha_j / sum(alpha)``); only ``A * C``
    and ``B / C`` are identifiable, so ``C = 1``; the processing features ``z`` scale the loss
    (``b_l``). One law is fitted to the objective (intermediate evaluations carry only the
    weighted objective).

    The steps axis is the trials' intermediate evaluations (Optuna intermediate values: the
    objective after k optimizer steps; steps are proportional to tokens seen) plus each trial's
    final value at its last step; the prediction is at the search's training length. Two caveats:
    intermediate evaluations score the first 32 KiB of each target, the final one all of it; and
    an intermediate point of a cosine schedule is not a run trained for that many steps (BiMix fits
    checkpoints along runs, too). Where the trials have one training length (no intermediate
    evaluations, or trials recorded before their step count was), only the proportion part is
    fitted: ``A / prod_j r_j^alpha_j * exp(b . z)``."""

    name = "bimix"

    def __init__(self) -> None:
        self.theta = np.zeros(1)
        self.with_steps = False
        self.s_ref = 1.0
        self.names: list[str] = []

    @staticmethod
    def _has_steps(pts: Points) -> bool:
        return pts.steps is not None and pts.curves is not None and any(len(c) for c in pts.curves)

    def min_points(self, pts: Points) -> int:
        return 1 + pts.R.shape[1] + pts.Z.shape[1]

    def unusable(self, pts: Points) -> str | None:
        return _mixture_needed(pts)

    def describe(self, pts: Points) -> str:
        base = f"{self.min_points(pts)} (A, alpha per source, b per processing feature)"
        if self._has_steps(pts):
            return f"{base} + 2 (B, beta) over {sum(len(c) for c in pts.curves or ())} intermediate evaluations"
        return f"{base}; one training length: proportion part only"

    def _law(self, theta: np.ndarray, R: np.ndarray, Z: np.ndarray, s: np.ndarray) -> np.ndarray:
        m, p = R.shape[1], Z.shape[1]
        log_l = theta[0] - np.log(R) @ theta[1 : m + 1] + Z @ theta[m + 1 : m + 1 + p]
        out = np.exp(np.clip(log_l, -50.0, 50.0))
        if self.with_steps:
            out = out * (theta[-2] * np.power(s, -theta[-1]) + 1.0)
        return out

    def _rows(self, pts: Points) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every (r, z, s, loss) point: each trial's final value, and its curve when steps are used."""
        R, Z = np.maximum(pts.R, R_FLOOR), pts.Z
        if not self.with_steps:
            return R, Z, np.ones(len(R)), np.asarray(pts.y, float)
        idx, s, y = list(range(len(R))), list(pts.steps / self.s_ref), list(pts.y)
        for i, curve in enumerate(pts.curves or ()):
            idx += [i] * len(curve)
            s += list(curve[:, 0] / self.s_ref)
            y += list(curve[:, 1])
        return R[idx], Z[idx], np.asarray(s, float), np.asarray(y, float)

    def fit(self, pts: Points) -> BiMix:
        self.with_steps = self._has_steps(pts)
        self.s_ref = float(np.median(pts.steps)) if self.with_steps else 1.0
        R, Z, s, y = self._rows(pts)
        m, p = R.shape[1], Z.shape[1]
        design = np.hstack([np.ones((len(y), 1)), -np.log(R), Z])
        lo = np.r_[-np.inf, np.zeros(m), np.full(p, -np.inf)]
        hi = np.full(1 + m + p, np.inf)
        grid = [(0.1, 0.5), (1.0, 0.5), (1.0, 1.0), (0.3, 2.0)] if self.with_steps else [(0.0, 0.0)]
        starts = []
        for b0, beta0 in grid:
            shift = np.log(b0 * np.power(s, -beta0) + 1.0)
            coef = np.linalg.lstsq(design, np.log(np.maximum(y, 1e-9)) - shift, rcond=None)[0]
            coef[1 : m + 1] = np.maximum(coef[1 : m + 1], 0.0)
            starts.append(np.r_[coef, b0, beta0] if self.with_steps else coef)
        if self.with_steps:
            lo, hi = np.r_[lo, 0.0, 0.0], np.r_[hi, np.inf, 5.0]

        def jac(th: np.ndarray) -> np.ndarray:
            g = np.exp(np.clip(th[0] - np.log(R) @ th[1 : m + 1] + Z @ th[m + 1 : m + 1 + p], -50.0, 50.0))
            law = self._law(th, R, Z, s)
            cols = [law[:, None], -law[:, None] * np.log(R), law[:, None] * Z]
            if self.with_steps:
                decay = np.power(s, -th[-1])
                cols += [(g * decay)[:, None], (-g * th[-2] * decay * np.log(s))[:, None]]
            return np.hstack(cols)

        self.theta = _solve(lambda th: self._law(th, R, Z, s) - y, jac, starts, bounds=(lo, hi))
        self.names = [
            "A",
            *(f"alpha_{src}" for src in pts.sources),
            *(f"b_{f}" for f in pts.features),
            *(["B", "beta"] if self.with_steps else []),
        ]
        return self

    def predict(self, pts: Points) -> np.ndarray:
        s = pts.steps / self.s_ref if (self.with_steps and pts.steps is not None) else np.ones(len(pts))
        return self._law(self.theta, np.maximum(pts.R, R_FLOOR), pts.Z, s)

    def fitted(self) -> dict[str, float]:
        values = [math.exp(self.theta[0]), *self.theta[1:]]
        return {n: float(v) for n, v in zip(self.names, values, strict=True)}


__all__ = ["R_FLOOR", "BiMix", "DataMixingLaw", "law_features"]
