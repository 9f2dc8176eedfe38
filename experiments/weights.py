"""Mixture numbers as people read them: the normalised weights a trial trained on.

A space's ``mixture.weights: simplex`` is sampled as one uniform draw per source (Optuna params
``mixture.<source>``) and turned into weights by ``space.simplex_weights`` (``-log u``, normalised):
a draw of 0.93 is a *small* weight. The draws stay Optuna's internals (the sampler, the surrogates
and enqueued trials work on them); everything a person or MLflow reads shows ``weight.<source>``,
the weights the recipe trained with (they sum to 1), through the functions here.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from experiments.space import simplex_weights

DRAW_PREFIX = "mixture."
"""Optuna param names of the simplex draws: ``mixture.<source>``."""
WEIGHT_PREFIX = "weight."
"""Names of the normalised weights wherever they are shown or logged: ``weight.<source>``."""

optuna.logging.set_verbosity(optuna.logging.WARNING)


def normalised(weights: dict[str, float] | None) -> dict[str, float]:
    """Weights divided by their sum, as the mixture sampler uses them ({} for none: natural mixture)."""
    total = sum((weights or {}).values())
    return {s: w / total for s, w in weights.items()} if weights and total > 0 else {}


def trial_weights(params: dict[str, Any]) -> dict[str, float]:
    """Source -> normalised weight from a trial's Optuna params ({} when the mixture is not searched):
    ``normalised`` of the weights ``SearchSpace.apply`` writes into the trial's recipe."""
    draws = {k.removeprefix(DRAW_PREFIX): float(v) for k, v in params.items() if k.startswith(DRAW_PREFIX)}
    return normalised(simplex_weights(draws)) if draws else {}


def readable_params(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params as the recipe got them: step params unchanged, the simplex draws replaced by
    ``weight.<source>`` (the normalised weights, in the same order)."""
    out = {k: v for k, v in params.items() if not k.startswith(DRAW_PREFIX)}
    out.update({f"{WEIGHT_PREFIX}{s}": w for s, w in trial_weights(params).items()})
    return out


def realised_shares(sources: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Source -> share of the training tokens it really had (``ProxyResult.sources``): off its weight
    when a source ran out of documents (``max_epochs``) and its shortfall went to the others."""
    total = sum(int(s.get("tokens", 0)) for s in sources.values())
    return {name: int(s.get("tokens", 0)) / total for name, s in sources.items()} if total else {}


def readable_study(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of ``study``'s completed trials with ``readable_params`` (weights in [0, 1])."""
    view = optuna.create_study(directions=study.directions)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        params = readable_params(t.params)
        dists = {k: t.distributions[k] if k in t.distributions else FloatDistribution(0.0, 1.0) for k in params}
        view.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=t.values))
    return view


def weight_importances(study: optuna.Study, **kwargs: Any) -> dict[str, float]:
    """``optuna.importance.get_param_importances`` over the weights trained on (``weight.<source>``)
    and the step params, not over the simplex draws; ``kwargs`` go to Optuna."""
    return optuna.importance.get_param_importances(readable_study(study), **kwargs)


def params_text(row: dict[str, Any], fmt: Any = None) -> str:
    """One trial-table cell: ``steps...=120, weight.code=0.5, weight.legal=0.5`` for a ``trial_summary`` row."""
    fmt = fmt or (lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    params = row.get("recipe_params", readable_params(row.get("params", {})))
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())
