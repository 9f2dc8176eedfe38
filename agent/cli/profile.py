"""``dataplan profile``: what is in these sources? Counts, lengths, languages, duplicates, filter
pass rates, signal percentiles, PII, HTML and similarity to target sets, on a bounded sample."""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.console import console, fail, print_json
from operators import NAME_PATTERN, RecipeError, SourceProfile, profile_sources

TOP_LANGUAGES = 10


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def profile(
    sources: list[str] = typer.Argument(..., help="NAME=PATH_OR_GLOB, or a path (its name is the file stem)"),
    target: list[str] = typer.Option(
        [],
        "--target",
        "-t",
        help="NAME=PATH_OR_GLOB: files of a target set to measure similarity to (DSIR); repeatable",
    ),
    sample: int = typer.Option(500, "--sample", "-n", min=1, help="documents sampled per source"),
    seed: int = typer.Option(0, "--seed", help="sampling and MinHash seed"),
    figs: Path | None = typer.Option(None, "--figs", help="write length and language PNGs into this folder"),
    as_json: bool = typer.Option(False, "--json", help="print the profiles as JSON on stdout"),
) -> None:
    """Profile raw sources on a deterministic sample; tables on the terminal, JSON with --json."""
    named: dict[str, str] = {}
    for name, path in map(parse_source_arg, sources):
        if name in named:
            fail(f"SOURCE: name {name!r} given twice; name them explicitly, e.g. {name}2={path}")
        named[name] = path
    targets: dict[str, list[str]] = {}
    for name, path in map(parse_source_arg, target):
        targets.setdefault(name, []).append(path)
    try:
        with console.status("profiling ..."):
            profiles = profile_sources(named, sample_docs=sample, seed=seed, targets=targets, fig_dir=figs)
    except RecipeError as err:
        fail(str(err))
    if as_json:
        print_json({name: p.model_dump(mode="json") for name, p in profiles.items()})
    _show(profiles)


def parse_source_arg(arg: str) -> tuple[str, str]:
    """``name=path`` -> ``(name, path)``; a bare path (or one containing ``=`` that exists) is named
    after its file stem (``crawl.warc.gz`` -> ``crawl``; a glob -> its folder's name)."""
    name, sep, path = arg.partition("=")
    if sep and re.match(NAME_PATTERN, name) and not os.path.exists(arg):
        return name, path
    base = Path(arg)
    stem = base.name.split(".", 1)[0]
    if not stem or any(ch in stem for ch in "*?["):
        stem = base.parent.name
    return re.sub(r"[^A-Za-z0-9_\-]", "_", stem) or "source", arg


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _show(profiles: dict[str, SourceProfile]) -> None:
    target_names = sorted({t for p in profiles.values() for t in p.target_similarity})
    table = Table(title="sources")
    cols = [
        "source",
        "format",
        "docs",
        "bytes",
        "sample",
        "chars p50",
        "words p50",
        "top lang",
        "near-dup",
        "exact dup",
    ]
    for col in [*cols, "PII", "HTML", *(f"sim:{t}" for t in target_names)]:
        table.add_column(col, justify="left" if col in ("source", "format", "top lang", "HTML") else "right")
    for p in profiles.values():
        lang, share = next(iter(p.languages.items()), ("-", None))
        html = f"yes ({p.html.detected_by}, extracted)" if p.html.extracted else "yes" if p.is_html else "no"
        table.add_row(
            escape(p.name),
            p.format,
            f"{p.doc_count}" if p.doc_count_exact else f"~{p.doc_count}",
            f"{p.total_bytes:,}",
            str(p.sample_size),
            f"{p.chars.p50:.0f}",
            f"{p.words.p50:.0f}",
            f"{lang} {_pct(share)}",
            _pct(p.near_duplicate_rate),
            _pct(p.duplicates.exact_duplicate_rate),
            _pct(p.pii_rate),
            html,
            *(_similarity(p, t) for t in target_names),
        )
    console.print(table)
    if target_names:
        console.print("sim: mean DSIR log importance weight per n-gram (0 = like the target; lower = further)")
    for p in profiles.values():
        _show_details(p)


def _similarity(p: SourceProfile, target: str) -> str:
    sim = p.target_similarity.get(target)
    return "-" if sim is None else f"{sim.mean_log_weight_per_ngram:.3f}"


def _show_details(p: SourceProfile) -> None:
    console.rule(f"[bold]{escape(p.name)}")
    filters = Table(title="filters at default params")
    for col in ("filter", "pass rate", "top drop reasons", "signals p5 / p50 / p95"):
        filters.add_column(col, justify="right" if col == "pass rate" else "left")
    for name, f in p.filters.items():
        reasons = f"error: {f.error}" if f.error else ", ".join(f"{k}={v}" for k, v in f.top_reasons.items())
        signals = "\n".join(f"{s}: {v.p5:.4g} / {v.p50:.4g} / {v.p95:.4g}" for s, v in f.signals.items())
        filters.add_row(name, _pct(f.pass_rate), escape(reasons), escape(signals))
    for name, why in p.filters_skipped.items():
        filters.add_row(name, "skipped", escape(why), "")
    console.print(filters)
    langs = Table(title="languages")
    langs.add_column(f"top {TOP_LANGUAGES} of {len(p.languages)}")
    langs.add_column("share", justify="right")
    for code, share in list(p.languages.items())[:TOP_LANGUAGES]:
        langs.add_row(code, _pct(share))
    console.print(langs)
    for kind, path in p.figures.items():
        console.print(f"  {kind} figure: {path}", highlight=False)
