"""MinHash near-dedup side by side: ours (Ray Data), datatrove, Data-Juicer and plain datasketch;
and our other dedup operators at their defaults on the same corpus.

Corpus: every document of ``$DATAPLAN_SHARED_DATA/domains/*.jsonl`` plus near-duplicates injected
at controlled Jaccard similarity (word 5-gram shingles; known ground truth), plus the labelled
pairs of ``neardup/`` (plagiarised short answers, MRPC). All MinHash systems use 5-gram word
shingles, 14 bands x 8 rows (112 permutations) and keep the first / lowest-id document of a
cluster; the base documents come first in file order and sort before their variants.

Metrics on the injected variants: a variant is a true duplicate when its Jaccard with its base is
>= ``--tau``; precision/recall/F1 of "variant removed". Labelled pairs: pair predicted duplicate
when its ``b`` document is removed (for a text-editing operator, also when it lost at least
half of its UTF-8 bytes, read from the ledger's edits); the plagiarised pairs' positives are the
``cut`` and ``light`` rewrites. docs/s = corpus documents / pipeline seconds (interpreter start
and imports excluded for every system; Ray is started before the clock for ours); peak RSS is
the sum over the system's whole process tree (Ray workers, datatrove workers), sampled every
200 ms. ``--repeats N`` runs ours and datatrove N times each, interleaved, and reports medians:
the CPU is shared, so compare them only within one run (``load_average`` is recorded).

JSON: per system its metrics; ``speedup_vs_datatrove`` (ours docs/s / datatrove docs/s); and
``minhash_dedup`` plus each registered operator of ``--ops`` (``substring_dedup``, ``bloom_dedup``,
``simhash_dedup``) with ``precision``/``recall``/``f1`` on the plagiarised pairs.
Usage: python benchmarks/dedup.py --json OUT [--workers 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.process_tree import run_measured  # noqa: E402
from operators import shared_data_dir  # noqa: E402
from operators.text.text_hashing import words  # noqa: E402

LEVELS = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
VARIANT_PREFIX = "~dup/"
LABEL_PREFIX = "~lab/"
TIMED = ("ours", "datatrove")
"""The systems ``--repeats`` runs again: the speed ratio's two sides."""
OTHER_OPS = ("substring_dedup", "bloom_dedup", "simhash_dedup")
"""Our other dedup operators, run at their defaults and scored on the plagiarised pairs."""


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def make_variant(text: str, target: float, vocab: list[str], rng: random.Random) -> tuple[str, float]:
    """Replace whitespace tokens by random words until the shingle Jaccard is close to ``target``."""
    tokens = text.split()
    base = shingles(text)
    # each replaced word breaks up to 5 shingles: solve J = k/(2-k), k = (1-f)^5 for the fraction f
    keep = (2 * target / (1 + target)) ** (1 / 5)
    frac = 1 - keep
    best = (text, 1.0)
    for _ in range(4):
        picked = rng.sample(range(len(tokens)), max(0, min(len(tokens), round(frac * len(tokens)))))
        changed = list(tokens)
        for i in picked:
            changed[i] = rng.choice(vocab)
        variant = " ".join(changed)
        j = jaccard(base, shingles(variant))
        if abs(j - target) < abs(best[1] - target):
            best = (variant, j)
        if abs(j - target) < 0.02:
            break
        frac *= (1 - target + 1e-3) / (1 - j + 1e-3) if j < 1 else 1.5
        frac = min(max(frac, 0.0), 1.0)
    return best


def build_corpus(out: Path, n_variants: int, seed: int) -> dict:
    """Write part0 (originals), part1 (variants), part2 (labelled pairs); return the ground truth."""
    shared = shared_data_dir()
    rng = random.Random(seed)
    originals = []
    for path in sorted((shared / "domains").glob("*.jsonl")):
        with open(path) as fh:
            originals.extend({"id": r["id"], "text": r["text"]} for r in map(json.loads, fh))
    assert len({r["id"] for r in originals}) == len(originals), "original ids must be unique"
    vocab = sorted({w for r in rng.sample(originals, 500) for w in words(r["text"]) if w.isalpha()})
    candidates = [r for r in originals if 30 <= len(r["text"].split()) <= 3000]
    variants, truth = [], {}
    for k, base in enumerate(rng.choices(candidates, k=n_variants)):
        text, j = make_variant(base["text"], LEVELS[k % len(LEVELS)], vocab, rng)
        vid = f"{VARIANT_PREFIX}{k:06d}"
        variants.append({"id": vid, "text": text})
        truth[vid] = j
    labelled, pairs = _labelled_pairs(shared)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("part0", originals), ("part1", variants), ("part2", labelled)):
        with open(out / f"{name}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    sizes = {r["id"]: len(r["text"].encode("utf-8")) for r in labelled if r["id"] in pairs}
    n_docs = len(originals) + len(variants) + len(labelled)
    return {"variants": truth, "pairs": pairs, "pair_bytes": sizes, "n_docs": n_docs}


def _labelled_pairs(shared: Path) -> tuple[list[dict], dict]:
    docs_a, docs_b, pairs = [], [], {}
    sets = {
        "plagiarised": ("neardup/plagiarised_short_answers_pairs.jsonl", lambda r: r["label"] == "near_duplicate"),
        "mrpc": ("neardup/mrpc_train.jsonl", lambda r: r["label"] == 1),
    }
    for name, (rel, positive) in sets.items():
        with open(shared / rel) as fh:
            for k, r in enumerate(map(json.loads, fh)):
                key = f"{name}/{k:05d}"
                docs_a.append({"id": f"{LABEL_PREFIX}a/{key}", "text": r["text_a"]})
                docs_b.append({"id": f"{LABEL_PREFIX}b/{key}", "text": r["text_b"]})
                pairs[f"{LABEL_PREFIX}b/{key}"] = (name, bool(positive(r)))
    return docs_a + docs_b, pairs


# ---- systems run in their own process ------------------------------------------------------------


def run_op(op: str, corpus: Path, result: Path, workers: int) -> None:
    """One dedup operator of ours at its defaults: the removed ids and, per kept document that a
    text-editing operator changed, the UTF-8 bytes it removed (from the ledger)."""
    from operators import ensure_ray, read_ledger, recipe_from_dict, run_recipe

    ensure_ray(num_cpus=workers)
    recipe = recipe_from_dict({"sources": [{"name": "corpus", "uri": str(corpus / "*.jsonl")}], "steps": [{"op": op}]})
    run_dir = corpus.parent / "ours_run"
    start = time.perf_counter()
    run_recipe(recipe, run_dir, use_cache=False)
    seconds = time.perf_counter() - start
    ledger = read_ledger(run_dir).to_pylist()
    removed = [r["id"] for r in ledger if r["status"] == "dropped"]
    edited = {
        r["id"]: sum(e.get("bytes_removed", 0) for e in json.loads(r["detail"]))
        for r in ledger
        if r["status"] == "kept" and r["detail"]
    }
    result.write_text(json.dumps({"removed": removed, "edited": edited, "seconds": seconds}))


def run_datasketch(corpus: Path, result: Path, workers: int) -> None:
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    rows = []
    for path in sorted(corpus.glob("*.jsonl")):
        with open(path) as fh:
            rows.extend(map(json.loads, fh))
    sets = [[" ".join(s).encode() for s in shingles(r["text"])] for r in rows]
    sigs = MinHash.bulk(sets, num_perm=112, seed=1)
    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    parent = list(range(len(rows)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, sig in enumerate(sigs):
        for j in lsh.query(sig):
            a, b = find(i), find(int(j))
            parent[max(a, b)] = min(a, b)  # the earliest document is the root and is kept
        lsh.insert(str(i), sig)
    removed = [rows[i]["id"] for i in range(len(rows)) if find(i) != i]
    del np
    result.write_text(json.dumps({"removed": removed, "seconds": time.perf_counter() - start}))


def run_system(name: str, corpus: Path, work: Path, workers: int) -> dict:
    """Run one system (or one of our operators, by name) in a subprocess; sample its process
    tree's RSS; return its result."""
    result = work / f"{name}.json"
    python = sys.executable
    peers = REPO / "benchmarks" / "peers"
    child = [python, __file__, "--system", name, "--corpus", str(corpus), "--result", str(result)]
    commands = {
        "datatrove": [
            str(peers / "datatrove/venv/bin/python"),
            str(peers / "datatrove/run.py"),
            str(corpus),
            str(work / "datatrove_work"),
            str(result),
        ],
        "datajuicer": [
            str(peers / "datajuicer/venv/bin/python"),
            str(peers / "datajuicer/run.py"),
            str(corpus),
            str(result),
        ],
    }
    cmd = [*commands[name], str(workers)] if name in commands else [*child, "--workers", str(workers)]
    if not Path(cmd[0]).exists():
        return {"error": f"{cmd[0]} missing: run benchmarks/peers/{name}/setup.sh"}
    for leftover in (work / "datatrove_work", corpus.parent / "ours_run"):  # datatrove skips finished tasks
        shutil.rmtree(leftover, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    measured = run_measured(cmd, env, work / f"{name}.log")
    code, wall = measured["code"], measured["wall_s"]
    if code != 0 or not result.exists():
        return {"error": f"exit {code}; see {work / (name + '.log')}"}
    out = json.loads(result.read_text())
    return {
        "removed": set(out["removed"]),
        "edited": out.get("edited", {}),
        "seconds": out["seconds"],
        "wall_s": wall,
        "peak_rss_mb": measured["peak_rss_mb"],
    }


def score(removed: set[str], truth: dict, tau: float) -> dict:
    tp = sum(1 for v, j in truth["variants"].items() if j >= tau and v in removed)
    fp = sum(1 for v, j in truth["variants"].items() if j < tau and v in removed)
    fn = sum(1 for v, j in truth["variants"].items() if j >= tau and v not in removed)
    out = _prf(tp, fp, fn)
    for name in ("plagiarised", "mrpc"):
        out[f"labelled_{name}"] = score_pairs(removed, truth, name)
    return out


def score_pairs(predicted: set[str], truth: dict, name: str) -> dict:
    """Precision/recall/F1 on one labelled pair set: a pair is predicted duplicate when its ``b``
    document is in ``predicted``."""
    pairs = [(b, pos) for b, (n, pos) in truth["pairs"].items() if n == name]
    tp = sum(1 for b, pos in pairs if pos and b in predicted)
    fp = sum(1 for b, pos in pairs if not pos and b in predicted)
    fn = sum(1 for b, pos in pairs if pos and b not in predicted)
    return _prf(tp, fp, fn)


def edited_away(edited: dict[str, int], truth: dict, share: float = 0.5) -> set[str]:
    """The ``b`` documents of labelled pairs that lost at least ``share`` of their UTF-8 bytes."""
    return {b for b, size in truth["pair_bytes"].items() if size and edited.get(b, 0) >= share * size}


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def candidate_probability(trials: int = 4000, seed: int = 0) -> dict:
    """Empirical P(some band of 14x8 collides) for shingle sets at Jaccard s, vs 1-(1-s^8)^14."""
    import numpy as np

    from operators.dedup.minhash_dedup import band_keys, signatures

    rng = np.random.default_rng(seed)
    out = {}
    for s in (0.7, 0.75, 0.8, 0.85):
        # two documents of 200 distinct words sharing m: Jaccard of word sets = m / (400 - m)
        m = round(400 * s / (1 + s))
        hits = 0
        texts_a, texts_b = [], []
        for t in range(trials):
            ids = rng.choice(10**9, size=400 - m, replace=False)
            shared, a_only, b_only = ids[:m], ids[m:200], ids[200 : 400 - m]
            texts_a.append(" ".join(f"w{t}x{i}" for i in np.concatenate([shared, a_only])))
            texts_b.append(" ".join(f"w{t}x{i}" for i in np.concatenate([shared, b_only])))
        ka = band_keys(signatures(np.array(texts_a, dtype=object), 1, 112, 1), 14, 8)
        kb = band_keys(signatures(np.array(texts_b, dtype=object), 1, 112, 1), 14, 8)
        hits = int((ka == kb).any(axis=1).sum())
        exact = m / (400 - m)
        out[str(s)] = {
            "empirical": round(hits / trials, 4),
            "closed_form": round(1 - (1 - exact**8) ** 14, 4),
            "jaccard": round(exact, 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", type=int, default=9000)
    parser.add_argument("--tau", type=float, default=0.75, help="Jaccard at or above which a variant is a duplicate")
    parser.add_argument("--systems", default="ours,datatrove,datajuicer,datasketch")
    parser.add_argument(
        "--ops",
        default=",".join(OTHER_OPS),
        help="our other dedup operators, each at its defaults (skipped when not registered); '' for none",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of ours and datatrove each, interleaved")
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.system:  # child mode
        if args.system == "datasketch":
            run_datasketch(args.corpus, args.result, args.workers)
        else:
            run_op("minhash_dedup" if args.system == "ours" else args.system, args.corpus, args.result, args.workers)
        return
    work = REPO / "benchmarks" / "out" / "dedup"
    corpus = work / "corpus"
    truth = build_corpus(corpus, args.variants, seed=0)
    report: dict = {
        "n_docs": truth["n_docs"],
        "n_variants": len(truth["variants"]),
        "tau": args.tau,
        "workers": args.workers,
        "repeats": args.repeats,
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "params": {"ngram": 5, "bands": 14, "rows": 8, "num_perm": 112},
        "candidate_probability_14x8": candidate_probability(),
    }
    for s, v in report["candidate_probability_14x8"].items():
        print(f"P(candidate | J={s}): empirical {v['empirical']:.3f}, closed form {v['closed_form']:.3f}")
    report.update(_systems(args.systems.split(","), args.repeats, corpus, work, args.workers, truth, args.tau))
    if all("docs_per_s" in report.get(n, {}) for n in TIMED):
        report["speedup_vs_datatrove"] = round(report["ours"]["docs_per_s"] / report["datatrove"]["docs_per_s"], 2)
        print(f"ours / datatrove: {report['speedup_vs_datatrove']}x")
    if "f1" in report.get("ours", {}):
        report["minhash_dedup"] = report["ours"]["labelled_plagiarised"]
    for op in filter(None, args.ops.split(",")):
        report[op] = _other_op(op, corpus, work, args.workers, truth)
        print(op, report[op])
    report["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    print("load average", report["load_average"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


def _systems(systems: list[str], repeats: int, corpus: Path, work: Path, workers: int, truth: dict, tau: float) -> dict:
    """Each system's metrics; ``TIMED`` ones run ``repeats`` times, interleaved, timed by the median."""
    runs: dict[str, list[dict]] = {}
    for rep in range(repeats):
        for name in systems:
            if rep == 0 or name in TIMED:
                runs.setdefault(name, []).append(run_system(name, corpus, work, workers))
    report: dict = {}
    for name in systems:
        failed = next((r for r in runs[name] if "error" in r), None)
        if failed:
            report[name] = failed
            print(name, failed["error"])
            continue
        removed = runs[name][0]["removed"]
        r = report[name] = {
            **score(removed, truth, tau),
            **_speed(runs[name], truth["n_docs"]),
            "removed": len(removed),
        }
        print(
            f"{name}: P {r['precision']} R {r['recall']} F1 {r['f1']} {r['docs_per_s']} docs/s ({r['seconds']} s) "
            f"RSS {r['peak_rss_mb']} MB"
        )
    return report


def _speed(runs: list[dict], n_docs: int) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "docs_per_s": round(n_docs / seconds, 1),
        "seconds": round(seconds, 2),
        "seconds_runs": [round(r["seconds"], 2) for r in runs],
        "wall_s_with_startup": round(statistics.median(r["wall_s"] for r in runs), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
    }


def _other_op(op: str, corpus: Path, work: Path, workers: int, truth: dict) -> dict:
    """One of our dedup operators at its defaults: precision/recall/F1 on the plagiarised pairs."""
    from operators import get_operator, is_registered

    if not is_registered(op):
        return {"skipped": "not registered"}
    res = run_system(op, corpus, work, workers)
    if "error" in res:
        return res
    halved = edited_away(res["edited"], truth) if get_operator(op).edits_text else set()
    return {
        **score_pairs(res["removed"] | halved, truth, "plagiarised"),
        "removed_docs": len(res["removed"]),
        "pair_b_halved_by_edits": len(halved - res["removed"]),
        **_speed([res], truth["n_docs"]),
    }


if __name__ == "__main__":
    main()
