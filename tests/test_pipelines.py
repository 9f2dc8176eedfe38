"""The published pipelines of ``recipes/`` (C4, Gopher, RefinedWeb, FineWeb, DCLM-baseline) made
runnable by ``dataplan recipes init`` and run end to end on the shared WARC sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from operators import load_recipe, read_ledger, run_recipe

REPO = Path(__file__).resolve().parent.parent
PIPELINES = ("c4", "gopher", "refinedweb", "fineweb", "dclm_baseline")
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


def test_init_drops_extraction_for_a_text_source(shared_data: Path, tmp_path: Path) -> None:
    written = _init("fineweb", shared_data / "domains/wiki_wikitext2_valid.jsonl", tmp_path / "fw.yaml")
    assert "html_extract" not in written["steps"] and written["steps"][0] == "url_filter"
    assert len(written["steps"]) == 8
