"""The rule-based planner: a documented policy over the profile, not an LLM. Works offline.

Policy (each rule reads the profile of the raw sources):
- HTML or WARC source -> ``html_extract`` on it; every source -> ``text_normalize``.
- A source whose share of languages outside the goal's exceeds 2 % -> ``language_id`` on it
  (FineWeb's 0.65 score threshold).
- ``length_filter`` with ``min_words`` at the 5th percentile of the sources' word counts.
- Every other registered heuristic filter with all-default params is applied to the sources where
  its default pass rate lies in [0.5, 0.995]: lower means it is the wrong filter for that kind of
  text (prose rules on code), higher means it does nothing. On web-like (HTML/WARC) sources the
  Gopher quality and repetition filters are proposed whatever their pass rate on the sample: web
  pages are where those rules were made, and the search may switch them off or loosen them.
- Duplicates in the sample (near-duplicate rate, or exact duplicates among the scanned documents)
  of at least 0.5 % of a source -> ``minhash_dedup`` on those sources (a sample holds only part
  of each duplicate cluster, so the rate is a lower bound).
- A target set whose documents stand out of a source as a minority (the profile's DSIR
  ``target_like_share`` against it between 3 % and 50 %: the target's domain diluted in other
  text; below 3 % is noise, e.g. a few prose answers among Code Alpaca's code score 2.7 % like
  PubMed abstracts) -> ``dsir_select`` on that source towards those target files (Xie et al.
  2023), with ``keep_fraction`` at twice the measured share (at most its default 0.5), so the
  searched range runs from about the share itself (only what looks like the target) to three
  times it. Only where every target set the source holds (``target_domain_share``, documents that
  score like the target's own, of 3 % or more) stands out so: where one does not (most of the
  source is its domain), selecting towards the others would drop its documents.
- PII in the goal ("no PII", "strip PII") or a PII hit rate above 1 % -> ``pii_redact``.
- A goal that asks to start from a published pipeline ("start from FineWeb's pipeline", "use the C4
  recipe": ``agent.planners.published``) replaces the rules above: the steps are that pipeline's
  (``recipes/<name>.yaml``), in its order with its parameters, over the goal's sources (text
  extraction on the HTML ones); the goal's own asks still apply (its languages replace English in
  the language step, PII removal is added when asked for). Each step's estimated effect is read
  from the profile as above, and the space is built the same way.
- Mixture prior from target similarity (DSIR: exp of the mean log importance weight per n-gram,
  plus one for each target source), capped by the goal's ``max_share``; searched on the simplex.
- A goal that asks for a two-phase schedule ("anneal on ... at the end", "two-phase", "final
  phase") -> the space also searches a last phase (``mixture.final_phase``) that multiplies the
  target sources' weights by a boost in [1, 10] over the last 5-30 % of the token budget.

The space: every filter, dedup and selection step may be switched off and has its main threshold
(``agent.planners.choices``: the table both planners share) searched around the proposed value.
Steps are ranked by their estimated effect, the share of their sources' sampled documents they
drop at the proposed params (the language step: the foreign share; dedup: the duplicate rate;
``length_filter``: 5 % by construction; ``dsir_select``: one minus its ``keep_fraction``); the
top ``MAX_SEARCHED_STEPS`` are searched and the others stay on, fixed. The rationale has one line per step: why it is there and what is searched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.goal import GOAL_DEFAULTS, Goal
from agent.planners.choices import MAIN_THRESHOLDS, MAX_SEARCHED_STEPS, describe, step_choices, switchable
from agent.planners.published import named_pipeline, pipeline_note
from experiments.baselines import pipeline_steps
from operators import Filter, all_operators, get_operator, is_registered
from tools.base import dispatch

LANGUAGES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "dutch": "nl",
    "portuguese": "pt", "polish": "pl", "russian": "ru", "chinese": "zh", "japanese": "ja", "korean": "ko",
}  # fmt: skip
PRESETS = ("nano", "micro", "mini", "small")
SKIP_FILTERS = {"length_filter", "language_id", "url_filter", "id_filter"}
WEB_FILTERS = ("gopher_quality", "gopher_repetition")
"""Proposed on every web-like (HTML/WARC) source, whatever their pass rate on the sample."""
PASS_BAND = (0.5, 0.995)
FOREIGN_SHARE = 0.02
DUPLICATE_RATE = 0.005
PII_RATE = 0.01
DILUTED_SHARE = (0.03, 0.5)
"""A source whose target-like share against a target set lies in this band holds that target's
domain diluted: ``dsir_select`` towards it."""
FINAL_PHASE_RANGES = {"fraction": {"float": [0.05, 0.3]}, "boost": {"float": [1.0, 10.0], "log": True}}
"""A searched last phase: 5-30 % of the budget, the targets' weights multiplied by 1-10 (Llama 3
anneals on upsampled high-quality data over its last 40M tokens; Feng et al. 2024 blend a second
phase at the end of pretraining)."""


class RulePlanner:
    name = "rules"

    def drain_usage(self) -> list[dict[str, Any]]:
        return []

    # ---- goal ---------------------------------------------------------------------------------

    def understand(self, text: str, data: dict[str, str]) -> Goal:
        low = text.lower()
        found: dict[str, Any] = {"text": text, "sources": data}
        if m := re.search(r"(\d+(?:\.\d+)?)\s*([kmb])?\s*[- ]?tokens?\b", low):
            found["token_budget"] = int(float(m[1]) * {"k": 1e3, "m": 1e6, "b": 1e9, None: 1}[m[2]])
        if m := re.search(r"(\d+)\s*trials?\b", low):
            found["trials"] = int(m[1])
        if m := re.search(r"(\d+(?:\.\d+)?)\s*(?:h|hours?)\b", low):
            found["hours"] = float(m[1])
        names = "|".join(PRESETS)  # "a small model" is not a preset: it must be named as the proxy's
        if m := re.search(rf"\b({names})\s+(?:proxy|preset)\b|\b(?:proxy|preset)\s*[:=]?\s*({names})\b", low):
            found["preset"] = m[1] or m[2]
        if re.search(r"\b(no|strip|remove|redact|without|scrub)\b[^.]{0,25}\b(pii|personal (data|information))\b", low):
            found["remove_pii"] = True
        langs = [code for name, code in LANGUAGES.items() if re.search(rf"\b{name}\b", low)]
        if langs:
            found["languages"] = langs
        if pipeline := named_pipeline(text):
            found["pipeline"] = pipeline
        aim = re.search(r"(?:good at|target(?:ing)?|focus(?:ed)? on|strong (?:in|at))\s+([^;.]+)", low)
        words = set(re.findall(r"[a-z][a-z0-9_]+", aim[1] if aim else low))
        found["targets"] = [s for s in data if any(_related(s.lower(), w) for w in words)] or list(data)
        found["exclude_sources"] = [
            s for s in data if re.search(rf"\b(exclude|without|drop)\s+(the\s+)?{re.escape(s.lower())}\b", low)
        ]
        kept = [s for s in data if s not in found["exclude_sources"]]
        found["targets"] = [t for t in found["targets"] if t in kept] or kept
        if re.search(r"\banneal|\btwo[- ]phase|\b(final|last|second) (training )?phase|\bmulti[- ]phase", low):
            found["final_phase"] = True
        for pct, src in re.findall(r"at most (\d+)\s*%\s*(?:of\s+)?(\w+)", low):
            if src in data:
                found.setdefault("max_share", {})[src] = int(pct) / 100
        defaults = [k for k in GOAL_DEFAULTS if k not in found]
        return Goal(**found, defaults=defaults)

    # ---- proposal -----------------------------------------------------------------------------

    def propose(self, goal: Goal, profile: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        profiles: dict[str, Any] = profile["profiles"]
        sources = [n for n in goal.sources if n not in goal.exclude_sources]
        if goal.pipeline:
            proposed = published_steps(goal, profiles, sources)
            space, why = processing_space(proposed)
            why.insert(0, pipeline_note(goal.pipeline))
        else:
            proposed = processing_steps(goal, profiles, sources)
            space, why = processing_space(proposed)
        weights = self._mixture_prior(goal, profiles, sources)
        if len(sources) > 1:
            space["mixture.weights"] = "simplex"
            why.append(f"- mixture: prior {weights} from target similarity; searched on the simplex")
        if goal.final_phase:
            why.append(_final_phase(goal, sources, space))
        recipe = {
            "name": "proposal",
            "sources": [{"name": s, "uri": goal.sources[s]} for s in sources],
            "steps": [p.step for p in proposed],
            "mixture": {"weights": weights, "total_tokens": goal.token_budget, "max_epochs": 4},
            "seed": 0,
        }
        objective = {
            "targets": [{"name": f"{t}_heldout", "source": t, "fraction": 0.1} for t in goal.targets if t in sources]
        }
        objective["targets"] += [{"name": n, "files": f} for n, f in goal.target_files.items()]
        search_space = {
            "params": space,
            "objective": objective,
            "proxy": {"preset": goal.search_preset, "tokens": goal.search_tokens},
        }
        args = {"recipe": recipe, "space": search_space, "rationale": "\n".join(why)}
        res = dispatch("propose", args)
        log = res.log_entry("propose", "propose", args)
        if not res.ok:
            raise RuntimeError(f"the rule-based proposal did not validate: {res.error}")
        return res.output, [log]

    @staticmethod
    def _mixture_prior(goal: Goal, profiles: dict[str, Any], sources: list[str]) -> dict[str, float]:
        raw = {}
        for s in sources:
            sims = profiles[s].get("target_similarity", {})
            score = max((math.exp(v["mean_log_weight_per_ngram"]) for v in sims.values()), default=0.0)
            raw[s] = max(min(score, 1.0), 0.05) + (1.0 if s in goal.targets else 0.0)
        total = sum(raw.values())
        weights = {s: v / total for s, v in raw.items()}
        for s, cap in goal.max_share.items():
            if s in weights and weights[s] > cap:
                weights[s] = cap
        total = sum(weights.values())
        return {s: round(v / total, 4) for s, v in weights.items()}

    # ---- reflection ---------------------------------------------------------------------------

    def reflect(self, goal: Goal, proposal: dict[str, Any], trials: dict[str, Any]) -> dict[str, Any] | None:
        """Narrow each numeric range to the top third of trials (+20 %), or widen a side the best
        trial sits on; None when no range moves by more than 10 %."""
        best = [t for t in trials.get("best", []) if t.get("objective") is not None]
        if len(best) < 4:
            return None
        top = best[: max(2, len(best) // 3)]
        params = dict(proposal["space"]["params"])
        changed = False
        for key, spec in params.items():
            if not isinstance(spec, dict) or not ("int" in spec or "float" in spec):
                continue
            kind = "int" if "int" in spec else "float"
            lo, hi = spec[kind]
            name = _trial_param_name(key, proposal)
            vals = [t["params"][name] for t in top if name in t["params"]]
            if not vals:
                continue
            span = hi - lo or 1
            new_lo, new_hi = min(vals) - 0.2 * span, max(vals) + 0.2 * span
            at = best[0]["params"].get(name)  # absent when the best trial had the step switched off
            if at is not None and abs(at - lo) < 0.05 * span:
                new_lo = lo - 0.5 * span
            if at is not None and abs(at - hi) < 0.05 * span:
                new_hi = hi + 0.5 * span
            new = _clip_range(key, proposal, kind, new_lo, new_hi)
            if new and (abs(new[0] - lo) > 0.1 * span or abs(new[1] - hi) > 0.1 * span):
                params[key] = {**spec, kind: new}
                changed = True
        return {**proposal["space"], "params": params} if changed else None


def _final_phase(goal: Goal, sources: list[str], space: dict[str, Any]) -> str:
    """Add the searched last phase to ``space`` when it can move anything; the rationale line."""
    boosted = [t for t in goal.targets if t in sources]
    if not boosted or len(boosted) == len(sources):
        return "- final phase: asked for, but every source is a target, so upweighting them changes nothing"
    space["mixture.final_phase"] = {**FINAL_PHASE_RANGES, "sources": boosted}
    return f"- final phase: the last 5-30 % of the budget upweights {boosted} by 1-10x (annealing); searched"


def _related(source: str, word: str) -> bool:
    """Same stem: a shared prefix of at least 3 letters and 3/4 of the shorter word ("docs" ~ "documentation")."""
    shared = next(
        (i for i, (a, b) in enumerate(zip(source, word, strict=False)) if a != b), min(len(source), len(word))
    )
    return shared >= 3 and shared >= 0.75 * min(len(source), len(word))


@dataclass
class Proposed:
    """One proposed step, why, and for a switchable step the share of its sources' sampled documents
    it drops at the proposed params (the estimate that ranks steps for the search)."""

    step: dict[str, Any]
    why: str
    effect: float | None = None


def processing_steps(goal: Goal, profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    """The recipe's steps in order, each with its reason (see the module docstring)."""
    html = [s for s in sources if profiles[s].get("is_html")]
    out = [Proposed({"op": "html_extract", "sources": html}, "HTML detected: extract the main text")] if html else []
    out.append(Proposed({"op": "text_normalize"}, "every source: Unicode and whitespace normalisation"))
    out += _language_step(goal, profiles, sources)
    out.append(_length_step(profiles, sources))
    out += _quality_steps(profiles, sources)
    out += _dedup_step(profiles, sources)
    out += _selection_steps(goal, profiles, sources)
    if goal.remove_pii or any(profiles[s].get("pii_rate", 0) > PII_RATE for s in sources):
        out.append(Proposed({"op": "pii_redact"}, "PII removal asked for, or PII found in more than 1 % of a source"))
    return out


def published_steps(goal: Goal, profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    """The steps of the pipeline the goal names (``goal.pipeline``), each with its estimated effect
    on the sampled documents (see the module docstring)."""
    html = [s for s in sources if profiles[s].get("is_html")]
    stage = f"{goal.pipeline}'s pipeline"
    out = []
    for step in pipeline_steps(str(goal.pipeline), html):
        why, effect = stage, _effect(step["op"], goal, profiles, sources)
        params = step.get("params", {})
        if step["op"] == "language_id" and "languages" not in goal.defaults and params.get("keep") != goal.languages:
            step = {**step, "params": {**params, "keep": goal.languages}}
            why += f"; keeps the goal's languages {goal.languages}, not {params.get('keep')}"
        if effect is not None:
            why += f"; estimated to drop {effect:.1%} of the sample"
        out.append(Proposed(step, why, effect))
    if goal.remove_pii and all(p.step["op"] != "pii_redact" for p in out):
        out.append(Proposed({"op": "pii_redact"}, "PII removal asked for (the pipeline has none)"))
    return out


def _effect(op: str, goal: Goal, profiles: dict[str, Any], sources: list[str]) -> float | None:
    """The share of the sampled documents a switchable step of ``op`` on ``sources`` drops: the
    foreign share (language ID), the duplicate rate (dedup), else one minus the filter's pass rate
    at its defaults (0 where the profile has none); None for a step that is not switchable."""
    if not switchable(op):
        return None
    if op == "language_id":
        return _mean(_foreign_share(profiles[s], goal.languages) for s in sources)
    if op.endswith("_dedup"):
        return _mean(_duplicate_rate(profiles[s]) for s in sources)
    return _mean(1 - rate for s in sources if (rate := _pass_rate(profiles[s], op)) is not None)


def processing_space(proposed: list[Proposed]) -> tuple[dict[str, Any], list[str]]:
    """On/off and main threshold of the ``MAX_SEARCHED_STEPS`` switchable steps with the largest
    estimated effect; one rationale line per step saying what is searched, or why it is fixed."""
    ranked = sorted(
        (i for i, p in enumerate(proposed) if p.effect is not None and switchable(p.step["op"])),
        key=lambda i: -(proposed[i].effect or 0.0),
    )
    searched = set(ranked[:MAX_SEARCHED_STEPS])
    space: dict[str, Any] = {}
    for i in sorted(searched):
        space.update(step_choices(i, proposed[i].step))
    lines = []
    for i, p in enumerate(proposed):
        scope = f" on {p.step['sources']}" if p.step.get("sources") else ""
        if i in searched:
            tail = f"; searched: {describe(i, space)}"
        elif i in ranked:
            tail = f"; fixed: the space searches the {MAX_SEARCHED_STEPS} steps with the largest estimated effect"
        else:
            tail = ""
        lines.append(f"- steps.{i} {p.step['op']}{scope}: {p.why}{tail}")
    return space, lines


def _language_step(goal: Goal, profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    shares = {s: _foreign_share(profiles[s], goal.languages) for s in sources}
    foreign = [s for s in sources if shares[s] > FOREIGN_SHARE]
    if not foreign:
        return []
    step = {"op": "language_id", "sources": foreign, "params": {"keep": goal.languages, "min_score": 0.65}}
    found = ", ".join(f"{s} {shares[s]:.1%}" for s in foreign)
    return [Proposed(step, f"outside {goal.languages} in the sample: {found}", _mean(shares[s] for s in foreign))]


def _length_step(profiles: dict[str, Any], sources: list[str]) -> Proposed:
    p5 = min(max(1, int(profiles[s]["words"]["p5"])) for s in sources)
    step = {"op": "length_filter", "params": {"min_words": p5}}
    return Proposed(step, f"min_words at the 5th percentile of word counts ({p5})", 0.05)


def _quality_steps(profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    out = []
    for cls in all_operators():
        if not issubclass(cls, Filter) or cls.name in SKIP_FILTERS:
            continue
        rates = {s: _pass_rate(profiles[s], cls.name) for s in sources}
        fits = [s for s in sources if rates[s] is not None and PASS_BAND[0] <= rates[s] <= PASS_BAND[1]]
        web = [s for s in sources if cls.name in WEB_FILTERS and profiles[s].get("is_html") and s not in fits]
        scope = [s for s in sources if s in fits or s in web]
        if scope:
            why = ", ".join(f"{s} {rates[s]:.0%}" if rates[s] is not None else s for s in scope)
            note = "; proposed on web-like sources whatever their pass rate" if web else ""
            effect = _mean(1 - (rates[s] if rates[s] is not None else 1.0) for s in scope)
            out.append(Proposed({"op": cls.name, "sources": scope}, f"passes at its defaults: {why}{note}", effect))
    return out


def _dedup_step(profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    rates = {s: _duplicate_rate(profiles[s]) for s in sources}
    dup = [s for s in sources if rates[s] >= DUPLICATE_RATE]
    if not dup or not is_registered("minhash_dedup"):
        return []
    found = ", ".join(f"{s} {rates[s]:.1%}" for s in dup)
    why = f"duplicates in the sample (near or exact; a lower bound on a partial sample): {found}"
    return [Proposed({"op": "minhash_dedup", "sources": dup}, why, _mean(rates[s] for s in dup))]


def _selection_steps(goal: Goal, profiles: dict[str, Any], sources: list[str]) -> list[Proposed]:
    """One ``dsir_select`` per source where a target set is diluted (``DILUTED_SHARE``) and every
    target set it holds is, towards the files of the diluted ones, keeping twice the largest share
    (at most the default)."""
    if not is_registered("dsir_select"):
        return []
    default = get_operator("dsir_select").Params.model_fields["keep_fraction"].default
    out = []
    for s in sources:
        sims = profiles[s].get("target_similarity") or {}
        shares = {t: float(v.get("target_like_share", 0.0)) for t, v in sorted(sims.items()) if t in goal.target_files}
        diluted = [t for t, share in shares.items() if DILUTED_SHARE[0] <= share <= DILUTED_SHARE[1]]
        held = [t for t, v in sims.items() if float(v.get("target_domain_share", 0.0)) >= DILUTED_SHARE[0]]
        if not diluted or set(held) - set(diluted):
            continue
        keep = round(min(default, 2 * max(shares[t] for t in diluted)), 3)
        files = [f for t in diluted for f in goal.target_files[t]]
        step = {"op": "dsir_select", "sources": [s], "params": {"target_files": files, "keep_fraction": keep}}
        found = ", ".join(f"{shares[t]:.1%} like {t}" for t in diluted)
        why = f"target-like documents stand out of the sample as a minority: {found}; keep_fraction {keep}"
        out.append(Proposed(step, why, round(1 - keep, 4)))
    return out


def _foreign_share(profile: dict[str, Any], languages: list[str]) -> float:
    return 1 - sum(v for k, v in profile.get("languages", {}).items() if k in languages)


def _pass_rate(profile: dict[str, Any], op: str) -> float | None:
    rate = profile.get("filters", {}).get(op, {}).get("pass_rate")
    return float(rate) if isinstance(rate, int | float) else None


def _duplicate_rate(profile: dict[str, Any]) -> float:
    scanned = (profile.get("duplicates") or {}).get("scanned_exact_duplicate_rate", 0.0)
    return max(float(profile.get("near_duplicate_rate", 0.0)), float(scanned))


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return round(sum(items) / len(items), 4) if items else 0.0


def _trial_param_name(key: str, proposal: dict[str, Any]) -> str:
    """Space key ``steps.3.min_words`` -> Optuna name ``steps.3.<op>.min_words``."""
    _, index, param = key.split(".", 2)
    op = proposal["recipe"]["steps"][int(index)]["op"]
    return f"steps.{index}.{op}.{param}"


def _clip_range(key: str, proposal: dict[str, Any], kind: str, lo: float, hi: float) -> list[float] | None:
    """``[lo, hi]`` inside the main threshold's bounds and valid for the step; None if nothing is left."""
    _, index, param = key.split(".", 2)
    step = proposal["recipe"]["steps"][int(index)]
    cls = next(c for c in all_operators() if c.name == step["op"])
    spec = MAIN_THRESHOLDS.get(step["op"])
    if spec is not None and spec.param == param:
        lo, hi = max(lo, spec.bounds[0]), min(hi, spec.bounds[1])
    if kind == "int":
        lo, hi = math.floor(lo), math.ceil(hi)
    params = step.get("params") or {}
    for _ in range(20):
        try:
            cls.Params.model_validate({**params, param: lo})
            break
        except ValueError:
            lo = lo + (hi - lo) * 0.1 if kind == "float" else lo + 1
    try:
        cls.Params.model_validate({**params, param: lo})
        cls.Params.model_validate({**params, param: hi})
    except ValueError:
        return None
    return [lo, hi] if lo < hi else None
