"""Data-Juicer's document_minhash_deduplicator on a corpus folder.

Usage (inside benchmarks/peers/datajuicer/venv): run.py CORPUS_DIR RESULT_JSON WORKERS
Writes {"removed": [ids], "seconds": pipeline wall time}.
"""

import glob
import json
import os
import sys
import time

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from data_juicer.ops.deduplicator.document_minhash_deduplicator import DocumentMinhashDeduplicator  # noqa: E402
from datasets import Dataset  # noqa: E402

corpus, result, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
rows = []
for path in sorted(glob.glob(f"{corpus}/*.jsonl")):
    with open(path) as fh:
        rows.extend({"id": r["id"], "text": r["text"]} for r in map(json.loads, fh))
ds = Dataset.from_list(rows)
op = DocumentMinhashDeduplicator(
    tokenization="space",
    window_size=5,
    lowercase=True,
    num_permutations=112,
    num_bands=14,
    num_rows_per_band=8,
    jaccard_threshold=0.7,
)
ds = ds.map(op.compute_hash, num_proc=workers)
kept, _ = op.process(ds)
kept_ids = set(kept["id"])
seconds = time.perf_counter() - start
with open(result, "w") as fh:
    json.dump({"removed": [r["id"] for r in rows if r["id"] not in kept_ids], "seconds": seconds}, fh)
