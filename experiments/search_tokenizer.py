"""The search's BPE tokenizer, fitted once: when the search starts (``proxy.tokenizer: bpe``) or when
its confirmation first needs one (a count-model search is confirmed by BPE ``nano`` proxies).

It is fitted (``evaluators.bpe_tokenizer.fit_bpe``, 4,096 ids) on the first 256 KiB of every
source's raw documents, read as the recipe reads them, and of every prepared target, so no source
or target is spelled out byte by byte. It is saved as ``DIR/tokenizer.json`` and its sha256 is
recorded in ``search.json`` and the MLflow parent run; every trial and confirmation loads it from
there (``SearchConfig.tokenizer``, which refuses a file whose hash changed).
"""

from __future__ import annotations

from pathlib import Path

from evaluators.bpe_tokenizer import DEFAULT_VOCAB, SAMPLE_BYTES, BpeTokenizer, fit_bpe, head
from evaluators.targets import Target, source_documents
from experiments.search_config import ProxySpec, SearchConfig
from operators import Recipe

TOKENIZER_FILE = "tokenizer.json"


def fit_search_tokenizer(recipe: Recipe, targets: list[Target], folder: Path) -> BpeTokenizer:
    """Fit on the head of each source (in recipe order) and each target; save to ``folder``."""
    texts = []
    for src in recipe.sources:
        docs = source_documents(recipe, src.name, f"sources[{src.name}]")
        texts += head((text for _, text in docs), SAMPLE_BYTES)
    for target in targets:
        texts += head(target.file_texts(), SAMPLE_BYTES)
    tokenizer = fit_bpe(texts, DEFAULT_VOCAB)
    tokenizer.save(folder / TOKENIZER_FILE)
    return tokenizer


def ensure_search_tokenizer(config: SearchConfig, folder: Path, *proxies: ProxySpec | None) -> None:
    """Fit the search's BPE into ``folder`` and record it in ``search.json`` when one of ``proxies``
    (the search's, its confirmation's) trains on BPE and the search has none yet. The fit is
    deterministic, so a search confirmed later fits the tokenizer its start would have."""
    if config.tokenizer_file is not None or not any(p and p.tokenizer == "bpe" for p in proxies):
        return
    config.tokenizer_sha256 = fit_search_tokenizer(config.base_recipe(), config.targets, folder).sha256
    config.tokenizer_file = str(folder / TOKENIZER_FILE)
    config.save(folder)
