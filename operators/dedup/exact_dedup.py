"""Exact duplicate removal by normalised-text hash and by URL."""

from __future__ import annotations

import hashlib
import unicodedata

import numpy as np
from pydantic import Field

from operators.core.base import Batch, GlobalOperator, OperatorParams, StepContext, register
from operators.dedup.clusters import candidate_edges, mark_duplicates, node_names, resolve_clusters
from operators.text.text_hashing import words

TEXT_KEY = "_text_sha"
URL_KEY = "_url_sha"


def _sha64(value: str) -> int:
    return int.from_bytes(hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def normalized(text: str) -> str:
    """NFKC, lower-cased words joined by one space: case, punctuation and spacing do not count."""
    return " ".join(words(unicodedata.normalize("NFKC", text)))


@register
class ExactDedup(GlobalOperator):
    """Removes exact duplicates: documents whose normalised text (NFKC, lower-case, punctuation
    and whitespace removed; as CCNet/datatrove's exact dedup with normalisation) or whose
    non-empty ``url`` equals another document's. Each group keeps the lowest id; the others
    are dropped as ``exact_duplicate_of:<kept id>``. Hashes (sha256, 64 bits) are cached."""

    name = "exact_dedup"
    reasons = ("exact_duplicate_of",)
    annotate_params = ("normalize",)

    class Params(OperatorParams):
        normalize: bool = Field(True, description="hash the normalised text (False: the raw text)")
        by_text: bool = True
        by_url: bool = True

    def annotate(self, batch: Batch) -> Batch:
        prep = normalized if self.params.normalize else str
        text = [format(_sha64(prep(str(t))), "016x") for t in batch["text"]]
        url = [format(_sha64(u), "016x") if u else "" for u in batch["url"].astype(str)]
        return {TEXT_KEY: np.array(text, dtype=object), URL_KEY: np.array(url, dtype=object)}

    def apply(self, ds, ctx: StepContext):
        cols = [c for c, on in ((TEXT_KEY, self.params.by_text), (URL_KEY, self.params.by_url)) if on]
        # each pass reads the parent stage from disk again: nothing of the corpus is held in memory
        keys = ds.select_columns(["id", "source", *cols]).map_batches(
            _key_rows, fn_kwargs={"columns": cols}, batch_format="numpy"
        )
        dropped, kept = resolve_clusters(candidate_edges(keys, ctx.num_blocks))
        return mark_duplicates(ds, dropped, kept, "exact_duplicate", blank=(TEXT_KEY, URL_KEY))


def _key_rows(batch: Batch, columns: list[str]) -> Batch:
    names = node_names(batch)
    keys, docs = [], []
    for salt, col in enumerate(columns):
        present = batch[col].astype(str) != ""
        values = np.array([int(h, 16) for h in batch[col][present]], dtype=np.uint64)
        keys.append(values ^ np.uint64(salt))  # text and URL hashes never share a bucket by accident
        docs.append(names[present])
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    return {"key": key, "doc": np.concatenate(docs) if docs else names[:0], "rank": np.zeros(len(key))}
