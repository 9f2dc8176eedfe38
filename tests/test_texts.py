"""Target and reference texts: one reader, and bad lines become counted, reported skips everywhere.

Each file here is real shared data with junk lines written between its records; every place that
reads target or reference texts (proxy targets, the search's prepared targets and held-out slice,
the selection operators' reference sets, the decontamination evaluation sets) gets the same texts
and the same skip counts, and logs them, instead of crashing or skipping silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from proxy_helpers import read_jsonl

from evaluators.targets import Target, holdout_rank, resolve_targets
from experiments.targets import prepare_targets
from operators import RecipeError, read_text_set, read_texts, recipe_from_dict, run_recipe

JUNK = [  # (line, the reason it is skipped)
    (b'{"id": "broken", "text": "no closing quote\n', "malformed_json"),
    (b'{"id": "no-text", "title": "a record without text"}\n', "missing_text"),
    (b'{"id": "latin1", "text": "caf\xe9"}\n', "invalid_utf8"),
    (b'["a", "list"]\n', "not_an_object"),
    (b'{"id": "number", "text": 42}\n', "text_not_string"),
    (b'{"id": "blank", "text": "  \\n "}\n', "empty_text"),
]
SKIPPED = {reason: 1 for _, reason in JUNK}


def write_with_junk(path: Path, rows: list[dict], junk: list[bytes]) -> Path:
    """The records as JSONL with a junk line after every third one, and a blank line (not a record)."""
    lines = [json.dumps(r).encode() + b"\n" for r in rows]
    for k, line in enumerate(junk):
        lines.insert(3 * k + 1 + k, line)
    path.write_bytes(b"".join([*lines, b"\n"]))
    return path


@pytest.fixture
def code(shared_data: Path) -> list[dict]:
    return read_jsonl(shared_data / "domains" / "code_python_thealgorithms.jsonl")


@pytest.fixture
def bad_code(code: list[dict], tmp_path: Path) -> Path:
    return write_with_junk(tmp_path / "code.jsonl", code[:20], [line for line, _ in JUNK])


def test_bad_lines_are_counted_skips_and_logged(code, bad_code, caplog):
    read = read_text_set([bad_code])
    assert read.texts == [r["text"] for r in code[:20]]
    assert read.ids == [r["id"] for r in code[:20]]
    assert read.skipped == SKIPPED and read.n_skipped == 6
    assert (
        len(read.examples) == 5 and read.examples[0].startswith("code.jsonl@") and "malformed_json" in read.examples[0]
    )
    with caplog.at_level(logging.WARNING):
        assert read_texts([bad_code], what="classifier positives") == read.texts
    assert "classifier positives: skipped 6 unreadable records (1 empty_text, 1 invalid_utf8" in caplog.text


def test_evaluation_records_read_all_their_strings_and_skip_bad_lines(shared_data, tmp_path):
    arc = read_jsonl(shared_data / "eval" / "arc_easy_dev_half.jsonl", 30)
    junk = [b'{"id": "arc_easy:x", "benchmark": "arc_easy", "gold": 1}\n', b'{"query": "cut\n', JUNK[2][0]]
    read = read_text_set([write_with_junk(tmp_path / "arc.jsonl", arc, junk)], records=True)
    assert read.skipped == {"invalid_utf8": 1, "malformed_json": 1, "missing_text": 1}
    assert len(read.texts) == 30 and read.ids == [r["id"] for r in arc]
    for record, text in zip(arc, read.texts, strict=True):
        assert record["query"] in text and all(c in text for c in record["choices"])
        assert "arc_easy" not in text  # id and benchmark are not part of the text


def test_plain_text_files_and_missing_files(shared_data, tmp_path):
    book = read_jsonl(shared_data / "domains" / "books_gutenberg.jsonl", 1)[0]["text"]
    (tmp_path / "book.txt").write_text(book, encoding="utf-8")
    (tmp_path / "book.md").write_text(book, encoding="utf-8")  # no reader claims .md: one plain-text document
    (tmp_path / "latin1.txt").write_bytes(book.encode("latin-1", errors="replace") + b"\xe9")
    (tmp_path / "empty.txt").write_text("  \n")
    files = [tmp_path / n for n in ("book.txt", "book.md", "latin1.txt", "empty.txt")]
    read = read_text_set(files, params={"text_field": "text"})  # a .txt file ignores record params
    assert read.texts == [book, book] and read.skipped == {"empty_file": 1, "invalid_utf8": 1}
    with pytest.raises(RecipeError, match="does not exist"):
        read_text_set([tmp_path / "nope.jsonl"])


def test_proxy_targets_and_search_targets_read_the_same_texts_and_slice(code, bad_code, ray_started, tmp_path, caplog):
    """A files target and a source slice over a file with bad lines: evaluators and the search agree."""
    write_with_junk(tmp_path / "all_code.jsonl", code, [line for line, _ in JUNK])
    recipe = recipe_from_dict(
        {
            "name": "code",
            "sources": [{"name": "code", "uri": str(tmp_path / "all_code.jsonl")}],
            "mixture": {"weights": {"code": 1.0}},
        }
    )
    run_dir = tmp_path / "run"
    run_recipe(recipe, run_dir)
    targets = [
        Target(name="file", files=(str(bad_code),), max_docs=None, max_bytes=10**9),
        Target(name="slice", source="code", fraction=0.1, max_docs=None, max_bytes=10**9),
    ]
    with caplog.at_level(logging.WARNING):
        texts, excluded = resolve_targets(run_dir, targets)
    assert "target 'file': skipped 6 unreadable records" in caplog.text
    assert "target 'slice': source 'code': skipped 6 unreadable records" in caplog.text
    assert texts["file"] == [r["text"] for r in code[:20]]
    expected = {r["id"] for r in code if holdout_rank(r["id"]) < 0.1}
    assert excluded == {"code": expected} and len(texts["slice"]) == len(expected) == 56

    prepared, ids_file = prepare_targets(targets, recipe, tmp_path / "search")
    assert set(Path(ids_file).read_text().split()) == expected  # the same held-out slice
    by_name = {t.name: read_jsonl(Path(t.files[0])) for t in prepared}
    assert [r["text"] for r in by_name["file"]] == texts["file"]
    assert sorted(r["text"] for r in by_name["slice"]) == sorted(texts["slice"])


def test_reference_sets_and_evaluation_sets_skip_and_report(code, bad_code, shared_data, tmp_path, caplog):
    from operators.core.base import StepContext
    from operators.filters.decontaminate import Decontaminate, eval_set_index
    from operators.readers.reference import reference_texts

    with caplog.at_level(logging.WARNING):
        texts = reference_texts(StepContext(scratch_dir=str(tmp_path)), None, [str(bad_code)], "dsir_select.target")
    assert texts == [r["text"] for r in code[:20]]
    assert "dsir_select.target: reference set: skipped 6 unreadable records" in caplog.text

    copa = read_jsonl(shared_data / "eval" / "copa_dev_half.jsonl")
    clean = write_with_junk(tmp_path / "copa_clean.jsonl", copa, [])
    bad = write_with_junk(tmp_path / "copa_bad.jsonl", copa, [JUNK[0][0], JUNK[2][0], b'{"id": "x", "gold": 0}\n'])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Decontaminate(eval_sets={"copa": str(bad)})  # validating the recipe step reports the skips
    assert f"evaluation set {bad}: skipped 3 unreadable records" in caplog.text
    assert np.array_equal(eval_set_index(bad), eval_set_index(clean)) and len(eval_set_index(clean)) > 0
