"""The rule-based planner: goal parsing, and recipes that differ where real profiles differ."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from agent.goal import ABLATED_STEPS
from agent.planners.choices import MAIN_THRESHOLDS, MAX_SEARCHED_STEPS, NEVER_SWITCHED, switchable
from agent.planners.published import named_pipeline, pipeline_problem
from agent.planners.rules import RulePlanner
from experiments.space import parse_space
from operators import OperatorKind, all_operators, get_operator, recipe_from_dict
from tools.base import dispatch

REPO = Path(__file__).resolve().parent.parent


def test_goal_text_is_parsed_with_defaults_stated(tmp_path: Path) -> None:
    data = {"code": "/x/code.jsonl", "docs": "/x/docs.jsonl", "legal": "/x/legal.jsonl", "web": "/x/web.warc.gz"}
    goal = RulePlanner().understand(
        "A 2M-token pretraining mix for a small Python coding assistant, good at Python code and its documentation; "
        "strip PII, at most 20% legal, 8 trials, micro proxy",
        data,
    )
    assert goal.token_budget == 2_000_000 and goal.remove_pii and goal.trials == 8 and goal.preset == "micro"
    assert goal.targets == ["code", "docs"]  # "coding"/"code" and "documentation" name those sources
    assert goal.max_share == {"legal": 0.2}
    assert "languages" in goal.defaults and "trials" not in goal.defaults and goal.languages == ["en"]
    model_size = RulePlanner().understand("a 2M-token mix for a small model that is good at code", data)
    assert model_size.preset == "nano" and "preset" in model_size.defaults  # the model's size, not the proxy's
    assert RulePlanner().understand("code; proxy preset: mini", data).preset == "mini"
    plain = RulePlanner().understand("a mix in German, without web", data)
    assert plain.languages == ["de"] and plain.exclude_sources == ["web"] and plain.targets == ["code", "docs", "legal"]


@pytest.fixture(scope="module")
def profiles(shared_data: Path) -> dict:
    sources = {
        "web": str(shared_data / "web/crawl_sample.warc.gz"),
        "books": str(shared_data / "domains/books_gutenberg.jsonl"),
        "legal": str(shared_data / "domains/legal_spdx_license_texts.jsonl"),
        "lingua": str(shared_data / "langid/lingua_sentences.jsonl"),
    }
    res = dispatch("profile_sources", {"sources": sources, "sample_docs": 120, "seed": 0})
    assert res.ok, res.error
    return {"sources": sources, "profile": res.output}


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three sources made of the same 120 PubMed abstracts: as they are, with 24 of them copied
    again under new ids, and with 15 German, French and Spanish documents (8 sentences each)."""
    folder = tmp_path_factory.mktemp("built_sources")
    lines = (shared_data / "domains/medical_pubmedqa_abstracts.jsonl").read_text(encoding="utf-8").splitlines()
    abstracts = [{"id": r["id"], "text": r["text"]} for r in map(json.loads, lines[:120])]
    lingua = [json.loads(line) for line in (shared_data / "langid/lingua_sentences.jsonl").open(encoding="utf-8")]
    foreign = []
    for lang in ("de", "fr", "es"):
        sentences = [r["text"] for r in lingua if r["lang"] == lang]
        foreign += [{"id": f"{lang}-{k}", "text": " ".join(sentences[8 * k : 8 * k + 8])} for k in range(5)]
    copies = [{"id": f"copy-{r['id']}", "text": r["text"]} for r in abstracts[:24]]
    sources = {}
    for name, rows in {"clean": abstracts, "dups": abstracts + copies, "foreign": abstracts + foreign}.items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        sources[name] = str(path)
    res = dispatch("profile_sources", {"sources": sources, "sample_docs": 300, "seed": 0})
    assert res.ok, res.error
    return {"sources": sources, "profile": res.output}


def _plan(profiles: dict, names: list[str], text: str = "a general English pretraining mix") -> dict:
    planner = RulePlanner()
    goal = planner.understand(text, {n: profiles["sources"][n] for n in names})
    proposal, log = planner.propose(goal, {"profiles": {n: profiles["profile"]["profiles"][n] for n in names}})
    assert log[0]["ok"] and log[0]["tool"] == "propose"
    parse_space(proposal["space"], recipe_from_dict(proposal["recipe"]))  # validates against the recipe
    assert len(_searched(proposal)) <= MAX_SEARCHED_STEPS and len(proposal["recipe"]["steps"]) <= ABLATED_STEPS
    return proposal


def _searched(proposal: dict) -> dict[int, set[str]]:
    """Step index -> the space's keys of that step."""
    out: dict[int, set[str]] = {}
    for key in proposal["space"]["params"]:
        if key.startswith("steps."):
            out.setdefault(int(key.split(".")[1]), set()).add(key)
    return out


def _index(proposal: dict, op: str) -> int:
    (index,) = [i for i, s in enumerate(proposal["recipe"]["steps"]) if s["op"] == op]
    return index


def _ops(proposal: dict) -> dict[str, list[str] | None]:
    return {s["op"]: s.get("sources") for s in proposal["recipe"]["steps"]}


def test_recipes_differ_where_profiles_differ(profiles: dict) -> None:
    clean = _ops(_plan(profiles, ["books"]))
    html = _ops(_plan(profiles, ["books", "web"]))
    multi = _ops(_plan(profiles, ["books", "lingua"]))
    dup = _ops(_plan(profiles, ["books", "legal"]))

    assert "html_extract" not in clean and html["html_extract"] == ["web"]
    assert "language_id" not in clean and multi["language_id"] == ["lingua"]
    assert "minhash_dedup" not in clean and "minhash_dedup" not in multi
    assert dup["minhash_dedup"] == ["legal"]  # SPDX licences repeat each other (7.5 % of the sample)
    assert all(step["op"] != "pii_redact" for step in _plan(profiles, ["books"])["recipe"]["steps"])


def test_proposal_space_and_objective_follow_the_goal(profiles: dict) -> None:
    p = _plan(profiles, ["books", "legal"], "good at books, no PII, 5 trials")
    ops = [s["op"] for s in p["recipe"]["steps"]]
    assert ops[-1] == "pii_redact" and ops[0] == "text_normalize"
    assert p["space"]["objective"]["targets"] == [{"name": "books_heldout", "source": "books", "fraction": 0.1}]
    weights = p["recipe"]["mixture"]["weights"]
    assert weights["books"] > weights["legal"] and abs(sum(weights.values()) - 1) < 1e-3
    assert p["space"]["params"]["mixture.weights"] == "simplex"
    recipe = recipe_from_dict(p["recipe"])
    space = parse_space(p["space"], recipe)
    start = space.values_of(recipe)  # the proposal is trial 0: inside every range, never clipped
    for dim in space.params:
        if dim.param != "enabled":
            step = recipe.steps[dim.step]
            assert start[f"steps.{dim.step}.{dim.op}.{dim.param}"] == step.params.get(
                dim.param, get_operator(dim.op).Params.model_fields[dim.param].default
            )


def test_web_source_gets_switchable_language_quality_and_repetition_steps(profiles: dict) -> None:
    p = _plan(profiles, ["web"])
    steps, params = p["recipe"]["steps"], p["space"]["params"]
    lang, quality = _index(p, "language_id"), _index(p, "gopher_quality")
    assert steps[_index(p, "gopher_repetition")]["sources"] == ["web"]
    assert "minhash_dedup" not in _ops(p)  # no duplicates in the crawl sample
    # the two steps that drop most of the sample are searched: on/off and their main threshold
    assert _searched(p)[lang] == {f"steps.{lang}.enabled", f"steps.{lang}.min_score"}
    assert params[f"steps.{lang}.enabled"] == "bool" and params[f"steps.{lang}.min_score"] == {"float": [0.39, 0.91]}
    assert _searched(p)[quality] == {f"steps.{quality}.enabled", f"steps.{quality}.min_alpha_words_ratio"}
    assert params[f"steps.{quality}.min_alpha_words_ratio"] == {"float": [0.64, 0.96]}
    assert len(_searched(p)) == MAX_SEARCHED_STEPS
    for i, keys in _searched(p).items():
        main = MAIN_THRESHOLDS[steps[i]["op"]]
        assert keys == {f"steps.{i}.enabled"} | ({f"steps.{i}.{main.param}"} if main else set())
    # a threshold is sampled only when its step is on
    space = parse_space(p["space"], recipe_from_dict(p["recipe"]))
    off = {f"steps.{i}.{steps[i]['op']}.enabled": False for i in _searched(p)}
    assert space.suggest(optuna.trial.FixedTrial(off)) == off
    on = {**off, f"steps.{lang}.language_id.enabled": True, f"steps.{lang}.language_id.min_score": 0.5}
    assert space.suggest(optuna.trial.FixedTrial(on)) == on
    # one rationale line per step: why, and what is searched or that it stays fixed
    lines = p["rationale"].splitlines()
    assert len(lines) == len(steps)
    assert lines[lang].startswith(f"- steps.{lang} language_id on ['web']: outside ['en'] in the sample: web ")
    assert lines[lang].endswith("searched: on/off, min_score in [0.39, 0.91]")
    assert "proposed on web-like sources whatever their pass rate" in lines[quality]
    assert (
        lines[_index(p, "text_normalize")]
        == "- steps.1 text_normalize: every source: Unicode and whitespace normalisation"
    )
    fixed = [i for i, s in enumerate(steps) if switchable(s["op"]) and i not in _searched(p)]
    assert fixed and all("fixed: the space searches the 4 steps" in lines[i] for i in fixed)


def test_dedup_and_language_id_follow_what_the_profile_finds(built: dict) -> None:
    clean, dups, foreign = (_plan(built, [name]) for name in ("clean", "dups", "foreign"))
    assert "minhash_dedup" not in _ops(clean) and "language_id" not in _ops(clean)
    assert _ops(dups)["minhash_dedup"] == ["dups"] and "language_id" not in _ops(dups)
    assert _ops(foreign)["language_id"] == ["foreign"] and "minhash_dedup" not in _ops(foreign)

    dedup = _index(dups, "minhash_dedup")
    assert _searched(dups)[dedup] == {f"steps.{dedup}.enabled"}  # on/off only: no threshold in the table
    assert (
        "duplicates in the sample (near or exact; a lower bound on a partial sample): dups 16.7%" in dups["rationale"]
    )
    lang = _index(foreign, "language_id")
    assert _searched(foreign)[lang] == {f"steps.{lang}.enabled", f"steps.{lang}.min_score"}
    assert foreign["recipe"]["steps"][lang]["params"] == {"keep": ["en"], "min_score": 0.65}
    # the clean abstracts: Gopher quality passes 44 % and they are not web-like, so it is not proposed
    assert list(_ops(clean)) == ["text_normalize", "length_filter", "gopher_repetition"]
    assert clean["space"]["params"].keys() == {
        "steps.1.enabled",
        "steps.1.min_words",
        "steps.2.enabled",
        "steps.2.max_dup_5gram_char_frac",
    }


def test_every_filter_dedup_and_selection_op_has_its_main_threshold_decided() -> None:
    ops = [c for c in all_operators() if c.kind in (OperatorKind.FILTER, OperatorKind.GLOBAL)]
    assert {c.name for c in ops} == set(MAIN_THRESHOLDS)
    for cls in ops:
        assert switchable(cls.name) == (cls.name not in NEVER_SWITCHED)
        spec = MAIN_THRESHOLDS[cls.name]
        if spec is None:
            continue
        assert spec.param not in cls.annotate_params  # moving it re-decides on cached signals
        default = cls.Params.model_fields[spec.param].default
        if default is None:  # quality_classifier: keep_fraction is set by the step
            continue
        lo, hi = spec.around(default, isinstance(default, int))
        assert lo < default < hi and abs((lo + hi) / 2 - default) <= (0.5 if isinstance(default, int) else 1e-3)
    assert not any(switchable(op) for op in ("text_normalize", "html_extract", "pii_redact", "jsonl", "decontaminate"))


def test_reflect_narrows_a_conditional_threshold_around_the_trials_that_sampled_it(profiles: dict) -> None:
    p = _plan(profiles, ["web"])
    q = _index(p, "gopher_quality")
    switch, ratio = f"steps.{q}.gopher_quality.enabled", f"steps.{q}.gopher_quality.min_alpha_words_ratio"
    best = [{"objective": 1.0, "params": {switch: False}}]  # the best trial switched the step off
    best += [{"objective": 1.1 + k / 10, "params": {switch: True, ratio: 0.8 if k == 0 else 0.7}} for k in range(5)]
    space = RulePlanner().reflect(RulePlanner().understand("web", {"web": "x"}), p, {"best": best})
    assert space is not None and space["params"][f"steps.{q}.enabled"] == "bool"
    # top third = the best two trials; only the one that sampled the ratio places it: 0.8 +- 20 % of the span
    assert space["params"][f"steps.{q}.min_alpha_words_ratio"]["float"] == pytest.approx([0.736, 0.864])
    lang = _index(p, "language_id")
    assert space["params"][f"steps.{lang}.min_score"] == p["space"]["params"][f"steps.{lang}.min_score"]


def test_a_goal_that_names_a_published_pipeline_starts_from_its_steps(profiles: dict) -> None:
    recipe_steps = yaml.safe_load((REPO / "recipes/fineweb.yaml").read_text())["steps"]
    p = _plan(profiles, ["books", "web"], "Start from FineWeb's pipeline; a 1M-token mix good at books")
    steps = p["recipe"]["steps"]
    assert [s["op"] for s in steps] == [s["op"] for s in recipe_steps]  # its steps, in its order
    assert [s.get("params", {}) for s in steps] == [s.get("params", {}) for s in recipe_steps]
    assert steps[_index(p, "html_extract")]["sources"] == ["web"] and p["recipe"]["mixture"]["total_tokens"] == 1e6
    assert {s["name"] for s in p["recipe"]["sources"]} == {"books", "web"}
    lines = p["rationale"].splitlines()
    assert lines[0].startswith("- steps: the published fineweb pipeline (recipes/fineweb.yaml), as the goal asks")
    lang = _index(p, "language_id")
    assert lines[1 + lang].startswith(f"- steps.{lang} language_id: fineweb's pipeline; estimated to drop ")
    assert _searched(p)[lang] == {f"steps.{lang}.enabled", f"steps.{lang}.min_score"}
    # without an HTML source the extraction is left out; the goal's asks still apply
    c4 = _plan(profiles, ["books"], "use the C4 recipe, in German, and strip PII")
    assert [s["op"] for s in c4["recipe"]["steps"]] == [
        "language_id", "c4_quality", "c4_line_filter", "exact_dedup", "pii_redact",
    ]  # fmt: skip
    assert c4["recipe"]["steps"][0]["params"] == {"keep": ["de"], "min_score": 0.99}
    # a mention is not a request; FineWeb-Edu has no recipe here
    assert named_pipeline("a mix that beats C4 on books") is None and named_pipeline("start from FineWeb-Edu") is None
    # an LLM's proposal must keep the pipeline's steps in order (steps added between them are fine)
    missing = [s for s in steps if s["op"] != "c4_quality"]
    assert "must include its steps in this order" in (pipeline_problem("fineweb", {"steps": missing}) or "")
    assert pipeline_problem("fineweb", {"steps": [*steps[:3], {"op": "text_normalize"}, *steps[3:]]}) is None


def test_an_llm_planner_keeps_the_named_pipeline_and_says_so(shared_data: Path) -> None:
    from agent.goal import Goal
    from agent.planners.llm import LLMPlanner
    from experiments.baselines import pipeline_steps

    books = str(shared_data / "domains/books_gutenberg.jsonl")
    goal = Goal(text="use the C4 recipe", sources={"books": books}, targets=["books"], pipeline="c4")
    recipe = {
        "name": "c4_books",
        "sources": [{"name": "books", "uri": books}],
        "steps": pipeline_steps("c4", []),
        "mixture": {"weights": {"books": 1.0}, "total_tokens": 2_000_000, "max_epochs": 4},
    }
    space = {
        "objective": {"targets": [{"name": "books_heldout", "source": "books", "fraction": 0.1}]},
        "proxy": {"preset": "nano", "tokens": 200_000},
    }
    bare = {**recipe, "steps": [{"op": "text_normalize"}, {"op": "c4_quality"}]}
    script = [
        {"tool_calls": [{"name": "propose", "arguments": {"recipe": bare, "space": space}}]},
        {"tool_calls": [{"name": "propose", "arguments": {"recipe": recipe, "space": space, "rationale": "C4"}}]},
    ]
    planner = LLMPlanner("hosted_vllm/mock-planner", mock=script)
    profile = {"profiles": {"books": {"docs": 4, "is_html": False}}}
    proposal, log = planner.propose(goal, profile)
    assert [e["ok"] for e in log] == [False, True]
    assert "must include its steps in this order: ['language_id', 'c4_quality', 'c4_line_filter'" in log[0]["error"]
    assert '"op": "c4_line_filter"' in planner.transcript[1]["content"]  # the prompt lists the pipeline's steps
    assert [s["op"] for s in proposal["recipe"]["steps"]] == [
        "language_id",
        "c4_quality",
        "c4_line_filter",
        "exact_dedup",
    ]
    assert proposal["rationale"].startswith("- steps: the published c4 pipeline (recipes/c4.yaml), as the goal asks")
