"""Selection: keep the documents most like a target (DSIR, perplexity, a quality classifier).

Importing this package registers its operators."""

from operators.selection import dsir, perplexity, quality_classifier

__all__ = ["dsir", "perplexity", "quality_classifier"]
