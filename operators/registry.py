"""Imports the built-in operator modules so that their ``@register`` decorators run.

Add a module here when you add operators.
"""

import importlib

BUILTIN_MODULES = (
    "operators.readers",
    "operators.text_normalize",
    "operators.length_filter",
    "operators.gopher_quality",
    "operators.gopher_repetition",
    "operators.c4_quality",
    "operators.fineweb_quality",
)

for _module in BUILTIN_MODULES:
    importlib.import_module(_module)
