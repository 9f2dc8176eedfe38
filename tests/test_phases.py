"""Multi-phase mixtures (``mixture.phases``): per-phase shares, phase order in the stream and in
packed sequences, caps over the whole run, recipe ids, replay and export hashes, one proxy trained
on a schedule, and the search's ``mixture.final_phase`` dimension, on the shared domain corpora."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from proxy_helpers import domains_run

from agent.planners.rules import RulePlanner
from evaluators.export import export_run
from evaluators.packing import pack
from evaluators.proxy import evaluate_recipe_output
from evaluators.sampler import load_pools, sample_mixture
from evaluators.targets import Target
from evaluators.tokenizer import EOT_ID, PAD_ID, encode_document
from experiments.space import parse_space
from experiments.surrogate_models import sample_candidates
from operators import Mixture, RecipeError, load_manifest, recipe_from_dict, recipe_from_yaml, replay, run_recipe
from tools.base import dispatch

ANNEAL = {
    "phases": [
        {"until": 0.75, "weights": {"math": 0.5, "dialogue": 0.5}},
        {"weights": {"code": 0.8, "math": 0.2}},
    ]
}
"""Math and dialogue for the first 75 % of the budget, then mostly code."""


@pytest.fixture(scope="module")
def pools(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The first 600 documents of GSM8K, Schema-Guided Dialogue and Code Alpaca as a run's output."""
    files = {
        "math": "math_gsm8k_train.jsonl",
        "dialogue": "dialogue_sgd_train.jsonl",
        "code": "instruction_codealpaca_2k.jsonl",
    }
    return load_pools(domains_run(tmp_path_factory.mktemp("phases_pools"), shared_data, files, limit=600))


def test_each_phase_samples_its_own_shares_and_keeps_its_place_in_the_stream(pools: dict) -> None:
    sample = sample_mixture(pools, Mixture(**ANNEAL), 400_000, seed=0)
    first, last = sample.phases
    assert (first.until, last.until) == (0.75, 1.0)
    assert first.target_tokens == {"code": 0, "dialogue": 150_000, "math": 150_000}
    assert first.tokens == {"code": 0, "dialogue": 149_878, "math": 150_302}
    assert last.target_tokens == {"code": 80_000, "dialogue": 0, "math": 20_000}
    assert last.tokens == {"code": 80_238, "dialogue": 0, "math": 19_916}
    for phase in sample.phases:  # within one document of the target (documents are <= 2,046 tokens)
        assert all(abs(phase.tokens[s] - phase.target_tokens[s]) < 2_046 for s in pools)
    # the whole run: each source's weight is its phases' weights times the phases' lengths
    assert {s: round(st.weight, 6) for s, st in sample.stats.items()} == {
        "code": 0.2,
        "dialogue": 0.375,
        "math": 0.425,
    }
    assert sum(st.tokens for st in sample.stats.values()) == sample.total_tokens == 400_334
    # phase order: the first 450 documents are the first phase's, code never comes before them
    assert (first.start, first.end, last.start, last.end) == (0, 450, 450, 766) and sample.phase_starts == [450]
    code = sample.sources.index("code")
    assert not (sample.order[:450, 0] == code).any() and (sample.order[450:, 0] == code).sum() == 280
    dialogue = sample.sources.index("dialogue")
    assert (sample.order[:450, 0] == dialogue).sum() == 170 and not (sample.order[450:, 0] == dialogue).any()
    again = sample_mixture(pools, Mixture(**ANNEAL), 400_000, seed=0)
    assert np.array_equal(again.order, sample.order)
    other = sample_mixture(pools, Mixture(**ANNEAL), 400_000, seed=1)
    assert not np.array_equal(other.order, sample.order) and other.phase_starts[0] in range(430, 460)


def test_max_epochs_caps_the_whole_run_and_later_phases_see_unseen_documents_first(pools: dict) -> None:
    mixture = Mixture(
        phases=[{"until": 0.5, "weights": {"math": 1}}, {"weights": {"math": 1, "code": 1}}],
        max_epochs=1,
    )
    sample = sample_mixture(pools, mixture, 500_000, seed=0)
    first, last = sample.phases
    # math (331,904 tokens) gives 250,000 to the first phase; the second phase gets the rest of it,
    # and code fills what math cannot (water-filling)
    assert first.tokens["math"] == 250_016 and last.tokens["math"] == 331_904 - 250_016
    assert last.target_tokens == {"code": 168_096, "dialogue": 0, "math": 81_904}
    assert sample.stats["math"].capped and not sample.stats["code"].capped
    math = sample.sources.index("math")
    docs = sample.order[sample.order[:, 0] == math, 1]
    assert len(docs) == len(np.unique(docs)) == 600  # every document once, none twice: 1 epoch over the run
    rows = sample.order[: first.end]
    seen_first = set(rows[rows[:, 0] == math, 1])
    rows = sample.order[last.start :]
    assert seen_first.isdisjoint(rows[rows[:, 0] == math, 1])


def test_best_fit_packing_keeps_the_phases_in_order(pools: dict) -> None:
    sample = sample_mixture(pools, Mixture(**ANNEAL), 120_000, seed=0)
    texts = sample.documents(pools)
    packed = pack(texts, 512, "best_fit", seed=0, phase_starts=sample.phase_starts)
    phase_of = {t.encode()[:48]: 0 for t in texts[: sample.phase_starts[0]]}
    phase_of.update({t.encode()[:48]: 1 for t in texts[sample.phase_starts[0] :] if t.encode()[:48] not in phase_of})
    row_phases = []
    for row in packed.tokens:
        starts = np.flatnonzero(row == EOT_ID)  # a document begins after each EOT
        found = {phase_of[bytes(row[k + 1 : k + 49].astype(np.uint8))] for k in starts if k + 49 <= len(row)}
        assert len(found) <= 1  # no sequence mixes documents of two phases
        row_phases += list(found)
    assert row_phases == sorted(row_phases) and row_phases.count(0) > 100 and row_phases.count(1) > 30
    unordered = pack(texts, 512, "best_fit", seed=0)  # without the phases: one shuffle over all
    assert unordered.stats.sequences <= packed.stats.sequences


def test_concat_packing_shuffles_the_sequences_within_each_phase(pools: dict) -> None:
    sample = sample_mixture(pools, Mixture(**ANNEAL), 120_000, seed=0)
    texts = sample.documents(pools)
    phase = (np.arange(len(texts)) >= sample.phase_starts[0]).astype(np.int16)
    packed = pack(texts, 512, "concat", seed=0, phase_starts=sample.phase_starts, labels=phase)
    stream = np.concatenate([encode_document(t) for t in texts]).astype(np.uint16)
    stream = np.pad(stream, (0, packed.stats.sequences * 512 - len(stream)), constant_values=PAD_ID)
    index = {row.tobytes(): k for k, row in enumerate(stream.reshape(-1, 512))}  # stream order
    at = [index[row.tobytes()] for row in packed.tokens]
    assert sorted(at) == list(range(packed.stats.sequences)) == list(range(235))  # each sequence once
    # a document's sequences no longer follow each other: 1 consecutive pair in 234 (stream order: 234)
    assert sum(b == a + 1 for a, b in itertools.pairwise(at)) == 1
    first_phase = packed.labels[:, 0]  # a sequence's phase: its first token's
    assert (np.diff(first_phase) >= 0).all() and np.count_nonzero(first_phase == 0) == 176  # phases in order
    mixed = [k for k, row in enumerate(packed.labels) if len(set(row[row >= 0].tolist())) == 2]
    assert len(mixed) == 1 and first_phase[mixed[0]] == 0  # the one sequence cut across the phase change
    reseeded = pack(texts, 512, "concat", seed=1, phase_starts=sample.phase_starts, labels=phase)
    assert not np.array_equal(reseeded.tokens, packed.tokens)


def _recipe(shared: Path, mixture: dict) -> dict:
    return {
        "name": "phases",
        "sources": [
            {"name": "instruct", "uri": str(shared / "domains/instruction_selfinstruct_human.jsonl")},
            {"name": "wiki", "uri": str(shared / "domains/wiki_wikitext2_valid.jsonl")},
            {"name": "plays", "uri": str(shared / "domains/books_tinyshakespeare.jsonl")},
        ],
        "steps": [{"op": "length_filter", "params": {"min_words": 20}}],
        "mixture": {"total_tokens": 300_000, **mixture},
    }


TWO_PHASE = {
    "phases": [{"until": 0.6, "weights": {"wiki": 1, "instruct": 1}}, {"weights": {"plays": 3, "instruct": 1}}]
}


def test_phases_are_part_of_the_recipe_id_and_a_static_recipe_keeps_its_id(shared_data: Path) -> None:
    static = recipe_from_dict(_recipe(shared_data, {"weights": {"wiki": 1, "instruct": 1}}))
    assert "phases" not in static.canonical()["mixture"]  # the canonical JSON (so the id) is as before phases
    phased = recipe_from_dict(_recipe(shared_data, TWO_PHASE))
    assert phased.recipe_id() != static.recipe_id()
    spelled = json.loads(json.dumps(TWO_PHASE))
    spelled["phases"][1]["until"] = 1.0  # the last phase's end spelled out: the same schedule
    reordered = {"phases": [dict(reversed(list(p.items()))) for p in TWO_PHASE["phases"]]}
    assert recipe_from_dict(_recipe(shared_data, spelled)).recipe_id() == phased.recipe_id()
    assert recipe_from_dict(_recipe(shared_data, reordered)).recipe_id() == phased.recipe_id()
    moved = json.loads(json.dumps(TWO_PHASE))
    moved["phases"][0]["until"] = 0.7
    assert recipe_from_dict(_recipe(shared_data, moved)).recipe_id() != phased.recipe_id()


@pytest.mark.parametrize(
    ("mixture", "message"),
    [
        (
            {**TWO_PHASE, "weights": {"wiki": 1}},
            "give either `weights` (one static mixture) or `phases` (a schedule), not both",
        ),
        ({"phases": [{"weights": {"wiki": 1}}]}, "a single phase is a static mixture; write `mixture.weights`"),
        (
            {"phases": [{"weights": {"wiki": 1}}, {"weights": {"plays": 1}}]},
            "phases[0].until: every phase but the last needs `until`",
        ),
        (
            {"phases": [{"until": 0.6, "weights": {"wiki": 1}}, {"until": 0.4}, {"weights": {"plays": 1}}]},
            "phases[1].until: 0.4 must lie strictly between the previous phase's end (0.6) and 1",
        ),
        (
            {"phases": [{"until": 0.6, "weights": {"wiki": 1}}, {"until": 0.9, "weights": {"plays": 1}}]},
            "phases[1].until: the last phase runs to the end; remove `until`",
        ),
        (
            {"phases": [{"until": 60, "weights": {"wiki": 1}}, {"weights": {"plays": 1}}]},
            "mixture.phases.0.until: Input should be less than or equal to 1",
        ),
        (
            {"phases": [{"until": 0.6, "weights": {"web": 1}}, {"weights": {"plays": 1}}]},
            "mixture.phases[0].weights: ['web'] not among the recipe's sources",
        ),
        (
            {"phases": [{"until": 0.6, "weights": {"wiki": -1}}, {"weights": {"plays": 1}}]},
            "mixture.phases.0.weights: Value error, weights must be >= 0",
        ),
    ],
)
def test_a_bad_schedule_is_refused_with_the_fix(shared_data: Path, mixture: dict, message: str) -> None:
    with pytest.raises(RecipeError, match="invalid recipe") as err:
        recipe_from_dict(_recipe(shared_data, mixture))
    assert message in str(err.value)


@pytest.fixture(scope="module")
def phased_run(shared_data: Path, ray_started: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phased_run")
    manifest = run_recipe(recipe_from_dict(_recipe(shared_data, TWO_PHASE)), out)
    assert {s: c["kept"] for s, c in manifest.sources.items()} == {"instruct": 405, "wiki": 60, "plays": 136}
    return out


def test_replay_reproduces_the_run_and_its_exported_stream(phased_run: Path, tmp_path: Path) -> None:
    result = replay(phased_run / "manifest.json", tmp_path / "replayed")
    assert (
        result.ok and result.manifest.recipe_id == json.loads((phased_run / "manifest.json").read_text())["recipe_id"]
    )
    a = export_run(phased_run, tmp_path / "a", "jsonl")
    b = export_run(tmp_path / "replayed", tmp_path / "b", "jsonl")
    assert a.sha256 == b.sha256 and a.budget_tokens == 300_000
    rows = [json.loads(line) for line in (tmp_path / "a" / "part-00000.jsonl").open(encoding="utf-8")]
    sources = [r["source"] for r in rows]
    first_play, last_wiki = sources.index("plays"), len(sources) - 1 - sources[::-1].index("wiki")
    assert last_wiki < first_play  # wiki only in the first phase, plays only in the last
    assert (a.sources["wiki"].tokens, a.sources["plays"].tokens, a.sources["instruct"].tokens) == (
        102_286,
        90_369,
        119_966,
    )


def test_a_proxy_trains_on_a_two_phase_schedule(phased_run: Path) -> None:
    mixture = recipe_from_yaml(load_manifest(phased_run).recipe).mixture
    target = Target(name="plays_heldout", source="plays", fraction=0.1, max_docs=2)
    res = evaluate_recipe_output(phased_run, mixture, [target], preset="nano", tokens=20_000, packing="best_fit")
    assert {s: round(v["weight"], 6) for s, v in res.sources.items()} == {"instruct": 0.4, "plays": 0.3, "wiki": 0.3}
    assert res.budget == 20_000 and res.steps > 0 and 0 < res.bpb["plays_heldout"] < 8


def _searched(shared: Path) -> tuple:
    base = recipe_from_dict(_recipe(shared, {"weights": {"wiki": 0.5, "instruct": 0.3, "plays": 0.2}}))
    final = {"fraction": {"float": [0.05, 0.3]}, "boost": {"float": [1.0, 10.0], "log": True}, "sources": ["plays"]}
    return base, {"params": {"mixture.weights": "simplex", "mixture.final_phase": final}}


def test_the_search_samples_a_final_phase_that_boosts_the_target(shared_data: Path) -> None:
    base, spec = _searched(shared_data)
    space = parse_space(spec, base)
    assert {"final_phase.fraction", "final_phase.boost"} <= set(space.distributions())
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = space.suggest(trial)
    recipe = space.apply(base, values)
    first, last = recipe.mixture.phases
    assert recipe.mixture.weights is None and first.until == round(1 - values["final_phase.fraction"], 6)
    odds = [p.weights["plays"] / (1 - p.weights["plays"]) for p in (first, last)]
    assert odds[1] / odds[0] == pytest.approx(values["final_phase.boost"], rel=1e-4)
    assert space.values_of(recipe)["final_phase.boost"] == pytest.approx(values["final_phase.boost"], rel=1e-4)
    # the surrogates' random candidates draw the final phase too
    assert all(space.apply(base, v).mixture.phases for v in sample_candidates(space, 4, seed=0))
    # the proposal (static weights) enters the search as the middle fraction and no boost
    proposal = space.values_of(base)
    assert (proposal["final_phase.fraction"], proposal["final_phase.boost"]) == (pytest.approx(0.175), 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(sources=["plays", "wiki", "instruct"]), "boosting every source leaves the mixture"),
        (lambda f: f.update(sources=["web"]), "['web'] not among the base recipe's sources"),
        (lambda f: f.update(fraction={"float": [0.0, 0.3]}), "fraction: give {float: [lo, hi]} with 0 < lo <= hi < 1"),
        (lambda f: f.update(boost={"int": [1, 5]}), "boost: give {float: [lo, hi]} with 0 < lo"),
    ],
)
def test_a_bad_final_phase_is_refused(shared_data: Path, change, message: str) -> None:
    base, spec = _searched(shared_data)
    change(spec["params"]["mixture.final_phase"])
    with pytest.raises(RecipeError, match=r"mixture\.final_phase") as err:
        parse_space(spec, base)
    assert message in str(err.value)


def test_the_planner_searches_a_final_phase_when_the_goal_asks(shared_data: Path, ray_started: None) -> None:
    sources = {
        "math": str(shared_data / "domains/math_gsm8k_train.jsonl"),
        "wiki": str(shared_data / "domains/wiki_wikitext2_valid.jsonl"),
    }
    profile = dispatch("profile_sources", {"sources": sources, "sample_docs": 40, "seed": 0})
    assert profile.ok, profile.error
    planner = RulePlanner()
    plain = planner.understand("a 1M token mix good at math", sources)
    goal = planner.understand("a 1M token mix good at math; anneal on math at the end", sources)
    assert (plain.final_phase, goal.final_phase, goal.targets) == (False, True, ["math"])
    assert "mixture.final_phase" not in planner.propose(plain, profile.output)[0]["space"]["params"]
    proposal, _ = planner.propose(goal, profile.output)
    final = proposal["space"]["params"]["mixture.final_phase"]
    assert final["sources"] == ["math"] and final["fraction"] == {"float": [0.05, 0.3]}
    assert "- final phase: the last 5-30 % of the budget upweights ['math']" in proposal["rationale"]
