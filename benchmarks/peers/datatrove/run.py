"""datatrove's 4-stage MinHash pipeline (signatures -> buckets -> clusters -> filter) on a corpus folder.

Usage (inside benchmarks/peers/datatrove/venv): run.py CORPUS_DIR WORK_DIR RESULT_JSON WORKERS
Writes {"removed": [ids], "seconds": pipeline wall time}.
"""

import glob
import gzip
import json
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig

def main() -> None:
    corpus, work, result, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = len(glob.glob(f"{corpus}/*.jsonl"))
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1, hash_config=HashConfig(precision=64))
    start = time.perf_counter()
    stage1 = LocalPipelineExecutor(
        [JsonlReader(corpus, glob_pattern="*.jsonl"), MinhashDedupSignature(f"{work}/signatures", config=config)],
        tasks=files,
        workers=workers,
        logging_dir=f"{work}/logs/s1",
    )
    stage2 = LocalPipelineExecutor(
        [MinhashDedupBuckets(f"{work}/signatures", f"{work}/buckets", config=config)],
        tasks=config.num_buckets,
        workers=workers,
        logging_dir=f"{work}/logs/s2",
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        [MinhashDedupCluster(f"{work}/buckets", f"{work}/remove_ids", config=config)],
        tasks=1,
        logging_dir=f"{work}/logs/s3",
        depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        [
            JsonlReader(corpus, glob_pattern="*.jsonl"),
            MinhashDedupFilter(f"{work}/remove_ids", exclusion_writer=JsonlWriter(f"{work}/removed")),
            JsonlWriter(f"{work}/output"),
        ],
        tasks=files,
        workers=workers,
        logging_dir=f"{work}/logs/s4",
        depends=stage3,
    )
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
