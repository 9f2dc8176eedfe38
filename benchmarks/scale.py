"""Memory and throughput as the corpus grows: 0.25 / 0.5 / 1 / 2 GB through one recipe.

The corpora are generated from the prose domains of ``$DATAPLAN_SHARED_DATA/domains`` (nothing downloaded
or committed): each document is 10-80 lines drawn at random from the pool of every line of those
files, so documents do not repeat one another; 4% are exact copies of an earlier document and
4% near copies (a tenth of the lines redrawn), so deduplication has work at every size. A corpus
is written as JSONL shards of at most 128 MiB, as sharded web dumps are, and is kept under
``--work`` for the next run.

Each size runs ``dataplan run`` cold (an empty stage cache) on the recipe ``text_normalize,
length_filter, gopher_quality, minhash_dedup`` as a subprocess, and reports wall time, docs/s,
the peak of the RSS summed over the whole process tree (the CLI, Ray's GCS, raylet and workers;
sampled every 200 ms) and the stage cache's size on disk. With ``--peers datatrove`` the same
corpora also go through datatrove's equivalent pipeline (JSONL reader, length and Gopher quality
filters, its 4-stage MinHash) with the same worker count, in the same run.

``--pipeline substring`` or ``bloom`` runs the corpora through ``substring_dedup`` or ``bloom_dedup``
alone instead (no peer).

Usage: python benchmarks/scale.py --json OUT [--sizes 0.25 0.5 1 2] [--peers datatrove [--peer-sizes 0.25]]
[--pipeline filters_minhash|substring|bloom] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.process_tree import run_measured  # noqa: E402
from operators import shared_data_dir  # noqa: E402

SHARD_BYTES = 128 << 20
EXACT, NEAR = 0.04, 0.04
RECIPE = """name: scale
sources:
  - {{name: web, uri: "{corpus}/*.jsonl"}}
steps:
{steps}
seed: 0
"""
PIPELINES = {
    "filters_minhash": (
        "text_normalize",
        "length_filter, params: {min_words: 50}",
        "gopher_quality",
        "minhash_dedup",
    ),
    "substring": ("substring_dedup",),
    "bloom": ("bloom_dedup",),
}
"""Step lists ``--pipeline`` picks: the default is the filters + MinHash pipeline datatrove runs too."""


def recipe_text(corpus: str, pipeline: str) -> str:
    steps = "\n".join(f"  - {{op: {step}}}" for step in PIPELINES[pipeline])
    return RECIPE.format(corpus=corpus, steps=steps)


PROSE = (
    "books_gutenberg",
    "books_tinyshakespeare",
    "dialogue_sgd_train",
    "legal_spdx_license_texts",
    "medical_medquad",
    "medical_pubmedqa_abstracts",
    "wiki_wikitext2_valid",
)
"""The shared domains written as prose: code and arithmetic lines fail Gopher's alphabetic-word rule."""


def line_pool(shared: Path) -> list[str]:
    """Every line of at least 20 characters of the prose domains, in file order."""
    pool = []
    for path in (shared / "domains" / f"{name}.jsonl" for name in PROSE):
        with open(path, encoding="utf-8") as fh:
            for row in fh:
                pool.extend(line for line in json.loads(row)["text"].split("\n") if len(line.strip()) >= 20)
    return pool


def build_corpus(out: Path, size_bytes: int, seed: int = 0) -> dict:
    """Write about ``size_bytes`` of JSONL shards into ``out`` (reused when already complete)."""
    marker = out / ".complete.json"
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = random.Random(seed)
    pool = line_pool(shared_data_dir())
    docs: list[list[str]] = []
    written, shard, fh = 0, 0, None
    kinds = {"fresh": 0, "exact": 0, "near": 0}
    while written < size_bytes:
        if fh is None or fh.tell() >= SHARD_BYTES:
            if fh:
                fh.close()
            fh = open(out / f"part-{shard:05d}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
            shard += 1
        roll = rng.random()
        if docs and roll < EXACT:
            lines, kind = docs[rng.randrange(len(docs))], "exact"
        elif docs and roll < EXACT + NEAR:
            lines = list(docs[rng.randrange(len(docs))])
            for i in rng.sample(range(len(lines)), max(1, len(lines) // 10)):
                lines[i] = rng.choice(pool)
            kind = "near"
        else:
            lines, kind = [rng.choice(pool) for _ in range(rng.randint(10, 80))], "fresh"
        if len(docs) < 20_000:  # copies are drawn from the first documents: memory stays flat
            docs.append(lines)
        kinds[kind] += 1
        row = json.dumps({"id": f"doc-{sum(kinds.values()):09d}", "text": "\n".join(lines)}, ensure_ascii=False)
        fh.write(row + "\n")
        written += len(row.encode("utf-8")) + 1
    fh.close()
    info = {"bytes": written, "docs": sum(kinds.values()), "shards": shard, **kinds}
    marker.write_text(json.dumps(info))
    return info


def run_ours(corpus: Path, work: Path, workers: int, pipeline: str) -> dict:
    """``dataplan run`` on a fresh home (empty stage cache); its result JSON and the measurements."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    recipe = home / "recipe.yaml"
    recipe.write_text(recipe_text(str(corpus), pipeline))
    result = home / "result.json"
    cmd = [sys.executable, "-m", "agent.cli", "run", str(recipe), "--out", str(home / "out"), "--json"]
    cmd += ["--num-cpus", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATAPLAN_HOME": str(home / ".dataplan")}
    measured = run_measured(["bash", "-c", f'"$@" > {result}', "run", *cmd], env, home / "log.txt")
    if measured["code"]:
        return {"error": f"exit {measured['code']}; see {home / 'log.txt'}"}
    out = json.loads(result.read_text())
    counts = out["sources"]["web"]
    return {
        **_rounded(measured),
        "docs_in": counts["input"],
        "docs_kept": counts["kept"],
        "output_sha256": out["output_sha256"],
        "cache_mb": round(_du(home / ".dataplan") / 2**20, 1),
    }


def run_datatrove(corpus: Path, work: Path, workers: int, pipeline: str) -> dict:
    """datatrove's equivalent of the default pipeline in its own venv."""
    python = REPO / "benchmarks/peers/datatrove/venv/bin/python"
    if not python.exists():
        return {"error": f"{python} missing: run benchmarks/peers/datatrove/setup.sh"}
    dt_work = work / "datatrove"
    shutil.rmtree(dt_work, ignore_errors=True)
    dt_work.mkdir(parents=True)
    result = dt_work / "result.json"
    cmd = [str(python), str(REPO / "benchmarks/peers/datatrove/run_scale.py"), str(corpus), str(dt_work / "work")]
    measured = run_measured([*cmd, str(result), str(workers)], dict(os.environ), dt_work / "log.txt")
    if measured["code"] or not result.exists():
        return {"error": f"exit {measured['code']}; see {dt_work / 'log.txt'}"}
    out = json.loads(result.read_text())
    return {
        **_rounded(measured),
        "docs_in": out["docs_in"],
        "docs_kept": out["docs_kept"],
        "cache_mb": round(_du(dt_work / "work") / 2**20, 1),
    }


def _rounded(measured: dict) -> dict:
    return {"wall_s": round(measured["wall_s"], 1), "peak_rss_mb": round(measured["peak_rss_mb"], 1)}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, required=True, help="write the results here")
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0], help="corpus sizes in GB")
    ap.add_argument("--peers", nargs="*", default=[], choices=["datatrove"], help="peers run on the same corpora")
    ap.add_argument(
        "--peer-sizes",
        type=float,
        nargs="+",
        default=[0.25],
        help="sizes the peers run at (datatrove took 17 min for 0.25 GB on 2 cores: its Gopher filter tokenises with spaCy)",
    )
    ap.add_argument("--pipeline", choices=sorted(PIPELINES), default="filters_minhash", help="the recipe's steps")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=REPO / ".dataplan/bench/scale", help="corpora and scratch")
    args = ap.parse_args()
    if args.peers and args.pipeline != "filters_minhash":
        ap.error("peers run the default pipeline only (--pipeline filters_minhash)")
    systems = {"ours": run_ours, **{p: globals()[f"run_{p}"] for p in args.peers}}
    rows = []
    for size in args.sizes:
        corpus = args.work / f"corpus_{size:g}gb"
        t0 = time.perf_counter()
        info = build_corpus(corpus, int(size * 2**30))
        print(
            f"{size:g} GB: {info['docs']} docs in {info['shards']} shards ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        for name, fn in systems.items():
            if name != "ours" and size not in args.peer_sizes:
                continue
            res = fn(corpus, args.work / "runs" / name, args.workers, args.pipeline)
            if "error" not in res:
                res["docs_per_s"] = round(res["docs_in"] / res["wall_s"], 1)
            rows.append({"system": name, "size_gb": size, "corpus_docs": info["docs"], **res})
            print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    out = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in load]},
        "pipeline": args.pipeline,
        "recipe": recipe_text("<corpus>", args.pipeline),
        "rows": rows,
        "rss_growth_0.25_to_1gb": _growth(rows),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
    }
    args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def _growth(rows: list[dict]) -> dict:
    """Peak RSS at 1 GB over peak RSS at 0.25 GB, per system: below 4 is sub-linear."""
    growth = {}
    for system in {r["system"] for r in rows}:
        by_size = {r["size_gb"]: r.get("peak_rss_mb") for r in rows if r["system"] == system}
        if by_size.get(0.25) and by_size.get(1.0):
            growth[system] = round(by_size[1.0] / by_size[0.25], 2)
    return growth


if __name__ == "__main__":
    main()
