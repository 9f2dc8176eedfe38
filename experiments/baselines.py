"""Baseline recipes the confirm stage compares the predicted-optimal recipe against."""

from __future__ import annotations

from operators import Recipe, Step, is_registered

FINEWEB_STEPS: tuple[tuple[str, dict], ...] = (
    ("text_normalize", {}),
    ("language_id", {"keep": ["en"], "min_score": 0.65}),
    ("gopher_repetition", {}),
    ("gopher_quality", {}),
    ("c4_quality", {}),
    ("fineweb_quality", {}),
    ("minhash_dedup", {}),
    ("pii_redact", {}),
)
"""The FineWeb pipeline (Penedo et al. 2024) at its published defaults, in its order."""


def fineweb_default(recipe: Recipe) -> Recipe:
    """The recipe's sources through the FineWeb-style pipeline (HTML extracted first), natural mixture.

    Steps whose operator is not installed are left out (they are listed in ``dataplan ops list``)."""
    steps = []
    html_sources = [s.name for s in recipe.sources if recipe.reader_class(s).name == "warc"]
    if html_sources and is_registered("html_extract"):
        steps.append(Step(op="html_extract", sources=html_sources))
    steps += [Step(op=op, params=params) for op, params in FINEWEB_STEPS if is_registered(op)]
    return _with(recipe, steps=steps, weights=None, name="fineweb_default")


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
        data["mixture"]["phases"] = None  # a baseline mixture is static
    return Recipe.model_validate({**data, "base_dir": recipe.base_dir})


BASELINES = {
    "natural_mixture": natural_mixture,
    "uniform_mixture": uniform_mixture,
    "no_filtering": no_filtering,
    "fineweb_default": fineweb_default,
}
