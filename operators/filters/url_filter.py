"""URL filtering, RefinedWeb style: domain/URL blocklists and banned-word scoring of the URL."""

from __future__ import annotations

import hashlib
import os
import re
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, field_validator

from operators.core.base import Batch, Filter, OperatorParams, register

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
LIST_PARAMS = ("domain_blocklists", "url_blocklists", "banned_words", "soft_banned_words", "banned_subwords")


def _normalize(text: str) -> str:
    """datatrove's ``normalize``: drop every non-alphanumeric character, lowercase."""
    return _NON_ALNUM.sub("", text).lower()


def read_list(path: str) -> list[str]:
    """One entry per line; blank lines and ``#`` comments are skipped."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [s for s in (line.strip() for line in fh) if s and not s.startswith("#")]


def host_and_parents(host: str) -> list[str]:
    """``a.b.example.com`` -> ``[a.b.example.com, b.example.com, example.com, com]``."""
    parts = host.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def _url_key(url: str) -> str:
    """A URL as blocklists write it: no scheme, no ``www.``, lowercase host, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return (host + path).rstrip("/")


@register
class UrlFilter(Filter):
    """URL filter of RefinedWeb (Penedo et al. 2023, sec. G.1) as datatrove's ``URLFilter`` implements
    it, with user-supplied lists only (files named in params, one entry per line, ``#`` comments;
    none bundled; with no lists it keeps everything):

    - ``domain_blocklists``: the URL's host or any parent domain is listed -> ``blocked_domain``
      (e.g. the UT1 ``adult/domains`` list RefinedWeb and datatrove use);
    - ``url_blocklists``: the URL itself (without scheme/``www.``) is listed -> ``blocked_url``;
    - ``banned_words``: a word of the URL (split on non-alphanumerics) is a hard-banned word ->
      ``url_banned_word``;
    - ``soft_banned_words``: at least ``soft_word_threshold`` (datatrove: 2) distinct soft words ->
      ``url_keyword_score``;
    - ``banned_subwords``: a banned string occurs in the URL with non-alphanumerics removed ->
      ``url_banned_subword``.

    Signals: ``url_domain_blocked``/``url_listed`` (bool), ``url_banned_words``, ``url_soft_words``,
    ``url_banned_subwords`` (int64 counts). Documents without a URL are kept. Differences from
    datatrove: domains match on the host and its parents (datatrove compares tldextract's bare
    registrable label, so ``example.org`` would block ``example.com``), and word matching is
    case-insensitive. The annotation cache key includes each list file's sha256, so editing a list
    re-annotates; ``soft_word_threshold`` only changes the decision."""

    name = "url_filter"
    reasons = ("blocked_domain", "blocked_url", "url_banned_word", "url_keyword_score", "url_banned_subword")
    signals = {
        "url_domain_blocked": "bool",
        "url_listed": "bool",
        "url_banned_words": "int64",
        "url_soft_words": "int64",
        "url_banned_subwords": "int64",
    }
    annotate_params = LIST_PARAMS

    class Params(OperatorParams):
        domain_blocklists: list[str] = Field(default_factory=list, description="files of blocked domains")
        url_blocklists: list[str] = Field(default_factory=list, description="files of blocked URLs")
        banned_words: list[str] = Field(default_factory=list, description="files of hard-banned URL words")
        soft_banned_words: list[str] = Field(default_factory=list, description="files of soft-banned URL words")
        banned_subwords: list[str] = Field(default_factory=list, description="files of banned URL substrings")
        soft_word_threshold: int = Field(2, ge=1, description="distinct soft words that drop a URL (datatrove: 2)")

        @field_validator(*LIST_PARAMS)
        @classmethod
        def _files_exist(cls, paths: list[str]) -> list[str]:
            resolved = [os.path.abspath(os.path.expandvars(os.path.expanduser(p))) for p in paths]
            missing = [p for p in resolved if not os.path.isfile(p)]
            if missing:
                raise ValueError(
                    f"list file(s) not found: {missing}; give paths to existing files (one entry per line)"
                )
            return resolved

    def annotate_key(self) -> dict[str, Any]:
        key = super().annotate_key()
        key["sha256"] = {p: _sha256(p) for name in LIST_PARAMS for p in getattr(self.params, name)}
        return key

    @cached_property
    def lists(self) -> dict[str, set[str]]:
        """Each list kind's entries, normalised the way they are matched."""
        p = self.params
        raw = {name: [e for path in getattr(p, name) for e in read_list(path)] for name in LIST_PARAMS}
        return {
            "domain_blocklists": {d.lower().removeprefix("www.").strip(".") for d in raw["domain_blocklists"]},
            "url_blocklists": {_url_key(u if "//" in u else f"//{u}") for u in raw["url_blocklists"]},
            "banned_words": {_normalize(w) for w in raw["banned_words"]} - {""},
            "soft_banned_words": {_normalize(w) for w in raw["soft_banned_words"]} - {""},
            "banned_subwords": {_normalize(w) for w in raw["banned_subwords"]} - {""},
        }

    @cached_property
    def _subword_pattern(self) -> re.Pattern | None:
        subwords = sorted(self.lists["banned_subwords"], key=len, reverse=True)
        return re.compile("|".join(map(re.escape, subwords))) if subwords else None

    def annotate(self, batch: Batch) -> Batch:
        urls = batch["url"] if "url" in batch else np.full(len(batch["text"]), "", dtype=object)
        n = len(urls)
        out = {col: np.zeros(n, dtype=bool if dtype == "bool" else np.int64) for col, dtype in self.signals.items()}
        lists = self.lists
        for i, url in enumerate(urls):
            if not url:
                continue
            host = (urlsplit(url).hostname or "").lower().strip(".")
            out["url_domain_blocked"][i] = any(d in lists["domain_blocklists"] for d in host_and_parents(host))
            out["url_listed"][i] = _url_key(url) in lists["url_blocklists"]
            words = {w.lower() for w in _NON_ALNUM.split(url)}
            out["url_banned_words"][i] = len(words & lists["banned_words"])
            out["url_soft_words"][i] = len(words & lists["soft_banned_words"])
            if self._subword_pattern is not None:
                out["url_banned_subwords"][i] = len(self._subword_pattern.findall(_normalize(url)))
        return out

    def decide(self, batch: Batch) -> np.ndarray:
        reason = np.full(len(batch["url_listed"]), "", dtype=object)
        # later assignments win: the order mirrors datatrove's checks, first check reported
        reason[batch["url_banned_subwords"] > 0] = "url_banned_subword"
        reason[batch["url_soft_words"] >= self.params.soft_word_threshold] = "url_keyword_score"
        reason[batch["url_banned_words"] > 0] = "url_banned_word"
        reason[batch["url_listed"]] = "blocked_url"
        reason[batch["url_domain_blocked"]] = "blocked_domain"
        return reason


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
