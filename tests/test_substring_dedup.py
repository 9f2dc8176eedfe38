"""substring_dedup on real text: plagiarised short answers (copied Wikipedia spans), PubMed abstracts
with a pasted license notice, and the suffix-array ranges against a brute-force definition."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from operators import read_ledger, read_output, recipe_from_dict, run_recipe
from operators.dedup.substring_dedup import duplicate_spans

ANSWERS = "neardup/plagiarised_short_answers_docs.jsonl"


def _run(tmp: Path, name: str, uri: Path, params: dict | None = None, **kw) -> Path:
    recipe = recipe_from_dict(
        {"sources": [{"name": "docs", "uri": str(uri)}], "steps": [{"op": "substring_dedup", "params": params or {}}]}
    )
    run_recipe(recipe, tmp / name, use_cache=False, **kw)
    return tmp / name


def _texts(path: Path, field: str = "text") -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        return {row["id"]: row[field] for row in map(json.loads, fh)}


def _outputs(run_dir: Path) -> dict[str, str]:
    out = read_output(run_dir)
    return dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist(), strict=True))


def _ledger(run_dir: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_ledger(run_dir).to_pylist()}


@pytest.fixture(scope="module")
def answer_runs(shared_data, ray_started, tmp_path_factory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("answers")
    return {blocks: _run(tmp, f"b{blocks}", shared_data / ANSWERS, num_blocks=blocks) for blocks in (1, 2)}


def test_copied_spans_are_struck_from_every_copy(shared_data, answer_runs):
    source, out, ledger = _texts(shared_data / ANSWERS), _outputs(answer_runs[2]), _ledger(answer_runs[2])
    # a "cut" answer: its five copied passages go, what the student wrote between them stays
    raw = source["g0pA_taskb.txt"].encode()
    assert out["g0pA_taskb.txt"].encode() == raw[358:430] + raw[538:670] + raw[861:891] + raw[1054:1057] + raw[1234:]
    assert json.loads(ledger["g0pA_taskb.txt"]["detail"]) == [
        {"step": 0, "op": "substring_dedup", "bytes_removed": 997, "spans": 5}
    ]
    for lo, hi in ((430, 538), (670, 861), (891, 1054), (1057, 1234)):
        assert raw[lo:hi] in source["orig_taskb.txt"].encode()  # copied from the Wikipedia source
    # its first 358 bytes (PageRank's definition) open another answer too: both copies lose them
    other = source["g1pD_taskb.txt"].encode()
    assert other[:358] == raw[:358]
    assert out["g1pD_taskb.txt"].encode() == other[672:739] + other[1092:1160] + other[1386:]
    # a verbatim copy of the task-a source empties; the source keeps a newline between copies and a
    # lightly edited copy 93 bytes: all three fall under min_doc_bytes
    dropped = {i: r for i, r in ledger.items() if r["status"] == "dropped"}
    assert {i: r["reason"] for i, r in dropped.items()} == dict.fromkeys(
        ("g0pE_taska.txt", "g4pC_taska.txt", "orig_taska.txt"), "substring_dedup_too_short"
    )
    assert json.loads(dropped["g4pC_taska.txt"]["detail"]) == {
        "bytes_removed": 1868,
        "spans": 1,
        "bytes_left": 0,
        "min_doc_bytes": 100,
    }
    assert json.loads(dropped["orig_taska.txt"]["detail"])["bytes_left"] == 1
    assert json.loads(dropped["g0pE_taska.txt"]["detail"])["bytes_left"] == 93
    # independently written answers share no 100-byte span
    nons = [doc for doc, category in _texts(shared_data / ANSWERS, "category").items() if category == "non"]
    assert len(nons) == 25
    assert all(out[i] == source[i] and ledger[i]["detail"] is None for i in nons)


def test_ledger_balances_and_counts_the_bytes(shared_data, answer_runs):
    source, out, ledger = _texts(shared_data / ANSWERS), _outputs(answer_runs[1]), _ledger(answer_runs[1])
    assert len(ledger) == len(source) == 60 and len(out) == 57
    edited = 0
    for doc, text in out.items():
        edits = json.loads(ledger[doc]["detail"]) if ledger[doc]["detail"] else []
        removed = sum(e["bytes_removed"] for e in edits)
        assert len(source[doc].encode()) - len(text.encode()) == removed
        edited += bool(edits)
    assert edited == 17


def test_identical_across_block_counts(answer_runs):
    assert read_ledger(answer_runs[1]).equals(read_ledger(answer_runs[2]))
    assert read_output(answer_runs[1]).equals(read_output(answer_runs[2]))


def test_keep_first_keeps_the_earliest_copy(shared_data, ray_started, tmp_path):
    source = _texts(shared_data / ANSWERS)
    out = _outputs(_run(tmp_path, "first", shared_data / ANSWERS, {"keep_first": True}))
    assert out["g0pA_taskb.txt"] == source["g0pA_taskb.txt"]  # the lowest id keeps the shared opening
    assert out["g1pD_taskb.txt"].encode() == source["g1pD_taskb.txt"].encode()[358:]


def test_pasted_notice_is_removed_from_abstracts(shared_data, ray_started, tmp_path):
    """Five PubMed abstracts get the same license notice appended; keep_first leaves it in the
    lowest id only. Four abstracts repeat a sentence of their own: the repeat goes, the first stays."""
    notice = "\n\n" + _texts(shared_data / "domains/legal_spdx_license_texts.jsonl")["spdx:MIT"][:400]
    abstracts = _texts(shared_data / "domains/medical_pubmedqa_abstracts.jsonl")
    pasted = sorted(random.Random(0).sample(sorted(abstracts), 5))
    path = tmp_path / "abstracts.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for doc, text in abstracts.items():
            fh.write(json.dumps({"id": doc, "text": text + notice if doc in pasted else text}) + "\n")
    run_dir = _run(tmp_path, "abstracts", path, {"keep_first": True})
    out, ledger = _outputs(run_dir), _ledger(run_dir)
    assert out[pasted[0]] == abstracts[pasted[0]] + notice
    for i, doc in enumerate(pasted[1:], 1):
        # windows that start in an abstract's last characters match too where an earlier pasted
        # abstract ends with the same characters ("y." of "lithotripsy." and "activity.")
        shared = max(_common_suffix(abstracts[doc], abstracts[e]) for e in pasted[:i])
        assert out[doc] == abstracts[doc][: len(abstracts[doc]) - shared]
    self_repeats = {"pubmedqa:10354335": (498, 880), "pubmedqa:21904069": (1755, 1873)}
    for doc, (lo, hi) in self_repeats.items():
        raw = abstracts[doc].encode()
        assert out[doc].encode() == raw[:lo] + raw[hi:]
    edited = {doc for doc, r in ledger.items() if r["detail"]}
    assert edited == {*pasted[1:], *self_repeats, "pubmedqa:24519615", "pubmedqa:25228241"}
    assert len(out) == len(abstracts) == 500


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def test_ranges_match_the_brute_force_definition():
    """On random two-letter texts (many repeats, inside and across documents): a byte goes when it lies
    in a ``min_length`` window that occurs again (keep_first: that occurred earlier)."""
    rng = random.Random(0)
    for _ in range(200):
        length = rng.choice([8, 9, 12])
        texts = ["".join(rng.choice("ab") for _ in range(rng.randint(0, 40))) for _ in range(rng.randint(1, 6))]
        where: dict[str, list[tuple[int, int]]] = {}
        for d, t in enumerate(texts):
            for p in range(len(t) - length + 1):
                where.setdefault(t[p : p + length], []).append((d, p))
        for keep_first in (False, True):
            spans = duplicate_spans(texts, length, keep_first)
            for d, t in enumerate(texts):
                expected = np.zeros(len(t), dtype=bool)
                for p in range(len(t) - length + 1):
                    seen = where[t[p : p + length]]
                    if (seen[0] != (d, p)) if keep_first else len(seen) > 1:
                        expected[p : p + length] = True
                got = np.zeros(len(t), dtype=bool)
                for lo, hi in spans[d]:
                    got[lo:hi] = True
                assert (got == expected).all(), (texts, d, keep_first)


def test_ranges_keep_whole_characters():
    # 2-byte characters repeated: a window may start inside one; the cut never splits it
    spans = duplicate_spans(["é" * 40 + "tail", "x" + "é" * 40], min_length=20)
    assert [s.tolist() for s in spans] == [[[0, 80]], [[1, 81]]]
