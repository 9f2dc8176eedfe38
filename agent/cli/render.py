"""What a person sees at review and at the end of a run."""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from agent.cli.console import console


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def render_review(pending: dict[str, Any]) -> None:
    goal, proposal = pending["goal"], pending["proposal"]
    console.rule("goal as understood")
    for key, value in goal.items():
        if key in ("text", "defaults"):
            continue
        mark = "  (default)" if key in goal.get("defaults", []) else ""
        console.print(f"  {key}: {escape(str(value))}{mark}", highlight=False)
    console.rule("proposed recipe")
    console.print(Syntax(_yaml(proposal["recipe"]), "yaml"))
    console.rule("search space")
    console.print(Syntax(_yaml(proposal["space"]), "yaml"))
    if why := proposal.get("rationale"):
        sep = "\n" if "\n" in why else " "  # the rule planner writes one line per step
        console.print(f"[bold]why:[/]{sep}{escape(why)}", highlight=False)
    previous = pending.get("previous_proposal")
    if previous:
        console.rule("diff from the previous proposal")
        diff = difflib.unified_diff(
            _yaml({"recipe": previous["recipe"], "space": previous["space"]}).splitlines(),
            _yaml({"recipe": proposal["recipe"], "space": proposal["space"]}).splitlines(),
            "previous",
            "proposed",
            lineterm="",
        )
        console.print(Syntax("\n".join(diff) or "(no change)", "diff"))
    if pending.get("review_error"):
        console.print(f"[red]the last edit was invalid:[/] {escape(pending['review_error'])}")
    console.print(f"compute budget on approval: ~{pending['compute_budget']:,.0f} proxy-training tokens")


def render_final(final: dict[str, Any]) -> None:
    from experiments.tracking import tracking_uri

    p = final["prediction"]
    console.rule("predicted-optimal recipe")
    console.print(
        f"predicted weighted bits-per-byte {p['predicted']:.4f} ± {p['uncertainty']:.4f} (best trial observed {final['best_observed']:.4f})"
    )
    if p.get("reason"):
        console.print(escape(p["reason"]), highlight=False)
    if final.get("confirm"):
        for s in final["confirm"]["scores"]:
            console.print(f"  {s['name']:<18} {s['mean']:.4f} ± {s['std']:.4f} bpb", highlight=False)
        render_comparisons(final)
    console.print(f"recipe:   {final['predicted_recipe']}")
    console.print(f"report:   {final['report']}")
    console.print(f"MLflow:   {tracking_uri()}  (mlflow ui --backend-store-uri {tracking_uri()})")
    if final.get("manifest"):
        console.print(f"manifest: {final['manifest']}  (dataplan replay {final['manifest']} --out DIR)")


def _ablated(g: dict[str, Any], where: str = "") -> str:
    """``3 length_filter``, ``3 length_filter + 4 c4_quality together``, ``3 length_filter alone of
    3-4`` (a group member kept on, the rest of its group off), ``3 length_filter switched on`` (a step
    the search switched off) or ``mixture: natural``, then ``where``; a row taken against the
    recommended recipe loses its ``recommended_`` prefix."""
    name = g["baseline"].removeprefix(f"{g['against']}_") if g.get("against") else g["baseline"]
    if name == "mixture_natural":
        return "mixture: natural" + where
    if g.get("added") is not None:
        return name.removeprefix("with_").replace("_", " ", 1) + " switched on" + where
    if g.get("kept") is not None:
        named, group = name.removeprefix("only_").rsplit("_of_", 1)
        return f"{named.replace('_', ' ', 1)} alone of {group}{where}"
    indices, ops = name.removeprefix("without_").split("_", 1)
    named = [f"{i} {op}" for i, op in zip(indices.split("-"), ops.split("-"), strict=True)]
    return " + ".join(named) + (" together" if g.get("steps") else "") + where


def _row_label(g: dict[str, Any], final_name: str, again: bool) -> str:
    """The step column of an ablation row: ``_ablated`` and, for a step switched back on, that the
    final recipe has it off; where the steps that hurt were dropped and the rest ablated again
    (``again``), the first round's rows say they describe the final recipe."""
    if g.get("added") is not None:
        return _ablated(g, f" (off in {final_name})")
    return _ablated(g, f" (in {final_name}, dropped)" if again and not g.get("against") else "")


STEP_CHANGES = {
    "dropped_steps": "dropped from the recommended recipe (they hurt)",
    "restored_steps": "switched back on in the recommended recipe (they help)",
    "hurting_in_recommended": "hurt in the recommended recipe too, yet kept on (no recipe without them was measured)",
}
"""The closing lines on the steps the confirmation changed, by their key in ``final.json``."""


def render_comparisons(final: dict[str, Any]) -> None:
    """The paired comparisons against baselines and the ablation table of a finalized search."""
    c = final["confirm"]
    console.print(
        f"paired by seed ({c['preset']}, {c['tokens']:,} tokens): seeds {c['seeds']} (at most {c['max_seeds']}), "
        f"{c['runs']} trainings",
        highlight=False,
    )
    final_name = c.get("final", "predicted_optimal")  # experiments.confirm.PREDICTED, not imported at CLI start
    if final_name != "predicted_optimal":
        console.print(
            f"[bold]the confirmation overturned the prediction:[/] {final_name} beats predicted_optimal beyond the "
            f"paired interval, so it is the final recipe; the gains and the ablation below are {final_name}'s",
            highlight=False,
        )
    for g in c["gaps"]:
        console.print(
            f"  gain vs {g['baseline']:<16} {-g['diff']:+.4f} bpb, 95% CI [{-g['ci95'][1]:+.4f}, {-g['ci95'][0]:+.4f}]"
            f" ({len(g['seeds'])} seeds): {g['verdict']}",
            highlight=False,
        )
    if c.get("ablations"):
        again = any(g.get("against") for g in c["ablations"])  # the steps that hurt were dropped and the rest redone
        table = Table(title="what each step buys in the recommended recipe (effect on target bpb; negative = helps)")
        table.add_column("step")  # the one column that wraps: a group's names are long
        for col in ("effect [95% CI]", "seeds", "verdict"):
            table.add_column(col, no_wrap=True)
        for g in c["ablations"]:
            step = _row_label(g, final_name, again)
            effect = f"{g['diff']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"
            if g["diffs"] and not any(g["diffs"]):  # Gap.same_data; experiments.report.SAME_DATA (not imported here)
                effect = "0, same training data"
            table.add_row(step, effect, str(len(g["seeds"])), g["verdict"])
        console.print(table)
    for key, text in STEP_CHANGES.items():
        if final.get(key):
            console.print(f"{text}: {', '.join(final[key])}")
    if final.get("recommended_recipe"):
        console.print(f"recommended: {final['recommended_recipe']}")
