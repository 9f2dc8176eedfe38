"""Our heuristic quality filters against datatrove's, side by side on the same documents.

    bash benchmarks/peers/datatrove/setup.sh          # once: datatrove + spaCy in their own venv
    python benchmarks/filters.py --json benchmarks/out/filters.json

Documents: every ``domains/*.jsonl`` record of the shared data plus the text trafilatura (defaults)
extracts from each HTML response of ``web/crawl_sample.warc.gz``. datatrove runs in its venv in one
subprocess per measurement (``peers/datatrove/run_filters.py``), ours in this process a batch at a
time with the tokeniser's lexicon cleared first (both start cold); the two sides alternate filter by
filter. Both are single processes on one core, timed around the filtering alone (no I/O). Parameters are matched: datatrove
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

from operators import get_operator, shared_data_dir  # noqa: E402
from operators.filters.c4_quality import C4LineFilter  # noqa: E402
from operators.text.text_stats import reset, spacy_words  # noqa: E402

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


class Datatrove:
    """datatrove in its venv, one subprocess per measurement (``peers/datatrove/run_filters.py``)."""

    def __init__(self, python: Path, work: Path, docs: list[dict], params: dict) -> None:
        self.python, self.work, self.params = python, work, params
        self.docs_path = work / "docs.jsonl"
        with open(self.docs_path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d) + "\n" for d in docs)

    def run(self, mode: str, names: tuple[str, ...]) -> dict:
        params_path, out_path = self.work / "params.json", self.work / "out.json"
        params_path.write_text(json.dumps({name: datatrove_kwargs(name, self.params[name]) for name in names}))
        cmd = [str(self.python), str(PEER / "run_filters.py"), mode, str(self.docs_path), str(params_path)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGURU_LEVEL": "WARNING"}
        subprocess.run([*cmd, str(out_path)], check=True, env=env)
        if mode == "tokens":
            with open(out_path, encoding="utf-8") as fh:
                return {"tokens": [json.loads(line) for line in fh]}
        return json.loads(out_path.read_text())


def batches_of(docs: list[dict], batch_size: int) -> list[dict[str, np.ndarray]]:
    texts = np.array([d["text"] for d in docs], dtype=object)
    ids = np.array([d["id"] for d in docs], dtype=object)
    return [{"id": ids[i : i + batch_size], "text": texts[i : i + batch_size]} for i in range(0, len(docs), batch_size)]


def run_ours(name: str, batches: list[dict[str, np.ndarray]]) -> dict:
    """One filter over all batches from a cold start; C4 includes its line removal (datatrove's C4
    filter rewrites the text of the documents it keeps in the same pass)."""
    op = get_operator(name)()
    line_filter = C4LineFilter(op.params.model_dump(include=set(C4LineFilter.Params.model_fields)))
    reset()
    start = time.perf_counter()
    reasons: list[str] = []
    rewritten: list[np.ndarray] = []
    for batch in batches:
        decided = op.decide({**batch, **op.annotate(batch)})
        reasons += decided.tolist()
        if name == "c4_quality":
            rewritten.append(line_filter.map({k: v[decided == ""] for k, v in batch.items()})["text"])
    seconds = time.perf_counter() - start
    texts = iter(t for part in rewritten for t in part)
    hashes = [hashlib.sha1(next(texts).encode()).hexdigest() if not r else "" for r in reasons] if rewritten else []
    return {"reasons": reasons, "seconds": seconds, "text_sha1": hashes}


def run_ours_combined(batches: list[dict[str, np.ndarray]]) -> dict:
    """All four filters per batch, sharing the batch's words and lines, then C4's line removal."""
    ops = [get_operator(name)() for name in FILTERS]
    line_filter = C4LineFilter()
    reset()
    start = time.perf_counter()
    for batch in batches:
        signals = {k: v for op in ops for k, v in op.annotate(batch).items()}
        alive = np.all([op.decide({**batch, **signals}) == "" for op in ops], axis=0)
        line_filter.map({k: v[alive] for k, v in batch.items()})
    return {"seconds": time.perf_counter() - start}


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
    batches = batches_of(docs, args.batch_size)
    ours: dict = {}
    theirs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        peer = Datatrove(Path(args.peer_python), Path(tmp), docs, params)
        for name in FILTERS:  # interleaved, so that load from elsewhere hits both sides alike
            theirs.update(peer.run("each", (name,)))
            ours[name] = run_ours(name, batches)
        if not args.no_combined:
            theirs.update(peer.run("combined", FILTERS))
            ours["combined"] = run_ours_combined(batches)
        reference_words = peer.run("tokens", FILTERS)["tokens"]
    words = spacy_words()
    identical = sum(words.words(d["text"]) == ref for d, ref in zip(docs, reference_words, strict=True))
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
