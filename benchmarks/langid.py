"""Accuracy and speed of the ``language_id`` operator on the lingua test sentences (75 languages,
200 sentences each). py3langid says ``no`` for Norwegian Bokmål, which lingua labels ``nb``; the
model has no Maori, Tswana or Tsonga (``mi``, ``tn``, ``ts``): they count as errors in ``overall``
and are left out of ``overall_supported``. ``fineweb_default`` is what the default decision
(English above 0.65) keeps of the English sentences and lets through of the rest. Writes one JSON file.

    python benchmarks/langid.py --data ../shared/data/langid --json langid.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.filters.language_id import LanguageId, identifier

SAME = {"nb": "no"}
BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared langid folder (../shared/data/langid)")
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    args = parser.parse_args()
    with (args.data / "lingua_sentences.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    texts = np.array([r["text"] for r in rows], dtype=object)
    gold = [r["lang"] for r in rows]

    op = LanguageId()
    identifier()  # load the model outside the timed loop, as a Ray worker does once
    start = time.perf_counter()
    parts = [op.annotate({"text": texts[i : i + BATCH]}) for i in range(0, len(texts), BATCH)]
    seconds = time.perf_counter() - start
    signals = {k: np.concatenate([p[k] for p in parts]) for k in ("lang", "lang_score")}

    correct = Counter()
    total = Counter(gold)
    for g, pred in zip(gold, signals["lang"], strict=True):
        correct[g] += pred == SAME.get(g, g)
    labels = set(identifier().labels)
    unsupported = sorted(g for g in total if SAME.get(g, g) not in labels)
    supported = [g for g in total if g not in unsupported]
    kept = op.decide(signals) == ""
    is_en = np.array(gold) == "en"
    result = {
        "operator": "language_id",
        "model": "py3langid 0.4.0 (norm_probs)",
        "docs": len(rows),
        "languages": len(total),
        "overall": round(sum(correct.values()) / len(rows), 4),
        "overall_supported": round(sum(correct[g] for g in supported) / sum(total[g] for g in supported), 4),
        "unsupported": unsupported,
        "per_language": {g: round(correct[g] / total[g], 3) for g in sorted(total)},
        "fineweb_default": {
            "en_kept": round(float(kept[is_en].mean()), 4),
            "non_en_kept": round(float(kept[~is_en].mean()), 4),
        },
        "docs_per_s": round(len(rows) / seconds, 1),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_language"}, indent=2))


if __name__ == "__main__":
    main()
