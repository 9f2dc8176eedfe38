"""The decision-accuracy benchmark end to end in its small mode, its dirty-web corpus, and the
count-based (n-gram) proxy it compares against neural ones, all on real shared data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import decisions
from benchmarks.corpora import CITIES, DirtyRates, build_task, read_jsonl
from evaluators.proxy import evaluate_recipe_output
from evaluators.targets import Target


def test_the_dirty_web_holds_each_junk_kind_at_its_stated_rate(tmp_path: Path, shared_data: Path) -> None:
    rates = DirtyRates(spam=0.3, boilerplate=0.1, foreign=0.1, gibberish=0.05, repeated=0.05, spam_templates=3)
    task = build_task(tmp_path, shared_data, scale=0.1, rates=rates)
    web = read_jsonl(Path(task["sources"]["web"]))
    clean = [r for r in web if r["meta"]["kind"] == "clean"]
    assert len(clean) == 5 + 45  # 10 % of the 52 Wikipedia articles and the 450 PubMed abstracts left to train
    total = round(len(clean) / 0.4)
    for kind in ("spam", "boilerplate", "foreign", "gibberish", "repeated"):
        assert task["web"]["documents"][kind] == round(total * getattr(rates, kind)), kind
    spam = [r["text"] for r in web if r["meta"]["kind"] == "spam"]
    bodies = {re.sub(r"\d+|" + "|".join(CITIES), "_", t) for t in spam}
    assert len(spam) == 38 and len(bodies) == 3  # floods of near-copies of three pages
    foreign = [r for r in web if r["meta"]["kind"] == "foreign"]
    assert all(r["meta"]["lang"] != "en" for r in foreign)
    held_out = {r["text"] for name in ("wiki", "pubmed") for r in read_jsonl(Path(task["targets"][name]))}
    assert len(held_out) == 8 + 50
    assert not held_out & {r["text"] for r in web}
    again = build_task(tmp_path / "again", shared_data, scale=0.1, rates=rates)
    assert Path(again["sources"]["web"]).read_bytes() == Path(task["sources"]["web"]).read_bytes()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, ray_started: None) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("decisions")
    out = work / "decisions.json"
    result = decisions.main(["--small", "--json", str(out), "--work", str(work)])
    return result, work


def test_the_small_benchmark_reports_each_fidelity_against_the_reference(small_run: tuple[dict, Path]) -> None:
    result, work = small_run
    assert result["reference"] | {"seconds_per_trial": 0, "stored_seconds_per_trial": 0} == {
        "preset": "nano",
        "tokens": 40_000,
        "seeds": 2,
        "tokenizer": "byte",
        "variant": "",
        "overrides": {},
        "seconds_per_trial": 0,
        "stored_seconds_per_trial": 0,
    }
    assert set(result["fidelities"]) == {"ngram5_40k", "nano_4k", "nano_bpe_4k"}
    assert result["pairs"] == 3  # the PAIRS among the small mode's four recipes
    for fid in result["fidelities"].values():
        assert fid["decision_accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)
        assert fid["seconds_per_trial"] > 0 and fid["cost_ratio"] > 0
        assert len(fid["pairs"]) == 3
    stored = sorted(p.name for p in (work / "results").rglob("*.json"))
    assert len(stored) == 4 * 2 * 4  # recipes x seeds x fidelities (reference included)
    assert "ngram5-40000-byte-v2p2-s1.json" in stored  # v2: the sampler that drew the stream; p2: its packing
    sha = result["tokenizer_sha256"]  # the BPE fitted on the task's sources and targets, kept by its hash
    assert len(sha) == 64 and f"nano-4000-bpe-{sha[:16]}-v2p2-s1.json" in stored
    assert 2.5 < result["bpe_bytes_per_token"] < 5


def test_a_rerun_reuses_the_stored_results(small_run: tuple[dict, Path]) -> None:
    result, work = small_run
    before = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*.json")}
    again = decisions.main(["--small", "--json", str(work / "again.json"), "--work", str(work)])
    assert again["reference_means"] == result["reference_means"]
    assert {n: f["recipe_means"] for n, f in again["fidelities"].items()} == {
        n: f["recipe_means"] for n, f in result["fidelities"].items()
    }
    assert {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*.json")} == before


def test_the_ngram_proxy_is_deterministic_and_prefers_in_domain_text(small_run: tuple[dict, Path]) -> None:
    _, work = small_run
    task = json.loads((work / "task" / "task.json").read_text())
    recipe = decisions.recipe_for("natural_raw", task)
    run_dir = work / "runs" / recipe.recipe_id()
    targets = [Target(name=n, files=(p,)) for n, p in task["targets"].items()]
    on_books = recipe.mixture.model_copy(update={"weights": {"books": 1.0}})
    on_web = recipe.mixture.model_copy(update={"weights": {"web": 1.0}})
    web = evaluate_recipe_output(run_dir, on_web, targets, preset="ngram5", tokens=50_000, seed=3)
    books = evaluate_recipe_output(run_dir, on_books, targets, preset="ngram5", tokens=50_000, seed=3)
    # the web source holds the only Wikipedia and PubMed text: trained on it, both targets score better
    assert web.bpb["wiki"] < books.bpb["wiki"] and web.bpb["pubmed"] < books.bpb["pubmed"]
    assert web.preset == "ngram5" and web.steps == 0 and web.sources["web"]["tokens"] >= 49_000
    assert evaluate_recipe_output(run_dir, on_web, targets, preset="ngram5", tokens=50_000, seed=3).bpb == web.bpb
    with pytest.raises(ValueError, match="count model"):
        evaluate_recipe_output(run_dir, on_web, targets, preset="ngram5", tokens=1000, lm_eval_perplexity=True)


def test_a_pair_that_gives_the_proxies_the_same_data_is_refused(small_run: tuple[dict, Path]) -> None:
    """natural_raw and web_heavy_raw share their pipeline output but not their mixture: a pair. The
    same recipe twice (or two recipes with the same output and mixture) decides nothing: refused."""
    _, work = small_run
    task = json.loads((work / "task" / "task.json").read_text())
    runs = {}
    for name in ("natural_raw", "web_heavy_raw"):
        recipe = decisions.recipe_for(name, task)
        runs[name] = (work / "runs" / recipe.recipe_id(), recipe)
    decisions.same_training_data([("natural_raw", "web_heavy_raw", "mixture")], runs)
    with pytest.raises(ValueError, match="natural_raw / natural_raw: both recipes give the same training data"):
        decisions.same_training_data([("natural_raw", "natural_raw", "dedup")], runs)
