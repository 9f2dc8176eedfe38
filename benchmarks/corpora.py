"""Benchmark corpora with known junk, built from ``../shared/data`` (nothing downloaded or committed).

``build_dirty_web(clean, out, rates, seed)`` writes a web-like JSONL source: the ``clean``
documents mixed with junk of five kinds at stated rates (shares of the source's documents):

- ``spam``: floods of near-duplicate SEO pages, ``spam_templates`` pages each copied
  ``len(spam) / spam_templates`` times with a few words changed per copy (product, city, price);
  fluent English, so only deduplication removes them.
- ``boilerplate``: pages that are nothing but navigation, cookie and footer lines: the snippets
  that ``web/trafilatura_eval/ground_truth.jsonl`` says must *not* be in a page's main text.
- ``foreign``: 8-20 sentences of one non-English language from ``langid/lingua_sentences.jsonl``.
- ``gibberish``: random letter strings of word-like lengths.
- ``repeated``: one sentence taken from a clean document, repeated 20-60 times.

Every record carries ``meta.kind`` (``clean`` or the junk kind): the ground truth a benchmark
scores filters against. ``build_task(out, scale, seed)`` writes the task the decision and
recovery benchmarks share: ``web`` (dirty; its clean part is Wikipedia articles and PubMed
abstracts, the only text close to the targets), ``books``, ``legal`` (SPDX licences, with their
own near-duplicate families) and ``code``, plus two held-out targets (``wiki`` and ``pubmed``)
whose documents are in no source. ``build_diluted_task(out, shared, scale, seed, share)`` writes a
target domain diluted in a large generic source: ``generic`` (books, dialogues, instructions, math
word problems and licences) holds ``share`` of its documents as PubMed abstracts, ids ``pubmed/...``
against ``generic/...``; ``code`` and ``plays`` are clean and far from the held-out abstracts, the
target.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from pydantic import BaseModel, Field

JUNK_KINDS = ("spam", "boilerplate", "foreign", "gibberish", "repeated")


class DirtyRates(BaseModel):
    """Shares of the dirty source's documents; ``clean`` is what the junk shares leave."""

    spam: float = Field(0.25, ge=0, le=1)
    boilerplate: float = Field(0.10, ge=0, le=1)
    foreign: float = Field(0.10, ge=0, le=1)
    gibberish: float = Field(0.05, ge=0, le=1)
    repeated: float = Field(0.05, ge=0, le=1)
    spam_templates: int = Field(6, gt=0, description="distinct spam pages, each flooded with near-copies")

    @property
    def clean(self) -> float:
        return 1.0 - sum(getattr(self, k) for k in JUNK_KINDS)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# ---- junk generators ----------------------------------------------------------------------------

PRODUCTS = ("running shoes", "garden hoses", "phone cases", "vitamin pills", "office chairs", "car insurance")
CITIES = ("Springfield", "Riverton", "Lakewood", "Fairview", "Georgetown", "Salem", "Madison", "Clinton")
SPAM_LINES = (
    "Looking for the best {p} in {c}? You have come to the right place.",
    "Our {p} are the cheapest in {c} and we ship them to your door in {d} days.",
    "Buy {p} online today and save up to {n} percent on every order you make with us.",
    "Thousands of happy customers in {c} trust our {p} because we always have the lowest price.",
    "Click here to order {p} now, and do not forget to tell your friends about this amazing deal.",
    "We are the number one store for {p} and our friendly team is ready to help you all day.",
    "Why pay more for {p} when you can get the same quality for less at our {c} store?",
    "Sign up for our newsletter and get a coupon for {n} percent off your next {p} order.",
    "Limited offer: the first {d} customers from {c} get free {p} with every purchase.",
    "Read what our customers say about our {p} and see why we are the best in {c}.",
)


def spam_pages(n: int, templates: int, rng: random.Random) -> list[str]:
    """``n`` spam pages: ``templates`` base pages, each copied with its slots refilled per copy."""
    bases = []
    for t in range(templates):
        lines = rng.sample(SPAM_LINES, k=len(SPAM_LINES))
        bases.append((lines * 2, PRODUCTS[t % len(PRODUCTS)]))
    pages = []
    for i in range(n):
        lines, product = bases[i % templates]
        city = rng.choice(CITIES)
        fill = {"p": product, "c": city, "d": rng.randint(2, 9), "n": rng.choice((10, 15, 20, 25, 30, 50))}
        pages.append("\n".join(line.format(**fill) for line in lines))
    return pages


def boilerplate_pages(n: int, snippets: list[str], rng: random.Random) -> list[str]:
    return ["\n".join(rng.sample(snippets, k=min(len(snippets), rng.randint(6, 20)))) for _ in range(n)]


def foreign_pages(n: int, sentences: dict[str, list[str]], rng: random.Random) -> list[tuple[str, str]]:
    """``(language, page)`` pairs; languages cycle in sorted order so every one appears."""
    langs = sorted(sentences)
    out = []
    for i in range(n):
        lang = langs[(i * 7) % len(langs)]
        out.append((lang, " ".join(rng.sample(sentences[lang], k=rng.randint(8, 20)))))
    return out


def gibberish_pages(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    pages = []
    for _ in range(n):
        words = ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(rng.randint(120, 300))]
        pages.append(" ".join(words))
    return pages


def repeated_pages(n: int, clean: list[str], rng: random.Random) -> list[str]:
    pages = []
    for _ in range(n):
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", rng.choice(clean)) if 40 <= len(s) <= 300]
        sentence = rng.choice(sentences) if sentences else rng.choice(clean)[:200]
        pages.append(" ".join([sentence] * rng.randint(20, 60)))
    return pages


def junk_inputs(shared: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Boilerplate snippets and non-English sentences by language, from the shared data."""
    snippets = sorted(
        {
            s.strip()
            for row in read_jsonl(shared / "web/trafilatura_eval/ground_truth.jsonl")
            for s in row.get("without") or []
            if 10 <= len(s.strip()) <= 200
        }
    )
    sentences: dict[str, list[str]] = {}
    for row in read_jsonl(shared / "langid/lingua_sentences.jsonl"):
        if row["lang"] != "en":
            sentences.setdefault(row["lang"], []).append(row["text"])
    return snippets, sentences


def build_dirty_web(clean: list[dict], out: Path, shared: Path, rates: DirtyRates, seed: int = 0) -> dict:
    """Write ``clean`` + junk at ``rates`` to ``out`` (shuffled); returns counts and bytes per kind."""
    rng = random.Random(seed)
    total = round(len(clean) / max(rates.clean, 1e-9))
    count = {k: round(total * getattr(rates, k)) for k in JUNK_KINDS}
    snippets, sentences = junk_inputs(shared)
    texts = [r["text"] for r in clean]
    rows = [{"id": f"clean/{r['id']}", "text": r["text"], "meta": {"kind": "clean"}} for r in clean]
    made: dict[str, list[str] | list[tuple[str, str]]] = {
        "spam": spam_pages(count["spam"], rates.spam_templates, rng),
        "boilerplate": boilerplate_pages(count["boilerplate"], snippets, rng),
        "foreign": foreign_pages(count["foreign"], sentences, rng),
        "gibberish": gibberish_pages(count["gibberish"], rng),
        "repeated": repeated_pages(count["repeated"], texts, rng),
    }
    for kind, pages in made.items():
        for i, page in enumerate(pages):
            meta = {"kind": kind}
            if isinstance(page, tuple):
                meta["lang"], page = page
            rows.append({"id": f"{kind}/{i:05d}", "text": page, "meta": meta})
    rng.shuffle(rows)
    write_jsonl(out, rows)
    return kind_stats(rows)


def kind_stats(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Documents and UTF-8 bytes per ``meta.kind``."""
    stats: dict[str, dict[str, int]] = {"documents": {}, "bytes": {}}
    for row in rows:
        kind = row["meta"]["kind"]
        stats["documents"][kind] = stats["documents"].get(kind, 0) + 1
        stats["bytes"][kind] = stats["bytes"].get(kind, 0) + len(row["text"].encode("utf-8"))
    return stats


# ---- the shared benchmark task ----------------------------------------------------------------

OTHER_SOURCES = {
    "books": "domains/books_gutenberg.jsonl",
    "legal": "domains/legal_spdx_license_texts.jsonl",
    "code": "domains/code_python_thealgorithms.jsonl",
}
WIKI = "domains/wiki_wikitext2_valid.jsonl"
PUBMED = "domains/medical_pubmedqa_abstracts.jsonl"
HELD_OUT = {"wiki": 8, "pubmed": 50}
"""Documents of each clean domain kept out of every source: the targets."""


def _take(rows: list[dict], scale: float) -> list[dict]:
    return rows[: max(1, round(len(rows) * scale))]


def build_task(out: Path, shared: Path, *, scale: float = 1.0, seed: int = 0, rates: DirtyRates | None = None) -> dict:
    """Write the dirty-web task under ``out`` (sources ``web``, ``books``, ``legal``, ``code``;
    targets ``target/wiki.jsonl`` and ``target/pubmed.jsonl``) and ``out/task.json`` describing it.
    ``scale`` keeps that share of every source (the held-out targets stay whole)."""
    out.mkdir(parents=True, exist_ok=True)
    rates = rates or DirtyRates()
    clean, targets = [], {}
    for name, rel in (("wiki", WIKI), ("pubmed", PUBMED)):
        rows = read_jsonl(shared / rel)
        held = HELD_OUT[name]
        targets[name] = str(write_jsonl(out / "target" / f"{name}.jsonl", rows[-held:]))
        clean += [{**r, "id": f"{name}/{r['id']}"} for r in _take(rows[:-held], scale)]
    sources = {"web": str(out / "web.jsonl")}
    web = build_dirty_web(clean, out / "web.jsonl", shared, rates, seed)
    for name, rel in OTHER_SOURCES.items():
        sources[name] = str(write_jsonl(out / f"{name}.jsonl", _take(read_jsonl(shared / rel), scale)))
    task = {"sources": sources, "targets": targets, "web": web, "rates": rates.model_dump(), "scale": scale}
    (out / "task.json").write_text(json.dumps(task, indent=2))
    return task


GENERIC = (
    "domains/books_gutenberg.jsonl",
    "domains/dialogue_sgd_train.jsonl",
    "domains/instruction_selfinstruct_human.jsonl",
    "domains/math_gsm8k_train.jsonl",
    "domains/legal_spdx_license_texts.jsonl",
)
FAR_SOURCES = {"code": "domains/code_python_thealgorithms.jsonl", "plays": "domains/books_tinyshakespeare.jsonl"}


def build_diluted_task(out: Path, shared: Path, *, scale: float = 1.0, seed: int = 0, share: float = 0.1) -> dict:
    """Write the diluted-target task under ``out``: ``generic`` holds ``scale`` of the PubMed
    abstracts outside the held-out target (``target/pubmed.jsonl``), a ``share`` of its documents,
    among generic documents drawn (seeded) from ``GENERIC``; ``code`` and ``plays`` are ``scale`` of
    ``FAR_SOURCES``. ``generic``'s records carry ``meta.kind`` (``pubmed`` or ``generic``) and it
    as their id's first part; ``out/task.json`` describes the task, ``task["generic"]`` counting
    documents and bytes per kind."""
    if not 0 < share < 1:
        raise ValueError(f"share must lie in (0, 1), not {share}")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = read_jsonl(shared / PUBMED)
    held = HELD_OUT["pubmed"]
    targets = {"pubmed": str(write_jsonl(out / "target" / "pubmed.jsonl", rows[-held:]))}
    target = [
        {"id": f"pubmed/{r['id']}", "text": r["text"], "meta": {"kind": "pubmed"}} for r in _take(rows[:-held], scale)
    ]
    pool = [r for rel in GENERIC for r in read_jsonl(shared / rel)]
    wanted = round(len(target) * (1 - share) / share)
    if wanted > len(pool):
        raise ValueError(
            f"share {share} at scale {scale} needs {wanted} generic documents; the shared data has {len(pool)}"
        )
    generic = [
        {"id": f"generic/{r['id']}", "text": r["text"], "meta": {"kind": "generic"}} for r in rng.sample(pool, wanted)
    ]
    mixed = target + generic
    rng.shuffle(mixed)
    sources = {"generic": str(write_jsonl(out / "generic.jsonl", mixed))}
    for name, rel in FAR_SOURCES.items():
        sources[name] = str(write_jsonl(out / f"{name}.jsonl", _take(read_jsonl(shared / rel), scale)))
    task = {
        "sources": sources,
        "targets": targets,
        "generic": kind_stats(mixed),
        "share": share,
        "scale": scale,
        "seed": seed,
    }
    (out / "task.json").write_text(json.dumps(task, indent=2))
    return task


def goal_overrides(task: dict) -> dict:
    """Goal fields a benchmark sets for ``task``: its held-out files are the targets (no source's
    own slice is), so the search is scored on text that no source contains."""
    return {"targets": [], "target_files": {name: [path] for name, path in task["targets"].items()}}


def planned(task: dict, goal_text: str, planner: dict | None = None, **overrides: object) -> dict:
    """The agent's proposal (``{"recipe", "space", "rationale"}``) for ``task``: its own nodes,
    goal -> profile -> proposal, run as plain functions of the state (``plan_state``)."""
    return plan_state(task, goal_text, planner, **overrides)["proposal"]


def plan_state(task: dict, goal_text: str, planner: dict | None = None, **overrides: object) -> dict:
    """The agent's state after goal -> profile -> proposal on ``task`` (its ``profile`` included)."""
    from agent.graph import profile, propose, understand_goal

    state: dict = {
        "planner": planner or {"kind": "rules"},
        "goal_text": goal_text,
        "data": task["sources"],
        "goal_overrides": {**goal_overrides(task), **overrides},
    }
    for node in (understand_goal, profile, propose):
        state.update(node(state))
    return state
