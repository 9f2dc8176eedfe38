"""Bad input never crashes a run and is never silently skipped: each bad record is a ledger entry."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.compute as pc

from operators import read_ledger, recipe_from_dict, run_recipe


def _real_lines(shared: Path, name: str, n: int) -> list[str]:
    with open(shared / "domains" / name, encoding="utf-8") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def _write_bad_folder(shared: Path, folder: Path) -> None:
    books = _real_lines(shared, "books_gutenberg.jsonl", 6)
    code_lines = (shared / "domains/code_python_thealgorithms.jsonl").read_text(encoding="utf-8").splitlines()
    big_code = next(line for line in code_lines if len(line.encode()) > 20000)
    no_text = json.loads(books[3])
    no_text["body"] = no_text.pop("text")
    lines = [
        books[0].encode(),
        books[1][: len(books[1]) // 2].encode(),  # malformed_json: cut in half
        books[2].encode()[:50] + b"\xff" + books[2].encode()[50:],  # invalid_utf8
        json.dumps(no_text).encode(),  # missing_text
        b"",  # a blank line is not a record
        big_code.encode(),  # record_too_large (limit set below)
        b"[1, 2, 3]",  # not_an_object
        json.dumps({"id": "num", "text": 42}).encode(),  # text_not_string
        books[4].encode(),
    ]
    (folder / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "empty.jsonl").write_bytes(b"")
    whole = gzip.compress(("\n".join(_real_lines(shared, "legal_spdx_license_texts.jsonl", 8)) + "\n").encode())
    (folder / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])


def test_bad_records_become_ledger_entries_with_exact_reasons(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_bad_folder(shared_data, bad)
    recipe = recipe_from_dict(
        {
            "sources": [
                {"name": "raw", "uri": str(bad / "*.jsonl*"), "format": "jsonl", "params": {"max_record_bytes": 20000}}
            ],
            "steps": [{"op": "text_normalize"}],
        }
    )
    manifest = run_recipe(recipe, tmp_path / "out", use_cache=False)
    ledger = read_ledger(tmp_path / "out")
    dropped = ledger.filter(pc.equal(ledger["status"], "dropped"))
    reasons = sorted(dropped["reason"].to_pylist())
    kept_ids = sorted(ledger.filter(pc.equal(ledger["status"], "kept"))["id"].to_pylist())

    gz_kept = [i for i in kept_ids if i.startswith("spdx:")]
    assert reasons == sorted(
        [
            "malformed_json",
            "invalid_utf8",
            "missing_text",
            "record_too_large",
            "not_an_object",
            "text_not_string",
            "empty_file",
            "truncated_gzip",
        ]
    )
    assert kept_ids == sorted(["gutenberg:pride_and_prejudice:0000", "gutenberg:pride_and_prejudice:0004", *gz_kept])
    assert 1 <= len(gz_kept) < 8  # what was decompressed before the cut is kept, the rest is one entry
    assert manifest.sources["raw"] == {"input": 2 + len(gz_kept) + 8, "kept": 2 + len(gz_kept), "dropped": 8}
    assert set(dropped["step"].to_pylist()) == {-1} and set(dropped["op"].to_pylist()) == {"read"}
    empty = dropped.filter(pc.equal(dropped["reason"], "empty_file")).to_pylist()[0]
    assert empty["id"] == "empty.jsonl@0"
    malformed = dropped.filter(pc.equal(dropped["reason"], "malformed_json")).to_pylist()[0]
    assert malformed["id"].startswith("mixed.jsonl@") and "line 1" in malformed["detail"]


def test_repeated_ids_within_a_source_are_refused_with_the_fix(
    shared_data: Path, ray_started: None, tmp_path: Path
) -> None:
    import pytest

    from operators import RecipeError

    books = [json.loads(line) for line in _real_lines(shared_data, "books_gutenberg.jsonl", 3)]
    books[2]["id"] = books[0]["id"]  # two different texts under one id
    (tmp_path / "books.jsonl").write_text("".join(json.dumps(b) + "\n" for b in books))
    source = {"name": "books", "uri": str(tmp_path / "books.jsonl")}
    steps = [{"op": "length_filter", "params": {"min_words": 10}}]
    with pytest.raises(RecipeError, match=r"source 'books': ids carried by more than one record: 1 .*id_field"):
        run_recipe(recipe_from_dict({"sources": [source], "steps": steps}), tmp_path / "out")

    by_position = {**source, "params": {"id_field": ""}}  # the fix the message names
    manifest = run_recipe(recipe_from_dict({"sources": [by_position], "steps": steps}), tmp_path / "out2")
    assert manifest.sources["books"] == {"input": 3, "kept": 3, "dropped": 0}
