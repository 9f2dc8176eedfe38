"""Runs datatrove's heuristic quality filters over a JSONL file; executed with the peer venv's python.

    venv/bin/python run_filters.py {each|combined|chain|tokens} DOCS.jsonl PARAMS.json OUT.json

DOCS.jsonl has one ``{"id", "text"}`` per line; PARAMS.json maps filter name -> constructor kwargs
(``gopher_quality``, ``gopher_repetition``, ``c4_quality``, ``fineweb_quality``).

- ``each``: per filter, the reason of every document ("" = kept) and the seconds spent in
  ``filter()`` alone (documents created beforehand); for C4 also the SHA-1 of each kept
  document's rewritten text.
- ``combined``: the seconds for all filters applied to every document in turn (a document's words
  are tokenised once then: datatrove caches ``split_into_words``); C4 must come last.
- ``chain``: the filters in PARAMS.json's order as one pipeline (each sees the text the previous one
  left: C4 rewrites it); per document ``<filter>:<reason>`` of the first that drops it, "" if kept,
  and the SHA-1 of each kept document's final text.
- ``tokens``: spaCy's words per document (``split_into_words``), one JSON list per line.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.text import split_into_words

FILTERS = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}


def _reason(result) -> str:
    if isinstance(result, tuple):
        keep, reason = result
        return "" if keep else (reason or "dropped")
    return "" if result else "dropped"


def _kwargs(kwargs: dict) -> dict:
    return {k: tuple(map(tuple, v)) if k in ("top_n_grams", "dup_n_grams") else v for k, v in kwargs.items()}


def main(argv: list[str]) -> None:
    mode, docs_path, params_path, out_path = argv[:4]
    rows = [json.loads(line) for line in open(docs_path, encoding="utf-8")]
    params = json.load(open(params_path))
    split_into_words("warm up the spaCy tokenizer.")
    if mode == "tokens":
        with open(out_path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(split_into_words(r["text"])) + "\n" for r in rows)
        return
    out = {}
    if mode == "each":
        for name, kwargs in params.items():
            flt = FILTERS[name](**_kwargs(kwargs))
            docs = [Document(text=r["text"], id=str(r["id"])) for r in rows]
            start = time.perf_counter()
            results = [flt.filter(d) for d in docs]
            out[name] = {"reasons": [_reason(r) for r in results], "seconds": time.perf_counter() - start}
            if name == "c4_quality":
                out[name]["text_sha1"] = [
                    hashlib.sha1(d.text.encode()).hexdigest() if not _reason(r) else "" for d, r in zip(docs, results)
                ]
    elif mode == "chain":
        filters = {name: FILTERS[name](**_kwargs(kwargs)) for name, kwargs in params.items()}
        reasons, hashes = [], []
        for r in rows:
            doc = Document(text=r["text"], id=str(r["id"]))
            found = (f"{name}:{_reason(flt.filter(doc))}" for name, flt in filters.items())
            reasons.append(next((x for x in found if not x.endswith(":")), ""))
            hashes.append("" if reasons[-1] else hashlib.sha1(doc.text.encode()).hexdigest())
        out["chain"] = {"reasons": reasons, "text_sha1": hashes}
    else:
        filters = [FILTERS[name](**_kwargs(kwargs)) for name, kwargs in params.items()]
        docs = [Document(text=r["text"], id=str(r["id"])) for r in rows]
        start = time.perf_counter()
        for doc in docs:
            for flt in filters:
                flt.filter(doc)
        out["combined"] = {"seconds": time.perf_counter() - start}
    with open(out_path, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
