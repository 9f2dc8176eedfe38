"""Readers: bytes on disk -> documents, and unreadable records -> ledger entries.

Importing this package registers its operators."""

from operators.readers import auto, formats, reference, warc_reader

__all__ = ["auto", "formats", "reference", "warc_reader"]
