"""A target domain diluted in a large generic source (issue 20.5): the profile's target-like share
(DSIR weights per document, Xie et al. 2023), the task that holds it by construction, and the rule
planner's ``dsir_select`` proposal on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.planners.rules import DILUTED_SHARE
from benchmarks.corpora import (
    GENERIC,
    HELD_OUT,
    PUBMED,
    build_diluted_task,
    build_task,
    plan_state,
    read_jsonl,
)
from benchmarks.recovery import GOAL, TASKS
from operators.profiling.profile import sample_texts
from operators.profiling.profile_stats import dsir_similarity, hashed_ngrams

SAMPLE = 300  # the documents the agent's profile samples per source


def _texts(shared: Path, rel: str) -> list[str]:
    return [r["text"] for r in read_jsonl(shared / rel)]


def _similarity(source: list[str], target: list[str]) -> dict:
    return dsir_similarity(hashed_ngrams(source), target)


@pytest.fixture(scope="module")
def held_out(shared_data: Path) -> list[str]:
    """The PubMed abstracts the tasks hold out as the target."""
    return _texts(shared_data, PUBMED)[-HELD_OUT["pubmed"] :]


@pytest.mark.parametrize(
    ("rel", "cut", "target_docs"),
    [
        (PUBMED, 450, 50),  # the held-out abstracts against the others
        (PUBMED, 250, 250),  # as many target documents as source documents
        ("domains/code_python_thealgorithms.jsonl", 320, 323),
        ("domains/math_gsm8k_train.jsonl", 3000, 2000),  # a target set larger than the source sample
    ],
)
def test_a_source_wholly_of_the_target_domain_has_nothing_that_stands_out(
    shared_data: Path, rel: str, cut: int, target_docs: int
) -> None:
    texts = _texts(shared_data, rel)
    source, target = texts[:cut][:SAMPLE], texts[cut:][:target_docs]
    sim = _similarity(source, target)
    assert sim["target_like_share"] <= 0.01 and sim["target_domain_share"] > 0.5  # alike, and like the target
    assert abs(sim["doc_log_weight"]["p50"]) < 0.2  # the target model explains them about as well


def test_the_left_one_out_view_is_what_keeps_a_large_target_set_from_looking_diluted(shared_data: Path) -> None:
    texts = _texts(shared_data, "domains/code_python_thealgorithms.jsonl")
    sim = _similarity(texts[:SAMPLE], texts[320:])
    assert sim["frac_positive"] > 0.1  # the in-sample share would call 14 % of this code "target-like"
    assert sim["target_like_share"] == 0.0


@pytest.mark.parametrize("share", [0.05, 0.1, 0.2])
def test_a_diluted_target_scores_close_to_its_true_share(
    shared_data: Path, tmp_path: Path, held_out: list[str], share: float
) -> None:
    task = build_diluted_task(tmp_path, shared_data, scale=0.3, share=share)
    abstracts = set(_texts(shared_data, PUBMED))
    texts = sample_texts(task["sources"]["generic"], max_docs=SAMPLE)
    truth = sum(t in abstracts for t in texts) / len(texts)
    sim = _similarity(texts, held_out)
    assert abs(sim["target_like_share"] - truth) <= 0.03 and abs(sim["target_domain_share"] - truth) <= 0.03
    assert sim["doc_log_weight"]["p50"] < -0.5 and sim["frac_positive"] <= sim["target_like_share"] + 0.02


@pytest.mark.parametrize(
    ("rel", "most"),
    [
        *((rel, 0.0) for rel in GENERIC),
        ("domains/medical_medquad.jsonl", 0.0),  # consumer health Q&A: medicine, but not abstracts
        ("domains/wiki_wikitext2_valid.jsonl", 0.0),
        ("langid/lingua_sentences.jsonl", 0.0),  # short sentences in 75 languages: noisy weights
        # a few prose answers (machine learning, data structures) among code: below the planner's 3 %
        ("domains/instruction_codealpaca_2k.jsonl", 0.027),
    ],
)
def test_a_source_without_target_documents_scores_about_zero(
    shared_data: Path, held_out: list[str], rel: str, most: float
) -> None:
    sim = _similarity(_texts(shared_data, rel)[:SAMPLE], held_out)
    assert sim["target_like_share"] <= most + 0.001 < DILUTED_SHARE[0] and sim["target_domain_share"] <= 0.01


def test_the_diluted_task_holds_its_share_and_keeps_the_target_out(shared_data: Path, tmp_path: Path) -> None:
    task = build_diluted_task(tmp_path, shared_data, scale=0.2, share=0.1, seed=1)
    assert task["generic"]["documents"] == {"pubmed": 90, "generic": 810}
    rows = read_jsonl(Path(task["sources"]["generic"]))
    kinds = {r["id"].split("/", 1)[0] for r in rows}
    assert kinds == {"pubmed", "generic"} and all(r["id"].startswith(r["meta"]["kind"] + "/") for r in rows)
    assert len({r["id"] for r in rows}) == len(rows) == 900
    target = {r["text"] for r in read_jsonl(Path(task["targets"]["pubmed"]))}
    assert len(target) == HELD_OUT["pubmed"]
    for uri in task["sources"].values():
        assert not target & {r["text"] for r in read_jsonl(Path(uri))}
    assert set(task["sources"]) == {"generic", "code", "plays"}
    assert json.loads((tmp_path / "task.json").read_text()) == task
    again = build_diluted_task(tmp_path / "again", shared_data, scale=0.2, share=0.1, seed=1)
    assert Path(again["sources"]["generic"]).read_bytes() == Path(task["sources"]["generic"]).read_bytes()
    with pytest.raises(ValueError, match="generic documents; the shared data has 8423"):
        build_diluted_task(tmp_path / "big", shared_data, share=0.005)


def _dsir_steps(state: dict) -> list[dict]:
    return [s for s in state["proposal"]["recipe"]["steps"] if s["op"] == "dsir_select"]


def test_the_rule_planner_selects_the_target_out_of_the_diluted_source(shared_data: Path, tmp_path: Path) -> None:
    task = build_diluted_task(tmp_path, shared_data, scale=0.2)
    state = plan_state(task, GOAL)
    shares = {s: p["target_similarity"]["pubmed"]["target_like_share"] for s, p in state["profile"]["profiles"].items()}
    assert 0.05 <= shares["generic"] <= 0.15 and shares["code"] == shares["plays"] == 0.0
    [step] = _dsir_steps(state)
    keep = round(2 * shares["generic"], 3)
    assert step == {
        "op": "dsir_select",
        "sources": ["generic"],
        "params": {"target_files": [task["targets"]["pubmed"]], "keep_fraction": keep},
    }
    index = state["proposal"]["recipe"]["steps"].index(step)
    space = state["proposal"]["space"]["params"]
    assert space[f"steps.{index}.enabled"] == "bool"
    assert space[f"steps.{index}.keep_fraction"] == {"float": [round(keep / 2, 4), round(keep * 1.5, 4)]}
    line = next(x for x in state["proposal"]["rationale"].splitlines() if "dsir_select" in x)
    assert f"{shares['generic']:.1%} like pubmed" in line and "searched: on/off, keep_fraction" in line


def test_the_dirty_web_is_diluted_too_its_clean_half_being_the_targets_domain(
    shared_data: Path, tmp_path: Path
) -> None:
    """The dirty web's clean documents (45 %) are PubMed abstracts and Wikipedia articles among
    spam, boilerplate, foreign, gibberish and repeated pages: selecting towards the targets is a
    step worth searching there as well."""
    task = build_task(tmp_path, shared_data, scale=0.3)
    task["sources"] = {"web": task["sources"]["web"]}
    state = plan_state(task, GOAL)
    share = state["profile"]["profiles"]["web"]["target_similarity"]["pubmed"]["target_like_share"]
    assert 0.15 <= share <= 0.4
    [step] = _dsir_steps(state)
    assert step["sources"] == ["web"] and step["params"]["keep_fraction"] == round(min(0.5, 2 * share), 3)


def test_no_selection_where_most_of_the_source_is_one_targets_domain(shared_data: Path, tmp_path: Path) -> None:
    """The duplicate-flood web is 54 % PubMed abstracts and 6 % Wikipedia articles among spam: the
    articles stand out, but the abstracts, most of the source, do not, and selecting towards the
    articles would drop them."""
    task = TASKS["duplicate_flood"].build(tmp_path, shared_data, scale=0.3)
    task["sources"] = {"web": task["sources"]["web"]}
    state = plan_state(task, GOAL)
    sims = state["profile"]["profiles"]["web"]["target_similarity"]
    assert sims["pubmed"]["target_domain_share"] > 0.45 and sims["pubmed"]["target_like_share"] < DILUTED_SHARE[0]
    assert DILUTED_SHARE[0] <= sims["wiki"]["target_like_share"] <= 0.1
    assert not _dsir_steps(state)
