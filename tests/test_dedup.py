"""Dedup operators on real text: SPDX license variants, plagiarised short answers."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from operators import RecipeError, read_ledger, read_output, recipe_from_dict, run_recipe
from operators.dedup.clusters import EDGE_SCHEMA, SEP, candidate_edges, node_names, resolve_clusters
from operators.dedup.minhash_dedup import band_keys, signatures
from operators.dedup.semantic_dedup import embed_available
from operators.text.text_hashing import batch_word_hashes


def _run(shared: Path, tmp: Path, name: str, sources: dict[str, str], steps: list[dict], **kw) -> dict:
    recipe = recipe_from_dict(
        {"sources": [{"name": n, "uri": str(shared / rel)} for n, rel in sources.items()], "steps": steps}
    )
    return run_recipe(recipe, tmp / name, **kw)


def _dropped(run_dir: Path) -> dict[str, str]:
    ledger = read_ledger(run_dir).to_pylist()
    return {r["id"]: r["reason"] for r in ledger if r["status"] == "dropped"}


LEGAL = {"legal": "domains/legal_spdx_license_texts.jsonl"}
DEDUP_STEPS = [{"op": "exact_dedup"}, {"op": "minhash_dedup"}]


@pytest.fixture(scope="module")
def legal_runs(shared_data, ray_started, tmp_path_factory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("legal")
    runs = {}
    for blocks in (2, 5):
        _run(shared_data, tmp, f"b{blocks}", LEGAL, DEDUP_STEPS, use_cache=False, num_blocks=blocks)
        runs[blocks] = tmp / f"b{blocks}"
    return runs


def test_license_variants_form_the_expected_clusters(legal_runs):
    dropped = _dropped(legal_runs[2])
    # verbatim copies under several SPDX ids: exact duplicates of the lowest id
    for dup in ("spdx:AGPL-3.0-only", "spdx:AGPL-3.0-or-later"):
        assert dropped[dup] == "exact_duplicate_of:spdx:AGPL-3.0"
    assert dropped["spdx:CAL-1.0-Combined-Work-Exception"] == "exact_duplicate_of:spdx:CAL-1.0"
    # versions and variants of one license family: near duplicates of the family's lowest id
    assert dropped["spdx:AFL-1.2"] == "near_duplicate_of:spdx:AFL-1.1"
    assert dropped["spdx:AFL-2.1"] == "near_duplicate_of:spdx:AFL-2.0"
    assert dropped["spdx:CC-BY-NC-4.0"] == "near_duplicate_of:spdx:CC-BY-4.0"
    assert dropped["spdx:BSD-3-Clause"] == "near_duplicate_of:spdx:BSD-1-Clause"
    # the kept representatives and unrelated licenses survive
    kept = set(read_output(legal_runs[2], "legal").column("id").to_pylist())
    assert {"spdx:AGPL-3.0", "spdx:AFL-1.1", "spdx:AFL-2.0", "spdx:CC-BY-4.0", "spdx:BSD-1-Clause"} <= kept
    assert {"spdx:Apache-2.0", "spdx:0BSD"} <= kept
    # every near-duplicate reason names a document that was kept
    assert {r.split(":", 1)[1] for r in dropped.values() if r.startswith("near")} <= kept


def test_results_identical_across_runs_and_block_counts(legal_runs):
    a, b = (read_ledger(legal_runs[n]).to_pylist() for n in (2, 5))
    assert a == b
    assert read_output(legal_runs[2]).equals(read_output(legal_runs[5]))
    assert len(_dropped(legal_runs[2])) == 138


def test_plagiarised_answers_and_cached_signatures(shared_data, ray_started, tmp_path):
    docs = {"answers": "neardup/plagiarised_short_answers_docs.jsonl"}
    first = _run(shared_data, tmp_path, "a", docs, [{"op": "minhash_dedup"}])
    # the two lightly edited copies of task a's Wikipedia source (Jaccard 0.85 and 0.89)
    assert _dropped(tmp_path / "a") == {
        "g4pC_taska.txt": "near_duplicate_of:g0pE_taska.txt",
        "orig_taska.txt": "near_duplicate_of:g0pE_taska.txt",
    }
    # a looser band layout reuses the cached signatures and catches the heavier "cut" copies
    loose = _run(shared_data, tmp_path, "b", docs, [{"op": "minhash_dedup", "params": {"bands": 28, "rows": 4}}])
    annotate = next(s for s in loose.steps if s.stage == "annotate")
    assert annotate.cached and annotate.key == next(s for s in first.steps if s.stage == "annotate").key
    dropped = _dropped(tmp_path / "b")
    assert {"g4pC_taska.txt", "orig_taska.txt"} < set(dropped)
    assert dropped["g0pB_taskc.txt"].startswith("near_duplicate_of:")


def test_scoped_dedup_after_filters_that_empty_whole_blocks(shared_data, ray_started, tmp_path):
    # a planner's recipe: after the scoped filters, some blocks hold no legal text at all; Ray turns
    # them into column-less blocks, which the default hash shuffle failed to concatenate
    names = ("code_python_thealgorithms", "books_gutenberg", "legal_spdx_license_texts", "wiki_wikitext2_valid")
    sources = dict(zip(("code", "books", "legal", "wiki"), (f"domains/{n}.jsonl" for n in names), strict=True))
    sources["instructions"] = "domains/instruction_codealpaca_2k.jsonl"
    steps = [
        {"op": "text_normalize"},
        {"op": "language_id", "params": {"min_score": 0.5769}, "sources": ["legal"]},
        {"op": "length_filter", "params": {"min_words": 22}},
        {"op": "c4_quality", "params": {"min_num_sentences": 2}, "sources": ["books", "legal"]},
        {"op": "fineweb_quality", "sources": ["legal"]},
        {"op": "gopher_quality", "sources": ["books", "legal"]},
        {"op": "gopher_repetition", "sources": ["code", "legal", "instructions"]},
        {"op": "minhash_dedup", "sources": ["legal"]},
    ]
    manifest = _run(shared_data, tmp_path, "scoped", sources, steps)
    assert manifest.sources["legal"] == {"input": 460, "kept": 236, "dropped": 224}
    near = [r for r in _dropped(tmp_path / "scoped").values() if r.startswith("near_duplicate_of:")]
    assert len(near) == 106


def test_key_rows_grouped_on_the_driver_or_shuffled_give_the_same_clusters(shared_data, ray_started):
    import ray.data

    docs = [json.loads(line) for line in (shared_data / LEGAL["legal"]).read_text().splitlines()]
    batch = {"id": [d["id"] for d in docs], "source": ["legal"] * len(docs)}
    keys = band_keys(signatures(np.array([d["text"] for d in docs], dtype=object), 5, 112, 1), 14, 8)
    rows = pa.table({"key": keys.ravel(), "doc": np.repeat(node_names(batch), 14), "rank": np.zeros(keys.size)})
    ds = ray.data.from_arrow(rows).repartition(3)
    local = resolve_clusters(candidate_edges(ds, 3))
    shuffled = resolve_clusters(candidate_edges(ds, 3, local_bytes=0))
    assert all(np.array_equal(x, y) for x, y in zip(local, shuffled, strict=True))
    assert len(local[0]) == 138  # verbatim copies and license variants alike, as in the runs above
    assert dict(zip(*local, strict=True))[f"spdx:AFL-1.2{SEP}legal"] == "spdx:AFL-1.1"


def test_word_hashes_split_unicode_punctuation_inside_ascii_text():
    texts = np.array(["Don’t STOP—“quoted” naïve café, x² 日本語!", "", "  plain_ascii words  "], dtype=object)
    hashes, offsets = batch_word_hashes(texts)
    expected = ["don", "t", "stop", "quoted", "naïve", "café", "x²", "日本語", "plain_ascii", "words"]
    assert hashes.tolist() == [zlib.crc32(w.encode()) for w in expected]
    assert offsets.tolist() == [0, 8, 8, 10]


def _edges(rows: list[tuple[str, str, float, float]]) -> list[pa.Table]:
    cols = list(zip(*rows, strict=True))
    return [pa.table({k: list(v) for k, v in zip(EDGE_SCHEMA.names, cols, strict=True)}, schema=EDGE_SCHEMA)]


def test_clusters_keep_lowest_id_or_highest_signal():
    n = lambda i: f"{i}{SEP}s"  # noqa: E731
    chain = [(n("c"), n("b"), 0.0, 0.0), (n("b"), n("a"), 0.0, 0.0), (n("x"), n("y"), 0.0, 0.0)]
    dropped, kept = resolve_clusters(_edges(chain))
    assert dict(zip(dropped, kept, strict=True)) == {n("b"): "a", n("c"): "a", n("y"): "x"}
    ranked = [(n("c"), n("b"), 5.0, 9.0), (n("b"), n("a"), 9.0, 1.0), (n("x"), n("y"), 2.0, 2.0)]
    dropped, kept = resolve_clusters(_edges(ranked))
    assert dict(zip(dropped, kept, strict=True)) == {n("a"): "b", n("c"): "b", n("y"): "x"}


def test_soft_dedup_downweights_repeated_licenses(shared_data, ray_started, tmp_path):
    _run(shared_data, tmp_path, "soft", LEGAL, [{"op": "soft_dedup"}])
    out = read_output(tmp_path / "soft", "legal")
    weight = dict(zip(out.column("id").to_pylist(), out.column("weight").to_pylist(), strict=True))
    assert len(weight) == 460  # nothing dropped
    assert np.isclose(np.mean(list(weight.values())), 1.0, atol=0.1)
    # the GPL/AGPL texts exist in several verbatim copies: the most common segment
    assert weight["spdx:AGPL-3.0"] == weight["spdx:AGPL-3.0-only"] < weight["spdx:Apache-2.0"]
    assert weight["spdx:AGPL-3.0"] < 1.0


@pytest.mark.skipif(not embed_available(), reason="the `embed` extra (sentence-transformers) is not installed")
def test_semantic_dedup_on_plagiarised_answers(shared_data, ray_started, tmp_path):
    docs = {"answers": "neardup/plagiarised_short_answers_docs.jsonl"}
    _run(shared_data, tmp_path, "sem", docs, [{"op": "semantic_dedup", "params": {"num_clusters": 4}}])
    dropped = _dropped(tmp_path / "sem")
    assert dropped["orig_taska.txt"] == "semantic_duplicate_of:g0pE_taska.txt"
    assert dropped["g4pC_taska.txt"] == "semantic_duplicate_of:g0pE_taska.txt"


def test_semantic_dedup_refused_without_embed_extra(shared_data, tmp_path):
    if embed_available():
        pytest.skip("the `embed` extra is installed")
    with pytest.raises(RecipeError, match="embed"):
        _run(shared_data, tmp_path, "sem", LEGAL, [{"op": "semantic_dedup"}])
