"""Imports the built-in operator modules so that their ``@register`` decorators run.

Add a module here when you add operators.
"""

import importlib

BUILTIN_MODULES = (
    "operators.readers",
    "operators.text_normalize",
    "operators.length_filter",
    "operators.id_filter",
    "operators.warc_reader",
    "operators.html_extract",
    "operators.url_filter",
    "operators.language_id",
    "operators.pii_redact",
    "operators.exact_dedup",
    "operators.minhash_dedup",
    "operators.soft_dedup",
    "operators.semantic_dedup",
    "operators.dsir",
    "operators.quality_classifier",
    "operators.perplexity",
    "operators.decontaminate",
    "operators.gopher_quality",
    "operators.gopher_repetition",
    "operators.c4_quality",
    "operators.fineweb_quality",
    "operators.llm_ops",
)

for _module in BUILTIN_MODULES:
    importlib.import_module(_module)
