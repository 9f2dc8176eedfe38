"""Confirm: retrain the predicted-optimal recipe, the best trial and baselines at a larger scale.

Each recipe is trained with several seeds at the confirm scale (a bigger preset and/or more tokens)
and once at the search scale. We report mean and spread per recipe, the gap of the
predicted-optimal recipe to each baseline with a 95 % Welch interval, and the Spearman rank
correlation between search-scale and confirm-scale scores (does the small proxy rank recipes the
way the larger one does?). A gap whose interval contains zero is reported as within noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from experiments.baselines import BASELINES
from experiments.objective import evaluate_trial
from experiments.search_config import SearchConfig
from operators import Recipe


class RecipeScore(BaseModel):
    name: str
    recipe_id: str
    search_scale: float
    confirm: list[float]
    mean: float
    std: float
    bpb: dict[str, float]


class Gap(BaseModel):
    baseline: str
    diff: float
    """predicted-optimal minus baseline (negative = better, bpb is lower-is-better)."""
    ci95: tuple[float, float]
    verdict: str


class ConfirmResult(BaseModel):
    preset: str
    tokens: int
    seeds: list[int]
    scores: list[RecipeScore]
    gaps: list[Gap]
    spearman: float | None


def confirm_recipes(predicted: Recipe, best: Recipe | None) -> dict[str, Recipe]:
    recipes = {"predicted_optimal": predicted}
    if best is not None:
        recipes["best_observed"] = best
    recipes.update({name: make(predicted) for name, make in BASELINES.items()})
    return recipes


def run_confirm(
    folder: Path, config: SearchConfig, recipes: dict[str, Recipe], *, preset: str, tokens: int, seeds: list[int]
) -> ConfirmResult:
    scores = []
    for name, recipe in recipes.items():
        small = evaluate_trial(recipe, folder / "confirm" / name / "search_scale", config, _never)
        big_config = config.model_copy(
            update={"proxy": config.proxy.model_copy(update={"preset": preset, "tokens": tokens})}
        )
        runs = [
            evaluate_trial(recipe, folder / "confirm" / name / f"seed{s}", big_config, _never, seed=s) for s in seeds
        ]
        values = [r.objective for r in runs]
        bpb = {k: float(np.mean([r.bpb[k] for r in runs])) for k in runs[0].bpb}
        scores.append(
            RecipeScore(
                name=name,
                recipe_id=recipe.recipe_id(),
                search_scale=small.objective,
                confirm=values,
                mean=float(np.mean(values)),
                std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                bpb=bpb,
            )
        )
    return ConfirmResult(
        preset=preset, tokens=tokens, seeds=seeds, scores=scores, gaps=gaps(scores), spearman=spearman(scores)
    )


def _never(step: int, value: float) -> bool:
    return False


def gaps(scores: list[RecipeScore]) -> list[Gap]:
    by_name = {s.name: s for s in scores}
    ours = by_name["predicted_optimal"]
    out = []
    for name, other in by_name.items():
        if name == "predicted_optimal":
            continue
        lo, hi = welch_ci(ours.confirm, other.confirm)
        diff = ours.mean - other.mean
        verdict = "better" if hi < 0 else "worse" if lo > 0 else "within noise"
        out.append(Gap(baseline=name, diff=diff, ci95=(lo, hi), verdict=verdict))
    return out


def welch_ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of mean(a) - mean(b) without assuming equal variances (Welch 1947)."""
    from scipy import stats

    a_, b_ = np.asarray(a), np.asarray(b)
    diff = a_.mean() - b_.mean()
    va, vb = a_.var(ddof=1) / len(a_), b_.var(ddof=1) / len(b_)
    se = float(np.sqrt(va + vb))
    if se == 0.0:
        return (diff, diff)
    dof = (va + vb) ** 2 / (va**2 / (len(a_) - 1) + vb**2 / (len(b_) - 1))
    t = stats.t.ppf(0.5 + level / 2, dof)
    return (float(diff - t * se), float(diff + t * se))


def spearman(scores: list[RecipeScore]) -> float | None:
    from scipy import stats

    if len(scores) < 3:
        return None
    rho = stats.spearmanr([s.search_scale for s in scores], [s.mean for s in scores]).statistic
    return None if np.isnan(rho) else float(rho)
