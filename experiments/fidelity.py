"""Multi-fidelity rungs over proxy tokens: successive halving (Jamieson & Talwalkar 2016, "Non-
stochastic Best Arm Identification and Hyperparameter Optimization"; Li et al. 2018, Hyperband).

With ``proxy.rungs: R`` a trial's proxy is scored at ``tokens / 3^(R-1)``, ..., ``tokens / 3`` on
the way to its full ``tokens`` (a count model: the counts of that prefix of its training stream; a
neural proxy: the model after that many tokens), and each lower rung is reported to Optuna as step
``3^k``. ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)`` then keeps a trial going
only while it is in the best third of the trials scored at the same rung, so most candidates cost a
ninth (R = 3) of a full trial and the promising ones are trained to the end.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

FACTOR = 3


def rung_tokens(tokens: int, rungs: int) -> list[int]:
    """Tokens of every rung, smallest first, the last being ``tokens``."""
    return [max(1, tokens // FACTOR**k) for k in range(rungs - 1, -1, -1)]


def rung_step(k: int) -> int:
    """The step rung ``k`` reports to the pruner (its tokens in units of the smallest rung)."""
    return FACTOR**k


def halving_pruner() -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=FACTOR, min_early_stopping_rate=0)


def trials_per_rung(trials: list[optuna.trial.FrozenTrial], tokens: int, rungs: int) -> list[dict[str, Any]]:
    """Per rung: its tokens, the trials scored there and the trials stopped there (pruned after it)."""
    rows = []
    for k, n in enumerate(rung_tokens(tokens, rungs)):
        last = k == rungs - 1
        scored = [
            t
            for t in trials
            if (t.state == TrialState.COMPLETE if last else rung_step(k) in t.intermediate_values)
            and "reused_from" not in t.user_attrs
        ]
        stopped = [
            t for t in scored if t.state == TrialState.PRUNED and max(t.intermediate_values, default=0) == rung_step(k)
        ]
        rows.append({"rung": k, "tokens": n, "trials": len(scored), "stopped": len(stopped)})
    return rows
