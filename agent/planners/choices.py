"""Processing choices in a search space, shared by the rule-based and the LLM planner.

For each filter, dedup and selection step a planner proposes, the space may offer two dimensions:
``steps.<i>.enabled: bool`` (the search may switch the step off) and the step's *main threshold*
``steps.<i>.<param>`` (only sampled when the step is on). ``MAIN_THRESHOLDS`` names that parameter
per operator and how wide its range is: ``value x (1 - spread)`` to ``value x (1 + spread)``,
clipped to ``bounds``, centred on the step's value in the proposed recipe, which is the operator's
published default unless the planner set another (so the proposal, trial 0, lies inside the space
and is never clipped). Every main threshold is a decision-only parameter: a trial that moves it
re-decides on cached signals and never recomputes them.

Mappers and readers (text cleaning, extraction, PII redaction) are never switched off, nor is
``decontaminate``, which protects the evaluation. ``MAX_SEARCHED_STEPS`` bounds the space: a TPE
search needs more trials the more dimensions it has, and a search here runs 6-20 trials.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from operators import OperatorKind, get_operator, is_registered

MAX_SEARCHED_STEPS = 4
"""Processing steps searched at most (two dimensions each), besides the mixture simplex."""
NEVER_SWITCHED = {"decontaminate": "it keeps evaluation text out of training; switching it off leaks the targets"}


@dataclass(frozen=True)
class MainThreshold:
    """The decision parameter a search moves for one operator, and the relative width of its range."""

    param: str
    spread: float
    bounds: tuple[float, float] = (0.0, math.inf)
    note: str = ""

    def around(self, centre: float, integer: bool) -> list[float] | None:
        """``[lo, hi]`` around ``centre``, or None when the range would be empty."""
        lo = max(self.bounds[0], centre * (1 - self.spread))
        hi = min(self.bounds[1], centre * (1 + self.spread))
        if integer:
            lo, hi = math.floor(lo), math.ceil(hi)
        else:
            lo, hi = round(lo, 4), round(hi, 4)
        lo, hi = min(lo, centre), max(hi, centre)
        return [lo, hi] if lo < hi else None


RATIO = (0.0, 1.0)
MAIN_THRESHOLDS: dict[str, MainThreshold | None] = {
    # filters: the rule that fires most often on real data, at the operator's published default
    "language_id": MainThreshold("min_score", 0.4, RATIO, "FineWeb 0.65 -> [0.39, 0.91]"),
    "length_filter": MainThreshold("min_words", 0.5, note="centred on the planner's percentile"),
    "gopher_quality": MainThreshold(
        "min_alpha_words_ratio", 0.2, RATIO, "Gopher 0.8 -> [0.64, 0.96]; the rule clean prose with numbers fails"
    ),
    "gopher_repetition": MainThreshold(
        "max_dup_5gram_char_frac", 0.5, RATIO, "Gopher 0.15 -> [0.075, 0.225]; its most frequent drop reason"
    ),
    "fineweb_quality": MainThreshold("line_punct_thr", 0.5, RATIO, "FineWeb 0.12 -> [0.06, 0.18]"),
    "c4_quality": MainThreshold("min_num_sentences", 0.5, note="C4 5 -> [2, 8]"),
    "url_filter": MainThreshold("soft_word_threshold", 0.5, (1, math.inf), "datatrove 2 -> [1, 3]"),
    "llm_quality_score": MainThreshold("threshold", 1 / 3, (0, 5), "FineWeb-Edu 3 -> [2, 4]"),
    "decontaminate": None,
    # dedup
    "exact_dedup": None,
    "minhash_dedup": None,  # its similarity cut is bands x rows, bounded by the cached num_perm: on/off only
    "semantic_dedup": MainThreshold("eps", 0.5, RATIO, "SemDeDup 0.05 -> [0.025, 0.075]"),
    "soft_dedup": None,  # reweights, drops nothing: on/off only
    "simhash_dedup": MainThreshold("hamming_distance", 0.5, (0, 7), "Manku 3 -> [1, 5]; fingerprints are cached"),
    "bloom_dedup": None,  # one sequential pass over the corpus, nothing cached: on/off only
    "substring_dedup": None,  # a suffix array over the corpus per span length: on/off only
    # selection
    "dsir_select": MainThreshold(
        "keep_fraction", 0.5, RATIO, "0.5 -> [0.25, 0.75]; the rule planner centres it on twice the target-like share"
    ),
    "perplexity_select": None,  # its cut is a quantile band (a pair): on/off only
    "quality_classifier": MainThreshold("keep_fraction", 0.5, RATIO, "DCLM 0.1 -> [0.05, 0.15]"),
}


def switchable(op: str) -> bool:
    """Whether a search may switch a step of ``op`` off: filters, dedup and selection steps."""
    if op in NEVER_SWITCHED or not is_registered(op):
        return False
    return get_operator(op).kind in (OperatorKind.FILTER, OperatorKind.GLOBAL)


def threshold_range(step: dict[str, Any]) -> tuple[str, dict[str, list[float]]] | None:
    """``(param, {"int" | "float": [lo, hi]})`` of a step's main threshold, centred on its value in
    the step (else the operator's default); None when the operator has none, the value is unset
    (None) or the range does not validate against the step's params."""
    spec = MAIN_THRESHOLDS.get(step.get("op", ""))
    if spec is None or not is_registered(step["op"]):
        return None
    cls = get_operator(step["op"])
    params = step.get("params") or {}
    centre = params.get(spec.param, cls.Params.model_fields[spec.param].default)
    if isinstance(centre, bool) or not isinstance(centre, int | float):
        return None
    integer = isinstance(centre, int)
    rng = spec.around(centre, integer)
    if rng is None or not all(_valid(cls, params, spec.param, v) for v in rng):
        return None
    return spec.param, {"int" if integer else "float": rng}


def step_choices(index: int, step: dict[str, Any]) -> dict[str, Any]:
    """Space entries of one switchable step: ``steps.<i>.enabled`` and its main threshold."""
    out: dict[str, Any] = {f"steps.{index}.enabled": "bool"}
    if found := threshold_range(step):
        out[f"steps.{index}.{found[0]}"] = found[1]
    return out


def describe(index: int, space: dict[str, Any]) -> str:
    """What the space searches of one step, in words: ``on/off, min_score in [0.39, 0.91]``."""
    parts = []
    for key, spec in space.items():
        if key.startswith(f"steps.{index}."):
            param = key.split(".", 2)[2]
            parts.append("on/off" if param == "enabled" else f"{param} in {next(iter(spec.values()))}")
    return ", ".join(parts)


def searched_steps(recipe: dict[str, Any], space: dict[str, Any]) -> list[int]:
    """Indices of the recipe steps that ``space`` moves (keys ``steps.<index or op>.<param>``)."""
    ops = [s.get("op") if isinstance(s, dict) else None for s in recipe.get("steps") or []]
    found: set[int] = set()
    for key in space.get("params") or {}:
        m = re.fullmatch(r"steps\.([A-Za-z0-9_\-]+)\.[A-Za-z0-9_]+", str(key))
        if not m:
            continue
        if m[1].isdigit():
            found.add(int(m[1]))
        elif ops.count(m[1]) == 1:
            found.add(ops.index(m[1]))
    return sorted(found)


def complete_space(recipe: dict[str, Any], space: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``space`` with the processing choices it lacks filled in from ``MAIN_THRESHOLDS``: a step
    the space does not move gets ``enabled`` and its main threshold, a step it moves without
    ``enabled`` gets ``enabled``, in recipe order, while at most ``MAX_SEARCHED_STEPS`` are
    searched. Returns the new space and one note per step it added or had to leave fixed."""
    params = dict(space.get("params") or {})
    searched = searched_steps(recipe, space)
    notes: list[str] = []
    for index, step in enumerate(recipe.get("steps") or []):
        if not isinstance(step, dict) or not switchable(str(step.get("op"))):
            continue
        if index in searched:
            if not _has_enabled(params, index, step["op"], recipe):
                params[f"steps.{index}.enabled"] = "bool"
                notes.append(f"steps.{index} {step['op']}: added on/off")
        elif len(searched) < MAX_SEARCHED_STEPS:
            params.update(step_choices(index, step))
            searched.append(index)
            notes.append(f"steps.{index} {step['op']}: added {describe(index, params)}")
        else:
            notes.append(f"steps.{index} {step['op']}: fixed (the space searches at most {MAX_SEARCHED_STEPS} steps)")
    return {**space, "params": params}, notes


def space_problem(recipe: dict[str, Any], space: dict[str, Any]) -> str | None:
    """Why a planner may not propose ``space``: it moves more than ``MAX_SEARCHED_STEPS`` steps, or
    switches off a step that is not switchable. None when it may."""
    searched = searched_steps(recipe, space)
    if len(searched) > MAX_SEARCHED_STEPS:
        return (
            f"the space moves {len(searched)} processing steps ({searched}); a planner proposes at most "
            f"{MAX_SEARCHED_STEPS} (a TPE search needs more trials the more dimensions it has): fix the others"
        )
    steps = recipe.get("steps") or []
    for index in searched_steps(recipe, {"params": _enabled_keys(space)}):
        op = steps[index].get("op") if index < len(steps) and isinstance(steps[index], dict) else None
        if op and is_registered(str(op)) and not switchable(str(op)):  # an unknown op is the recipe's error
            why = NEVER_SWITCHED.get(str(op), "only filter, dedup and selection steps are switched off")
            return f"steps.{index}.enabled: {op} may not be switched off ({why})"
    return None


def table_text() -> str:
    """The table as prompt text: ``op.param (spread)`` per operator, and the on/off-only ones."""
    ranged = [f"{op}.{t.param} (x{1 - t.spread:.2g}..x{1 + t.spread:.2g})" for op, t in MAIN_THRESHOLDS.items() if t]
    plain = [op for op, t in MAIN_THRESHOLDS.items() if t is None and op not in NEVER_SWITCHED]
    return f"{'; '.join(ranged)}. On/off only: {', '.join(plain)}."


def _enabled_keys(space: dict[str, Any]) -> dict[str, Any]:
    params = space.get("params")
    return {k: v for k, v in params.items() if str(k).endswith(".enabled")} if isinstance(params, dict) else {}


def _has_enabled(params: dict[str, Any], index: int, op: str, recipe: dict[str, Any]) -> bool:
    unique = sum(1 for s in recipe.get("steps") or [] if isinstance(s, dict) and s.get("op") == op) == 1
    return f"steps.{index}.enabled" in params or (unique and f"steps.{op}.enabled" in params)


def _valid(cls: Any, params: dict[str, Any], param: str, value: float) -> bool:
    try:
        cls.Params.model_validate({**params, param: value})
    except (ValidationError, ValueError):
        return False
    return True
