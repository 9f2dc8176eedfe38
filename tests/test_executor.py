"""Executor on real data: ledger invariant, cache reuse, replay, determinism across block counts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from operators import RecipeError, load_manifest, load_recipe, read_ledger, recipe_from_dict, replay, run_recipe
from operators.core.output import output_sha256, read_output

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "recipes/domains_basic.yaml"


@pytest.fixture(scope="module")
def example_run(shared_data: Path, ray_started: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    return out, run_recipe(load_recipe(EXAMPLE), out, use_cache=False)


def test_example_recipe_counts_and_ledger_invariant(example_run: tuple[Path, dict]) -> None:
    out, manifest = example_run
    assert manifest.sources == {
        "books": {"input": 360, "kept": 360, "dropped": 0},
        "code": {"input": 643, "kept": 604, "dropped": 39},
        "legal": {"input": 460, "kept": 401, "dropped": 59},
    }
    steps = {(s.index, s.stage): s for s in manifest.steps}
    assert steps[(1, "decide")].dropped == {"too_few_words": 34 + 59}
    assert steps[(2, "decide")].dropped == {"too_long": 5}
    ledger = read_ledger(out)
    assert ledger.num_rows == manifest.input_docs == 1463
    assert manifest.output_docs + manifest.dropped_docs == manifest.input_docs
    row = ledger.filter(pc.equal(ledger["id"], "spdx:ADSL")).to_pylist()[0]  # 83 words
    assert (row["status"], row["step"], row["op"], row["reason"]) == ("dropped", 1, "length_filter", "too_few_words")
    row = ledger.filter(pc.equal(ledger["id"], "thealgorithms_python:maths/primelib.py")).to_pylist()[0]
    assert (row["step"], row["reason"]) == (2, "too_long")  # 20,235 chars > 20,000
    assert ledger.filter(pc.equal(ledger["id"], "spdx:0BSD"))["status"].to_pylist() == ["kept"]
    code = read_output(out, "code")
    assert code.num_rows == 604 and code["id"].to_pylist() == sorted(code["id"].to_pylist())
    assert max(code["n_chars"].to_pylist()) <= 20000
    assert manifest.output_sha256 == output_sha256(out)  # the recorded hash is the written files'
    assert set(json.loads((out / "manifest.json").read_text())) >= {
        "recipe_id",
        "recipe",
        "inputs",
        "steps",
        "input_docs",
        "output_docs",
        "dropped_docs",
        "output_sha256",
        "versions",
        "seed",
    }


def test_second_run_hits_cache_and_changed_param_reruns_only_from_it(example_run, tmp_path: Path) -> None:
    _, first = example_run
    recipe = load_recipe(EXAMPLE)
    again = run_recipe(recipe, tmp_path / "again")
    again2 = run_recipe(recipe, tmp_path / "again2")
    assert all(s.cached for s in again2.steps)
    assert again2.output_sha256 == again.output_sha256 == first.output_sha256

    recipe.steps[2].params["max_chars"] = 10000  # a threshold of the third step's filter
    changed = run_recipe(recipe, tmp_path / "changed")
    cached = [(s.index, s.stage, s.cached) for s in changed.steps]
    assert cached == [
        (-1, "read", True),
        (0, "map", True),
        (1, "annotate", True),
        (1, "decide", True),
        (2, "annotate", True),
        (2, "decide", False),
    ]
    assert changed.sources["code"]["kept"] < 604

    recipe.steps[1].params["min_words"] = 120  # a threshold earlier in the chain: only decisions rerun,
    earlier = run_recipe(recipe, tmp_path / "earlier")  # the later filter's signals come from the cache
    assert [(s.stage, s.cached) for s in earlier.steps] == [
        ("read", True), ("map", True), ("annotate", True), ("decide", False), ("annotate", True), ("decide", False),
    ]  # fmt: skip
    assert [s.chain for s in earlier.steps] == [
        "decision",
        "decision",
        "content",
        "decision",
        "content",
        "decision",
    ]

    no_cache = run_recipe(load_recipe(EXAMPLE), tmp_path / "nocache", use_cache=False)
    assert not any(s.cached for s in no_cache.steps)


def test_replay_reproduces_hash_and_names_the_diverging_step(example_run, tmp_path: Path) -> None:
    out, manifest = example_run
    result = replay(out / "manifest.json", tmp_path / "replayed")
    assert result.ok and result.actual == manifest.output_sha256
    assert not any(s.cached for s in result.manifest.steps)

    tampered = load_manifest(out)
    tampered.recipe = tampered.recipe.replace("max_chars: 20000", "max_chars: 15000")
    tampered.write(tmp_path / "tampered.json")
    bad = replay(tmp_path / "tampered.json", tmp_path / "replayed2", use_cache=True)
    assert not bad.ok and bad.diverged_at == "step 2 length_filter (decide)"


def test_output_is_identical_across_block_counts(shared_data: Path, ray_started: None, tmp_path: Path) -> None:
    recipe = recipe_from_dict(
        {
            "sources": [{"name": "legal", "uri": str(shared_data / "domains/legal_spdx_license_texts.jsonl")}],
            "steps": [{"op": "text_normalize"}, {"op": "length_filter", "params": {"min_words": 300}}],
        }
    )
    from operators.core.executor import Executor  # noqa: F401  (num_blocks is an executor argument)

    a = run_recipe(recipe, tmp_path / "a", use_cache=False, num_blocks=2)
    b = run_recipe(recipe, tmp_path / "b", use_cache=False, num_blocks=7)
    assert a.output_sha256 == b.output_sha256
    assert a.outputs == b.outputs  # the Parquet files themselves are byte-identical
    assert a.sources["legal"]["kept"] == b.sources["legal"]["kept"]


def test_decision_stage_hashes_its_kept_documents_from_the_parent_digests(example_run, tmp_path: Path) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.feather as feather

    from operators.core.stage_cache import StageCache
    from operators.core.stage_stats import DIGESTS, stage_stats

    _, manifest = example_run
    steps = {(s.index, s.stage): s for s in manifest.steps}
    cache = StageCache()
    parent = cache.path(steps[(0, "map")].key)
    stage = tmp_path / "stage"
    shutil.copytree(cache.path(steps[(1, "decide")].key), stage)

    derived = stage_stats(stage, unchanged_from=parent)
    assert derived == stage_stats(stage)  # from the parent's digests == rehashing the text
    assert (derived.docs_in, derived.docs_out, derived.dropped) == (1463, 1370, {"too_few_words": 93})
    assert derived.kept_sha256 == steps[(1, "decide")].output_sha256

    lying = tmp_path / "parent"  # the derived hash really comes from the parent's file
    lying.mkdir()
    known = feather.read_table(str(parent / DIGESTS))
    feather.write_feather(known.set_column(2, "digest", pa.array([b"x" * 32] * known.num_rows)), str(lying / DIGESTS))
    assert stage_stats(stage, unchanged_from=lying).kept_sha256 != derived.kept_sha256


def test_a_file_that_is_not_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"recipe_id": "x"}')
    with pytest.raises(RecipeError, match="not a dataplan manifest"):
        load_manifest(tmp_path)
