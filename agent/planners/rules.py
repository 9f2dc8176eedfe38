"""The rule-based planner: a documented policy over the profile, not an LLM. Works offline.

Policy (each rule reads the profile of the raw sources):
- HTML or WARC source -> ``html_extract`` on it; every source -> ``text_normalize``.
- A source whose share of languages outside the goal's exceeds 2 % -> ``language_id`` on it
  (FineWeb's 0.65 score threshold; searched in [0.3, 0.9]).
- ``length_filter`` with ``min_words`` at the 5th percentile of the sources' word counts
  (percentile thresholds, searched between half of it and the 25th percentile).
- Every other registered heuristic filter with all-default params is applied to the sources where
  its default pass rate lies in [0.5, 0.995]: lower means it is the wrong filter for that kind of
  text (prose rules on code), higher means it does nothing. Its first numeric decision threshold
  is searched in [0.5x, 1.5x] its default.
- Estimated near-duplicate rate above 2 % of the sample -> ``minhash_dedup`` on those sources,
  switchable (the sample underestimates the rate of the whole source).
- PII in the goal ("no PII", "strip PII") or a PII hit rate above 1 % -> ``pii_redact``.
- Mixture prior from target similarity (DSIR: exp of the mean log importance weight per n-gram,
  plus one for each target source), capped by the goal's ``max_share``; searched on the simplex.
"""

from __future__ import annotations

import math
import re
from typing import Any

from agent.goal import GOAL_DEFAULTS, Goal
from operators import Filter, all_operators
from tools.base import dispatch

LANGUAGES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "dutch": "nl",
    "portuguese": "pt", "polish": "pl", "russian": "ru", "chinese": "zh", "japanese": "ja", "korean": "ko",
}  # fmt: skip
PRESETS = ("nano", "micro", "mini", "small")
SKIP_FILTERS = {"length_filter", "language_id", "url_filter", "id_filter"}


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
        aim = re.search(r"(?:good at|target(?:ing)?|focus(?:ed)? on|strong (?:in|at))\s+([^;.]+)", low)
        words = set(re.findall(r"[a-z][a-z0-9_]+", aim[1] if aim else low))
        found["targets"] = [s for s in data if any(_related(s.lower(), w) for w in words)] or list(data)
        found["exclude_sources"] = [
            s for s in data if re.search(rf"\b(exclude|without|drop)\s+(the\s+)?{re.escape(s.lower())}\b", low)
        ]
        kept = [s for s in data if s not in found["exclude_sources"]]
        found["targets"] = [t for t in found["targets"] if t in kept] or kept
        for pct, src in re.findall(r"at most (\d+)\s*%\s*(?:of\s+)?(\w+)", low):
            if src in data:
                found.setdefault("max_share", {})[src] = int(pct) / 100
        defaults = [k for k in GOAL_DEFAULTS if k not in found]
        return Goal(**found, defaults=defaults)

    # ---- proposal -----------------------------------------------------------------------------

    def propose(self, goal: Goal, profile: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        profiles: dict[str, Any] = profile["profiles"]
        sources = [n for n in goal.sources if n not in goal.exclude_sources]
        steps: list[dict[str, Any]] = []
        space: dict[str, Any] = {}
        why: list[str] = []

        html = [s for s in sources if profiles[s].get("is_html")]
        if html:
            steps.append({"op": "html_extract", "sources": html})
            why.append(f"HTML detected in {html}: extract main text")
        steps.append({"op": "text_normalize"})

        foreign = [
            s
            for s in sources
            if 1 - sum(v for k, v in profiles[s].get("languages", {}).items() if k in goal.languages) > 0.02
        ]
        if foreign:
            steps.append(
                {"op": "language_id", "sources": foreign, "params": {"keep": goal.languages, "min_score": 0.65}}
            )
            space[f"steps.{len(steps) - 1}.min_score"] = {"float": [0.3, 0.9]}
            why.append(f"more than 2% of {foreign} is outside {goal.languages}: language filter")

        p5 = min(max(1, int(profiles[s]["words"]["p5"])) for s in sources)
        p25 = max(p5 + 1, min(int(profiles[s]["words"]["p25"]) for s in sources))
        steps.append({"op": "length_filter", "params": {"min_words": p5}})
        space[f"steps.{len(steps) - 1}.min_words"] = {"int": [max(1, p5 // 2), p25]}
        why.append(f"min_words at the 5th percentile of word counts ({p5})")

        for name, scope in self._fitting_filters(profiles, sources).items():
            steps.append({"op": name, "sources": scope})
            param = _main_threshold(name)
            if param:
                rng = _around_default(name, param)
                if rng:
                    space[f"steps.{len(steps) - 1}.{param}"] = rng
            why.append(f"{name} passes 50-99.5% of {scope} at its defaults")

        dup = [s for s in sources if profiles[s].get("near_duplicate_rate", 0) > 0.02]
        if dup and _registered("minhash_dedup"):
            steps.append({"op": "minhash_dedup", "sources": dup})
            space[f"steps.{len(steps) - 1}.enabled"] = "bool"
            why.append(f"estimated near-duplicate rate above 2% in {dup}: MinHash dedup")

        if goal.remove_pii or any(profiles[s].get("pii_rate", 0) > 0.01 for s in sources):
            steps.append({"op": "pii_redact"})
            why.append("PII removal asked for or PII found")

        weights = self._mixture_prior(goal, profiles, sources)
        if len(sources) > 1:
            space["mixture.weights"] = "simplex"
        recipe = {
            "name": "proposal",
            "sources": [{"name": s, "uri": goal.sources[s]} for s in sources],
            "steps": steps,
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
            "proxy": {"preset": goal.preset, "tokens": goal.proxy_tokens},
        }
        args = {"recipe": recipe, "space": search_space, "rationale": "; ".join(why)}
        res = dispatch("propose", args)
        log = res.log_entry("propose", "propose", args)
        if not res.ok:
            raise RuntimeError(f"the rule-based proposal did not validate: {res.error}")
        return res.output, [log]

    @staticmethod
    def _fitting_filters(profiles: dict[str, Any], sources: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for cls in all_operators():
            if not issubclass(cls, Filter) or cls.name in SKIP_FILTERS:
                continue
            scope = [
                s
                for s in sources
                if 0.5 <= profiles[s].get("filters", {}).get(cls.name, {}).get("pass_rate", 1.0) <= 0.995
            ]
            if scope:
                out[cls.name] = scope
        return out

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
            if abs(best[0]["params"].get(name, lo) - lo) < 0.05 * span:
                new_lo = lo - 0.5 * span
            if abs(best[0]["params"].get(name, hi) - hi) < 0.05 * span:
                new_hi = hi + 0.5 * span
            new = _clip_range(key, proposal, kind, new_lo, new_hi)
            if new and (abs(new[0] - lo) > 0.1 * span or abs(new[1] - hi) > 0.1 * span):
                params[key] = {**spec, kind: new}
                changed = True
        return {**proposal["space"], "params": params} if changed else None


def _related(source: str, word: str) -> bool:
    """Same stem: a shared prefix of at least 3 letters and 3/4 of the shorter word ("docs" ~ "documentation")."""
    shared = next(
        (i for i, (a, b) in enumerate(zip(source, word, strict=False)) if a != b), min(len(source), len(word))
    )
    return shared >= 3 and shared >= 0.75 * min(len(source), len(word))


def _registered(name: str) -> bool:
    return any(c.name == name for c in all_operators())


def _main_threshold(op: str) -> str | None:
    """The op's first numeric param that only changes its decision (not its signals)."""
    cls = next(c for c in all_operators() if c.name == op)
    for name, field in cls.Params.model_fields.items():
        if (
            name not in cls.annotate_params
            and field.annotation in (int, float)
            and isinstance(field.default, int | float)
        ):
            return name
    return None


def _around_default(op: str, param: str) -> dict[str, Any] | None:
    cls = next(c for c in all_operators() if c.name == op)
    default = cls.Params.model_fields[param].default
    kind = "int" if isinstance(default, int) and not isinstance(default, bool) else "float"
    lo, hi = (default * 0.5, default * 1.5) if default > 0 else (default - 1, default + 1)
    rng = [math.floor(lo), math.ceil(hi)] if kind == "int" else [round(lo, 6), round(hi, 6)]
    try:
        cls.Params.model_validate({param: rng[0]})
        cls.Params.model_validate({param: rng[1]})
    except ValueError:
        return None
    return {kind: rng} if rng[0] < rng[1] else None


def _trial_param_name(key: str, proposal: dict[str, Any]) -> str:
    """Space key ``steps.3.min_words`` -> Optuna name ``steps.3.<op>.min_words``."""
    _, index, param = key.split(".", 2)
    op = proposal["recipe"]["steps"][int(index)]["op"]
    return f"steps.{index}.{op}.{param}"


def _clip_range(key: str, proposal: dict[str, Any], kind: str, lo: float, hi: float) -> list[float] | None:
    _, index, param = key.split(".", 2)
    op = proposal["recipe"]["steps"][int(index)]["op"]
    cls = next(c for c in all_operators() if c.name == op)
    if kind == "int":
        lo, hi = math.floor(lo), math.ceil(hi)
    for _ in range(20):
        try:
            cls.Params.model_validate({param: lo})
            break
        except ValueError:
            lo = lo + (hi - lo) * 0.1 if kind == "float" else lo + 1
    try:
        cls.Params.model_validate({param: lo})
        cls.Params.model_validate({param: hi})
    except ValueError:
        return None
    return [lo, hi] if lo < hi else None
