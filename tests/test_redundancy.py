"""Redundant steps are found from real ledgers and ablated together, on real SPDX license texts.

The recipe: ``length_filter`` (min 300 words), ``gopher_quality`` with only its 200-word minimum,
and a ``length_filter`` dropping documents over 3,000 words. The 200-word rule drops almost nothing
once the 300-word one has run, but catches most of what that one drops when it is off: the two form a
group. Nothing catches the long documents: the third step stays alone."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

NO_GOPHER_RULES = dict.fromkeys(
    [
        "max_words",
        "min_mean_word_length",
        "max_mean_word_length",
        "max_symbol_word_ratio",
        "max_bullet_lines_ratio",
        "max_ellipsis_lines_ratio",
        "min_alpha_words_ratio",
        "min_stop_words",
    ]
)


DEFAULT_STEPS = [
    {"op": "length_filter", "params": {"min_words": 300}},
    {"op": "gopher_quality", "params": {"min_words": 200, **NO_GOPHER_RULES}},
    {"op": "length_filter", "params": {"max_words": 3000}},
]


def _recipe(shared: Path, steps: list[dict] = DEFAULT_STEPS):
    from operators import recipe_from_dict

    legal = str(shared / "domains/legal_spdx_license_texts.jsonl")
    code = str(shared / "domains/code_python_thealgorithms.jsonl")
    return recipe_from_dict(
        {
            "name": "redundant",
            "sources": [{"name": "legal", "uri": legal}, {"name": "code", "uri": code}],
            "steps": steps,
            "mixture": {"weights": {"legal": 0.5, "code": 0.5}, "max_epochs": 4},
        }
    )


def _ablations(recipe, folder: Path, tokens: int, max_seeds: int) -> dict:
    """The confirmation's ablation rows by name, for ``recipe`` as the predicted-optimal one, with
    ``ngram3`` proxies on ``tokens`` and the code held-out slice as the target."""
    return {g.baseline: g for g in _confirm(recipe, folder, tokens, max_seeds).ablations}


def _confirm(recipe, folder: Path, tokens: int, max_seeds: int, switched_off: tuple[int, ...] = ()):
    """The confirmation of ``recipe`` with the steps ``switched_off`` off as the predicted-optimal
    recipe (``recipe`` is then the proposal too), as ``_ablations`` sets it up."""
    from experiments.confirm import PREDICTED, PROPOSAL, run_confirm, without
    from experiments.search_config import ProxySpec
    from experiments.study import Search

    space = {
        "params": {"mixture.weights": "simplex"},
        "objective": {"targets": [{"name": "code_heldout", "source": "code", "fraction": 0.1, "max_bytes": 20000}]},
        "proxy": {"preset": "ngram3", "tokens": tokens},
    }
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        search = Search.create(folder / "s", recipe, space, n_trials=1)
        proposal = {PROPOSAL: search.base} if switched_off else {}
        return run_confirm(
            search.folder,
            search.config,
            {PREDICTED: without(search.base, switched_off), **proposal},
            proxy=ProxySpec(preset="ngram3", tokens=tokens),
            seeds=[0, 1],
            max_seeds=max_seeds,
        )
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_redundancy_groups_from_real_ledgers(shared_data: Path, ray_started: None, tmp_path: Path) -> None:
    from experiments.confirm import without
    from experiments.redundancy import ledger_fates, redundancy_groups
    from operators import run_recipe

    recipe = _recipe(shared_data)
    run_recipe(recipe, tmp_path / "full")
    for i in range(3):
        run_recipe(without(recipe, (i,)), tmp_path / f"without{i}")
    fates = ledger_fates(tmp_path / "full" / "ledger.parquet")
    assert Counter(fates.values()) == {0: 598, 1: 1, 2: 34, None: 470}
    first = [d for d, s in fates.items() if s == 0]
    caught = ledger_fates(tmp_path / "without0" / "ledger.parquet")
    assert Counter(caught[d] for d in first) == {1: 433, None: 165}  # 72 % of step 0's drops are step 1's too
    ledgers = {i: tmp_path / f"without{i}" / "ledger.parquet" for i in range(3)}
    assert redundancy_groups(tmp_path / "full" / "ledger.parquet", ledgers) == [(0, 1)]
    assert redundancy_groups(tmp_path / "full" / "ledger.parquet", ledgers, exclude=frozenset({1})) == []


def test_drops_in_a_source_the_mixture_weighs_zero_do_not_count(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """With the 200-word rule on the licences only, nothing catches the code files the 300-word rule
    drops, and they outnumber its licence drops: no group. Once the mixture weighs code 0, those
    drops never reach training and the licences alone decide: the two form a group."""
    from experiments.confirm import without
    from experiments.redundancy import ledger_fates, redundancy_groups
    from operators import run_recipe

    recipe = _recipe(shared_data)
    recipe.steps[1].sources = ["legal"]
    recipe.mixture.weights = {"legal": 1.0, "code": 0.0}
    assert recipe.trained_sources() == {"legal"}
    for name, off in {"full": (), "without0": (0,), "without1": (1,), "without2": (2,)}.items():
        run_recipe(without(recipe, off), tmp_path / name)
    full = tmp_path / "full" / "ledger.parquet"
    fates, caught = ledger_fates(full), ledger_fates(tmp_path / "without0" / "ledger.parquet")
    assert Counter((doc[0], caught[doc]) for doc, step in fates.items() if step == 0) == {
        ("code", None): 373,
        ("legal", 1): 149,
        ("legal", None): 76,
    }
    singles = {i: tmp_path / f"without{i}" / "ledger.parquet" for i in range(3)}
    assert redundancy_groups(full, singles) == []  # 149 of 598 caught
    assert redundancy_groups(full, singles, trained=recipe.trained_sources()) == [(0, 1)]  # 149 of 225


def test_a_group_grows_by_the_step_that_takes_over_what_it_drops(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """A third rule (at least 190 words) drops nothing while the other two run, and nothing when
    either alone is off (the other catches first); only with both off does it take over."""
    from experiments.confirm import without
    from experiments.redundancy import ledger_fates, redundancy_groups
    from operators import run_recipe

    recipe = _recipe(shared_data)
    recipe.steps[2].params = {"min_words": 190}
    for name, off in {"full": (), "without0": (0,), "without1": (1,), "without2": (2,), "without01": (0, 1)}.items():
        run_recipe(without(recipe, off), tmp_path / name)
    full = tmp_path / "full" / "ledger.parquet"
    assert Counter(ledger_fates(full).values()) == {0: 598, 1: 1, None: 504}
    singles = {i: tmp_path / f"without{i}" / "ledger.parquet" for i in range(3)}
    assert redundancy_groups(full, singles) == [(0, 1)]
    pair = ledger_fates(tmp_path / "without01" / "ledger.parquet")
    first_two = [d for d, s in ledger_fates(full).items() if s in (0, 1)]
    assert Counter(pair[d] for d in first_two) == {2: 334, None: 265}  # 56 %: the third rule takes over
    assert redundancy_groups(full, {(0, 1): tmp_path / "without01" / "ledger.parquet"}) == [(0, 1, 2)]


def test_confirmation_ablates_a_redundant_group_together(shared_data: Path, ray_started: None, tmp_path: Path) -> None:
    rows = _ablations(_recipe(shared_data), tmp_path, tokens=20000, max_seeds=2)
    assert list(rows) == [
        "without_0_length_filter",
        "without_1_gopher_quality",
        "without_2_length_filter",
        "without_0-1_length_filter-gopher_quality",
    ]
    assert rows["without_0_length_filter"].verdict == "no measurable effect"  # step 1 stands in for it
    group = rows["without_0-1_length_filter-gopher_quality"]
    assert group.steps == [0, 1] and group.step is None and len(group.diffs) == 2
    assert group.diff == pytest.approx(sum(group.diffs) / 2)


def test_a_helping_group_credits_the_member_that_does_its_work_and_not_its_partner(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """Step 0 drops every license text, so code, the target's source, gets the whole stream. Step 1
    (license texts under 3,000 words) catches 93 % of them when step 0 is off, which makes the two a
    group; but the 34 long ones it leaves still fill legal's half of the stream. The group helps, and
    only step 0 does its work: kept on alone it helps as much as the recipe, step 1 alone does not."""
    from agent.cli.render import _ablated
    from experiments.report import _gap_row

    dropping_all_legal = [
        {"op": "length_filter", "params": {"max_words": 40}, "sources": ["legal"]},
        {"op": "length_filter", "params": {"min_words": 3000}, "sources": ["legal"]},
    ]
    rows = _ablations(_recipe(shared_data, dropping_all_legal), tmp_path, tokens=150000, max_seeds=4)
    group, first, partner = (
        rows[n]
        for n in (
            "without_0-1_length_filter-length_filter",
            "only_0_length_filter_of_0-1",
            "only_1_length_filter_of_0-1",
        )
    )
    assert rows["without_1_length_filter"].diffs == [0.0, 0.0]  # step 0 left it nothing to drop
    assert rows["without_1_length_filter"].same_data and not group.same_data
    assert "| without_1_length_filter | 0, same training data |" in _gap_row(rows["without_1_length_filter"], True)
    assert group.verdict == first.verdict == "helps" and (first.kept, first.steps) == (0, [0, 1])
    assert first.diffs == group.diffs  # step 1 off changes nothing while step 0 runs
    assert partner.verdict == "no measurable effect" and partner.kept == 1
    alone = dict(zip(rows["without_0_length_filter"].seeds, rows["without_0_length_filter"].diffs, strict=True))
    assert partner.seeds == [0, 1, 2, 3]  # undecided: grown to max_seeds
    paired = [g - alone[s] for s, g in zip(group.seeds, group.diffs, strict=True)]
    assert partner.diffs[: len(paired)] == pytest.approx(paired)
    assert _ablated(partner.model_dump()) == "1 length_filter alone of 0-1"


def test_steps_are_ablated_again_in_the_recipe_without_the_steps_that_hurt(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """Step 0 drops every code file, the target's source, and hurts. While it runs, step 1 (code files
    over 300 words) has nothing to drop and shows nothing; in the recommended recipe, step 0 off, it
    drops 243 code files (the other 27 of 270 are in the held-out slice), and its row there is what
    the report gives for it."""
    import pyarrow.parquet as pq

    from agent.cli.render import _ablated
    from experiments.confirm import RECOMMENDED

    dropping_all_code = [
        {"op": "length_filter", "params": {"max_words": 40}, "sources": ["code"]},
        {"op": "length_filter", "params": {"max_words": 300}, "sources": ["code"]},
    ]
    rows = _ablations(_recipe(shared_data, dropping_all_code), tmp_path, tokens=20000, max_seeds=4)
    assert list(rows) == ["without_0_length_filter", "recommended_without_1_length_filter"]
    assert rows["without_0_length_filter"].verdict == "hurts" and rows["without_0_length_filter"].against is None
    again = rows["recommended_without_1_length_filter"]
    assert (again.step, again.against) == (1, RECOMMENDED)
    assert all(d != 0 for d in again.diffs)  # against the recipe with step 0 on, every difference is 0
    assert _ablated(again.model_dump()) == "1 length_filter"
    recommended = tmp_path / "s" / "confirm" / "without_0_length_filter"  # the same recipe: its runs are shared
    ledger = pq.read_table(recommended / "seed0" / "run" / "ledger.parquet").to_pylist()
    assert Counter((r["source"], r["step"]) for r in ledger if r["status"] == "dropped") == {
        ("code", 0): 56,  # the target's held-out slice, excluded first
        ("code", 2): 243,  # step 1
    }


def test_a_step_that_hurts_only_in_the_recommended_recipe_is_reported_not_dropped(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """Step 0 drops every code file, the target's source, and hurts; while it runs, step 1 (code files
    over 100 words) has nothing to drop. In the recommended recipe, step 0 off, step 1 drops most of
    the code and hurts too. The recommended recipe is the one the second round measured: step 0 off,
    step 1 kept on and reported as hurting there; a recipe without both was never trained."""
    from agent.cli.console import console
    from agent.cli.render import render_comparisons
    from experiments.confirm import RECOMMENDED, hurting_steps, restored_steps
    from experiments.report import _ablation_section

    dropping_code = [
        {"op": "length_filter", "params": {"max_words": 40}, "sources": ["code"]},
        {"op": "length_filter", "params": {"max_words": 100}, "sources": ["code"]},
    ]
    result = _confirm(_recipe(shared_data, dropping_code), tmp_path, tokens=150000, max_seeds=4)
    rows = {g.baseline: g for g in result.ablations}
    assert list(rows) == ["without_0_length_filter", "recommended_without_1_length_filter"]
    assert [g.verdict for g in rows.values()] == ["hurts", "hurts"]
    assert rows["recommended_without_1_length_filter"].against == RECOMMENDED
    assert (hurting_steps(result), restored_steps(result), hurting_steps(result, RECOMMENDED)) == ([0], [], [1])
    steps = {"dropped_steps": ["0 length_filter"], "hurting_in_recommended": ["1 length_filter"]}
    assert _ablation_section(result, steps)[-4:] == [
        "Dropped from the recommended recipe (`recommended.yaml`) because they hurt: 0 length_filter.",
        "",
        "Hurt in the recommended recipe too (its `recommended_` rows), yet kept on there, since no recipe "
        "without them was measured: 1 length_filter.",
        "",
    ]
    with console.capture() as shown:
        render_comparisons({"confirm": result.model_dump(), **steps})
    assert " ".join(shown.get().split()).endswith(
        "dropped from the recommended recipe (they hurt): 0 length_filter hurt in the recommended recipe too, "
        "yet kept on (no recipe without them was measured): 1 length_filter"
    )


def test_a_step_the_search_switched_off_is_switched_back_on_where_it_helps(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    """The proposal has two steps on: step 0 drops every license text (code, the target's source,
    then gets the whole stream: it helps), step 1 license texts over a million words (there are
    none). The recipe the search picked has both off. Switched back on, step 0 helps and step 1
    trains on the same data; the recommended recipe has step 0 on, and its ablation, against the
    recipe the search picked (the same recipe id, whose runs it shares), shows it helping."""
    from agent.cli.render import _row_label
    from experiments.confirm import RECOMMENDED, hurting_steps, restored_steps

    steps = [
        {"op": "length_filter", "params": {"max_words": 40}, "sources": ["legal"]},
        {"op": "length_filter", "params": {"max_words": 1_000_000}, "sources": ["legal"]},
    ]
    result = _confirm(_recipe(shared_data, steps), tmp_path, tokens=150000, max_seeds=3, switched_off=(0, 1))
    rows = {g.baseline: g for g in result.ablations}
    assert list(rows) == ["with_0_length_filter", "with_1_length_filter", "recommended_without_0_length_filter"]
    on_legal, nothing, again = rows.values()
    assert (on_legal.added, on_legal.step, on_legal.verdict) == (0, None, "helps") and on_legal.diff < 0
    assert nothing.added == 1 and nothing.same_data and nothing.seeds == [0, 1]  # no seed added: nothing to learn
    assert (restored_steps(result), hurting_steps(result)) == ([0], [])
    assert (again.step, again.against, again.verdict) == (0, RECOMMENDED, "helps")
    assert again.diffs == on_legal.diffs  # the same pair of recipes, the same seeds
    assert _row_label(on_legal.model_dump(), "predicted_optimal", again=True) == (
        "0 length_filter switched on (off in predicted_optimal)"
    )
    assert _row_label(again.model_dump(), "predicted_optimal", again=True) == "0 length_filter"
