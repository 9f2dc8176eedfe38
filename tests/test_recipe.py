"""Recipe model: canonical id, YAML round trip, and refusals that name the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from operators import RecipeError, load_recipe, recipe_from_dict, recipe_from_yaml

REPO = Path(__file__).resolve().parent.parent


def _base(shared: Path) -> dict:
    return {
        "name": "t",
        "sources": [
            {"name": "books", "uri": str(shared / "domains/books_gutenberg.jsonl")},
            {"name": "code", "uri": str(shared / "domains/code_python_thealgorithms.jsonl")},
        ],
        "steps": [{"op": "length_filter", "params": {"min_words": 100}}],
        "mixture": {"weights": {"books": 1, "code": 1}},
    }


def test_recipe_id_ignores_key_order_formatting_name_and_spelled_out_defaults(shared_data: Path) -> None:
    base = _base(shared_data)
    a = recipe_from_dict(base)
    reordered = yaml.safe_dump(dict(reversed(list(base.items()))), default_flow_style=True)
    b = recipe_from_yaml(reordered)
    spelled = {
        **base,
        "name": "other",
        "steps": [{"op": "length_filter", "params": {"min_words": 100, "min_chars": 1}}],
    }
    c = recipe_from_dict(spelled)
    assert a.recipe_id() == b.recipe_id() == c.recipe_id()
    changed = {**base, "steps": [{"op": "length_filter", "params": {"min_words": 101}}]}
    assert recipe_from_dict(changed).recipe_id() != a.recipe_id()


def test_yaml_round_trip_keeps_the_id(shared_data: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(_base(shared_data))
    recipe.save(tmp_path / "r.yaml")
    assert load_recipe(tmp_path / "r.yaml").recipe_id() == recipe.recipe_id()


def test_example_recipe_loads_and_resolves_shared_data(shared_data: Path) -> None:
    recipe = load_recipe(REPO / "recipes/domains_basic.yaml")
    files = recipe.input_files()
    assert files["code"] == [str(shared_data / "domains/code_python_thealgorithms.jsonl")]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["steps"].append({"op": "lenght_filter"}),
            "steps[1].op: unknown operator 'lenght_filter': did you mean length_filter",
        ),
        (
            lambda r: r["steps"][0]["params"].update(min_words="many"),
            "steps[0].params.min_words: Input should be a valid integer",
        ),
        (
            lambda r: r["steps"][0]["params"].update(min_wrds=3),
            "steps[0].params.min_wrds: unknown parameter for 'length_filter'; allowed: ['max_chars'",
        ),
        (
            lambda r: r["mixture"].update(weights={"books": -1, "code": 1}),
            "mixture.weights: Value error, weights must be >= 0; negative for ['books']",
        ),
        (lambda r: r["mixture"].update(weights={"books": 0, "code": 0}), "weights are all zero"),
        (
            lambda r: r["mixture"].update(weights={"web": 1}),
            "mixture.weights: ['web'] not among the recipe's sources ['books', 'code']",
        ),
        (
            lambda r: r["steps"].append({"op": "text_normalize", "sources": ["web"]}),
            "steps[1].sources: ['web'] not among the recipe's sources",
        ),
        (
            lambda r: r["sources"].append({"name": "books", "uri": "x.jsonl"}),
            "sources: names must be unique; repeated ['books']",
        ),
        (lambda r: r["steps"].append({"op": "jsonl"}), "is a reader; set it as a source's `format` instead"),
        (lambda r: r["sources"][0].update(format="csv"), "unknown reader 'csv'"),
    ],
)
def test_invalid_recipes_are_refused_with_field_and_fix(shared_data: Path, mutate, message: str) -> None:
    data = _base(shared_data)
    mutate(data)
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert message in str(err.value)


def test_glob_matching_nothing_is_refused_before_work(shared_data: Path) -> None:
    data = _base(shared_data)
    data["sources"][1]["uri"] = str(shared_data / "domains/no_such_*.jsonl")
    recipe = recipe_from_dict(data)
    with pytest.raises(RecipeError, match=r"sources\[code\].uri: .* matches no readable file"):
        recipe.input_files()


def test_missing_recipe_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("sources: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("steps: []\n")
    with pytest.raises(RecipeError, match="sources: Field required"):
        load_recipe(tmp_path / "empty.yaml")
