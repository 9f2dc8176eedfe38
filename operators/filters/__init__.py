"""Filters: per-document signals computed once, then a cheap keep/drop decision with a reason.

Importing this package registers its operators."""

from operators.filters import (
    c4_quality,
    decontaminate,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
    language_id,
    length_filter,
    url_filter,
)

__all__ = [
    "c4_quality",
    "decontaminate",
    "fineweb_quality",
    "gopher_quality",
    "gopher_repetition",
    "language_id",
    "length_filter",
    "url_filter",
]
