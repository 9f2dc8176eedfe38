"""language_id on the lingua test sentences (../shared/data/langid)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from operators.filters.language_id import LanguageId


@pytest.fixture(scope="module")
def en_de(shared_data: Path) -> tuple[list[dict], dict]:
    """The 200 English and 200 German sentences and their signals (identified once)."""
    with (shared_data / "langid" / "lingua_sentences.jsonl").open(encoding="utf-8") as fh:
        rows = [r for r in map(json.loads, fh) if r["lang"] in ("en", "de")]
    signals = LanguageId().annotate({"text": np.array([r["text"] for r in rows], dtype=object)})
    return rows, signals


def test_signals_of_specific_sentences(en_de) -> None:
    rows, signals = en_de
    at = {r["id"]: i for i, r in enumerate(rows)}
    reasons = LanguageId().decide(signals)

    def of(doc_id: str) -> tuple[str, float, str]:
        i = at[doc_id]
        return signals["lang"][i], signals["lang_score"][i], reasons[i]

    lang, score, reason = of("lingua:en:0712")  # "In closing I would like to say that this concludes ..."
    assert (lang, reason) == ("en", "") and score == pytest.approx(0.99998, abs=1e-4)
    lang, score, reason = of("lingua:en:0337")  # "Romans 6:23 - The Second Chance, Tue."
    assert (lang, reason) == ("en", "lang_low_score") and score == pytest.approx(0.0708, abs=1e-3)
    lang, score, reason = of("lingua:en:0972")  # an agenda list, taken for Nigerian Pidgin
    assert (lang, reason) == ("pcm", "lang_mismatch") and score == pytest.approx(0.4905, abs=1e-3)
    lang, score, reason = of("lingua:de:0156")  # German with mojibake ("FÃ¼r ... gefÃ¤hrlich")
    assert (lang, reason) == ("de", "lang_mismatch") and score > 0.99
    assert signals["lang"].dtype == object and signals["lang_score"].dtype == np.float64


def test_thresholds_and_lists_only_change_the_decision(en_de) -> None:
    rows, signals = en_de
    assert LanguageId.annotate_params == ()
    assert LanguageId(keep=["de"], min_score=0.9).annotate_key() == LanguageId().annotate_key() == {}
    gold = [r["lang"] for r in rows]

    def outcome(**params) -> Counter:
        return Counter(zip(gold, LanguageId(params).decide(signals), strict=True))

    # FineWeb defaults: English above 0.65
    assert outcome() == {
        ("en", ""): 184,
        ("en", "lang_low_score"): 13,
        ("en", "lang_mismatch"): 3,
        ("de", "lang_mismatch"): 200,
    }
    assert outcome(keep=["en", "de"]) == {
        ("en", ""): 184,
        ("de", ""): 198,
        ("en", "lang_low_score"): 13,
        ("en", "lang_mismatch"): 3,
        ("de", "lang_low_score"): 2,
    }
    assert outcome(keep=[], min_score=0.0) == {("en", ""): 200, ("de", ""): 200}


def test_text_without_letters_is_undetermined() -> None:
    signals = LanguageId().annotate(
        {"text": np.array(["", "12 345 -- 678", "Hello world, how are you?"], dtype=object)}
    )
    assert list(signals["lang"][:2]) == ["und", "und"] and list(signals["lang_score"][:2]) == [0.0, 0.0]
    assert list(LanguageId(keep=[]).decide(signals)[:2]) == ["lang_low_score", "lang_low_score"]
