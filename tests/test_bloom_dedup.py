"""bloom_dedup (DCLM's BFF) on real text: plagiarised answers after their source, a passage
injected into two Wikipedia articles, SPDX license families; block-count independence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from operators import read_ledger, read_output, recipe_from_dict, run_recipe

PAIRS = "neardup/plagiarised_short_answers_pairs.jsonl"
WIKI = "domains/wiki_wikitext2_valid.jsonl"
ABSTRACT = "pubmedqa:10340286"
EARLIER, LATER = "wikitext2_valid:003", "wikitext2_valid:041"


def _run(tmp: Path, name: str, sources: list[dict], params: dict | None = None, **kw) -> dict:
    recipe = recipe_from_dict({"sources": sources, "steps": [{"op": "bloom_dedup", "params": params or {}}]})
    return run_recipe(recipe, tmp / name, **kw)


def _fates(run_dir: Path, source: str) -> dict[str, dict]:
    return {r["id"]: r for r in read_ledger(run_dir).to_pylist() if r["source"] == source}


def _pair_sources(shared: Path) -> list[dict]:
    """Each pair's source text first (source ``text_a``), then the answers (``text_b``), by pair id."""
    uri = str(shared / PAIRS)
    return [
        {"name": f"text_{s}", "uri": uri, "params": {"text_field": f"text_{s}", "id_field": "id"}} for s in ("a", "b")
    ]


def test_plagiarised_answers_after_their_source(shared_data, ray_started, tmp_path):
    labels = {r["id"]: r["category"] for r in map(json.loads, (shared_data / PAIRS).open())}
    manifest = _run(tmp_path, "dclm", _pair_sources(shared_data))
    # each task's source text is repeated in 19 pairs: every copy after the first is dropped whole
    a = _fates(tmp_path / "dclm", "text_a")
    assert sum(r["reason"] == "duplicate_ngrams" for r in a.values()) == 54
    assert a["g0pA_taska.txt|orig_taska.txt"]["status"] == "kept"
    # DCLM's 13-grams: of the answers, only the cut-and-paste answer g4pC_taska is dropped whole
    b = _fates(tmp_path / "dclm", "text_b")
    dropped = {i: r for i, r in b.items() if r["status"] == "dropped"}
    assert list(dropped) == ["g4pC_taska.txt|orig_taska.txt"]
    detail = json.loads(dropped["g4pC_taska.txt|orig_taska.txt"]["detail"])
    assert detail["signal"] == "duplicate_ngram_fraction" and detail["value"] > 0.8
    # and copied paragraphs leave other answers: the ledger lists what each lost
    edited = {i: json.loads(r["detail"]) for i, r in b.items() if r["status"] == "kept" and r["detail"]}
    assert {labels[i] for i in edited} <= {"cut", "light", "heavy"}
    assert len(edited) == 8
    assert all(e[0]["op"] == "bloom_dedup" and e[0]["bytes_removed"] > 0 for e in edited.values())
    assert manifest.sources["text_b"] == {"input": 57, "kept": 56, "dropped": 1}
    out = {r["id"]: r["text"] for r in read_output(tmp_path / "dclm", "text_b").to_pylist()}
    originals = {r["id"]: r["text_b"] for r in map(json.loads, (shared_data / PAIRS).open())}
    for i, e in edited.items():
        assert len(originals[i].encode()) - len(out[i].encode()) == e[0]["bytes_removed"]


def test_containment_setting_on_plagiarised_answers(shared_data, ray_started, tmp_path):
    labels = {r["id"]: r["category"] for r in map(json.loads, (shared_data / PAIRS).open())}
    # 3-grams, half seen: 16 of the 20 cut/light answers, and 2 of the 12 paraphrases
    params = {"ngram": 3, "min_ngram": 3, "threshold": 0.5, "doc_threshold": 0.5}
    _run(tmp_path, "containment", _pair_sources(shared_data), params)
    found = [labels[i] for i, r in _fates(tmp_path / "containment", "text_b").items() if r["status"] == "dropped"]
    assert sorted(found) == sorted(["cut"] * 8 + ["light"] * 8 + ["heavy"] * 2)


@pytest.fixture(scope="module")
def injected(shared_data, tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """The Wikipedia articles with one PubMedQA abstract inserted after the title of two of them."""
    abstract = next(
        r["text"]
        for r in map(json.loads, (shared_data / "domains/medical_pubmedqa_abstracts.jsonl").open())
        if r["id"] == ABSTRACT
    )
    rows = [json.loads(line) for line in (shared_data / WIKI).open()]
    originals = {r["id"]: r["text"] for r in rows}
    for r in rows:
        if r["id"] in (EARLIER, LATER):
            lines = r["text"].split("\n")
            r["text"] = "\n".join([*lines[:2], abstract, *lines[2:]])
    path = tmp_path_factory.mktemp("injected") / "wiki.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, originals, abstract


@pytest.fixture(scope="module")
def block_runs(shared_data, injected, ray_started, tmp_path_factory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("blocks")
    sources = [{"name": "legal", "uri": str(shared_data / "domains/legal_spdx_license_texts.jsonl")}]
    sources.append({"name": "wiki", "uri": str(injected[0])})
    for blocks in (1, 2):
        _run(tmp, f"b{blocks}", sources, use_cache=False, num_blocks=blocks)
    return {blocks: tmp / f"b{blocks}" for blocks in (1, 2)}


def test_injected_passage_removed_from_the_later_article(block_runs, injected):
    _, originals, abstract = injected
    wiki = _fates(block_runs[1], "wiki")
    assert all(r["status"] == "kept" for r in wiki.values())
    # the later article loses the abstract's four lines (each with one newline), nothing else
    assert json.loads(wiki[LATER]["detail"]) == [
        {"step": 0, "op": "bloom_dedup", "bytes_removed": len(abstract.encode()) + 1, "spans": 4}
    ]
    out = {r["id"]: r["text"] for r in read_output(block_runs[1], "wiki").to_pylist()}
    assert out[LATER] == originals[LATER]
    assert abstract in out[EARLIER] and wiki[EARLIER]["detail"] is None
    assert sum(r["detail"] is not None for r in wiki.values()) == 1


def test_license_families_and_block_independence(block_runs):
    a, b = (read_ledger(block_runs[n]).to_pylist() for n in (1, 2))
    assert a == b
    assert read_output(block_runs[1]).equals(read_output(block_runs[2]))
    legal = _fates(block_runs[1], "legal")
    # verbatim copies under later SPDX ids are dropped whole; the first of each family is kept
    assert legal["spdx:AGPL-3.0"]["status"] == "kept"
    assert legal["spdx:AGPL-3.0-only"]["reason"] == "duplicate_ngrams"
    counts = {}
    for r in legal.values():
        key = r["reason"] or ("edited" if r["detail"] else "kept")
        counts[key] = counts.get(key, 0) + 1
    assert counts == {"kept": 193, "edited": 135, "duplicate_ngrams": 132}
