"""The demo corpus (agent/demo/corpus.py) built from this Python installation, and ``dataplan demo``."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections import Counter
from pathlib import Path

import pytest

from agent.demo.corpus import TARGET_NAME, DemoDataError, build_demo_corpus, stdlib_dir

SCALE = 0.15  # ~0.5 MB of sources, ~70 WARC records: every kind of page, fast to build and read


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_corpus")
    build_demo_corpus(out, seed=3, scale=SCALE)
    return out


def test_same_seed_same_bytes_other_seed_other_corpus(corpus: Path, tmp_path: Path) -> None:
    build_demo_corpus(tmp_path / "again", seed=3, scale=SCALE)
    first = tree_hashes(corpus)
    assert first == tree_hashes(tmp_path / "again")
    assert set(first) == {
        "code.jsonl", "docs.jsonl", "legal.jsonl", "web.warc.gz", "labels/web.jsonl",
        f"target/{TARGET_NAME}.jsonl", "manifest.json",
    }  # fmt: skip
    build_demo_corpus(tmp_path / "other", seed=4, scale=SCALE)
    other = tree_hashes(tmp_path / "other")
    for name in ("code.jsonl", "docs.jsonl", "web.warc.gz", f"target/{TARGET_NAME}.jsonl"):
        assert other[name] != first[name], name


def test_sources_counts_and_manifest(corpus: Path) -> None:
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert list(manifest["sources"]) == ["code", "docs", "legal", "web"]
    assert manifest["notes"] == [] and manifest["seed"] == 3
    for entry in [*manifest["sources"].values(), *manifest["target"].values()]:
        path = corpus / entry["file"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        if entry["format"] == "jsonl":
            assert entry["docs"] == len(jsonl(path))

    code = jsonl(corpus / "code.jsonl")
    assert len(code) >= 10 and sum(len(d["text"]) for d in code) > 150_000
    for doc in code:
        assert doc["id"].endswith(".py") and doc["meta"]["license"] == "PSF-2.0"
        parts = doc["id"].split("/")
        assert not {"test", "tests", "idle_test", "site-packages", "__pycache__"} & set(parts), doc["id"]
        assert (stdlib_dir() / doc["id"]).read_text(encoding="utf-8") == doc["text"]
        assert len(doc["text"].encode()) <= 60_000 and "with gencodec.py" not in doc["text"][:400]

    docs = jsonl(corpus / "docs.jsonl")
    kinds = Counter(d["meta"]["kind"] for d in docs)
    assert kinds["reference"] >= 3 and kinds["docstrings"] >= 10
    page = next(d for d in docs if d["meta"]["kind"] == "docstrings")
    assert page["text"].startswith(page["meta"]["module"])
    assert all(len(d["text"]) >= 300 for d in docs)

    legal = jsonl(corpus / "legal.jsonl")
    assert len(legal) >= 5
    assert len({d["text"] for d in legal}) == len(legal)  # deduplicated by content
    assert not any(Path(d["id"]).name.upper().startswith("AUTHORS") for d in legal)
    python_licence = f"python-{platform.python_version()}/LICENSE.txt"
    assert python_licence in {d["id"] for d in legal}  # the licence of the code and docs comes first


def test_target_is_in_no_training_source(corpus: Path) -> None:
    target = jsonl(corpus / "target" / f"{TARGET_NAME}.jsonl")
    train = [d for name in ("code", "docs", "legal") for d in jsonl(corpus / f"{name}.jsonl")]
    assert len(target) >= 2
    assert not {d["id"] for d in target} & {d["id"] for d in train}
    assert not {d["text"] for d in target} & {d["text"] for d in train}
    # a held-out module is held out whole: neither its code nor its docstrings are trained on
    modules = {d["id"].removeprefix("docstrings/") for d in target if not d["id"].startswith("topics/")}
    assert not modules & {d["id"].removeprefix("docstrings/") for d in train}
    labels = jsonl(corpus / "labels" / "web.jsonl")
    assert not {d["id"] for d in target} & {lb.get("source_id") for lb in labels}


def test_warc_reads_extracts_and_pii_is_redacted(corpus: Path, ray_started, tmp_path: Path) -> None:
    from operators import Recipe, read_ledger, read_output, run_recipe

    labels = jsonl(corpus / "labels" / "web.jsonl")
    kinds = Counter(lb["kind"] for lb in labels)
    assert {"article", "near_duplicate", "spam", "pii", "foreign", "non_html", "http_error", "request"} <= set(kinds)
    assert kinds["warcinfo"] == 1 and kinds["pii"] >= 3 and kinds["foreign"] == 3

    recipe = Recipe.model_validate(
        {
            "name": "demo-web",
            "sources": [{"name": "web", "uri": str(corpus / "web.warc.gz")}],
            "steps": [{"op": "html_extract"}, {"op": "pii_redact"}],
        }
    )
    manifest = run_recipe(recipe, tmp_path / "run")
    counts = manifest.sources["web"]
    assert counts["input"] == len(labels) and counts["kept"] + counts["dropped"] == counts["input"]
    ledger = read_ledger(tmp_path / "run")
    assert ledger.num_rows == len(labels)

    steps = {(s.name, s.stage): s for s in manifest.steps}
    refused = Counter(lb["expect"] for lb in labels if lb["expect"] != "document")
    read_drops = Counter(r["reason"] for r in ledger.to_pylist() if r["status"] == "dropped" and r["step"] == -1)
    assert read_drops == refused  # the ledger keeps the full reason, the step report its prefix
    assert steps["read", "read"].dropped == dict(Counter(r.split(":")[0] for r in refused.elements()))
    assert refused["not_html"] == 7 and refused["not_response"] == kinds["request"] + 1
    assert {"http_status:301", "http_status:404", "http_status:500", "http_status:503"} <= set(refused)
    documents = sum(lb["expect"] == "document" for lb in labels)
    assert steps["html_extract", "map"].docs_in == documents
    assert steps["html_extract", "map"].docs_out == documents  # every generated page has main text

    kept = read_output(tmp_path / "run", "web").to_pylist()
    by_url = {row["url"]: row for row in kept}
    assert len(by_url) == documents
    for lb in labels:
        row = by_url.get(lb["url"])
        if lb["kind"] == "pii":
            assert row["pii_emails"] >= lb["emails"] and row["pii_phones"] >= lb["phones"], lb
            assert row["pii_ips"] >= lb["ips"], lb
            assert "555-0100" in row["text"] or "example.com" in row["text"]  # the placeholders
        elif lb["kind"] in ("spam", "foreign"):
            assert row["pii_emails"] + row["pii_ips"] + row["pii_phones"] == 0, lb
        if lb["kind"] == "foreign" and lb["lang"] == "de":
            assert "Standardbibliothek" in row["text"] or "Python" in row["text"]
    ips = sum(lb.get("ips", 0) for lb in labels)
    assert ips > 0 and sum(by_url[lb["url"]]["pii_ips"] for lb in labels if lb["kind"] == "pii") >= ips


def test_missing_pieces_are_explained(tmp_path: Path) -> None:
    stdlib = tmp_path / "stdlib"
    shutil.copytree(stdlib_dir() / "json", stdlib / "json", ignore=shutil.ignore_patterns("__pycache__"))
    manifest = build_demo_corpus(tmp_path / "out", seed=0, scale=0.05, stdlib=stdlib, site_packages=[])
    assert list(manifest["sources"]) == ["code", "docs", "web"]
    assert any("pydoc_data" in note and "docstrings only" in note for note in manifest["notes"])
    assert any("no licence files" in note for note in manifest["notes"])
    assert {d["id"] for d in jsonl(tmp_path / "out" / "code.jsonl")} <= {
        "json/__init__.py", "json/decoder.py", "json/encoder.py", "json/scanner.py", "json/tool.py",
    }  # fmt: skip
    (stdlib / "empty").mkdir()
    with pytest.raises(DemoDataError, match="--data DIR"):
        build_demo_corpus(tmp_path / "none", stdlib=stdlib / "empty", site_packages=[])


def test_demo_goal_is_understood_with_its_options(corpus: Path) -> None:
    from agent.cli.demo import DEMO_GOAL
    from agent.goal import Goal
    from agent.graph import understand_goal

    data = {n: str(corpus / f) for n, f in (("code", "code.jsonl"), ("docs", "docs.jsonl"), ("web", "web.warc.gz"))}
    target = str(corpus / "target" / f"{TARGET_NAME}.jsonl")
    overrides = {"trials": 6, "proxy_tokens": 100_000, "preset": "nano", "max_rounds": 0, "target_files": {TARGET_NAME: [target]}}  # fmt: skip
    state = {"goal_text": DEMO_GOAL.format(tokens="1M"), "data": data, "planner": {"kind": "rules"}}
    goal = Goal.model_validate(understand_goal({**state, "goal_overrides": overrides})["goal"])
    assert goal.remove_pii and goal.token_budget == 1_000_000 and goal.languages == ["en"]
    assert (goal.preset, goal.trials, goal.proxy_tokens, goal.max_rounds) == ("nano", 6, 100_000, 0)
    assert goal.target_files == {TARGET_NAME: [target]} and "code" in goal.targets
    assert not {"trials", "preset", "proxy_tokens", "max_rounds"} & set(goal.defaults)
    # "a small Python coding assistant" is the model's size, not the proxy preset
    plain = Goal.model_validate(understand_goal(state)["goal"])
    assert plain.preset == "nano" and "preset" in plain.defaults


def test_demo_refuses_a_folder_without_sources(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    (tmp_path / "notes.txt").write_text("not a source")
    res = CliRunner().invoke(app, ["demo", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "no *.jsonl or *.warc.gz files" in res.output
