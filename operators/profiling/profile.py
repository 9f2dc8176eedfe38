"""Data profiling: what a planner needs to know about a raw source before proposing a recipe.

``profile_source`` reads a bounded, deterministic sample of a source with its registered reader
(bottom-k by hashed id, see ``operators.profiling.profile_sample``) and reports, as a ``SourceProfile``:

- document count (exact when every file was scanned within ``max_scan_docs``, else extrapolated by
  bytes or a lower bound; ``doc_count_method`` says which), input bytes, records the reader
  rejected, and an estimate of the text bytes;
- HTML/WARC detection (the reader is ``warc``, or most sampled texts look like HTML by tag density);
  when detected, every statistic below is computed on the main text ``html_extract`` gives;
- length quantiles (characters and whitespace words: p5/p25/p50/p75/p95);
- language distribution (shares of ``language_id``'s ``lang`` signal, py3langid);
- exact and near-duplicate rates within the sample (MinHash LSH, 5-word shingles, Jaccard 0.8);
  a sample holds a fraction of each duplicate cluster, so on a partial sample this is a lower bound;
  exact duplicates are also counted over every scanned document;
- pass rate and top drop reasons of every registered ``Filter`` whose params all have defaults, run
  in-process (``annotate`` then ``decide``) at those defaults, and percentiles/mean/std of each of
  their numeric signals, so thresholds can be set by percentile or k-sigma;
- PII hit rate (share of documents where ``pii_redact`` would replace something, by kind);
- similarity to each target set (DSIR importance weights, Xie et al. 2023; see ``profile_stats``),
  with the share of target-like documents that stand out of the source (a diluted target).

Everything is a function of the files, the seed and the sample size: the same inputs give the same
JSON. Figures (length histogram, language bars) are written when ``fig_dir`` is given.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from operators.core.base import Batch, Filter, all_operators, get_operator
from operators.profiling.profile_figures import language_bars, length_histogram
from operators.profiling.profile_sample import (
    HTML_SOURCE_SHARE,
    MAX_SCAN_DOCS,
    SAMPLE_METHOD,
    SourceSample,
    extract_html,
    looks_like_html,
    sample_source,
    to_batch,
)
from operators.profiling.profile_stats import (
    LENGTH_QUANTILES,
    MINHASH_NGRAM,
    MINHASH_PERMS,
    MINHASH_THRESHOLD,
    dsir_similarity,
    duplicate_stats,
    hashed_ngrams,
    quantiles,
    signal_summary,
)

NUMERIC_SIGNALS = ("float64", "int64")
TARGET_DOCS = 2000
TOP_REASONS = 5


class LengthQuantiles(BaseModel):
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float


class SignalStats(BaseModel):
    """Distribution of one numeric signal over the sample (finite values only; ``n`` of them)."""

    p1: float
    p5: float
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    n: int


class HtmlInfo(BaseModel):
    detected_by: str
    """``warc_format`` (read by the ``warc`` reader), ``tag_density`` (most texts look like HTML) or ``none``."""
    html_doc_share: float
    """Share of sampled raw texts that look like HTML pages."""
    extracted: bool
    """True when the text statistics were computed on ``html_extract``'s main text."""
    extraction_dropped: dict[str, int]
    """Sampled pages that yielded no text, by reason."""


class DuplicateStats(BaseModel):
    """Near duplicates within the sample (a lower bound on the source's rate when ``sample_fraction``
    < 1: a sample holds only part of each cluster) and exact duplicates over every scanned document."""

    method: str = "minhash_lsh"
    ngram: int = MINHASH_NGRAM
    num_perm: int = MINHASH_PERMS
    threshold: float = MINHASH_THRESHOLD
    sample_fraction: float
    """Sampled documents / document count."""
    exact_duplicate_docs: int
    exact_duplicate_rate: float
    near_duplicate_docs: int
    """Documents a dedup keeping one per near-duplicate cluster would drop (exact copies included)."""
    scanned_exact_duplicate_docs: int
    """Scanned documents whose raw text repeats an earlier one's (before any HTML extraction)."""
    scanned_exact_duplicate_rate: float


class FilterProfile(BaseModel):
    params: dict[str, Any]
    """The default params it ran with."""
    pass_rate: float | None
    dropped: int
    top_reasons: dict[str, int]
    """Most frequent drop reasons (the code before any ``:`` detail), most frequent first."""
    signals: dict[str, SignalStats]
    error: str | None = None


class TargetSimilarity(BaseModel):
    target_docs: int
    mean_log_weight: float
    mean_log_weight_per_ngram: float
    frac_positive: float
    doc_log_weight: LengthQuantiles
    """Quantiles of the sampled documents' log importance weight per n-gram, each scored by a raw
    model fitted on the other sampled documents (left-one-out; ``profile_stats.target_like``)."""
    target_spread: float
    """Scaled MAD of the target documents' own left-one-out log weights per n-gram times the square
    root of their n-gram counts: how much a target document's weight varies."""
    target_like_share: float
    """Share of sampled documents the target model explains better and that stand 3 spreads above the
    source's median: target-domain documents diluted in the source (a clear share well below 1),
    about 0 for a source that is wholly the target's domain (nothing stands out) or has none of it."""
    target_domain_share: float
    """Share of sampled documents whose weight reaches the 5th percentile of the target documents'
    own: documents that score like the target's, about 1 for a source wholly of its domain."""


class SourceProfile(BaseModel):
    name: str
    uri: str
    format: str
    files: int
    total_bytes: int
    doc_count: int
    doc_count_exact: bool
    doc_count_method: str
    """``exact``, ``extrapolated_from_files``, ``extrapolated_from_record_bytes`` or ``lower_bound``
    (see ``operators.profiling.profile_sample``)."""
    docs_scanned: int
    rejected_records: dict[str, int]
    sample_size: int
    """Documents sampled (before HTML extraction)."""
    sample_method: str = SAMPLE_METHOD
    seed: int
    is_html: bool
    """HTML or WARC: every text statistic below is on ``html_extract``'s main text (``html`` has details)."""
    html: HtmlInfo
    text_docs: int
    """Sampled documents with text to profile (after HTML extraction)."""
    text_bytes_mean: float
    est_text_bytes: int
    """Estimated UTF-8 bytes of (extracted) text in the whole source."""
    chars: LengthQuantiles
    words: LengthQuantiles
    languages: dict[str, float]
    """Language code -> share of the sample, largest first."""
    near_duplicate_rate: float
    """Share of the sample a MinHash dedup would drop (``duplicates`` has details)."""
    duplicates: DuplicateStats
    filters: dict[str, FilterProfile]
    filters_skipped: dict[str, str]
    """Registered filters not run, with why (params without defaults)."""
    pii_rate: float
    """Share of documents in which ``pii_redact`` replaces at least one item."""
    pii_by_kind: dict[str, float]
    """``pii_redact`` signal (``pii_emails``, ``pii_ips``, ``pii_phones``) -> share of documents with one."""
    target_similarity: dict[str, TargetSimilarity]
    figures: dict[str, str]
    """``lengths`` / ``languages`` -> PNG path, when figures were asked for."""


def profile_source(
    name: str,
    uri: str,
    *,
    fmt: str | None = None,
    sample_docs: int = 500,
    seed: int = 0,
    targets: dict[str, list[str]] | None = None,
    fig_dir: str | Path | None = None,
    reader_params: dict[str, Any] | None = None,
    max_scan_docs: int = MAX_SCAN_DOCS,
) -> SourceProfile:
    """Profile one source (a path, glob or folder; ``fmt`` a reader name, inferred when absent) on a
    sample of ``sample_docs`` documents. ``targets`` maps a target set's name to its files (paths or
    globs, each read as ``load_targets`` does). Raises ``RecipeError`` when a source or target
    cannot be resolved (see ``Recipe.input_files``)."""
    return _profile(
        name,
        uri,
        fmt=fmt,
        sample_docs=sample_docs,
        seed=seed,
        target_texts=load_targets(targets or {}, seed=seed),
        fig_dir=fig_dir,
        reader_params=reader_params,
        max_scan_docs=max_scan_docs,
    )


def profile_sources(
    sources: dict[str, str],
    *,
    formats: dict[str, str] | None = None,
    sample_docs: int = 500,
    seed: int = 0,
    targets: dict[str, list[str]] | None = None,
    fig_dir: str | Path | None = None,
    max_scan_docs: int = MAX_SCAN_DOCS,
) -> dict[str, SourceProfile]:
    """``profile_source`` for each ``name -> uri``, in the given order (targets are read once);
    ``formats`` names the reader of some sources."""
    target_texts = load_targets(targets or {}, seed=seed)
    return {
        name: _profile(
            name,
            uri,
            fmt=(formats or {}).get(name),
            sample_docs=sample_docs,
            seed=seed,
            target_texts=target_texts,
            fig_dir=fig_dir,
            reader_params=None,
            max_scan_docs=max_scan_docs,
        )
        for name, uri in sources.items()
    }


def load_targets(targets: dict[str, list[str]], *, seed: int = 0, max_docs: int = TARGET_DOCS) -> dict[str, list[str]]:
    """Target name -> texts: a sample of up to ``max_docs`` documents of each of its files (paths,
    globs or folders, read like sources, HTML reduced to main text)."""
    return {
        name: [text for uri in uris for text in sample_texts(uri, max_docs=max_docs, seed=seed, name=f"target:{name}")]
        for name, uris in sorted(targets.items())
    }


def sample_texts(
    uri: str, *, fmt: str | None = None, max_docs: int = TARGET_DOCS, seed: int = 0, name: str = "source"
) -> list[str]:
    """Texts of a bounded sample of a source (main text when it is HTML/WARC); errors name it ``name``."""
    _, _, batch = _read_sample(name, uri, fmt, None, max_docs, seed, MAX_SCAN_DOCS)
    return list(batch["text"])


def _profile(
    name: str,
    uri: str,
    *,
    fmt: str | None,
    sample_docs: int,
    seed: int,
    target_texts: dict[str, list[str]],
    fig_dir: str | Path | None,
    reader_params: dict[str, Any] | None,
    max_scan_docs: int,
) -> SourceProfile:
    sample, html, batch = _read_sample(name, uri, fmt, reader_params, sample_docs, seed, max_scan_docs)
    texts = list(batch["text"])
    n_chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    n_words = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    scanned_dupes = sample.docs_scanned - len(sample.distinct_texts)
    duplicates = duplicate_stats(texts, seed)
    annotations = {"language_id": get_operator("language_id")().annotate(batch)}  # type: ignore[attr-defined]
    filters, skipped = profile_filters(batch, annotations)
    languages = _shares(annotations["language_id"]["lang"])
    pii_rate, pii_by_kind = _pii(batch)
    features = hashed_ngrams(texts) if target_texts else None
    profile = SourceProfile(
        name=name,
        uri=uri,
        format=sample.fmt,
        files=len(sample.files),
        total_bytes=sample.total_bytes,
        doc_count=sample.doc_count,
        doc_count_exact=sample.doc_count_method == "exact",
        doc_count_method=sample.doc_count_method,
        docs_scanned=sample.docs_scanned,
        rejected_records=dict(sorted(sample.rejected.items())),
        sample_size=len(sample.docs),
        seed=seed,
        is_html=html.detected_by != "none",
        html=html,
        text_docs=len(texts),
        text_bytes_mean=text_bytes / len(texts) if texts else 0.0,
        est_text_bytes=round(text_bytes / len(sample.docs) * sample.doc_count) if sample.docs else 0,
        chars=LengthQuantiles(**quantiles(n_chars, LENGTH_QUANTILES)),
        words=LengthQuantiles(**quantiles(n_words, LENGTH_QUANTILES)),
        languages=languages,
        near_duplicate_rate=duplicates.pop("near_duplicate_rate"),
        duplicates=DuplicateStats(
            **duplicates,
            sample_fraction=len(sample.docs) / sample.doc_count if sample.doc_count else 0.0,
            scanned_exact_duplicate_docs=scanned_dupes,
            scanned_exact_duplicate_rate=scanned_dupes / sample.docs_scanned if sample.docs_scanned else 0.0,
        ),
        filters=filters,
        filters_skipped=skipped,
        pii_rate=pii_rate,
        pii_by_kind=pii_by_kind,
        target_similarity={t: TargetSimilarity(**dsir_similarity(features, tt)) for t, tt in target_texts.items()},
        figures={},
    )
    if fig_dir is not None:
        folder = Path(fig_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w\-.]", "_", name)
        profile.figures = {
            "lengths": length_histogram(name, n_chars, folder / f"{stem}_lengths.png"),
            "languages": language_bars(name, languages, folder / f"{stem}_languages.png"),
        }
    return profile


def profile_filters(batch: Batch, annotations: dict[str, Batch]) -> tuple[dict[str, FilterProfile], dict[str, str]]:
    """Every registered filter with all-default params, run on ``batch`` at those defaults;
    ``annotations`` holds signals already computed at default params (name -> signals) and is
    filled in. Returns the profiles and the filters skipped, with why. A filter that raises is
    reported with its error instead of stopping the profile."""
    profiles: dict[str, FilterProfile] = {}
    skipped: dict[str, str] = {}
    for cls in all_operators():
        if not issubclass(cls, Filter):
            continue
        required = [k for k, f in cls.Params.model_fields.items() if f.is_required()]
        if required:
            skipped[cls.name] = f"params without defaults: {', '.join(required)}"
            continue
        op = cls()
        params = op.params.model_dump(mode="json")
        try:
            if cls.name not in annotations:
                annotations[cls.name] = op.annotate(batch)
            signals = annotations[cls.name]
            reasons = np.asarray(op.decide({**batch, **signals}), dtype=object)
        except Exception as err:  # an operator bug must not hide the rest of the profile
            profiles[cls.name] = FilterProfile(
                params=params,
                pass_rate=None,
                dropped=0,
                top_reasons={},
                signals={},
                error=f"{type(err).__name__}: {err}"[:300],
            )
            continue
        codes = Counter(str(r).split(":", 1)[0] for r in reasons if r)
        profiles[cls.name] = FilterProfile(
            params=params,
            pass_rate=float((reasons == "").mean()) if len(reasons) else None,
            dropped=int(sum(codes.values())),
            top_reasons=dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]),
            signals={
                sig: SignalStats(**signal_summary(signals[sig]))
                for sig, dtype in cls.signals.items()
                if dtype in NUMERIC_SIGNALS and sig in signals
            },
        )
    return profiles, skipped


def _read_sample(
    name: str, uri: str, fmt: str | None, reader_params: dict[str, Any] | None, k: int, seed: int, max_scan_docs: int
) -> tuple[SourceSample, HtmlInfo, Batch]:
    """The sample of source ``name`` as a batch; HTML pages replaced by their main text."""
    sample = sample_source(
        uri, fmt=fmt, reader_params=reader_params, sample_docs=k, seed=seed, max_scan_docs=max_scan_docs, name=name
    )
    batch = to_batch(sample.docs, name)
    share = float(np.mean([looks_like_html(t) for t in batch["text"]])) if sample.docs else 0.0
    detected_by = "warc_format" if sample.fmt == "warc" else "tag_density" if share >= HTML_SOURCE_SHARE else "none"
    dropped: Counter = Counter()
    if detected_by != "none" and sample.docs:
        batch, dropped = extract_html(batch)
    html = HtmlInfo(
        detected_by=detected_by,
        html_doc_share=share,
        extracted=detected_by != "none" and bool(sample.docs),
        extraction_dropped=dict(sorted(dropped.items())),
    )
    return sample, html, batch


def _shares(values: np.ndarray) -> dict[str, float]:
    counts = Counter(str(v) for v in values)
    return {k: c / len(values) for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def _pii(batch: Batch) -> tuple[float, dict[str, float]]:
    """Share of documents with any ``pii_redact`` replacement, and the share per kind."""
    op = get_operator("pii_redact")()
    if not len(batch["text"]):
        return 0.0, {sig: 0.0 for sig in op.signals}
    out = op.map(batch)  # type: ignore[attr-defined]
    hits = {sig: np.asarray(out[sig]) > 0 for sig in op.signals}
    return float(np.logical_or.reduce(list(hits.values())).mean()), {sig: float(h.mean()) for sig, h in hits.items()}
