"""Extraction quality and speed of the ``html_extract`` operator on two public benchmarks.

- article-extraction-benchmark (Scrapinghub, 118 pages here; ``articleBody`` ground truth): the
  benchmark's own metric, precision/recall/F1 over 4-token shingles (``string_shingle_matching`` in
  its ``evaluate.py``: ``\\w+`` tokens, per-page counts normalised to sum 1, precision and recall
  averaged over pages, F1 of the averages); the published trafilatura figure is F1 0.958 on the full
  181 pages. Unigram-token P/R/F1 is reported beside it (``token_*``).
- trafilatura evaluation set (300 pages): the fraction of ``with`` snippets found verbatim in the
  extracted text and of ``without`` snippets absent, as trafilatura's ``tests/comparison.py`` counts.

Pages are decoded exactly as the ``warc`` reader decodes payloads and extracted by the operator
class itself (``HtmlExtract.map`` over one batch per benchmark). Writes one JSON file.

    python benchmarks/extraction.py --data ../shared/data/web --json extraction.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.mappers.html_extract import HtmlExtract
from operators.readers.warc_reader import decode_html

_TOKEN = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def tp_fp_fn(true: str, pred: str, n: int) -> tuple[float, float, float]:
    """Shingle overlap of one page, normalised to sum 1 (the benchmark's ``string_shingle_matching``)."""
    t, p = shingles(true, n), shingles(pred, n)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def macro_prf(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    """The benchmark's ``metrics_from_tp_fp_fns``."""

    def precision(tp, fp, fn):
        return 1.0 if fp == fn == 0 else 0.0 if tp == fp == 0 else tp / (tp + fp)

    def recall(tp, fp, fn):
        return 1.0 if fp == fn == 0 else 0.0 if tp == fn == 0 else tp / (tp + fn)

    prec = statistics.mean(precision(*r) for r in rows if r[0] + r[1] > 0)
    rec = statistics.mean(recall(*r) for r in rows if r[0] + r[2] > 0)
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec)}


def run_operator(op: HtmlExtract, pages: list[bytes], urls: list[str]) -> tuple[list[str], float]:
    """Decode and extract all pages in one operator batch; returns texts and pages/s."""
    start = time.perf_counter()
    html = np.array([decode_html(raw)[0] for raw in pages], dtype=object)
    out = op.map({"text": html, "url": np.array(urls, dtype=object)})
    seconds = time.perf_counter() - start
    return list(out["text"]), len(pages) / seconds


def article_benchmark(op: HtmlExtract, root: Path) -> dict[str, float]:
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth)
    pages = [gzip.decompress((root / "html" / f"{k}.html.gz").read_bytes()) for k in keys]
    texts, rate = run_operator(op, pages, [truth[k].get("url") or "" for k in keys])
    bodies = [truth[k].get("articleBody", "") for k in keys]
    out = macro_prf([tp_fp_fn(t, p, 4) for t, p in zip(bodies, texts, strict=True)])
    unigram = macro_prf([tp_fp_fn(t, p, 1) for t, p in zip(bodies, texts, strict=True)])
    out.update({f"token_{k}": v for k, v in unigram.items()})
    return {**{k: round(v, 4) for k, v in out.items()}, "pages": len(keys), "pages_per_s": round(rate, 2)}


def trafilatura_eval(op: HtmlExtract, root: Path) -> dict[str, float]:
    items = [json.loads(line) for line in (root / "ground_truth.jsonl").open(encoding="utf-8")]
    pages = [gzip.decompress((root / it["file"]).read_bytes()) for it in items]
    texts, rate = run_operator(op, pages, [it.get("url") or "" for it in items])
    found = sum(s in t for it, t in zip(items, texts, strict=True) for s in it["with"])
    absent = sum(s not in t for it, t in zip(items, texts, strict=True) for s in it["without"])
    n_with = sum(len(it["with"]) for it in items)
    n_without = sum(len(it["without"]) for it in items)
    return {
        "with_recall": round(found / n_with, 4),
        "without_precision": round(absent / n_without, 4),
        "pages": len(items),
        "empty_pages": sum(not t for t in texts),
        "pages_per_s": round(rate, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared web folder (../shared/data/web)")
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    parser.add_argument("--params", default="{}", help="html_extract params as JSON (default: its defaults)")
    args = parser.parse_args()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    op = HtmlExtract(json.loads(args.params))
    result = {
        "operator": "html_extract",
        "params": op.params.model_dump(),
        "article_benchmark": article_benchmark(op, args.data / "article_extraction_benchmark"),
        "trafilatura_eval": trafilatura_eval(op, args.data / "trafilatura_eval"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
