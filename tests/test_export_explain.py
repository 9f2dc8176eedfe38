"""``dataplan export`` (mixture applied with the proxies' sampler, shuffled, sharded, hashed) and
``dataplan explain`` / ``samples`` (a document's fate with the value and threshold it failed), on a
real run over the shared code and license corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from agent.cli import app
from evaluators.export import ExportRefused, export_run, read_token_shard
from evaluators.tokenizer import EOT_ID
from operators import explain_document, recipe_from_dict, run_recipe, sample_dropped, sha256_file

WEIGHTS = {"code": 0.6, "legal": 0.3, "wiki": 0.1}


def _recipe(shared: Path, extra_steps: list[dict]) -> dict:
    return {
        "name": "export-explain",
        "sources": [
            {"name": "code", "uri": str(shared / "domains/code_python_thealgorithms.jsonl")},
            {"name": "legal", "uri": str(shared / "domains/legal_spdx_license_texts.jsonl")},
            {"name": "wiki", "uri": str(shared / "domains/wiki_wikitext2_valid.jsonl")},
        ],
        "steps": extra_steps,
        "mixture": {"weights": WEIGHTS, "total_tokens": 600_000, "max_epochs": 4},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def run_dir(shared_data: Path, ray_started: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Length filter (min 80 words), Gopher quality on the licenses, and a bound that empties wiki."""
    steps = [
        {"op": "length_filter", "params": {"min_words": 80}},
        {"op": "gopher_quality", "sources": ["legal"]},
        {"op": "length_filter", "sources": ["wiki"], "params": {"max_chars": 10}},
    ]
    out = tmp_path_factory.mktemp("export_run")
    manifest = run_recipe(recipe_from_dict(_recipe(shared_data, steps)), out)
    assert {s: c["kept"] for s, c in manifest.sources.items()} == {"code": 629, "legal": 369, "wiki": 0}
    return out


def test_explain_names_value_and_threshold_of_length_and_gopher_drops(run_dir: Path) -> None:
    (short,) = explain_document(run_dir, "thealgorithms_python:conversions/rectangular_to_polar.py")
    assert (short.status, short.step, short.op, short.reason) == ("dropped", 0, "length_filter", "too_few_words")
    assert short.detail == {"signal": "n_words", "value": 62, "op": "<", "threshold": 80, "param": "min_words"}
    assert "n_words = 62 < 80 (min_words)" in short.why
    assert short.excerpt.startswith("import math")

    (stops,) = explain_document(run_dir, "spdx:CC-BY-3.0-AT", source="legal")
    assert (stops.step, stops.op, stops.reason) == (1, "gopher_quality", "gopher_too_few_stop_words")
    assert stops.detail == {
        "signal": "gopher_n_stop_words",
        "value": 0,
        "op": "<",
        "threshold": 2,
        "param": "min_stop_words",
    }
    (alpha,) = explain_document(run_dir, "spdx:SISSL")
    assert alpha.reason == "gopher_too_few_alpha_words"
    assert alpha.detail["value"] == pytest.approx(0.793029) and alpha.detail["threshold"] == 0.8

    (kept,) = explain_document(run_dir, "spdx:MIT")
    assert kept.status == "kept" and kept.reason is None and kept.excerpt.startswith("MIT License")

    res = CliRunner().invoke(app, ["explain", str(run_dir), "wikitext2_valid:002"])
    assert res.exit_code == 0, res.output
    assert "dropped at step 2 (length_filter): too_long, n_chars = 13525 > 10 (max_chars)" in res.output
    assert CliRunner().invoke(app, ["explain", str(run_dir), "no-such-id"]).exit_code == 2


def test_samples_returns_n_documents_with_the_requested_reason(run_dir: Path) -> None:
    fates = sample_dropped(run_dir, step="gopher_quality", reason="gopher_too_few_alpha_words", n=5)
    assert len(fates) == 5 and len({f.id for f in fates}) == 5
    assert {(f.step, f.reason, f.detail["param"]) for f in fates} == {
        (1, "gopher_too_few_alpha_words", "min_alpha_words_ratio")
    }
    assert all(f.detail["value"] < 0.8 and f.excerpt for f in fates)

    res = CliRunner().invoke(
        app, ["samples", str(run_dir), "--step", "0", "--reason", "too_few_words", "-n", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and all(r["reason"] == "too_few_words" and r["detail"]["value"] < 80 for r in rows)
    assert CliRunner().invoke(app, ["samples", str(run_dir), "--reason", "lang_mismatch"]).exit_code == 2


def test_export_shares_follow_the_mixture_and_empty_source_warns(run_dir: Path, tmp_path: Path) -> None:
    m = export_run(run_dir, tmp_path, "jsonl", seed=0, shard_bytes=150_000)
    assert len(m.shards) > 2 and m.budget_tokens == 600_000
    tokens = {name: 0 for name in WEIGHTS}
    docs = 0
    for shard in m.shards:
        assert sha256_file(tmp_path / shard.file) == shard.sha256
        for line in (tmp_path / shard.file).read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            tokens[doc["source"]] += len(doc["text"].encode("utf-8")) + 1
            docs += 1
    total = sum(tokens.values())
    assert docs == m.documents and total == m.tokens
    assert abs(total - 600_000) < 0.02 * 600_000
    # wiki is empty: its 0.1 goes to code and legal in proportion to their weights
    assert tokens["wiki"] == 0 and m.sources["wiki"].weight == pytest.approx(0.1)
    for name in ("code", "legal"):
        assert m.sources[name].target_share == pytest.approx(WEIGHTS[name] / 0.9, abs=1e-3)
        assert tokens[name] / total == pytest.approx(m.sources[name].target_share, abs=0.02)
        assert m.sources[name].share == pytest.approx(tokens[name] / total, abs=1e-6)
    assert len(m.warnings) == 1 and "'wiki' has weight 0.1" in m.warnings[0]
    assert json.loads((tmp_path / "manifest.json").read_text())["sha256"] == m.sha256


def test_same_seed_exports_are_byte_identical_and_tokens_match_the_stream(run_dir: Path, tmp_path: Path) -> None:
    a = export_run(run_dir, tmp_path / "a", "parquet", docs=120, seed=3)
    b = export_run(run_dir, tmp_path / "b", "parquet", docs=120, seed=3)
    c = export_run(run_dir, tmp_path / "c", "parquet", docs=120, seed=4)
    assert a.documents == 120 and a.sha256 == b.sha256 and a.sha256 != c.sha256
    for shard in a.shards:
        assert (tmp_path / "a" / shard.file).read_bytes() == (tmp_path / "b" / shard.file).read_bytes()
    texts = [t for s in a.shards for t in pq.read_table(tmp_path / "a" / s.file).column("text").to_pylist()]

    tok = export_run(run_dir, tmp_path / "t", "tokens", docs=120, seed=3)
    docs = [d for s in tok.shards for d in read_token_shard(tmp_path / "t" / s.file)]
    assert len(docs) == 120 and all(d[0] == EOT_ID for d in docs)
    assert [bytes(d[1:].astype("u1")).decode("utf-8") for d in docs] == texts  # same stream, same order


def test_export_refuses_when_every_weighted_source_is_empty(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    steps = [{"op": "length_filter", "params": {"max_chars": 10}}]
    recipe = tmp_path / "empty.yaml"
    recipe.write_text(json.dumps(_recipe(shared_data, steps)))  # JSON is YAML
    res = CliRunner().invoke(app, ["export", str(recipe), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "nothing to export" in res.output and "'code' has weight 0.6" in res.output
    assert not list((tmp_path / "out").glob("part-*"))
    with pytest.raises(ExportRefused, match="format 'csv'"):
        export_run(tmp_path / "out" / "run", tmp_path / "x", "csv")
