"""Finalize a search: predicted-optimal recipe (surrogate), confirmation, report; all logged to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from experiments.baselines import baseline_names
from experiments.confirm import (
    RECOMMENDED,
    ConfirmResult,
    OnRun,
    confirm_recipes,
    hurting_steps,
    restored_steps,
    run_confirm,
    without,
)
from experiments.confirm_log import ConfirmLog, setup_fingerprint
from experiments.fidelity import trials_per_rung
from experiments.report import write_report
from experiments.reweighting import LEARNED_BASELINES, learned_baseline
from experiments.search_tokenizer import ensure_search_tokenizer
from experiments.study import Search, signals_raise_interrupt, trial_summary
from experiments.surrogate import Observed, predict_optimum
from experiments.tracking import mlflow_client

CANDIDATES = ("best_observed", "proposal")
"""The search's own recipes besides the predicted one: either becomes the final recipe when the
paired confirmation finds it better than the predicted one beyond the interval (the search ranked
them at its cheaper scale; the confirmation's larger proxy has the last word)."""


def _manifest(search: Search, recipe_id: str, confirmed: ConfirmResult | None) -> str | None:
    """The replayable manifest of the final recipe's pipeline run, when it was run (by this
    finalize or, recorded, by an interrupted one, under whatever name the recipe had then)."""
    setup = setup_fingerprint(search.config)
    entry = ConfirmLog(search.folder).get((recipe_id, setup, search.config.seed)) if confirmed else None
    path = search.folder / entry["dir"] / "run" / "manifest.json" if entry and "dir" in entry else None
    return str(path) if path and path.exists() else None


def paired_metrics(result: ConfirmResult) -> dict[str, float]:
    """The paired comparisons as MLflow metrics: ``paired_<other>`` (predicted minus other, bpb),
    its ``_lo``/``_hi`` interval bounds and ``_seeds``; ablations as ``ablation_<step>...``."""
    out: dict[str, float] = {"confirm_seeds": len(result.seeds), "confirm_runs": result.runs}
    for prefix, gaps in (("paired_", result.gaps), ("ablation_", result.ablations)):
        for g in gaps:
            key = prefix + g.baseline
            out |= {key: g.diff, f"{key}_lo": g.ci95[0], f"{key}_hi": g.ci95[1], f"{key}_seeds": len(g.seeds)}
    return out


def finalize(
    folder: str | Path,
    *,
    confirm: bool | None = None,
    confirm_preset: str | None = None,
    confirm_tokens: int | None = None,
    confirm_tokenizer: str | None = None,
    seeds: tuple[int, ...] | None = None,
    max_seeds: int | None = None,
    ablate: bool | None = None,
    on_run: OnRun | None = None,
    ablation_max_seeds: int | None = None,
    baselines: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Fit the surrogates and write ``predicted_optimal.yaml`` (the optimum of the one with the lowest
    leave-one-out error where it beats the best trial beyond its uncertainty, else the best trial),
    confirm it against baselines with paired seeds (adding seeds up to ``max_seeds`` while a
    comparison is undecided), ablate each of its steps and switch back on each step the search
    switched off, write ``recommended.yaml`` (the final recipe minus the steps that hurt, plus the
    switched-off steps that help) and the report. Settings left None are the search's own
    (``SearchConfig.finalize``, as ``dataplan search`` was started).

    Each confirmation training is recorded as it finishes (``DIR/confirmations.jsonl``) and reused by
    a later call; SIGTERM, like Ctrl-C, raises ``KeyboardInterrupt`` (what finished stays recorded).
    ``on_run`` hears of each training (``experiments.confirm.OnRun``). ``baselines`` adds rivals to
    ``experiments.baselines.DEFAULT_BASELINES``: the published pipelines of ``recipes/`` (``c4``,
    ``gopher``, ``refinedweb``, ``dclm_baseline``: ``experiments.baselines``) and mixtures a proxy
    learns on the predicted recipe's output (``doremi``, ``doge``:
    ``experiments.reweighting.learned_baseline``, recorded in ``DIR/mix/<method>``).

    Returns (and writes to ``DIR/final.json``) the prediction, the confirm result and the paths."""
    built = baseline_names(baselines, elsewhere=LEARNED_BASELINES)  # an unknown name is refused before any work
    with signals_raise_interrupt():
        search = Search(folder)
        spec = search.config.finalize
        chosen = list(seeds) if seeds is not None else list(range(spec.seeds))
        settings = {
            "confirm": spec.confirm if confirm is None else confirm,
            "proxy": search.config.confirm_proxy(confirm_preset, confirm_tokens, confirm_tokenizer),
            "seeds": chosen,
            "max_seeds": max(spec.max_seeds, len(chosen)) if max_seeds is None else max_seeds,
            "ablate": spec.ablate if ablate is None else ablate,
            "ablation_max_seeds": ablation_max_seeds,
            "baselines": built,
            "learned_baselines": [b for b in baselines if b in LEARNED_BASELINES],
        }
        return _finalize(search, settings, on_run)


def _finalize(search: Search, settings: dict[str, Any], on_run: OnRun | None) -> dict[str, Any]:
    study = search.study()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(
            f"no completed trial in {search.folder}; see `dataplan search --resume` and the trials' errors"
        )
    prediction = predict_optimum(
        search.space,
        [Observed.from_trial(t) for t in complete],
        seed=search.config.seed,
        weights={t.name: t.weight for t in search.config.targets},
    )
    predicted = search.space.apply(search.base, prediction.values)
    predicted.name = f"{search.base.name}-predicted-optimal"
    predicted.save(search.folder / "predicted_optimal.yaml")
    best_trial = min(complete, key=lambda t: t.values[0])
    best = search.space.apply(search.base, dict(best_trial.params))
    proposal = search.space.apply(search.base, search.space.values_of(search.base))
    result: ConfirmResult | None = None
    if settings["confirm"]:
        proxy = settings["proxy"]
        ensure_search_tokenizer(search.config, search.folder, proxy)
        rivals = confirm_recipes(predicted, best, proposal, settings["baselines"])
        for method in settings["learned_baselines"]:
            folder = search.folder / "mix" / method
            rivals[f"{method}_mixture"] = learned_baseline(
                predicted, folder, search.config, method, proxy.preset, proxy.tokens
            )
        result = run_confirm(
            search.folder,
            search.config,
            rivals,
            proxy=proxy,
            seeds=settings["seeds"],
            max_seeds=settings["max_seeds"],
            ablate=settings["ablate"],
            on_run=on_run,
            ablation_max_seeds=settings["ablation_max_seeds"],
            candidates=CANDIDATES,
        )
    chosen = rivals[result.final] if result else predicted  # a candidate the confirmation found better
    changed = {
        "dropped_steps": hurting_steps(result) if result else [],
        "restored_steps": restored_steps(result) if result else [],
        "hurting_in_recommended": hurting_steps(result, RECOMMENDED) if result else [],
    }
    recommended = without(chosen, tuple(changed["dropped_steps"]), on=tuple(changed["restored_steps"]))
    recommended.name = f"{search.base.name}-recommended"
    steps = {key: [f"{i} {chosen.steps[i].op}" for i in indices] for key, indices in changed.items()}
    recommended.save(search.folder / "recommended.yaml")
    trials = [trial_summary(t) for t in study.get_trials(deepcopy=False)]
    searched = search.config.proxy
    rungs = trials_per_rung(study.trials, searched.tokens, searched.rungs) if searched.rungs > 1 else None
    report, plots = write_report(
        search.folder,
        study,
        trials,
        search.space.simplex,
        prediction,
        predicted.to_yaml(),
        result,
        steps,
        rungs,
    )
    final = {
        "prediction": prediction.model_dump(),
        "predicted_recipe": str(search.folder / "predicted_optimal.yaml"),
        "predicted_recipe_id": predicted.recipe_id(),
        "final": result.final if result else None,
        "recommended_recipe": str(search.folder / "recommended.yaml"),
        "recommended_recipe_id": recommended.recipe_id(),
        **steps,
        "rungs": rungs,
        "best_trial": best_trial.number,
        "best_observed": best_trial.values[0],
        "confirm": result.model_dump() if result else None,
        "report": str(report),
        "manifest": _manifest(search, chosen.recipe_id(), result),
        "plots": [str(p) for p in plots],
    }
    (search.folder / "final.json").write_text(json.dumps(final, indent=2))
    mlflow = mlflow_client(search.config.mlflow_experiment)
    with mlflow.start_run(run_id=search.config.mlflow_parent_run):
        mlflow.log_metrics(
            {
                "predicted_bpb": prediction.predicted,
                "predicted_bpb_std": prediction.uncertainty,
                "best_observed_bpb": best_trial.values[0],
                **{f"surrogate_loo_mae_{name}": mae for name, mae in prediction.loo.items()},
                **(paired_metrics(result) if result else {}),
            }
        )
        files = ["predicted_optimal.yaml", "recommended.yaml", "final.json"]
        for path in [report, *plots, *(search.folder / f for f in files)]:
            mlflow.log_artifact(str(path))
    return final
