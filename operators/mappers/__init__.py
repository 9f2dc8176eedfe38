"""Mappers: rewrite text (normalisation, HTML extraction, PII redaction) or drop by id.

Importing this package registers its operators."""

from operators.mappers import html_extract, id_filter, pii_redact, text_normalize

__all__ = ["html_extract", "id_filter", "pii_redact", "text_normalize"]
