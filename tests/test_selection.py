"""Target-aware selection on real domain data: DSIR, the quality classifier, perplexity."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from operators import RecipeError, read_ledger, read_output, recipe_from_dict, run_recipe

POOL = {
    "medical": "domains/medical_pubmedqa_abstracts.jsonl",
    "legal": "domains/legal_spdx_license_texts.jsonl",
    "code": "domains/code_python_thealgorithms.jsonl",
}


def _run(shared: Path, out: Path, steps: list[dict], extra_sources: dict[str, str] | None = None) -> dict:
    sources = {**POOL, **(extra_sources or {})}
    recipe = recipe_from_dict(
        {"sources": [{"name": n, "uri": str(shared / rel)} for n, rel in sources.items()], "steps": steps}
    )
    return run_recipe(recipe, out)


def _kept_by_source(run_dir: Path) -> Counter:
    return Counter(read_output(run_dir).column("source").to_pylist())


def test_dsir_selects_the_target_like_domain(shared_data, ray_started, tmp_path):
    # target: consumer-health Q&A (MedQuAD), a recipe source outside the step; pool: PubMed + licenses + code
    step = {"op": "dsir_select", "sources": list(POOL), "params": {"target": "target", "keep_fraction": 0.3}}
    manifest = _run(shared_data, tmp_path / "dsir", [step], {"target": "domains/medical_medquad.jsonl"})
    kept = _kept_by_source(tmp_path / "dsir")
    pool_size = sum(manifest.sources[s]["input"] for s in POOL)
    assert sum(kept[s] for s in POOL) == round(0.3 * pool_size)
    assert kept["target"] == 288  # the target source is outside the step and untouched
    assert (kept["medical"], kept["legal"], kept["code"]) == (465, 4, 12)  # 481 selected, 465 of them PubMed
    reasons = Counter(r["reason"] for r in read_ledger(tmp_path / "dsir").to_pylist() if r["status"] == "dropped")
    assert set(reasons) == {"dsir_not_selected"}

    # the paper's plain sum over whole documents: long license texts and code files ride on length
    step["params"]["chunk_ngrams"] = 0
    _run(shared_data, tmp_path / "dsir_sum", [step], {"target": "domains/medical_medquad.jsonl"})
    summed = _kept_by_source(tmp_path / "dsir_sum")
    assert (summed["medical"], summed["legal"], summed["code"]) == (345, 79, 57)


def test_dsir_after_a_filter_that_dropped_every_document_selects_nothing(shared_data, ray_started, tmp_path):
    # a 100 000-word minimum drops every document of the pool: DSIR gets none and keeps none
    steps = [
        {"op": "length_filter", "sources": list(POOL), "params": {"min_words": 100_000}},
        {"op": "dsir_select", "sources": list(POOL), "params": {"target": "target", "keep_fraction": 0.3}},
    ]
    manifest = _run(shared_data, tmp_path / "empty", steps, {"target": "domains/medical_medquad.jsonl"})
    assert _kept_by_source(tmp_path / "empty") == Counter({"target": 288})
    assert all(manifest.sources[s]["kept"] == 0 for s in POOL)


def test_dsir_refuses_an_unknown_target_source(shared_data, ray_started, tmp_path):
    with pytest.raises(RecipeError, match="not among the recipe's sources"):
        _run(shared_data, tmp_path / "bad", [{"op": "dsir_select", "params": {"target": "nope"}}])


def test_classifier_cli_trains_and_quality_step_keeps_top_fraction(shared_data, ray_started, tmp_path):
    model = tmp_path / "quality.npz"
    args = ["classifier", "train", "--out", str(model), "--json"]
    args += ["--positive", str(shared_data / "domains/medical_medquad.jsonl")]
    args += ["--negative", str(shared_data / "domains/dialogue_sgd_train.jsonl")]
    args += ["--negative", str(shared_data / "domains/legal_spdx_license_texts.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(Path(f"{model}.json").read_text())
    assert metrics["n_positive"] == 288 and metrics["n_negative"] == 2176 + 460
    assert metrics["test_auc"] >= 0.95
    step = {"op": "quality_classifier", "params": {"model": str(model), "keep_fraction": 0.3}}
    _run(shared_data, tmp_path / "qc", [step])
    kept = _kept_by_source(tmp_path / "qc")
    assert sum(kept.values()) == round(0.3 * (500 + 460 + 643))
    assert kept["medical"] >= 0.85 * sum(kept.values()) and kept["legal"] == 0
    scores = read_output(tmp_path / "qc").column("quality_score").to_pylist()
    assert min(scores) > 0 and max(scores) < 1


def test_classifier_cli_refuses_missing_files(tmp_path):
    result = CliRunner().invoke(
        app, ["classifier", "train", "--positive", "nope.jsonl", "--negative", "nope2.jsonl", "--out", "m.npz"]
    )
    assert result.exit_code == 2


def test_perplexity_keeps_prose_like_the_reference(shared_data, ray_started, tmp_path):
    ref = str(shared_data / "domains/wiki_wikitext2_valid.jsonl")
    step = {"op": "perplexity_select", "params": {"reference_files": [ref], "band": [0.0, 0.3]}}
    _run(shared_data, tmp_path / "ppl", [step])
    kept = _kept_by_source(tmp_path / "ppl")
    assert sum(kept.values()) == pytest.approx(0.3 * (500 + 460 + 643), abs=2)
    assert kept["code"] == 0
    dropped = [r for r in read_ledger(tmp_path / "ppl").to_pylist() if r["status"] == "dropped"]
    assert {r["reason"] for r in dropped} == {"perplexity_out_of_band"}
    assert all(r["detail"].startswith("perplexity=") for r in dropped)
