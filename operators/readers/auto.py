"""The ``auto`` reader: a folder or glob of mixed formats, each file read by the reader its extension
names (``.jsonl`` by ``jsonl``, ``.parquet`` by ``parquet``, ``.txt`` by ``text``, ``.warc.gz`` by
``warc``; see ``operators.core.source_files``). A source without ``format:`` whose files name
several readers gets it; ``format: auto`` asks for it. Files no reader claims are not read (the
recipe warns about them when it lists the source's files).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ConfigDict, model_validator

from operators.core.base import Operator, OperatorParams, Reader, register
from operators.core.source_files import reader_for, readers
from operators.readers.formats import READ_REASONS, rejected
from operators.readers.warc_reader import WarcReader


class AutoParams(OperatorParams):
    """Any reader's params (``text_field``, ``max_record_bytes``, ...): each file's reader takes the
    ones it knows, at its own defaults otherwise. A name no reader knows is an error."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _known_to_some_reader(self) -> AutoParams:
        given = self.model_extra or {}
        members = [c for c in readers() if c.name != AutoReader.name]
        unknown = sorted(k for k in given if not any(k in c.Params.model_fields for c in members))
        if unknown:
            allowed = sorted({f for c in members for f in c.Params.model_fields})
            raise ValueError(f"{unknown} are not params of any reader; allowed: {allowed}")
        for cls in members:
            cls.Params.model_validate(params_for(cls, given))
        return self


def params_for(cls: type[Operator], params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that reader ``cls`` takes."""
    return {k: v for k, v in params.items() if k in cls.Params.model_fields}


@register
class AutoReader(Reader):
    """Mixed formats: each file is read by the reader its extension names (JSONL, Parquet, text, WARC);
    reader params go to the readers that take them."""

    name = "auto"
    extensions = ()
    reasons = tuple(dict.fromkeys(READ_REASONS + WarcReader.reasons))
    Params = AutoParams

    @classmethod
    def claims(cls, path: str) -> bool:
        return reader_for(path) is not None

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        cls = reader_for(path)
        if cls is None or cls is AutoReader:
            yield rejected(path, 0, "unreadable_file", "no reader reads this file's extension")
            return
        reader = cls(params_for(cls, self.params.model_extra or {}))
        yield from reader.read(path, source)  # type: ignore[attr-defined]
