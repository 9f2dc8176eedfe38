"""Drop documents by id: held-out evaluation slices, takedown lists, manual exclusions."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Mapper, OperatorParams, register


@cache
def _load_ids(path: str) -> frozenset[str]:
    return frozenset(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())


@register
class IdFilter(Mapper):
    """A mapper that only drops: documents whose ``id`` is listed in ``ids_file`` (one id per line) with the reason
    ``<reason>`` (default ``excluded``). The search uses it to keep held-out target documents out of
    every training set. Name the file by its content hash when it may change: the path is part of
    the cache key, the content is not."""

    name = "id_filter"
    reasons = ("excluded", "held_out")

    class Params(OperatorParams):
        ids_file: str = Field(..., description="text file, one document id per line")
        reason: str = Field("excluded", pattern=r"^[a-z_]+(:[\w\-.]+)?$")

    def map(self, batch: Batch) -> Batch:
        ids = _load_ids(self.params.ids_file)
        hit = np.fromiter((i in ids for i in batch["id"]), dtype=bool, count=len(batch["id"]))
        return {"_reason": np.where(hit, self.params.reason, "").astype(object)}
