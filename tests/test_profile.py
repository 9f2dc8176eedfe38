"""``operators.profiling.profile`` and ``dataplan profile`` on the real shared data."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from operators import Filter, RecipeError, all_operators
from operators.profiling.profile import SourceProfile, profile_source, sample_texts
from operators.profiling.profile_sample import sample_source

REPO = Path(__file__).resolve().parent.parent
LEGAL = "domains/legal_spdx_license_texts.jsonl"
BOOKS = "domains/books_gutenberg.jsonl"
CODE = "domains/code_python_thealgorithms.jsonl"
LINGUA = "langid/lingua_sentences.jsonl"
CRAWL = "web/crawl_sample.warc.gz"


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def code_halves(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first 320 code files as a source, the other 323 as a held-out target set."""
    lines = (shared_data / CODE).read_text(encoding="utf-8").splitlines()
    folder = tmp_path_factory.mktemp("code")
    (folder / "code_a.jsonl").write_text("\n".join(lines[:320]) + "\n", encoding="utf-8")
    (folder / "code_b.jsonl").write_text("\n".join(lines[320:]) + "\n", encoding="utf-8")
    return folder / "code_a.jsonl", folder / "code_b.jsonl"


@pytest.fixture(scope="module")
def legal(shared_data: Path) -> SourceProfile:
    return profile_source("legal", str(shared_data / LEGAL))


@pytest.fixture(scope="module")
def books(shared_data: Path, code_halves) -> SourceProfile:
    return profile_source("books", str(shared_data / BOOKS), sample_docs=150, targets={"code": [str(code_halves[1])]})


@pytest.fixture(scope="module")
def code(code_halves) -> SourceProfile:
    return profile_source("code", str(code_halves[0]), sample_docs=150, targets={"code": [str(code_halves[1])]})


def test_counts_sample_and_duplicates_legal_vs_books(shared_data: Path, legal: SourceProfile, books: SourceProfile):
    assert (legal.doc_count, legal.doc_count_method, legal.sample_size, legal.format) == (460, "exact", 460, "jsonl")
    assert legal.total_bytes == os.path.getsize(shared_data / LEGAL)
    assert (books.doc_count, books.doc_count_exact, books.sample_size) == (360, True, 150)
    legal_texts = _texts(shared_data / LEGAL)
    assert legal.duplicates.exact_duplicate_docs == len(legal_texts) - len(set(legal_texts)) == 15
    assert legal.duplicates.scanned_exact_duplicate_docs == 15 and legal.duplicates.sample_fraction == 1.0
    assert books.duplicates.exact_duplicate_docs == 0 and books.duplicates.sample_fraction == 150 / 360
    # license families (BSD/GPL/... variants) are near-copies; book chunks are not
    assert legal.duplicates.near_duplicate_docs >= legal.duplicates.exact_duplicate_docs + 40
    assert legal.near_duplicate_rate > 0.12
    assert books.near_duplicate_rate == 0.0
    assert books.chars.p5 > 7000 and books.words.p50 > 1000  # ~8k-char chunks
    assert legal.est_text_bytes == sum(len(t.encode()) for t in legal_texts)  # whole source sampled


def test_languages_multilingual_vs_english(shared_data: Path, books: SourceProfile):
    lingua = profile_source("lingua", str(shared_data / LINGUA))
    assert (lingua.doc_count, lingua.doc_count_exact, lingua.docs_scanned, lingua.sample_size) == (
        15000,
        True,
        15000,
        500,
    )
    assert lingua.languages.get("en", 0.0) < 0.05 and len(lingua.languages) >= 50
    assert max(lingua.languages.values()) < 0.1
    assert books.languages["en"] >= 0.99
    # language_id at its defaults (keep en, score > 0.65) passes about the English share
    assert lingua.filters["language_id"].pass_rate <= lingua.languages["en"]
    assert lingua.filters["language_id"].top_reasons["lang_mismatch"] > 450
    assert books.filters["language_id"].pass_rate == 1.0
    score = lingua.filters["language_id"].signals["lang_score"]
    assert score.n == 500 and score.p1 <= score.p10 <= score.p50 <= score.p90 <= score.p99 <= 1.0


def test_sample_is_bottom_k_by_hashed_id(shared_data: Path):
    sample = sample_source(str(shared_data / LINGUA), sample_docs=300, seed=7)
    ids = [json.loads(line)["id"] for line in (shared_data / LINGUA).read_text(encoding="utf-8").splitlines()]

    def key(doc_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(f"7\0{doc_id}".encode(), digest_size=8).digest(), "big")

    assert [d["id"] for d in sample.docs] == sorted(ids, key=key)[:300]
    assert len({d["meta"] for d in sample.docs}) >= 70  # spread over the 75 languages of the file


def test_scan_budget_extrapolates_the_count(shared_data: Path):
    cut = sample_source(str(shared_data / LINGUA), max_scan_docs=5000, sample_docs=50)
    assert (cut.docs_scanned, cut.doc_count_method) == (5000, "extrapolated_from_record_bytes")
    assert 15000 <= cut.doc_count <= 15000 * 1.3  # record markup is not counted: it overestimates
    files = sample_source(str(shared_data / "domains/*.jsonl"), max_scan_docs=3000, sample_docs=50)
    assert files.doc_count_method == "extrapolated_from_files" and 0 < files.complete_files < len(files.files) == 11
    warc = sample_source(str(shared_data / CRAWL), max_scan_docs=50, sample_docs=5)
    assert (warc.doc_count_method, warc.doc_count) == ("lower_bound", 50)


def test_warc_is_detected_and_extracted(shared_data: Path, tmp_path: Path):
    crawl = profile_source("crawl", str(shared_data / CRAWL), sample_docs=30, fig_dir=tmp_path)
    assert (crawl.format, crawl.doc_count, crawl.sample_size) == ("warc", 418, 30)
    assert crawl.is_html and crawl.html.detected_by == "warc_format" and crawl.html.extracted
    assert crawl.html.html_doc_share >= 0.9
    assert crawl.text_docs + sum(crawl.html.extraction_dropped.values()) == 30
    assert crawl.chars.p50 < 20000  # main text, not the raw page
    assert crawl.languages["en"] < 0.8 and "de" in crawl.languages  # the crawl mixes English and German
    for kind in ("lengths", "languages"):
        png = Path(crawl.figures[kind])
        assert png.parent == tmp_path and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_in_jsonl_is_detected_by_tag_density(shared_data: Path, tmp_path: Path):
    pages = sorted((shared_data / "web/trafilatura_eval/html").glob("*.html.gz"))[:8]
    path = tmp_path / "pages.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for p in pages:
            html = gzip.decompress(p.read_bytes()).decode("utf-8", errors="replace")
            fh.write(json.dumps({"id": p.name, "text": html}) + "\n")
    pages_profile = profile_source("pages", str(path), sample_docs=8)
    assert pages_profile.is_html and pages_profile.html.detected_by == "tag_density" and pages_profile.html.extracted
    assert pages_profile.html.html_doc_share == 1.0
    # Code Alpaca has a few HTML snippets among its answers: seen, but not an HTML source
    alpaca = profile_source("alpaca", str(shared_data / "domains/instruction_codealpaca_2k.jsonl"), sample_docs=300)
    assert 0 < alpaca.html.html_doc_share < 0.2
    assert not alpaca.is_html and alpaca.html.detected_by == "none" and not alpaca.html.extracted


def test_held_out_code_target_prefers_code_over_books(code: SourceProfile, books: SourceProfile):
    near, far = code.target_similarity["code"], books.target_similarity["code"]
    assert near.target_docs == far.target_docs == 323
    assert near.mean_log_weight_per_ngram > far.mean_log_weight_per_ngram + 0.5
    assert near.mean_log_weight > far.mean_log_weight
    assert near.frac_positive > far.frac_positive == 0.0


def test_every_default_filter_runs_with_its_numeric_signals(legal: SourceProfile):
    filters = {c.name: c for c in all_operators() if issubclass(c, Filter)}
    assert set(legal.filters) | set(legal.filters_skipped) == set(filters)
    assert {"language_id", "length_filter", "url_filter"} <= set(legal.filters)
    for name, fp in legal.filters.items():
        numeric = {s for s, dtype in filters[name].signals.items() if dtype in ("float64", "int64")}
        assert fp.error is None and set(fp.signals) == numeric
        assert fp.params == filters[name]().params.model_dump(mode="json")
    n_words = legal.filters["length_filter"].signals["n_words"]
    assert (n_words.p5, n_words.p50, n_words.p95) == (legal.words.p5, legal.words.p50, legal.words.p95)
    assert legal.filters["language_id"].pass_rate == pytest.approx(1 - 19 / 460)  # 19 non-English licenses


def test_pii_rate(tmp_path: Path, books: SourceProfile, code: SourceProfile):
    assert books.pii_rate == 0.0
    assert code.pii_rate > 0 and code.pii_by_kind["pii_emails"] > 0  # author e-mails in headers
    path = tmp_path / "pii.jsonl"
    docs = [
        "Write to jane.doe@university.edu for the data.",
        "Call +44 20 7946 0958 after six.",
        "Nothing personal in this sentence at all.",
        "Nor in this one, which is about the weather.",
    ]
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(docs)))
    pii = profile_source("pii", str(path))
    assert pii.pii_rate == 0.5 and pii.pii_by_kind == {"pii_emails": 0.25, "pii_ips": 0.0, "pii_phones": 0.25}


def test_same_seed_same_json_other_seed_other_sample(code_halves):
    source, target = code_halves
    kwargs = {"sample_docs": 60, "targets": {"code": [str(target)]}}
    first = profile_source("code", str(source), seed=3, **kwargs).model_dump_json()
    assert profile_source("code", str(source), seed=3, **kwargs).model_dump_json() == first
    assert profile_source("code", str(source), seed=4, **kwargs).model_dump_json() != first


def test_missing_source_is_refused():
    with pytest.raises(RecipeError, match="matches no readable file"):
        profile_source("nothing", "/nonexistent/*.jsonl")
    with pytest.raises(RecipeError, match="unknown reader"):
        sample_texts("/nonexistent.jsonl", fmt="csv")


def test_cli_json_tables_and_figures(shared_data: Path, tmp_path: Path, code_halves):
    cmd = [sys.executable, "-m", "agent.cli", "profile", f"legal={shared_data / LEGAL}", str(shared_data / LINGUA)]
    cmd += ["--sample", "40", "--json", "--figs", str(tmp_path)]
    cmd += ["--target", f"code={code_halves[0]}", "--target", f"code={code_halves[1]}"]  # one target, two files
    res = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"}, timeout=300
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert list(out) == ["legal", "lingua_sentences"]
    assert (out["legal"]["doc_count"], out["lingua_sentences"]["doc_count"]) == (460, 15000)
    assert out["legal"]["sample_size"] == 40 and out["legal"]["target_similarity"]["code"]["target_docs"] == 643
    assert out["legal"]["duplicates"]["scanned_exact_duplicate_docs"] == 15  # counted over the whole scan
    assert Path(out["lingua_sentences"]["figures"]["languages"]).is_file()
    assert "near-dup" in res.stderr and "filters at default params" in res.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "agent.cli", "profile", "x=/nonexistent/*.jsonl"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "matches no readable file" in bad.stderr
