"""Search spaces: resolution against the base recipe and the operator schemas, sampling, apply."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from experiments.space import parse_space, simplex_weights
from operators import RecipeError, load_recipe

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def base(shared_data: Path):
    return load_recipe(REPO / "recipes/domains_basic.yaml")


def test_space_samples_conditionally_and_applies_to_the_recipe(base) -> None:
    space = parse_space(
        {
            "params": {
                "steps.1.min_words": {"int": [20, 200]},
                "steps.text_normalize.enabled": "bool",
                "steps.text_normalize.form": {"choice": ["NFC", "NFKC"]},
                "mixture.weights": "simplex",
            }
        },
        base,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_off = seen_on = False
    for _ in range(12):
        trial = study.ask()
        values = space.suggest(trial)
        recipe = space.apply(base, values)
        on = values["steps.0.text_normalize.enabled"]
        assert ("steps.0.text_normalize.form" in values) == on  # conditional: only sampled when on
        assert recipe.steps[0].enabled == on
        assert recipe.steps[1].params["min_words"] == values["steps.1.length_filter.min_words"]
        assert abs(sum(recipe.mixture.weights.values()) - 1) < 1e-5 and min(recipe.mixture.weights.values()) > 0
        seen_on, seen_off = seen_on or on, seen_off or not on
        study.tell(trial, 0.0)
    assert seen_on and seen_off
    assert base.steps[1].params["min_words"] == 100  # the base recipe is not modified


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"steps.length_filter.min_words": {"int": [1, 5]}},
            "op 'length_filter' appears at steps [1, 2]; use steps.<index>.<param>",
        ),
        (
            {"steps.1.min_wrds": {"int": [1, 5]}},
            "'length_filter' has no parameter 'min_wrds'; its parameters are ['max_chars'",
        ),
        ({"steps.1.min_words": {"int": [-5, 5]}}, "value -5 is invalid for length_filter.min_words"),
        ({"steps.1.min_words": {"int": [50, 5]}}, "lower bound 50 > upper bound 5"),
        ({"steps.gopher.x": {"int": [1, 5]}}, "no step with op 'gopher' in the base recipe"),
        ({"steps.9.min_words": {"int": [1, 5]}}, "the base recipe has 3 steps; index 9 is out of range"),
        ({"steps.1.enabled": {"int": [0, 1]}}, "`enabled` takes `bool`"),
        ({"mixture.weights": {"float": [0, 1]}}, "only `simplex` is supported"),
        ({"steps.1.min_words": {"int": [1, 5], "float": [1, 2]}}, "give exactly one of"),
        ({}, "the space has no dimensions"),
    ],
)
def test_bad_spaces_are_refused_with_the_key(base, params: dict, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_space({"params": params}, base)
    assert message in str(err.value)


def test_simplex_weights_are_normalised_exponentials() -> None:
    w = simplex_weights({"a": 0.5, "b": 0.25})
    assert w == {
        "a": round(0.6931471805599453 / (0.6931471805599453 + 1.3862943611198906), 6),
        "b": round(1.3862943611198906 / 2.0794415416798357, 6),
    }


def test_values_of_a_recipe_round_trip_through_apply(base) -> None:
    space = parse_space({"params": {"steps.1.min_words": {"int": [20, 200]}, "mixture.weights": "simplex"}}, base)
    values = space.values_of(base)
    assert values["steps.1.length_filter.min_words"] == 100
    again = space.apply(base, values)
    assert again.mixture.weights == {"code": 0.5, "books": 0.3, "legal": 0.2}
    assert again.recipe_id() == base.recipe_id()


def test_a_range_validates_in_the_step_it_goes_into(shared_data: Path) -> None:
    """Bounds are checked with the step's other params: a selection step with a required param can
    have its threshold searched, and a bound that breaks a cross-field rule of the step is refused."""
    books = str(shared_data / "domains/books_gutenberg.jsonl")
    recipe = load_recipe(REPO / "recipes/domains_basic.yaml")
    data = recipe.model_dump(mode="json")
    data["sources"] = [{"name": "books", "uri": books}]
    data["mixture"]["weights"] = None
    data["steps"] = [
        {"op": "dsir_select", "params": {"target": "books", "keep_fraction": 0.5}},
        {"op": "minhash_dedup", "params": {"rows": 10}},
    ]
    base = type(recipe).model_validate({**data, "base_dir": recipe.base_dir})
    space = parse_space({"params": {"steps.0.keep_fraction": {"float": [0.25, 0.75]}}}, base)
    assert [(p.op, p.param) for p in space.params] == [("dsir_select", "keep_fraction")]
    with pytest.raises(RecipeError, match=r"value 12 is invalid for minhash_dedup.bands: .*exceeds num_perm"):
        parse_space({"params": {"steps.1.bands": {"int": [7, 12]}}}, base)  # 12 x 10 rows > 112 perms


def test_points_around_a_proposal_keep_its_steps_and_centre_on_its_weights(base) -> None:
    space = parse_space(
        {"params": {"steps.1.enabled": "bool", "steps.1.min_words": {"int": [20, 200]}, "mixture.weights": "simplex"}},
        base,
    )
    points = space.around(base, 200, seed=3)
    assert points == space.around(base, 200, seed=3)
    assert points != space.around(base, 200, seed=4)
    mixes = [space.apply(base, p) for p in points]
    assert {m.steps[1].params["min_words"] for m in mixes} == {100}
    assert all(m.steps[1].enabled for m in mixes)
    mean = {s: sum(m.mixture.weights[s] for m in mixes) / len(mixes) for s in ("code", "books", "legal")}
    assert mean == pytest.approx({"code": 0.5, "books": 0.3, "legal": 0.2}, abs=0.03)
    spread = sum((m.mixture.weights["code"] - 0.5) ** 2 for m in mixes) / len(mixes)
    assert 0.08 < spread**0.5 < 0.14  # Dirichlet(20 w): sd of a 0.5 weight is sqrt(0.25 / 21) = 0.109


def test_numeric_values_give_every_numeric_dimension_a_start(base) -> None:
    space = parse_space(
        {"params": {"steps.1.enabled": "bool", "steps.1.min_words": {"int": [20, 180]}, "mixture.weights": "simplex"}},
        base,
    )
    start = space.numeric_values(base)
    assert "steps.1.length_filter.enabled" not in start
    assert start["steps.1.length_filter.min_words"] == 100
    off = base.model_copy(deep=True)
    off.steps[1].enabled = False
    assert space.numeric_values(off)["steps.1.length_filter.min_words"] == 100  # the middle of [20, 180]
    assert simplex_weights({s: start[f"mixture.{s}"] for s in ("code", "books", "legal")}) == pytest.approx(
        {"code": 0.5, "books": 0.3, "legal": 0.2}, abs=1e-6
    )
