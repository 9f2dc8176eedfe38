"""datatrove's 4-stage MinHash pipeline (signatures -> buckets -> clusters -> filter) on a corpus folder.

Usage (inside benchmarks/peers/datatrove/venv): run.py CORPUS_DIR WORK_DIR RESULT_JSON WORKERS
Writes {"removed": [ids], "seconds": pipeline wall time}.
"""

import glob
import gzip
import json
import sys
import time

from datatrove.pipeline.readers import JsonlReader
from minhash_pipeline import minhash_pipeline


def main() -> None:
    corpus, work, result, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = len(glob.glob(f"{corpus}/*.jsonl"))
    start = time.perf_counter()
    reader = JsonlReader(corpus, glob_pattern="*.jsonl")
    stage4 = minhash_pipeline([reader], JsonlReader(corpus, glob_pattern="*.jsonl"), work, files, workers, keep_removed=True)
    stage4.run()
    seconds = time.perf_counter() - start
    removed = []
    for path in glob.glob(f"{work}/removed/*"):
        with gzip.open(path, "rt") as fh:
            removed.extend(json.loads(line)["id"] for line in fh)
    with open(result, "w") as fh:
        json.dump({"removed": removed, "seconds": seconds}, fh)


if __name__ == "__main__":  # datatrove workers re-import this file (forkserver)
    main()
