"""Evaluation-set decontamination by word 13-gram overlap, and the n-gram index it shares.

GPT-3 (Brown et al. 2020, appendix C) and PaLM drop a training document that shares any 13-gram
of lower-cased words with an evaluation example. The index here is the set of 64-bit word
n-gram hashes of every record of an evaluation set (``operators.text.text_hashing``, stable across
processes); a record's text is all of its string fields (query, choices, context, answer, ...)
except ``id``/``benchmark`` (``operators.readers.texts``, ``records=True``: unreadable records are
skipped, counted and logged when the recipe is validated). The proxy evaluators use the same
functions for their per-set contamination report, so what is reported and what is dropped are the
same n-grams.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from operators.core.base import Batch, Filter, OperatorParams, register
from operators.core.recipe import expand_uri
from operators.readers.texts import TextSet, read_text_set
from operators.text.text_hashing import ngram_hashes, word_hashes, words

NGRAM = 13


def doc_ngrams(text: str, n: int = NGRAM, memo: dict[str, int] | None = None) -> np.ndarray:
    """The distinct word n-gram hashes of ``text`` (one hash of all words when it is shorter)."""
    tokens = words(text)
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(ngram_hashes(word_hashes(tokens, {} if memo is None else memo), n))


def ngram_index(texts: list[str], n: int = NGRAM) -> np.ndarray:
    """Sorted distinct n-gram hashes of a collection of texts."""
    memo: dict[str, int] = {}
    parts = [doc_ngrams(t, n, memo) for t in texts]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def count_in(hashes: np.ndarray, index: np.ndarray) -> int:
    """How many of ``hashes`` occur in the sorted ``index``."""
    if not len(index) or not len(hashes):
        return 0
    at = np.minimum(np.searchsorted(index, hashes), len(index) - 1)
    return int((index[at] == hashes).sum())


@functools.cache
def _eval_set(path: str, mtime: float) -> TextSet:
    """An evaluation file's record texts, read (and its unreadable records reported) once per process."""
    del mtime  # cache key only: a rewritten file is read again
    return read_text_set([path], records=True).report(f"decontaminate: evaluation set {path}")


@functools.cache
def _cached_index(path: str, mtime: float, n: int) -> np.ndarray:
    return ngram_index(_eval_set(path, mtime).texts, n)


def eval_set_index(path: str | Path, n: int = NGRAM) -> np.ndarray:
    """The n-gram index of an evaluation file, built once per process."""
    path = os.path.abspath(path)
    return _cached_index(path, os.path.getmtime(path), n)


@register
class Decontaminate(Filter):
    """Drops documents that share at least ``min_overlap`` word ``n``-grams (default 13, GPT-3) with
    an evaluation set. ``eval_sets`` maps a set name to its JSONL file (``${DATAPLAN_SHARED_DATA}``
    expands). Signals: ``contam_set`` (the set with the most shared n-grams, "" for none) and
    ``contam_ngrams`` (how many); the drop reason is ``contaminated:<set>``."""

    name = "decontaminate"
    reasons = ("contaminated",)
    signals = {"contam_set": "str", "contam_ngrams": "int64"}
    annotate_params = ("eval_sets", "n")

    class Params(OperatorParams):
        eval_sets: dict[str, str] = Field(default_factory=dict, description="set name -> JSONL path")
        n: int = Field(NGRAM, ge=1, description="n-gram length in words (GPT-3: 13)")
        min_overlap: int = Field(1, ge=1, description="shared n-grams that make a document contaminated")

        @field_validator("eval_sets")
        @classmethod
        def _files_exist(cls, sets: dict[str, str]) -> dict[str, str]:
            for name, path in sets.items():
                if not path.startswith(("/", "~", "$")):
                    raise ValueError(f"eval_sets.{name}: {path!r} must be absolute (or start with ~ or ${{VAR}})")
                file = expand_uri(path, Path("/"))
                if not os.path.isfile(file):
                    raise ValueError(f"eval_sets.{name}: {file} is not a file")
                _eval_set(os.path.abspath(file), os.path.getmtime(file))  # reports unreadable records here
            return sets

    def indexes(self) -> dict[str, np.ndarray]:
        return {
            name: eval_set_index(expand_uri(path, Path("/")), self.params.n)
            for name, path in self.params.eval_sets.items()
        }

    def annotate(self, batch: Batch) -> Batch:
        indexes = self.indexes()
        memo: dict[str, int] = {}
        best_set = np.full(len(batch["text"]), "", dtype=object)
        best = np.zeros(len(batch["text"]), dtype=np.int64)
        for i, text in enumerate(batch["text"]):
            grams = doc_ngrams(str(text), self.params.n, memo)
            for name, index in indexes.items():
                shared = count_in(grams, index)
                if shared > best[i]:
                    best[i], best_set[i] = shared, name
        return {"contam_set": best_set, "contam_ngrams": best}

    def decide(self, batch: Batch) -> np.ndarray:
        hit = batch["contam_ngrams"] >= self.params.min_overlap
        return np.where(hit, np.char.add("contaminated:", batch["contam_set"].astype(str)), "").astype(object)
