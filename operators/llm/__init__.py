"""Model-based operators (LLM quality scores, rephrasing, PII redaction) and their backends.

Importing this package registers its operators."""

from operators.llm import llm_backends, llm_ops

__all__ = ["llm_backends", "llm_ops"]
