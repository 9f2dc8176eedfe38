"""datatrove's equivalent of benchmarks/scale.py's recipe, run with the peer venv's python.

    venv/bin/python run_scale.py CORPUS_DIR WORK_DIR RESULT_JSON WORKERS

JSONL reader -> at least 50 words -> GopherQualityFilter (defaults) -> its 4-stage MinHash
(5-grams, 14 bands x 8 rows, as ours). datatrove has no Unicode-normalisation step, so it does
one step less than ours. Writes {"docs_in", "docs_kept", "seconds"}.
"""

import glob
import gzip
import json
import sys
import time

from datatrove.pipeline.filters import GopherQualityFilter, LambdaFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from minhash_pipeline import minhash_pipeline


def _count(pattern: str) -> int:
    n = 0
    for path in glob.glob(pattern):
        with gzip.open(path, "rt") as fh:
            n += sum(1 for _ in fh)
    return n


def main() -> None:
    corpus, work, result, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = len(glob.glob(f"{corpus}/*.jsonl"))
    start = time.perf_counter()
    first = [
        JsonlReader(corpus, glob_pattern="*.jsonl"),
        LambdaFilter(lambda doc: len(doc.text.split()) >= 50),
        GopherQualityFilter(),
        JsonlWriter(f"{work}/filtered"),
    ]
    deduped = minhash_pipeline(first, JsonlReader(f"{work}/filtered"), work, files, workers, keep_removed=False)
    deduped.run()
    seconds = time.perf_counter() - start
    docs_in = 0
    for path in glob.glob(f"{corpus}/*.jsonl"):
        with open(path) as fh:
            docs_in += sum(1 for _ in fh)
    with open(result, "w") as fh:
        json.dump({"docs_in": docs_in, "docs_kept": _count(f"{work}/output/*"), "seconds": seconds}, fh)


if __name__ == "__main__":  # datatrove workers re-import this file
    main()
