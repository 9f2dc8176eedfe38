"""Our heuristic quality filters against datatrove's, side by side on the same documents.

    bash benchmarks/peers/datatrove/setup.sh          # once: datatrove + spaCy in their own venv
    python benchmarks/filters.py --json benchmarks/out/filters.json

Documents: every ``domains/*.jsonl`` record of the shared data plus the text trafilatura (defaults)
extracts from each HTML response of ``web/crawl_sample.warc.gz``. datatrove runs in its venv in one
subprocess (``peers/datatrove/run_filters.py``); ours run in this process, a batch at a time, with
the tokeniser's lexicon cleared before each filter (a cold start). Both are single processes on one
core, timed around the filtering alone (no I/O) in the same run. Parameters are matched: datatrove
gets ours, translated to its argument names. Per filter the JSON has ``agreement`` (same keep/drop
decision), ``reason_agreement`` (same first reason among documents both drop), ``ours_docs_per_s``,
``datatrove_docs_per_s`` and the disagreeing ids; ``combined`` times all four filters per document
(words shared: our batch statistics, datatrove's ``split_into_words`` cache); ``tokenizer`` is the
fraction of documents whose spaCy words we reproduce exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from operators.base import get_operator  # noqa: E402
from operators.c4_quality import C4LineFilter  # noqa: E402
from operators.recipe import shared_data_dir  # noqa: E402
from operators.text_stats import reset, spacy_words  # noqa: E402

PEER = REPO / "benchmarks" / "peers" / "datatrove"
FILTERS = ("gopher_quality", "gopher_repetition", "fineweb_quality", "c4_quality")  # C4 rewrites text: last
DATATROVE_REASONS = {
    "gopher_too_few_words": "gopher_short_doc",
    "gopher_too_many_words": "gopher_long_doc",
    "gopher_short_words": "gopher_below_avg_threshold",
    "gopher_long_words": "gopher_above_avg_threshold",
    "gopher_too_many_hashes": "gopher_too_many_hashes",
    "gopher_too_many_ellipses": "gopher_too_many_ellipsis",
    "gopher_too_many_bullet_lines": "gopher_too_many_bullets",
    "gopher_too_many_ellipsis_lines": "gopher_too_many_end_ellipsis",
    "gopher_too_few_alpha_words": "gopher_below_alpha_threshold",
    "gopher_too_few_stop_words": "gopher_enough_stop_words",
    "gopher_empty": "empty",
    **{f"gopher_{k}": k for k in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")},
    **{f"gopher_top_{n}gram": f"top_{n}_gram" for n in (2, 3, 4)},
    **{f"gopher_dup_{n}gram": f"duplicated_{n}_n_grams" for n in range(5, 11)},
    "c4_lorem_ipsum": "lorem_ipsum",
    "c4_curly_bracket": "curly_bracket",
    "c4_too_few_sentences": "too_few_sentences",
    "fineweb_empty": "empty",
    "fineweb_line_punct_ratio": "line_punct_ratio",
    "fineweb_short_line_ratio": "short_line_ratio",
    "fineweb_char_dup_ratio": "char_dup_ratio",
    "fineweb_list_ratio": "list_ratio",
}


def datatrove_kwargs(name: str, p: dict) -> dict:
    """Our params of filter ``name`` as datatrove constructor arguments."""
    if name == "gopher_quality":
        return {
            "min_doc_words": p["min_words"],
            "max_doc_words": p["max_words"],
            "min_avg_word_length": p["min_mean_word_length"],
            "max_avg_word_length": p["max_mean_word_length"],
            "max_symbol_word_ratio": p["max_symbol_word_ratio"],
            "max_bullet_lines_ratio": p["max_bullet_lines_ratio"],
            "max_ellipsis_lines_ratio": p["max_ellipsis_lines_ratio"],
            "max_non_alpha_words_ratio": p["min_alpha_words_ratio"],
            "min_stop_words": p["min_stop_words"],
            "stop_words": list(p["stop_words"]),
        }
    if name == "gopher_repetition":
        return {
            **{
                k: p[f"max_{k}"] for k in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac")
            },
            "top_n_grams": [[n, p[f"max_top_{n}gram_char_frac"]] for n in (2, 3, 4)],
            "dup_n_grams": [[n, p[f"max_dup_{n}gram_char_frac"]] for n in range(5, 11)],
        }
    if name == "c4_quality":
        return {"split_paragraph": True, **p}
    kwargs = {k: v for k, v in p.items() if not (k == "stop_chars" and v is None)}
    return kwargs


def load_documents(data: Path, limit: int | None) -> tuple[list[dict], dict]:
    """Domain records and trafilatura text of the crawl sample; returns (docs, counts by origin)."""
    docs: list[dict] = []
    counts: dict[str, int] = {}
    for path in sorted((data / "domains").glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        docs += [{"id": str(r["id"]), "text": r["text"]} for r in rows]
        counts[path.stem] = len(rows)
    crawl, pages = extract_crawl(data / "web" / "crawl_sample.warc.gz")
    docs += crawl
    counts["crawl_sample"] = len(crawl)
    counts["crawl_pages"] = pages
    if limit:  # an even spread over all origins
        docs = docs[:: max(1, len(docs) // limit)][:limit]
    return docs, counts


def extract_crawl(path: Path) -> tuple[list[dict], int]:
    """trafilatura (default options) over every HTML response of a WARC; pages without text skipped."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    docs, pages = [], 0
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "response":
                continue
            pages += 1
            text = trafilatura.extract(record.content_stream().read())
            if text:
                docs.append({"id": f"crawl:{pages}:{record.rec_headers.get_header('WARC-Target-URI')}", "text": text})
    return docs, pages


def run_datatrove(docs: list[dict], params: dict, work: Path, python: Path, combined: bool) -> dict:
    docs_path, params_path, out_path, tokens_path = (
        work / n for n in ("docs.jsonl", "params.json", "dt.json", "tok.jsonl")
    )
    with open(docs_path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    params_path.write_text(json.dumps({name: datatrove_kwargs(name, params[name]) for name in FILTERS}))
    cmd = [str(python), str(PEER / "run_filters.py"), str(docs_path), str(params_path), str(out_path)]
    cmd += ["--tokens", str(tokens_path)] + (["--combined"] if combined else [])
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "LOGURU_LEVEL": "WARNING"})
    result = json.loads(out_path.read_text())
    with open(tokens_path, encoding="utf-8") as fh:
        result["tokens"] = [json.loads(line)["words"] for line in fh]
    return result


def run_ours(docs: list[dict], batch_size: int, combined: bool) -> dict:
    texts = np.array([d["text"] for d in docs], dtype=object)
    ids = np.array([d["id"] for d in docs], dtype=object)
    batches = [
        {"id": ids[i : i + batch_size], "text": texts[i : i + batch_size]} for i in range(0, len(docs), batch_size)
    ]
    ops = {name: get_operator(name)() for name in FILTERS}
    line_filter = C4LineFilter(ops["c4_quality"].params.model_dump(include=set(C4LineFilter.Params.model_fields)))
    out: dict = {}
    for name, op in ops.items():
        reset()
        start = time.perf_counter()
        reasons, hashes = [], []
        for batch in batches:
            decided = op.decide({**batch, **op.annotate(batch)})
            reasons += decided.tolist()
            if name == "c4_quality":
                kept = {k: v[decided == ""] for k, v in batch.items()}
                rewritten = iter(line_filter.map(kept)["text"]) if len(kept["id"]) else iter(())
                hashes += [hashlib.sha1(next(rewritten).encode()).hexdigest() if not r else "" for r in decided]
        out[name] = {"reasons": reasons, "seconds": time.perf_counter() - start, "text_sha1": hashes}
    if combined:
        reset()
        start = time.perf_counter()
        for batch in batches:
            signals = {k: v for op in ops.values() for k, v in op.annotate(batch).items()}
            decided = [op.decide({**batch, **signals}) for op in ops.values()]
            alive = np.all([d == "" for d in decided], axis=0)
            if alive.any():
                line_filter.map({k: v[alive] for k, v in batch.items()})
        out["combined"] = {"seconds": time.perf_counter() - start}
    return out


def compare(docs: list[dict], ours: dict, theirs: dict) -> dict:
    n = len(docs)
    report: dict = {}
    for name in FILTERS:
        mine, ref = ours[name]["reasons"], theirs[name]["reasons"]
        same = [(a == "") == (b == "") for a, b in zip(mine, ref, strict=True)]
        both = [(a, b) for a, b in zip(mine, ref, strict=True) if a and b]
        entry = {
            "agreement": round(sum(same) / n, 6),
            "reason_agreement": round(sum(DATATROVE_REASONS.get(a) == b for a, b in both) / max(len(both), 1), 6),
            "ours_docs_per_s": round(n / ours[name]["seconds"], 1),
            "datatrove_docs_per_s": round(n / theirs[name]["seconds"], 1),
            "speedup": round(theirs[name]["seconds"] / ours[name]["seconds"], 2),
            "ours_dropped": sum(1 for r in mine if r),
            "datatrove_dropped": sum(1 for r in ref if r),
            "disagreements": [
                {"id": docs[i]["id"], "ours": mine[i], "datatrove": ref[i]} for i in range(n) if not same[i]
            ][:20],
        }
        if name == "c4_quality":
            kept = [(a, b) for a, b in zip(ours[name]["text_sha1"], theirs[name]["text_sha1"], strict=True) if a and b]
            entry["text_agreement"] = round(sum(a == b for a, b in kept) / max(len(kept), 1), 6)
        report[name] = entry
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--data", default=str(shared_data_dir()), help="the shared data folder")
    parser.add_argument("--limit", type=int, default=None, help="use N documents spread evenly over all")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-combined", action="store_true", help="skip the all-four-filters timing")
    parser.add_argument("--peer-python", default=str(PEER / "venv" / "bin" / "python"))
    args = parser.parse_args()
    if not Path(args.peer_python).is_file():
        sys.exit(f"{args.peer_python} not found: run `bash {PEER / 'setup.sh'}` first")
    docs, counts = load_documents(Path(args.data), args.limit)
    params = {name: get_operator(name)().params.model_dump(mode="json") for name in FILTERS}
    with tempfile.TemporaryDirectory() as tmp:
        theirs = run_datatrove(docs, params, Path(tmp), Path(args.peer_python), not args.no_combined)
    ours = run_ours(docs, args.batch_size, not args.no_combined)
    words = spacy_words()
    identical = sum(words.words(d["text"]) == ref for d, ref in zip(docs, theirs["tokens"], strict=True))
    result = {
        "docs": len(docs),
        "sources": counts,
        "filters": compare(docs, ours, theirs),
        "tokenizer": {"docs_with_identical_words": round(identical / len(docs), 6)},
        "params": params,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    if not args.no_combined:
        result["combined"] = {
            "ours_docs_per_s": round(len(docs) / ours["combined"]["seconds"], 1),
            "datatrove_docs_per_s": round(len(docs) / theirs["combined"]["seconds"], 1),
        }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    summary = {
        k: {m: v[m] for m in ("agreement", "ours_docs_per_s", "datatrove_docs_per_s")}
        for k, v in result["filters"].items()
    }
    print(json.dumps({"filters": summary, "combined": result.get("combined")}, indent=2))


if __name__ == "__main__":
    main()
