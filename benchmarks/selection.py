"""Target-aware selection: DSIR and the quality classifier on a mixed pool of real domains.

For each setting a target set is held out of the pool (MedQuAD for medicine, Code Alpaca for
code) and the pool holds a different corpus of the same domain (PubMed abstracts, Python files)
among other domains. Each method selects as many documents as the pool's target-like domain has;
we report the fraction of the selected documents that come from it (= precision = recall at that
size), the pool's base rate, and docs/s of the selection run (Ray started before the clock; the
classifier's training time is reported separately). Usage: python benchmarks/selection.py --json OUT
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from operators import (  # noqa: E402
    ensure_ray,
    read_output,
    read_texts,
    recipe_from_dict,
    run_recipe,
    shared_data_dir,
    train_classifier,
)

POOL = {
    "medical": "medical_pubmedqa_abstracts.jsonl",
    "code": "code_python_thealgorithms.jsonl",
    "legal": "legal_spdx_license_texts.jsonl",
    "books": "books_gutenberg.jsonl",
    "wiki": "wiki_wikitext2_valid.jsonl",
    "dialogue": "dialogue_sgd_train.jsonl",
    "math": "math_gsm8k_train.jsonl",
    "instruction": "instruction_selfinstruct_human.jsonl",
}
SETTINGS = {"medical": "medical_medquad.jsonl", "code": "instruction_codealpaca_2k.jsonl"}


def run_selection(work: Path, name: str, step: dict) -> tuple[Counter, float]:
    domains = shared_data_dir() / "domains"
    recipe = recipe_from_dict(
        {"sources": [{"name": n, "uri": str(domains / f)} for n, f in POOL.items()], "steps": [step]}
    )
    start = time.perf_counter()
    run_recipe(recipe, work / name, use_cache=False)
    seconds = time.perf_counter() - start
    return Counter(read_output(work / name).column("source").to_pylist()), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ensure_ray(num_cpus=args.workers)
    domains = shared_data_dir() / "domains"
    sizes = {n: len(read_texts([str(domains / f)])) for n, f in POOL.items()}
    pool_size = sum(sizes.values())
    work = REPO / "benchmarks" / "out" / "selection"
    report: dict = {"pool_docs": pool_size, "pool": sizes}
    rng = random.Random(0)
    for domain, target_file in SETTINGS.items():
        fraction = sizes[domain] / pool_size
        target = str(domains / target_file)
        dsir_step = {"op": "dsir_select", "params": {"target_files": [target], "keep_fraction": fraction}}
        kept, seconds = run_selection(work, f"dsir_{domain}", dsir_step)
        entry = {"base_rate": round(fraction, 4)}
        entry["dsir"] = _entry(kept, domain, pool_size, seconds)
        # DCLM style: positives = the target set, negatives = a random sample of the pool
        pool_texts = [t for f in POOL.values() for t in read_texts([str(domains / f)])]
        negatives = rng.sample(pool_texts, min(len(pool_texts), 3000))
        start = time.perf_counter()
        metrics = train_classifier(read_texts([target]), negatives, work / f"classifier_{domain}.npz")
        train_s = time.perf_counter() - start
        qc_step = {
            "op": "quality_classifier",
            "params": {"model": str(work / f"classifier_{domain}.npz"), "keep_fraction": fraction},
        }
        kept, seconds = run_selection(work, f"classifier_{domain}", qc_step)
        entry["classifier"] = {
            **_entry(kept, domain, pool_size, seconds),
            "train_seconds": round(train_s, 2),
            "train_metrics": metrics,
        }
        report[domain] = entry
        print(domain, json.dumps({k: v for k, v in entry.items()}, default=str)[:400])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


def _entry(kept: Counter, domain: str, pool_size: int, seconds: float) -> dict:
    total = sum(kept.values())
    return {
        "selected": total,
        "target_fraction": round(kept[domain] / total, 4) if total else 0.0,
        "selected_by_source": dict(kept.most_common()),
        "docs_per_s": round(pool_size / seconds, 1),
        "seconds": round(seconds, 2),
    }


if __name__ == "__main__":
    main()
