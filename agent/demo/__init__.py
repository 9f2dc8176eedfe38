"""The demo corpus that ``dataplan demo`` runs on, built from this Python installation: ``corpus``
(``build_demo_corpus``: code, docs, licences, a held-out target) and ``web`` (its synthetic noisy
WARC crawl). Not agent tools: nothing here is dispatched by a planner."""
