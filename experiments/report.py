"""``DIR/report.md`` and its plots: optimisation history, parameter importances, mixture weights
against the objective, and the confirm table with error bars."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna

from experiments.confirm import PREDICTED, ConfirmResult, Gap
from experiments.space import simplex_weights
from experiments.surrogate import Prediction
from experiments.weights import params_text, weight_importances


def plot_history(trials: list[dict[str, Any]], path: Path) -> Path:
    done = [t for t in trials if t["state"] == "complete"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [t["number"] for t in done]
    ys = [t["objective"] for t in done]
    best = [min(ys[: i + 1]) for i in range(len(ys))]
    ax.scatter(xs, ys, s=14, label="trial")
    ax.step(xs, best, where="post", color="C3", label="best so far")
    pruned = [t["number"] for t in trials if t["state"] == "pruned"]
    if pruned:
        ax.scatter(pruned, [max(ys or [0])] * len(pruned), marker="x", color="grey", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel("weighted bits-per-byte")
    ax.legend()
    return _save(fig, path)


def plot_importances(study: optuna.Study, path: Path) -> tuple[Path | None, dict[str, float]]:
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 3 or len(study.directions) > 1:
        return None, {}
    try:
        with warnings.catch_warnings():  # "some regimes have less than 2 trials" on every small study
            warnings.simplefilter("ignore", UserWarning)
            imp = weight_importances(study)
    except (RuntimeError, ValueError):
        return None, {}
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(imp) + 1))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (PED-ANOVA, Optuna's default)")
    return _save(fig, path), imp


def plot_weights(trials: list[dict[str, Any]], sources: list[str], path: Path) -> Path | None:
    done = [t for t in trials if t["state"] == "complete" and all(f"mixture.{s}" in t["params"] for s in sources)]
    if not sources or not done:
        return None
    fig, axes = plt.subplots(1, len(sources), figsize=(3 * len(sources), 3), sharey=True, squeeze=False)
    for ax, src in zip(axes[0], sources, strict=True):
        ws = [simplex_weights({s: t["params"][f"mixture.{s}"] for s in sources})[src] for t in done]
        ax.scatter(ws, [t["objective"] for t in done], s=14)
        ax.set_xlabel(f"weight of {src}")
    axes[0][0].set_ylabel("weighted bits-per-byte")
    return _save(fig, path)


def plot_confirm(result: ConfirmResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(result.scores) + 1))
    names = [s.name for s in result.scores][::-1]
    means = [s.mean for s in result.scores][::-1]
    stds = [s.std for s in result.scores][::-1]
    ax.barh(names, means, xerr=stds, capsize=4, color=["C3" if n == result.final else "C0" for n in names])
    pad = 3 * max([*stds, 0.01])
    ax.set_xlim(min(means) - pad, max(means) + pad)
    ax.set_xlabel(
        f"bits-per-byte ({result.preset}, {result.tokens} tokens, {len(result.seeds)} seeds; lower is better)"
    )
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    folder: Path,
    study: optuna.Study,
    trials: list[dict[str, Any]],
    sources: list[str],
    prediction: Prediction,
    predicted_yaml: str,
    confirm: ConfirmResult | None,
    steps: dict[str, list[str]] | None = None,
    rungs: list[dict[str, Any]] | None = None,
) -> tuple[Path, list[Path]]:
    """Write report.md and the PNGs; returns the report path and the plot paths. ``steps``: the
    steps (``3 length_filter``) the confirmation changed, under the keys of ``STEP_CHANGES``."""
    plots: list[Path] = [plot_history(trials, folder / "history.png")]
    imp_path, importances = plot_importances(study, folder / "importances.png")
    plots += [p for p in (imp_path, plot_weights(trials, sources, folder / "weights.png")) if p]
    if confirm:
        plots.append(plot_confirm(confirm, folder / "confirm.png"))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    lines = [
        f"# Recipe search report: {folder.name}",
        "",
        f"Trials: {sum(counts.values())} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}).",
        f"Best observed weighted bits-per-byte: {prediction.best_observed:.4f}.",
        "",
        "## Predicted-optimal recipe",
        "",
        *_surrogate_section(prediction),
        "```yaml",
        predicted_yaml.rstrip(),
        "```",
        "",
    ]
    if confirm:
        lines += _confirm_section(confirm) + _ablation_section(confirm, steps or {})
    if importances:
        lines += ["## Parameter importances", "", *[f"- `{k}`: {v:.3f}" for k, v in importances.items()], ""]
    if rungs:
        lines += [
            "## Fidelity rungs (successive halving)",
            "",
            "| rung | proxy tokens | trials scored | stopped there |",
            "|---|---|---|---|",
            *[f"| {r['rung']} | {r['tokens']:,} | {r['trials']} | {r['stopped']} |" for r in rungs],
            "",
        ]
    lines += ["## Trials", "", "| # | state | objective | params |", "|---|---|---|---|"]
    for t in trials:
        obj = f"{t['objective']:.4f}" if t["objective"] is not None else ""
        params = params_text(t)
        lines.append(f"| {t['number']} | {t['state']} | {obj} | {params} |")
    lines += ["", *[f"![{p.stem}]({p.name})" for p in plots], ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report, plots


def _surrogate_section(p: Prediction) -> list[str]:
    """Which surrogate was used and why, each one's leave-one-out error, and what was recommended."""
    lines = [p.reason, ""]
    if p.surrogates:
        lines += ["| surrogate | LOO MAE (bpb) | parameters | used |", "|---|---|---|---|"]
        for s in p.surrogates:
            err = f"{s.loo_mae:.4f}" if s.loo_mae is not None else f"skipped: {s.skipped}"
            lines.append(f"| {s.name} | {err} | {s.parameters} | {'yes' if s.used else ''} |")
        if p.loo_constant is not None:
            lines.append(f"| (constant: mean of the other trials) | {p.loo_constant:.4f} | 1 |  |")
        lines.append("")
        fitted = next((s.fitted for s in p.surrogates if s.used), {})
        if fitted:
            lines += [f"Fitted {p.chosen}: " + ", ".join(f"{k} = {v:.4g}" for k, v in fitted.items()) + ".", ""]
    if p.chosen is None:
        return [*lines, f"Recommended: the best observed trial ({p.best_observed:.4f}).", ""]
    what = "the surrogate's optimum" if p.decision == "surrogate_optimum" else "the best observed trial"
    lines += [
        f"Recommended: {what}; {p.chosen} predicts {p.predicted:.4f} ± {p.uncertainty:.4f} (bootstrap std) there "
        f"(fitted on {p.n_trials} trials, searched over {p.n_candidates} candidates).",
        "",
    ]
    return lines


def _confirm_section(c: ConfirmResult) -> list[str]:
    overturned = next((g for g in c.gaps if g.baseline == PREDICTED), None)
    verdict = (
        [
            f"**The confirmation overturned the prediction:** `{c.final}` beat the predicted-optimal recipe by "
            f"{-overturned.diff:.4f} bits per byte, 95% CI [{-overturned.ci95[1]:+.4f}, {-overturned.ci95[0]:+.4f}] "
            f"({len(overturned.seeds)} seeds), so it is the final recipe: every comparison and ablation below is "
            "taken against it.",
            "",
        ]
        if overturned
        else []
    )
    return [
        f"## Confirmation ({c.preset}, {c.tokens} tokens, seeds {c.seeds}; {c.runs} trainings)",
        "",
        "Paired by seed: seed k is the same initialisation and sampling order for every recipe; the "
        f"interval is Student's t over the per-seed differences. Seeds were added up to {c.max_seeds} "
        "while a baseline comparison was undecided.",
        "",
        "| recipe | search-scale | confirm mean | std | seeds |",
        "|---|---|---|---|---|",
        *[f"| {s.name} | {s.search_scale:.4f} | {s.mean:.4f} | {s.std:.4f} | {len(s.seeds)} |" for s in c.scores],
        "",
        *verdict,
        f"| {c.final} vs | paired difference | 95% CI | seeds | verdict |",
        "|---|---|---|---|---|",
        *[_gap_row(g) for g in c.gaps],
        "",
        f"Spearman rank correlation, search-scale vs confirm-scale: {c.spearman if c.spearman is None else round(c.spearman, 3)}.",
        "",
    ]


def _ablation_section(c: ConfirmResult, steps: dict[str, list[str]]) -> list[str]:
    if not c.ablations:
        return []
    lines = [
        "## What each step buys (ablation)",
        "",
        f"The final recipe (`{c.final}`) against itself with one step switched off (or its mixture made "
        "natural), paired by seed: a negative effect lowers bits per byte, so the step helps. Rows "
        "naming several steps (`without_2-6_...`) switch off together steps whose drops the others "
        "would mostly make anyway (read from the ablations' ledgers): redundant steps show no effect "
        "alone, so they are judged as a group. Rows `only_<step>_of_<group>` keep that one step on with "
        "the rest of a helping group off, against the whole group off: a negative effect means the step "
        "does part of the group's work alone. Rows `with_<step>` switch on, as proposed, a step the "
        "search switched off (on in the proposal, off in the final recipe), against the final recipe: "
        "a negative effect means the step would help. Only a step that hurts alone is dropped and only "
        "one that helps switched on is restored; rows named `recommended_...` are taken again against "
        "the recipe with those changes. "
        f"An effect of `{SAME_DATA}` means the recipe without the step trains on the same data: the "
        "step changes nothing here (it finds nothing to drop or edit, or only what earlier steps "
        "drop), so only a group with those steps can judge it.",
        "",
        "| step | effect on target bpb | 95% CI | seeds | verdict |",
        "|---|---|---|---|---|",
        *[_gap_row(g, ablation=True) for g in c.ablations],
        "",
    ]
    for key, text in STEP_CHANGES.items():
        if steps.get(key):
            lines += [f"{text} {', '.join(steps[key])}.", ""]
    return lines


STEP_CHANGES = {
    "dropped_steps": "Dropped from the recommended recipe (`recommended.yaml`) because they hurt:",
    "restored_steps": "Switched back on in the recommended recipe (`recommended.yaml`) because they help:",
    "hurting_in_recommended": "Hurt in the recommended recipe too (its `recommended_` rows), yet kept on there, "
    "since no recipe without them was measured:",
}
"""What the report says of the steps the confirmation changed, by their key in ``final.json``."""


SAME_DATA = "0, same training data"


def _gap_row(g: Gap, ablation: bool = False) -> str:
    effect = SAME_DATA if ablation and g.same_data else f"{g.diff:+.4f}"
    return f"| {g.baseline} | {effect} | [{g.ci95[0]:+.4f}, {g.ci95[1]:+.4f}] | {len(g.seeds)} | {g.verdict} |"
