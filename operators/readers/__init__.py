"""Readers: bytes on disk -> documents, and unreadable records -> ledger entries.

Importing this package registers its operators."""

from operators.readers import formats, reference, warc_reader

__all__ = ["formats", "reference", "warc_reader"]
