"""SimHash dedup on real text: Wikipedia articles with three words changed, PubMed abstracts beside
them, SPDX licences and Python code for the block search against a brute-force scan."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from operators import read_ledger, read_output, recipe_from_dict, run_recipe
from operators.dedup.clusters import SEP, candidate_edges, components, resolve_clusters
from operators.dedup.simhash_dedup import FINGERPRINT, _block_rows, block_keys, fingerprints, verified_edges

NEW_WORDS = ("zebra", "quantum", "marmalade")


def _rows(shared: Path, name: str) -> list[dict]:
    with open(shared / "domains" / f"{name}.jsonl") as fh:
        return [json.loads(line) for line in fh]


def _edited(text: str) -> str:
    """The text with three words replaced, at a quarter, half and three quarters of its length."""
    tokens = text.split(" ")
    for i, word in enumerate(NEW_WORDS):
        tokens[(i + 1) * len(tokens) // 4] = word
    return " ".join(tokens)


def _dropped(run_dir: Path) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in read_ledger(run_dir).to_pylist() if r["status"] == "dropped"}


@pytest.fixture(scope="module")
def edited_runs(shared_data, ray_started, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("simhash")
    wiki = _rows(shared_data, "wiki_wikitext2_valid")
    # "~" sorts after the letters: every copy's id is above its original's
    with open(tmp / "edited.jsonl", "w") as fh:
        fh.writelines(json.dumps({"id": f"~{r['id']}", "text": _edited(r["text"])}) + "\n" for r in wiki)
    sources = [
        {"name": "wiki", "uri": str(shared_data / "domains/wiki_wikitext2_valid.jsonl")},
        {"name": "pubmed", "uri": str(shared_data / "domains/medical_pubmedqa_abstracts.jsonl")},
        {"name": "edited", "uri": str(tmp / "edited.jsonl")},
    ]
    runs = {}
    for name, blocks, k in (("b1", 1, 3), ("b2", 2, 3), ("k6", 2, 6)):
        recipe = recipe_from_dict(
            {"sources": sources, "steps": [{"op": "simhash_dedup", "params": {"hamming_distance": k}}]}
        )
        # b1 and b2 compute every stage (block counts are not in the cache key); k6 reuses b2's fingerprints
        runs[name] = (run_recipe(recipe, tmp / name, use_cache=name == "k6", num_blocks=blocks), tmp / name)
    return {"runs": runs, "wiki": wiki}


def test_edited_copies_dropped_unrelated_documents_kept(edited_runs):
    manifest, run_dir = edited_runs["runs"]["b2"]
    wiki = edited_runs["wiki"]
    dropped = _dropped(run_dir)
    copies = {f"~{r['id']}": r["id"] for r in wiki}
    found = {c: o for c, o in copies.items() if c in dropped}
    # each copy found is a duplicate of its own original; the shortest article's copy (628 words)
    # moved by more than 3 bits and is kept
    assert all(dropped[c] == f"simhash_duplicate_of:{o}" for c, o in found.items())
    assert set(copies) - set(found) == {"~wikitext2_valid:050"}
    assert set(dropped) == set(found)  # nothing else: no original, no abstract
    kept = set(read_output(run_dir).column("id").to_pylist())
    assert {"wikitext2_valid:001", "wikitext2_valid:050", "~wikitext2_valid:050"} <= kept
    assert {"pubmedqa:10430303", "pubmedqa:10577397"} <= kept
    # exact ledger, per source
    assert manifest.sources == {
        "wiki": {"input": 60, "kept": 60, "dropped": 0},
        "pubmed": {"input": 500, "kept": 500, "dropped": 0},
        "edited": {"input": 60, "kept": 1, "dropped": 59},
    }
    assert read_ledger(run_dir).num_rows == 620


def test_identical_with_one_and_two_blocks(edited_runs):
    (_, one), (_, two) = edited_runs["runs"]["b1"], edited_runs["runs"]["b2"]
    assert read_ledger(one).to_pylist() == read_ledger(two).to_pylist()
    assert read_output(one).equals(read_output(two))


def test_larger_distance_reuses_cached_fingerprints(edited_runs):
    (strict, strict_dir), (loose, loose_dir) = edited_runs["runs"]["b2"], edited_runs["runs"]["k6"]
    annotate = [next(s for s in m.steps if s.stage == "annotate") for m in (strict, loose)]
    assert annotate[1].cached and annotate[1].key == annotate[0].key
    # k = 6 also catches the short article's copy, still nothing unrelated
    assert _dropped(loose_dir) == {
        **_dropped(strict_dir),
        "~wikitext2_valid:050": "simhash_duplicate_of:wikitext2_valid:050",
    }


def _brute_force_pairs(fps: np.ndarray, rows: np.ndarray, k: int) -> set[frozenset[int]]:
    """Every pair of ``rows`` (the documents whose fingerprints ``fps`` are) within ``k`` bits."""
    i, j = np.nonzero(np.triu(np.bitwise_count(fps[:, None] ^ fps[None, :]) <= k, 1))
    return {frozenset((int(rows[a]), int(rows[b]))) for a, b in zip(i, j, strict=True)}


def _edge_pairs(edges: list[pa.Table]) -> set[frozenset[int]]:
    table = pa.concat_tables(edges)
    names = zip(table["a"].to_pylist(), table["b"].to_pylist(), strict=True)
    return {frozenset(int(n.split(SEP)[0]) for n in pair) for pair in names}


def test_block_search_finds_exactly_the_brute_force_pairs(shared_data, ray_started):
    import ray

    docs = [r for name in ("legal_spdx_license_texts", "code_python_thealgorithms") for r in _rows(shared_data, name)]
    fps = fingerprints(np.array([r["text"] for r in docs], dtype=object), ngram=1, seed=0)
    ids = np.array([f"{i:05d}" for i in range(len(docs))], dtype=object)
    table = pa.table({"id": ids, "source": ["s"] * len(docs), FINGERPRINT: fps.view(np.int64)})

    def block_search(rows: np.ndarray) -> list[pa.Table]:
        keys = ray.data.from_arrow(table.take(rows)).map_batches(_block_rows, fn_kwargs={"k": 3}, batch_format="numpy")
        return candidate_edges(keys, 3, functools.partial(verified_edges, k=3))

    # on distinct fingerprints the edges are exactly the pairs within 3 bits
    _, distinct = np.unique(fps, return_index=True)
    expected = _brute_force_pairs(fps[distinct], distinct, 3)
    assert _edge_pairs(block_search(distinct)) == expected and len(expected) == 94
    # 1,190 of the 582,660 pairs share a block; 1,096 of them differ in more bits and are rejected
    keys = block_keys(fps[distinct], 3)
    assert np.triu((keys[:, None, :] == keys[None, :, :]).any(axis=2), 1).sum() == 1190

    # on all documents (verbatim licence copies included) the clusters are the brute force's
    dropped, _ = resolve_clusters(block_search(np.arange(len(docs))))
    pairs = np.array([sorted(p) for p in _brute_force_pairs(fps, np.arange(len(docs)), 3)])
    label = components(len(docs), pairs[:, 0], pairs[:, 1])
    assert {int(n.split(SEP)[0]) for n in dropped} == set(np.flatnonzero(label != np.arange(len(docs))).tolist())
