"""Finalize a search: predicted-optimal recipe (surrogate), confirmation, report; all logged to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from experiments.confirm import ConfirmResult, confirm_recipes, run_confirm
from experiments.report import write_report
from experiments.study import Search, trial_summary
from experiments.surrogate import predict_optimum
from experiments.tracking import mlflow_client


def _manifest(folder: Path, confirmed: ConfirmResult | None) -> str | None:
    """The replayable manifest of the predicted-optimal recipe's pipeline run, when it was run."""
    path = folder / "confirm" / "predicted_optimal" / "search_scale" / "run" / "manifest.json"
    return str(path) if confirmed and path.exists() else None


def finalize(
    folder: str | Path,
    *,
    confirm: bool = True,
    confirm_preset: str | None = None,
    confirm_tokens: int | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> dict[str, Any]:
    """Fit the surrogate, write ``predicted_optimal.yaml``, confirm against baselines, write the report.

    Returns (and writes to ``DIR/final.json``) the prediction, the confirm result and the paths."""
    search = Search(folder)
    study = search.study()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(
            f"no completed trial in {search.folder}; see `dataplan search --resume` and the trials' errors"
        )
    prediction = predict_optimum(
        search.space, [(dict(t.params), t.values[0]) for t in complete], seed=search.config.seed
    )
    predicted = search.space.apply(search.base, prediction.values)
    predicted.name = f"{search.base.name}-predicted-optimal"
    predicted.save(search.folder / "predicted_optimal.yaml")
    best_trial = min(complete, key=lambda t: t.values[0])
    best = search.space.apply(search.base, dict(best_trial.params))
    result: ConfirmResult | None = None
    if confirm:
        result = run_confirm(
            search.folder,
            search.config,
            confirm_recipes(predicted, best),
            preset=confirm_preset or search.config.proxy.preset,
            tokens=confirm_tokens or 2 * search.config.proxy.tokens,
            seeds=list(seeds),
        )
    trials = [trial_summary(t) for t in study.get_trials(deepcopy=False)]
    report, plots = write_report(
        search.folder, study, trials, search.space.simplex, prediction, predicted.to_yaml(), result
    )
    final = {
        "prediction": prediction.model_dump(),
        "predicted_recipe": str(search.folder / "predicted_optimal.yaml"),
        "predicted_recipe_id": predicted.recipe_id(),
        "best_trial": best_trial.number,
        "best_observed": best_trial.values[0],
        "confirm": result.model_dump() if result else None,
        "report": str(report),
        "manifest": _manifest(search.folder, result),
        "plots": [str(p) for p in plots],
    }
    (search.folder / "final.json").write_text(json.dumps(final, indent=2))
    mlflow = mlflow_client()
    with mlflow.start_run(run_id=search.config.mlflow_parent_run):
        mlflow.log_metrics(
            {
                "predicted_bpb": prediction.predicted,
                "predicted_bpb_std": prediction.uncertainty,
                "best_observed_bpb": best_trial.values[0],
            }
        )
        for path in [report, *plots, search.folder / "predicted_optimal.yaml", search.folder / "final.json"]:
            mlflow.log_artifact(str(path))
    return final
