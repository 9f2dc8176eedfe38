"""Profiling: what is in a set of sources (sizes, languages, duplicates, filter pass rates).

No operators here; it runs the registered ones on a sample."""
