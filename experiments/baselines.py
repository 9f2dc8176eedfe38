"""Baseline recipes the confirm stage compares the predicted-optimal recipe against.

Mixture baselines keep the recipe's steps: ``natural_mixture`` (weights proportional to the tokens
each source has after processing), ``uniform_mixture``; ``no_filtering`` keeps no step at all. The
published pipelines of ``recipes/`` (``c4``, ``gopher``, ``refinedweb``, ``fineweb``,
``dclm_baseline``: each cites its paper) are baselines too, built from their recipe files over the
run's sources with the natural mixture. ``DEFAULT_BASELINES`` are the ones every confirmation trains;
the other pipelines are opt-in (``dataplan finalize --baselines natural,uniform,fineweb,c4``): each
baseline costs a pipeline run and its confirmation trainings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from operators import Recipe, Step, is_registered

PIPELINES_DIR = Path(__file__).resolve().parent.parent / "recipes"
Pipeline = Literal["c4", "gopher", "refinedweb", "fineweb", "dclm_baseline"]
"""The published pipelines in ``recipes/``, by file name."""
PIPELINES: tuple[str, ...] = get_args(Pipeline)
EXTRACTION = "html_extract"


def pipeline_steps(name: str, html_sources: list[str]) -> list[dict[str, Any]]:
    """The steps of the published pipeline ``recipes/<name>.yaml``, in its order and with its
    parameters, for other sources than its own: its text extraction runs on ``html_sources`` only
    (and is left out when there are none); every other step applies to every source."""
    if name not in PIPELINES:
        raise ValueError(f"no published pipeline {name!r}; one of {list(PIPELINES)}")
    data = yaml.safe_load((PIPELINES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    steps = []
    for step in data["steps"]:
        if step["op"] == EXTRACTION:
            if not html_sources:
                continue
            step = {**step, "sources": list(html_sources)}
        steps.append(step)
    return steps


def pipeline_baseline(name: str) -> Callable[[Recipe], Recipe]:
    """The baseline that runs the recipe's sources through the published pipeline ``name`` (text
    extracted from its WARC sources), natural mixture. Steps whose operator is not installed are
    left out (they are listed in ``dataplan ops list``)."""

    def make(recipe: Recipe) -> Recipe:
        html = [s.name for s in recipe.sources if recipe.reader_class(s).name == "warc"]
        steps = [Step.model_validate(s) for s in pipeline_steps(name, html) if is_registered(s["op"])]
        return _with(recipe, steps=steps, weights=None, name=name)

    return make


def natural_mixture(recipe: Recipe) -> Recipe:
    """Same steps; weights proportional to the tokens each source has after processing."""
    return _with(recipe, weights=None, name="natural_mixture")


def uniform_mixture(recipe: Recipe) -> Recipe:
    return _with(recipe, weights={s.name: 1.0 for s in recipe.sources}, name="uniform_mixture")


def no_filtering(recipe: Recipe) -> Recipe:
    """Same sources and mixture, no processing steps at all."""
    return _with(recipe, steps=[], name="no_filtering")


def _with(recipe: Recipe, *, name: str, steps: list[Step] | None = None, weights: dict | str | None = "keep") -> Recipe:
    data = recipe.model_dump(mode="json")
    data["name"] = name
    if steps is not None:
        data["steps"] = [s.model_dump(mode="json") for s in steps]
    if weights != "keep":
        data["mixture"]["weights"] = weights
    return Recipe.model_validate({**data, "base_dir": recipe.base_dir})


BASELINES: dict[str, Callable[[Recipe], Recipe]] = {
    "natural_mixture": natural_mixture,
    "uniform_mixture": uniform_mixture,
    "no_filtering": no_filtering,
    **{name: pipeline_baseline(name) for name in PIPELINES},
}
DEFAULT_BASELINES = ("natural_mixture", "uniform_mixture", "no_filtering", "fineweb")
"""Trained by every confirmation (``experiments.confirm.CONFIRMED`` counts them in the budget)."""
ALIASES = {"natural": "natural_mixture", "uniform": "uniform_mixture", "unfiltered": "no_filtering"}


def baseline_names(extra: Iterable[str] = (), elsewhere: Iterable[str] = ()) -> list[str]:
    """The baselines built here that a confirmation trains: ``DEFAULT_BASELINES``, then those of
    ``extra`` (names of ``BASELINES`` or their short forms ``natural``, ``uniform``, ``unfiltered``),
    once each. Names in ``elsewhere`` (baselines built by another module) are passed over; any other
    name is refused with the names there are."""
    known = set(elsewhere)
    out = list(DEFAULT_BASELINES)
    for raw in extra:
        name = ALIASES.get(raw, raw)
        if name not in BASELINES and name not in known:
            raise ValueError(f"no baseline {raw!r}; the baselines are {[*BASELINES, *sorted(known)]}")
        if name in BASELINES and name not in out:
            out.append(name)
    return out


def baseline_recipes(recipe: Recipe, names: Iterable[str] | None = None) -> dict[str, Recipe]:
    """Name -> baseline recipe built from ``recipe`` (its sources and mixture), for ``names``
    (None: ``DEFAULT_BASELINES``)."""
    return {name: BASELINES[name](recipe) for name in (DEFAULT_BASELINES if names is None else names)}
