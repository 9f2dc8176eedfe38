"""Speed of ``profile_source`` on the shared data, and how the sampled near-duplicate rate depends on
the sample size (a sample holds only part of each duplicate cluster, so smaller samples see fewer
duplicates). Writes one JSON file.

    python benchmarks/profiling.py --data ../shared/data --json profile.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.profiling.profile import profile_source

SOURCES = {
    "legal": "domains/legal_spdx_license_texts.jsonl",
    "books": "domains/books_gutenberg.jsonl",
    "code": "domains/code_python_thealgorithms.jsonl",
    "dialogue": "domains/dialogue_sgd_train.jsonl",
    "lingua": "langid/lingua_sentences.jsonl",
    "crawl": "web/crawl_sample.warc.gz",
}
SAMPLE = 500
NEAR_DUP_SAMPLES = (50, 115, 230, 460)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (../shared/data)")
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    args = parser.parse_args()
    profile_source("warmup", str(args.data / SOURCES["lingua"]), sample_docs=20)  # imports, langid model
    sources = {}
    for name, rel in SOURCES.items():
        start = time.perf_counter()
        p = profile_source(name, str(args.data / rel), sample_docs=SAMPLE)
        seconds = time.perf_counter() - start
        sources[name] = {
            "docs": p.doc_count,
            "sample": p.sample_size,
            "html_extracted": p.html.extracted,
            "sample_text_mb": round(p.text_bytes_mean * p.text_docs / 1e6, 3),
            "seconds": round(seconds, 2),
            "sample_docs_per_s": round(p.sample_size / seconds, 1),
            "near_duplicate_rate": round(p.near_duplicate_rate, 4),
            "en_share": round(p.languages.get("en", 0.0), 4),
        }
    near_dup = {
        str(k): round(profile_source("legal", str(args.data / SOURCES["legal"]), sample_docs=k).near_duplicate_rate, 4)
        for k in NEAR_DUP_SAMPLES
    }
    result = {"sample": SAMPLE, "sources": sources, "legal_near_duplicate_rate_by_sample": near_dup}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
