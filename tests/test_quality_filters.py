"""Heuristic quality filters (Gopher quality/repetition, C4, FineWeb) on real documents of the shared
data: kept/dropped documents with their reasons and signal values, signals recomputed independently
for short texts, and the executor reusing the cached annotate stage when only a threshold moves.

Pinned values were cross-checked against datatrove 0.10 by ``benchmarks/filters.py``."""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from operators import get_operator, read_output, recipe_from_dict, run_recipe
from operators.core.stage_cache import _helper_modules
from operators.filters.gopher_quality import STOP_WORDS
from operators.filters.gopher_repetition import duplicate_ngram_chars, ngram_groups, top_ngram_chars
from operators.text.text_stats import Segments, spacy_words, text_stats


def records(shared_data: Path, name: str, ids: list[str]) -> dict[str, str]:
    """id -> text of the given records of ``domains/<name>.jsonl`` (all of them must exist)."""
    found = {}
    with open(shared_data / "domains" / f"{name}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["id"] in ids:
                found[row["id"]] = row["text"]
    assert sorted(found) == sorted(ids)
    return found


def run_filter(name: str, texts: dict[str, str], **params) -> tuple[dict[str, dict], dict[str, str]]:
    """(id -> signals, id -> reason) of filter ``name`` with ``params`` over ``texts``."""
    op = get_operator(name)(params)
    ids = list(texts)
    batch = {"id": np.array(ids, dtype=object), "text": np.array([texts[i] for i in ids], dtype=object)}
    signals = op.annotate(batch)
    assert set(signals) == set(op.signals)
    reasons = op.decide({**batch, **signals})
    rows = {i: {k: v[n].item() for k, v in signals.items()} for n, i in enumerate(ids)}
    return rows, dict(zip(ids, reasons.tolist(), strict=True))


def simple_words(text: str) -> list[str]:
    """Words of a text without apostrophes, hyphens, abbreviations or numbers with separators: runs
    of word characters and single punctuation marks (what spaCy makes of such text)."""
    return re.findall(r"\w+|[^\w\s]", text)


def test_words_match_spacy_on_tricky_strings() -> None:
    # expected lists: datatrove 0.10 split_into_words (spacy.blank("en"), spaCy 3.8.18)
    words = spacy_words().words
    assert words("I don't think (Mr. Smith) paid $100, e.g. 5km away.") == [
        "I", "do", "n't", "think", "(", "Mr.", "Smith", ")", "paid", "$", "100", ",", "e.g.", "5", "km", "away", ".",
    ]  # fmt: skip
    assert words("A well-known U.S. site: https://example.com/a?b=1. Done...") == [
        "A", "well", "-", "known", "U.S.", "site", ":", "https://example.com/a?b=1", ".", "Done", "...",
    ]  # fmt: skip
    assert words("She said: 'It's 3.5%!' Really?! :-) <3") == [
        "She", "said", ":", "'", "It", "'s", "3.5", "%", "!", "'", "Really", "?", "!", ":-)", "<3",
    ]  # fmt: skip
    assert words("x:x.Type.map(f) and [citation needed] ... done") == [
        "x", ":x", ".", "Type.map(f", ")", "and", "[", "citation", "needed", "]", "...", "done",
    ]  # fmt: skip


def test_tokenizer_shortcuts_follow_from_the_rules() -> None:
    """The shortcuts in ``SpacyWords`` are sound for spaCy's English rules: no prefix starts with a
    letter or digit (US$, C$, A$ aside), no suffix is a letter or digit without a digit or quote
    before it, no infix separates letters or digits, and every finite suffix fits in 8 characters."""
    from re import _parser

    lex = spacy_words()
    alnum = [chr(i) for i in range(0x110000) if chr(i).isalnum()]
    assert not [c for c in alnum if lex._prefix(c + "x")]
    assert not [c for c in alnum if lex._suffix("a" + c)]
    assert not [c for c in alnum if next(lex._infix("a" + c + "a"), None) or next(lex._infix("1" + c + "1"), None)]
    parsed = _parser.parse(lex._suffix.__self__.pattern)
    (_, (_, branches)) = parsed[0]
    widths = [_parser.SubPattern(parsed.state, b).getwidth()[1] for b in branches]
    unbounded = [b for b, w in zip(branches, widths, strict=True) if w > 8]
    assert [str(b) for b in unbounded] == [str(_parser.parse(r"\.\.+$"))]


def test_gopher_quality_signals_recomputed_independently(shared_data: Path) -> None:
    text = records(shared_data, "dialogue_sgd_train", ["sgd:train:11_00108"])["sgd:train:11_00108"]
    tokens = simple_words(text)
    assert spacy_words().words(text) == tokens
    words = [t for t in tokens if re.search(r"\w", t)]
    signals, reasons = run_filter("gopher_quality", {"doc": text})
    assert signals["doc"] == {
        "gopher_n_words": len(words),
        "gopher_mean_word_length": sum(map(len, words)) / len(words),
        "gopher_hash_ratio": 0.0,
        "gopher_ellipsis_ratio": 0.0,
        "gopher_bullet_lines_ratio": 0.0,
        "gopher_ellipsis_lines_ratio": 0.0,
        "gopher_alpha_words_ratio": sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens),
        "gopher_n_stop_words": len(set(STOP_WORDS) & set(tokens)),
    }
    assert signals["doc"]["gopher_n_words"] == 61
    assert signals["doc"]["gopher_n_stop_words"] == 2
    assert reasons == {"doc": ""}


def test_gopher_quality_real_documents(shared_data: Path) -> None:
    texts = {
        **records(shared_data, "math_gsm8k_train", ["gsm8k_train:00001"]),
        **records(shared_data, "instruction_selfinstruct_human", ["selfinstruct_user:user_oriented_task_228:0"]),
        **records(shared_data, "legal_spdx_license_texts", ["spdx:CC-BY-3.0-AT"]),
        **records(shared_data, "medical_pubmedqa_abstracts", ["pubmedqa:10473855", "pubmedqa:10340286"]),
    }
    signals, reasons = run_filter("gopher_quality", texts)
    assert reasons == {
        "gsm8k_train:00001": "gopher_too_few_words",
        "selfinstruct_user:user_oriented_task_228:0": "gopher_too_many_ellipses",
        "spdx:CC-BY-3.0-AT": "gopher_too_few_stop_words",  # the Austrian (German) licence text
        "pubmedqa:10473855": "gopher_too_few_alpha_words",
        "pubmedqa:10340286": "",
    }
    assert signals["gsm8k_train:00001"]["gopher_n_words"] == 39
    assert signals["gsm8k_train:00001"]["gopher_hash_ratio"] == pytest.approx(4 / 62)
    assert signals["selfinstruct_user:user_oriented_task_228:0"]["gopher_ellipsis_ratio"] == pytest.approx(9 / 67)
    assert signals["selfinstruct_user:user_oriented_task_228:0"]["gopher_ellipsis_lines_ratio"] == pytest.approx(5 / 9)
    assert signals["spdx:CC-BY-3.0-AT"]["gopher_n_stop_words"] == 0
    assert signals["pubmedqa:10473855"]["gopher_alpha_words_ratio"] == pytest.approx(0.7605, abs=1e-4)
    assert signals["pubmedqa:10340286"]["gopher_alpha_words_ratio"] == pytest.approx(0.8228, abs=1e-4)
    # a looser threshold is a decide-only change: the abstract is now kept
    _, looser = run_filter("gopher_quality", texts, min_alpha_words_ratio=0.75)
    assert looser["pubmedqa:10473855"] == ""


def test_gopher_repetition_real_documents(shared_data: Path) -> None:
    texts = {
        **records(shared_data, "books_tinyshakespeare", ["tinyshakespeare:0105"]),
        **records(shared_data, "math_gsm8k_train", ["gsm8k_train:00115"]),
        **records(shared_data, "legal_spdx_license_texts", ["spdx:APL-1.0"]),
        **records(shared_data, "medical_medquad", ["medquad:0001031:GHR"]),
        **records(shared_data, "medical_pubmedqa_abstracts", ["pubmedqa:10340286"]),
    }
    signals, reasons = run_filter("gopher_repetition", texts)
    assert reasons == {
        "tinyshakespeare:0105": "gopher_dup_line_frac",
        "gsm8k_train:00115": "gopher_top_2gram",
        "spdx:APL-1.0": "gopher_dup_5gram",
        "medquad:0001031:GHR": "gopher_top_4gram",
        "pubmedqa:10340286": "",
    }
    play = texts["tinyshakespeare:0105"]
    lines = re.split("\n+", play)
    dup_lines = sum(count - 1 for count in Counter(lines).values())
    assert signals["tinyshakespeare:0105"]["gopher_dup_line_frac"] == pytest.approx(dup_lines / len(lines))
    assert signals["tinyshakespeare:0105"]["gopher_dup_line_frac"] == pytest.approx(0.3057, abs=1e-4)
    assert signals["gsm8k_train:00115"]["gopher_top_2gram_char_frac"] == pytest.approx(0.2092, abs=1e-4)
    assert signals["spdx:APL-1.0"]["gopher_dup_5gram_char_frac"] == pytest.approx(0.1606, abs=1e-4)
    assert signals["medquad:0001031:GHR"]["gopher_top_4gram_char_frac"] == pytest.approx(0.1709, abs=1e-4)


def _reference_top_ngram(words: list[str], n: int) -> int:
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _reference_duplicate_ngram(words: list[str], n: int) -> int:
    seen: set[tuple[str, ...]] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def test_vectorised_ngram_statistics_match_a_per_document_loop(shared_data: Path) -> None:
    """The batch-vectorised n-gram statistics equal the straightforward per-document algorithms
    (datatrove's, over word tuples) on real documents of three domains."""
    texts = []
    for name in ("math_gsm8k_train", "legal_spdx_license_texts", "dialogue_sgd_train"):
        with open(shared_data / "domains" / f"{name}.jsonl", encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for _, line in zip(range(15), fh, strict=False)]
    words = Segments(texts)
    per_doc = [spacy_words().words(t) for t in texts]
    groups = ngram_groups(words, 10)
    for n in (2, 3, 4):
        got = top_ngram_chars(words, *groups[n], n)
        assert got.tolist() == [_reference_top_ngram(w, n) for w in per_doc]
    for n in range(5, 11):
        pos, group, _, counts = groups[n]
        got = duplicate_ngram_chars(words, pos, group, counts, n)
        assert got.tolist() == [_reference_duplicate_ngram(w, n) for w in per_doc]
        assert n > 5 or got.any()


def test_c4_quality_and_line_filter_real_documents(shared_data: Path) -> None:
    texts = {
        **records(shared_data, "code_python_thealgorithms", ["thealgorithms_python:bit_manipulation/swap_all_odd_and_even_bits.py"]),
        **records(shared_data, "books_gutenberg", ["gutenberg:frankenstein_or_the_modern_prometheus:0030"]),
        **records(shared_data, "medical_pubmedqa_abstracts", ["pubmedqa:10340286"]),
        **records(shared_data, "math_gsm8k_train", ["gsm8k_train:00001"]),
    }  # fmt: skip
    code = "thealgorithms_python:bit_manipulation/swap_all_odd_and_even_bits.py"
    signals, reasons = run_filter("c4_quality", texts)
    assert reasons == {
        code: "c4_curly_bracket",
        "gutenberg:frankenstein_or_the_modern_prometheus:0030": "c4_too_few_sentences",
        "pubmedqa:10340286": "",
        "gsm8k_train:00001": "",
    }
    assert signals[code]["c4_curly_bracket_line"] == 6  # return f"{before:>5}: ..."
    assert texts[code].splitlines()[6].strip().startswith('return f"{before')
    assert signals[code]["c4_n_lines_kept"] == 4
    assert signals["gutenberg:frankenstein_or_the_modern_prometheus:0030"]["c4_n_sentences"] == 4
    abstract = texts["pubmedqa:10340286"]
    assert signals["pubmedqa:10340286"]["c4_n_sentences"] == len(re.findall(r"[.?!](?:\s|$)", abstract)) == 11
    # without the curly-bracket rule (decide only) the code file has just enough sentences
    _, relaxed = run_filter("c4_quality", {code: texts[code]}, filter_curly_bracket=False)
    assert relaxed == {code: ""}
    # the line filter keeps the lines C4 keeps: here all but the "#### 10" answer line
    line_filter = get_operator("c4_line_filter")()
    batch = {"id": np.array(list(texts), dtype=object), "text": np.array(list(texts.values()), dtype=object)}
    rewritten = dict(zip(texts, line_filter.map(batch)["text"].tolist(), strict=True))
    assert rewritten["gsm8k_train:00001"] == texts["gsm8k_train:00001"].rsplit("\n", 1)[0]
    assert rewritten["pubmedqa:10340286"] == abstract
    assert signals["gsm8k_train:00001"]["c4_n_sentences"] == 5


def test_fineweb_quality_real_documents(shared_data: Path) -> None:
    texts = {
        **records(shared_data, "math_gsm8k_train", ["gsm8k_train:00339"]),
        **records(shared_data, "books_tinyshakespeare", ["tinyshakespeare:0000"]),
        **records(shared_data, "legal_spdx_license_texts", ["spdx:CC-BY-SA-2.1-JP"]),
        **records(shared_data, "medical_medquad", ["medquad:0000028:GHR"]),
    }
    signals, reasons = run_filter("fineweb_quality", texts)
    assert reasons == {
        "gsm8k_train:00339": "fineweb_short_line_ratio",
        "tinyshakespeare:0000": "fineweb_char_dup_ratio",
        "spdx:CC-BY-SA-2.1-JP": "fineweb_list_ratio",
        "medquad:0000028:GHR": "",
    }
    for doc in ("gsm8k_train:00339", "tinyshakespeare:0000"):
        text = texts[doc]
        lines = [line for line in text.split("\n") if line.strip()]
        seen: set[str] = set()
        dup_chars = 0
        for line in lines:
            dup_chars += len(line) if line in seen else 0
            seen.add(line)
        assert signals[doc]["fineweb_n_lines"] == len(lines)
        assert signals[doc]["fineweb_line_punct_ratio"] == pytest.approx(
            sum(line[-1] in ".?!" for line in lines) / len(lines)
        )
        assert signals[doc]["fineweb_short_line_ratio"] == pytest.approx(sum(len(x) <= 30 for x in lines) / len(lines))
        assert signals[doc]["fineweb_char_dup_ratio"] == pytest.approx(dup_chars / len(text.replace("\n", "")))
    assert signals["gsm8k_train:00339"]["fineweb_short_line_ratio"] == 0.75
    assert signals["tinyshakespeare:0000"]["fineweb_char_dup_ratio"] == pytest.approx(0.0632, abs=1e-4)
    assert signals["spdx:CC-BY-SA-2.1-JP"]["fineweb_newline_ratio"] == pytest.approx(0.5223, abs=1e-4)


def test_filters_annotating_one_batch_share_its_words(shared_data: Path) -> None:
    texts = records(shared_data, "medical_medquad", ["medquad:0000028:GHR", "medquad:0000363:GHR"])
    batch = {"id": np.array(list(texts), dtype=object), "text": np.array(list(texts.values()), dtype=object)}
    get_operator("gopher_quality")().annotate(batch)
    stats = text_stats(batch["text"])
    words = stats.words
    get_operator("fineweb_quality")().annotate({k: v.copy() for k, v in batch.items()})
    assert text_stats(list(texts.values())) is stats and stats.words is words


def test_quality_filters_depend_on_shared_text_stats_for_cache_keys() -> None:
    for name in ("gopher_quality", "gopher_repetition", "c4_quality", "c4_line_filter", "fineweb_quality"):
        module = inspect.getmodule(get_operator(name))
        assert "operators.text.text_stats" in [m.__name__ for m in _helper_modules(module)]


def test_moving_a_threshold_reuses_the_cached_annotate_stage(shared_data: Path, ray_started, tmp_path: Path) -> None:
    def recipe(min_alpha: float):
        return recipe_from_dict(
            {
                "name": "quality-cache",
                "sources": [
                    {"name": "pubmed", "uri": str(shared_data / "domains" / "medical_pubmedqa_abstracts.jsonl")}
                ],
                "steps": [
                    {"op": "c4_quality"},
                    {"op": "c4_line_filter"},
                    {"op": "gopher_quality", "params": {"min_alpha_words_ratio": min_alpha}},
                ],
            }
        )

    first = run_recipe(recipe(0.8), tmp_path / "run1")
    second = run_recipe(recipe(0.75), tmp_path / "run2")
    stages = {(s.name, s.stage): s for s in second.steps}
    assert stages[("c4_quality", "annotate")].cached and stages[("c4_line_filter", "map")].cached
    assert stages[("gopher_quality", "annotate")].cached is True
    assert stages[("gopher_quality", "decide")].cached is False
    before = {(s.name, s.stage): s for s in first.steps}
    assert before[("gopher_quality", "annotate")].cached is False
    assert before[("c4_quality", "decide")].dropped == {"c4_too_few_sentences": 4}
    dropped_strict = before[("gopher_quality", "decide")].dropped["gopher_too_few_alpha_words"]
    dropped_loose = stages[("gopher_quality", "decide")].dropped["gopher_too_few_alpha_words"]
    out = read_output(tmp_path / "run1", "pubmed")
    ratios = np.asarray(out["gopher_alpha_words_ratio"])
    assert (ratios >= 0.8).all() and len(ratios) == first.output_docs
    assert dropped_loose < dropped_strict
    assert second.output_docs - first.output_docs == dropped_strict - dropped_loose
