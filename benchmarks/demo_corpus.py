"""Build time and size of the demo corpus (``agent/demo/corpus.py``) at one or more scales, and how
fast the ``warc`` reader reads its crawl. Writes one JSON file.

    python benchmarks/demo_corpus.py --scale 1 --scale 0.15 --json demo_corpus.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.demo.corpus import build_demo_corpus
from operators.readers.warc_reader import WarcReader


def measure(scale: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = build_demo_corpus(tmp, seed=seed, scale=scale)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        records = sum(1 for _ in WarcReader({}).read(str(Path(tmp) / "web.warc.gz"), "web"))
        read_seconds = time.perf_counter() - start
    files = {**manifest["sources"], **manifest["target"]}
    return {
        "scale": scale,
        "seed": seed,
        "build_seconds": round(seconds, 2),
        "total_bytes": manifest["total_bytes"],
        "files": {name: {"docs": e["docs"], "bytes": e["bytes"]} for name, e in files.items()},
        "web_records_by_kind": manifest["sources"]["web"]["records_by_kind"],
        "warc_read_records_per_s": round(records / read_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, action="append", help="corpus scale (repeat; default 1.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    args = parser.parse_args()
    results = [measure(s, args.seed) for s in args.scale or [1.0]]
    args.json.write_text(json.dumps({"benchmark": "demo_corpus", "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
