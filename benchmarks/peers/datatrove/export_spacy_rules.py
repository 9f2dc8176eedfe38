"""Exports spaCy's English tokenizer rules to ``operators/text/spacy_en_rules.json``; run with the peer venv.

    benchmarks/peers/datatrove/venv/bin/python benchmarks/peers/datatrove/export_spacy_rules.py

datatrove splits English text into words with ``spacy.blank("en")``. ``operators/text_stats.py``
re-implements that tokenizer's algorithm (``Tokenizer.explain``) in plain Python without spaCy; the
rules it needs are data: the prefix/suffix/infix/URL regular expressions, the special cases
(tokenizer exceptions such as ``don't`` -> ``do`` + ``n't``) and the sentencizer's punctuation.
spaCy is MIT-licensed (Copyright (C) 2016-2024 ExplosionAI GmbH); the rules are copied verbatim.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import spacy
from spacy.attrs import ORTH
from spacy.pipeline import Sentencizer

OUT = Path(__file__).resolve().parents[3] / "operators" / "text" / "spacy_en_rules.json"


def main() -> None:
    tok = spacy.blank("en").tokenizer
    rules = {
        "source": f"spaCy {spacy.__version__} English tokenizer (spacy.blank('en')), MIT license",
        "prefix": tok.prefix_search.__self__.pattern,
        "suffix": tok.suffix_search.__self__.pattern,
        "infix": tok.infix_finditer.__self__.pattern,
        "url": tok.url_match.__self__.pattern,
        "special_cases": {
            orth: [piece[ORTH] for piece in pieces] for orth, pieces in sorted(tok.rules.items()) if not orth.isspace()
        },
        "sentence_punct": sorted(Sentencizer.default_punct_chars),
    }
    OUT.write_text(json.dumps(rules, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
