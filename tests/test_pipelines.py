"""The published pipelines of ``recipes/`` (C4, Gopher, RefinedWeb, FineWeb, DCLM-baseline) made
runnable by ``dataplan recipes init``, run end to end on the shared WARC sample, and built as
``finalize``'s baselines over a run's sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.baselines import BASELINES, DEFAULT_BASELINES, PIPELINES, baseline_names, baseline_recipes
from operators import load_recipe, read_ledger, read_output, recipe_from_dict, run_recipe

REPO = Path(__file__).resolve().parent.parent
GOPHER = ["gopher_dup_5gram", "gopher_dup_9gram", "gopher_dup_line_frac", "gopher_too_few_alpha_words"]
FINEWEB = ["fineweb_char_dup_ratio", "fineweb_line_punct_ratio"]
EXPECTED = {
    "c4": (154, ["c4_too_few_sentences", "lang_low_score", "lang_mismatch"]),
    "gopher": (136, [*GOPHER, "lang_mismatch"]),
    "refinedweb": (136, [*GOPHER, "lang_mismatch"]),
    "fineweb": (131, ["c4_curly_bracket", "c4_too_few_sentences", *FINEWEB, *GOPHER, "lang_mismatch"]),
    "dclm_baseline": (133, [*FINEWEB, *GOPHER, "lang_mismatch"]),
}
"""Pages of the 418 each pipeline keeps, and the reasons it drops the others for (the sample holds no
duplicates: the dedup stages drop nothing)."""
EDITS = {"refinedweb": ("substring_dedup", 11, 2604), "dclm_baseline": ("bloom_dedup", 2, 227)}
"""Pages whose text the substring / paragraph dedup cut (a site's repeated boilerplate), and the bytes cut."""


def _init(name: str, source: Path, out: Path) -> dict:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "recipes",
            "init",
            name,
            "--source",
            str(source),
            "--out",
            str(out),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("name", PIPELINES)
def test_a_published_pipeline_runs_on_the_warc_sample(
    name: str, shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    written = _init(name, shared_data / "web/crawl_sample.warc.gz", tmp_path / f"{name}.yaml")
    assert written["steps"][0] in ("html_extract", "url_filter")
    manifest = run_recipe(load_recipe(tmp_path / f"{name}.yaml"), tmp_path / "out")
    assert manifest.sources["web"]["input"] == 418
    ledger = read_ledger(tmp_path / "out")
    reasons = sorted({r.split(":")[0] for r in ledger["reason"].to_pylist() if r})
    assert (manifest.sources["web"]["kept"], reasons) == EXPECTED[name]
    if name in EDITS:
        edits = [e for d in ledger["detail"].to_pylist() if d and d.startswith("[") for e in json.loads(d)]
        assert {e["op"] for e in edits} == {EDITS[name][0]}
        assert (len(edits), sum(e["bytes_removed"] for e in edits)) == EDITS[name][1:]
    if name in ("c4", "fineweb"):  # C4's line rules also remove lines, as datatrove's C4QualityFilter does
        texts = read_output(tmp_path / "out")["text"].to_pylist()
        assert not any(len(line.split()) < 3 for text in texts for line in text.splitlines())


def test_init_drops_extraction_for_a_text_source(shared_data: Path, tmp_path: Path) -> None:
    written = _init("fineweb", shared_data / "domains/wiki_wikitext2_valid.jsonl", tmp_path / "fw.yaml")
    assert "html_extract" not in written["steps"] and written["steps"][0] == "url_filter"
    assert len(written["steps"]) == 9


def test_published_pipelines_are_finalize_baselines_over_the_runs_sources(shared_data: Path) -> None:
    recipe = recipe_from_dict(
        {
            "sources": [
                {"name": "web", "uri": str(shared_data / "web/crawl_sample.warc.gz")},
                {"name": "wiki", "uri": str(shared_data / "domains/wiki_wikitext2_valid.jsonl")},
            ],
            "steps": [{"op": "length_filter"}],
            "mixture": {"weights": {"web": 0.3, "wiki": 0.7}, "total_tokens": 100_000},
        }
    )
    assert baseline_names() == ["natural_mixture", "uniform_mixture", "no_filtering", "fineweb"]
    names = baseline_names(["natural", "c4", "fineweb", "doremi"], elsewhere=["doremi"])
    assert names == [*DEFAULT_BASELINES, "c4"]  # defaults always, opt-in ones added once
    with pytest.raises(ValueError, match="no baseline 'finweb'"):
        baseline_names(["finweb"])
    built = baseline_recipes(recipe, names)
    for name in ("fineweb", "c4"):
        steps = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())["steps"]
        ours = built[name].steps
        assert [s.op for s in ours] == [s["op"] for s in steps] and built[name].mixture.weights is None
        assert [s.params for s in ours] == [s.get("params", {}) for s in steps]
        assert [s.sources for s in ours if s.op == "html_extract"] == [["web"]]
        assert {s.name for s in built[name].sources} == {"web", "wiki"}
    assert built["natural_mixture"].steps == recipe.steps and set(PIPELINES) <= set(BASELINES)


def test_finalize_refuses_an_unknown_baseline_before_any_work(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "agent.cli", "finalize", str(tmp_path / "none"), "--baselines", "c4,finweb"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})
    assert res.returncode != 0 and "no baseline 'finweb'; the baselines are" in res.stdout + res.stderr
    assert not (tmp_path / "none").exists()
