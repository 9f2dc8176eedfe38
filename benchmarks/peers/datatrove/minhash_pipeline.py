"""datatrove's 4-stage MinHash pipeline (signatures -> buckets -> clusters -> filter) with our
settings (5-grams, 14 bands x 8 rows, seed 1), shared by run.py and run_scale.py."""

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig

CONFIG = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1, hash_config=HashConfig(precision=64))


def minhash_pipeline(first: list, reread, work: str, tasks: int, workers: int, keep_removed: bool) -> LocalPipelineExecutor:
    """The last of the four executors (run it to run all): ``first`` steps then the signatures;
    buckets; clusters; ``reread`` (a reader of what ``first`` read) through the filter into
    ``work/output`` (and the removed documents into ``work/removed`` with ``keep_removed``)."""
    signatures = LocalPipelineExecutor(
        [*first, MinhashDedupSignature(f"{work}/signatures", config=CONFIG)],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{work}/logs/s1",
    )
    buckets = LocalPipelineExecutor(
        [MinhashDedupBuckets(f"{work}/signatures", f"{work}/buckets", config=CONFIG)],
        tasks=CONFIG.num_buckets,
        workers=workers,
        logging_dir=f"{work}/logs/s2",
        depends=signatures,
    )
    clusters = LocalPipelineExecutor(
        [MinhashDedupCluster(f"{work}/buckets", f"{work}/remove_ids", config=CONFIG)],
        tasks=1,
        logging_dir=f"{work}/logs/s3",
        depends=buckets,
    )
    removed = JsonlWriter(f"{work}/removed") if keep_removed else None
    return LocalPipelineExecutor(
        [reread, MinhashDedupFilter(f"{work}/remove_ids", exclusion_writer=removed), JsonlWriter(f"{work}/output")],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{work}/logs/s4",
        depends=clusters,
    )
