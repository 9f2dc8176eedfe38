"""The rule-based planner: goal parsing, and recipes that differ where real profiles differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.planners.rules import RulePlanner
from tools.base import dispatch


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


def _plan(profiles: dict, names: list[str], text: str = "a general English pretraining mix") -> dict:
    planner = RulePlanner()
    goal = planner.understand(text, {n: profiles["sources"][n] for n in names})
    proposal, log = planner.propose(goal, {"profiles": {n: profiles["profile"]["profiles"][n] for n in names}})
    assert log[0]["ok"] and log[0]["tool"] == "propose"
    return proposal


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
    if "minhash_dedup" in dup:  # registered once the dedup operators are installed
        assert dup["minhash_dedup"] == ["legal"]
    assert all(step["op"] != "pii_redact" for step in _plan(profiles, ["books"])["recipe"]["steps"])


def test_proposal_space_and_objective_follow_the_goal(profiles: dict) -> None:
    p = _plan(profiles, ["books", "legal"], "good at books, no PII, 5 trials")
    ops = [s["op"] for s in p["recipe"]["steps"]]
    assert ops[-1] == "pii_redact" and ops[0] == "text_normalize"
    assert p["space"]["objective"]["targets"] == [{"name": "books_heldout", "source": "books", "fraction": 0.1}]
    weights = p["recipe"]["mixture"]["weights"]
    assert weights["books"] > weights["legal"] and abs(sum(weights.values()) - 1) < 1e-3
    assert p["space"]["params"]["mixture.weights"] == "simplex"
    length_key = next(k for k in p["space"]["params"] if k.endswith(".min_words"))
    lo, hi = p["space"]["params"][length_key]["int"]
    assert lo < p["recipe"]["steps"][int(length_key.split(".")[1])]["params"]["min_words"] <= hi
