"""Search spaces: which recipe fields a search may move, and over what ranges.

A space is a small YAML beside a base recipe::

    params:
      steps.length_filter.min_words: {int: [20, 200]}          # steps.<op>.<param>
      steps.2.max_chars: {int: [5000, 50000], log: true}       # steps.<index>.<param> when an op repeats
      steps.text_normalize.enabled: bool                       # optional step on/off
      steps.text_normalize.form: {choice: [NFC, NFKC]}          # only sampled when the step is on
      mixture.weights: simplex                                 # weights on the probability simplex
      mixture.final_phase:                                     # a searched last phase (optional)
        fraction: {float: [0.05, 0.3]}                         # of the token budget
        boost: {float: [1.0, 10.0], log: true}                 # multiplier on these sources' weights
        sources: [code]

``simplex`` is parametrised by one uniform draw ``u_s`` in (0, 1] per source and
``w_s = -log(u_s) / sum(-log(u))``: normalised exponentials, so independent uniform draws give a
uniform Dirichlet(1) point (a standard simplex construction), and every weight stays positive.
The draws are Optuna's params (``mixture.<source>``); people and MLflow see the weights
(``weight.<source>``, ``experiments.weights``): a draw near 1 is a small weight.

``mixture.final_phase`` turns the mixture into a two-phase schedule (``Mixture.phases``): the
weights until ``1 - fraction`` of the token budget, then the same weights with ``sources``
multiplied by ``boost`` and renormalised: annealing on the target domain at the end of training
(Llama 3, Grattafiori et al. 2024, section 3.1.3; two-phase blends, Feng et al. 2024). Its Optuna
params are ``final_phase.fraction`` and ``final_phase.boost``.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

import optuna
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from operators import Mixture, Recipe, RecipeError, get_operator

SIMPLEX_FLOOR = 1e-6
FINAL_PHASE = "final_phase"
"""Prefix of the final phase's Optuna params (not ``mixture.``: those are the simplex draws)."""
PRIOR_CONCENTRATION = 20.0
"""Dirichlet concentration of the points drawn around a proposal's mixture (``SearchSpace.around``):
a weight of 0.5 varies by about +-0.11 (one standard deviation)."""


class Dist(BaseModel):
    """One dimension: exactly one of int / float / choice / bool."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    ints: tuple[int, int] | None = Field(None, alias="int")
    floats: tuple[float, float] | None = Field(None, alias="float")
    choice: list[Any] | None = None
    boolean: bool = Field(False, alias="bool")
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Dist:
        kinds = [k for k in ("ints", "floats", "choice") if getattr(self, k) is not None] + (
            ["bool"] if self.boolean else []
        )
        if len(kinds) != 1:
            raise ValueError("give exactly one of {int: [lo, hi]}, {float: [lo, hi]}, {choice: [...]}, bool")
        bounds = self.ints or self.floats
        if bounds and bounds[0] > bounds[1]:
            raise ValueError(f"lower bound {bounds[0]} > upper bound {bounds[1]}")
        if self.log and (not bounds or bounds[0] <= 0):
            raise ValueError("log: true needs positive numeric bounds")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.ints is not None:
            return trial.suggest_int(name, *self.ints, log=self.log)
        if self.floats is not None:
            return trial.suggest_float(name, *self.floats, log=self.log)
        if self.choice is not None:
            return trial.suggest_categorical(name, self.choice)
        return trial.suggest_categorical(name, [True, False])

    def distribution(self) -> optuna.distributions.BaseDistribution:
        D = optuna.distributions
        if self.ints is not None:
            return D.IntDistribution(*self.ints, log=self.log)
        if self.floats is not None:
            return D.FloatDistribution(*self.floats, log=self.log)
        return D.CategoricalDistribution(self.choice if self.choice is not None else [True, False])


class StepParam(BaseModel):
    step: int
    op: str
    param: str  # "enabled" for the on/off switch
    dist: Dist


class FinalPhase(BaseModel):
    """A searched last phase: its share of the token budget and the boost of ``sources``' weights."""

    model_config = ConfigDict(extra="forbid")
    fraction: Dist
    boost: Dist
    sources: list[str] = Field(min_length=1)

    def dims(self) -> dict[str, Dist]:
        """Optuna name -> dimension."""
        return {f"{FINAL_PHASE}.fraction": self.fraction, f"{FINAL_PHASE}.boost": self.boost}

    def mixture(self, mixture: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """``mixture`` (plain data with static ``weights``) as the two-phase schedule at ``values``."""
        weights = mixture["weights"]
        boost = values[f"{FINAL_PHASE}.boost"]
        final = {src: w * (boost if src in self.sources else 1.0) for src, w in weights.items()}
        total = sum(final.values())
        phases = [
            {"until": round(1 - values[f"{FINAL_PHASE}.fraction"], 6), "weights": weights},
            {"weights": {src: round(w / total, 6) for src, w in final.items()}},
        ]
        return {**mixture, "weights": None, "phases": phases}

    def values_of(self, mixture: Mixture) -> dict[str, float]:
        """The point a mixture sits at: a static one has no boost and the middle fraction; a
        two-phase one the boost that turns its first phase's odds of ``sources`` into its last's."""
        lo, hi = self.fraction.floats or (0.0, 1.0)
        fraction, boost = (lo + hi) / 2, 1.0
        if mixture.phases is not None and len(mixture.phases) == 2:
            first, last = (_boosted_share(p.weights or {}, self.sources) for p in mixture.phases)
            fraction = 1 - (mixture.phases[0].until or 0.0)
            if 0 < first < 1 and 0 < last < 1:
                boost = (last / (1 - last)) / (first / (1 - first))
        return {
            f"{FINAL_PHASE}.fraction": _clip(fraction, self.fraction),
            f"{FINAL_PHASE}.boost": _clip(boost, self.boost),
        }


class SearchSpace(BaseModel):
    """Resolved against a base recipe: every dimension points at a concrete step index."""

    params: list[StepParam] = Field(default_factory=list)
    simplex: list[str] = Field(default_factory=list, description="sources whose mixture weights are searched")
    final_phase: FinalPhase | None = None

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample one point; a step's params are only sampled when the step is on."""
        for p in self.params:
            if p.param == "enabled":
                p.dist.suggest(trial, _name(p))
        for p in self.params:
            if p.param != "enabled" and self.step_enabled(p.step, trial.params):
                p.dist.suggest(trial, _name(p))
        for src in self.simplex:
            trial.suggest_float(f"mixture.{src}", SIMPLEX_FLOOR, 1.0)
        for name, dist in self.schedule_dims().items():
            dist.suggest(trial, name)
        return dict(trial.params)

    def schedule_dims(self) -> dict[str, Dist]:
        """The mixture schedule's dimensions (``mixture.final_phase``), by Optuna name."""
        return self.final_phase.dims() if self.final_phase else {}

    def step_enabled(self, step: int, values: dict[str, Any]) -> bool:
        switch = [p for p in self.params if p.step == step and p.param == "enabled"]
        return not switch or bool(values.get(_name(switch[0]), True))

    def apply(self, base: Recipe, values: dict[str, Any]) -> Recipe:
        """The base recipe with ``values`` (as produced by ``suggest``) written in."""
        data = base.model_dump(mode="json")
        for p in self.params:
            if _name(p) not in values:
                continue
            step = data["steps"][p.step]
            if p.param == "enabled":
                step["enabled"] = bool(values[_name(p)])
            else:
                step["params"][p.param] = values[_name(p)]
        if self.simplex:
            data["mixture"]["weights"] = simplex_weights({s: values[f"mixture.{s}"] for s in self.simplex})
        if self.final_phase:
            data["mixture"] = self.final_phase.mixture(data["mixture"], values)
        return Recipe.model_validate({**data, "base_dir": base.base_dir})

    def values_of(self, recipe: Recipe) -> dict[str, Any]:
        """The point of the space a recipe sits at (how a planner's proposal enters as a trial);
        values outside a dimension's range are clipped into it."""
        values: dict[str, Any] = {}
        for p in self.params:
            step = recipe.steps[p.step]
            if p.param == "enabled":
                values[_name(p)] = step.enabled
            elif step.enabled:
                default = get_operator(p.op).Params.model_fields[p.param].default
                values[_name(p)] = _clip(step.params.get(p.param, default), p.dist)
        if self.simplex:
            values.update(_draws(self._shares(recipe)))
        if self.final_phase:
            values.update(self.final_phase.values_of(recipe.mixture))
        return values

    def numeric_values(self, recipe: Recipe) -> dict[str, float]:
        """``values_of(recipe)`` restricted to the numeric dimensions, each one present (a step that
        is off in ``recipe`` puts its threshold at the middle of its range): the mean of a CMA-ES
        search started at a proposal."""
        values = self.values_of(recipe)
        out: dict[str, float] = {}
        for name, dist in self.distributions().items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                continue
            mid = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
            out[name] = values.get(name, mid)
        return out

    def around(
        self, recipe: Recipe, n: int, seed: int, concentration: float = PRIOR_CONCENTRATION
    ) -> list[dict[str, Any]]:
        """``n`` points near ``recipe``: its values with the mixture drawn from a Dirichlet centred
        on its weights, ``Dirichlet(concentration * w)`` (mean ``w``; the larger ``concentration``,
        the closer), so a search's first trials explore around the planner's prior instead of the
        whole simplex. Deterministic per ``seed``."""
        if not self.simplex or n <= 0:
            return []
        base, shares = self.values_of(recipe), self._shares(recipe)
        rng = random.Random(seed)
        points = []
        for _ in range(n):
            draw = {s: rng.gammavariate(max(concentration * w, 0.05), 1.0) for s, w in shares.items()}
            norm = sum(draw.values()) or 1.0
            points.append({**base, **_draws({s: v / norm for s, v in draw.items()})})
        return points

    def _shares(self, recipe: Recipe) -> dict[str, float]:
        """The recipe's weights over the searched sources, summing to 1 (equal when it has none)."""
        phases = recipe.mixture.phases
        weights = recipe.mixture.weights or (phases[0].weights if phases else None) or {s: 1.0 for s in self.simplex}
        total = sum(weights.get(s, 0.0) for s in self.simplex) or 1.0
        return {s: weights.get(s, 0.0) / total for s in self.simplex}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        out = {_name(p): p.dist.distribution() for p in self.params}
        out.update({f"mixture.{s}": optuna.distributions.FloatDistribution(SIMPLEX_FLOOR, 1.0) for s in self.simplex})
        out.update({name: dist.distribution() for name, dist in self.schedule_dims().items()})
        return out


def simplex_weights(draws: dict[str, float]) -> dict[str, float]:
    """Uniform draws in (0, 1] -> normalised exponential weights summing to 1."""
    raw = {s: -math.log(max(u, SIMPLEX_FLOOR)) + 1e-12 for s, u in draws.items()}
    total = sum(raw.values())
    return {s: round(v / total, 6) for s, v in raw.items()}


def _clip(value: Any, dist: Dist) -> Any:
    bounds = dist.ints or dist.floats
    if bounds:
        return min(max(value, bounds[0]), bounds[1])
    if dist.choice is not None and value not in dist.choice:
        return dist.choice[0]
    return value


def _name(p: StepParam) -> str:
    return f"steps.{p.step}.{p.op}.{p.param}"


def parse_space(data: dict[str, Any], base: Recipe, origin: str = "space") -> SearchSpace:
    """Resolve a space mapping against ``base`` and the operator schemas; errors name the key and the fix."""
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
        raise RecipeError(f"{origin}: expected a mapping with `params:` (field path -> range)")
    space = SearchSpace()
    for key, spec in (data.get("params") or {}).items():
        where = f"{origin}.params[{key!r}]"
        if key == "mixture.weights":
            if spec != "simplex":
                raise RecipeError(f"{where}: only `simplex` is supported for mixture weights")
            space.simplex = [s.name for s in base.sources]
            continue
        if key == "mixture.final_phase":
            space.final_phase = _parse_final_phase(spec, base, where)
            continue
        m = re.fullmatch(r"steps\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_]+)", key)
        if not m:
            raise RecipeError(f"{where}: expected steps.<op or index>.<param>, mixture.weights or mixture.final_phase")
        index = _step_index(m[1], base, where)
        op = base.steps[index].op
        dist = _parse_dist(spec, where)
        if m[2] != "enabled":
            _check_param(op, base.steps[index].params, m[2], dist, where)
        elif not dist.boolean:
            raise RecipeError(f"{where}: `enabled` takes `bool`")
        space.params.append(StepParam(step=index, op=op, param=m[2], dist=dist))
    if not space.params and not space.simplex and not space.final_phase:
        raise RecipeError(f"{origin}: the space has no dimensions; add entries under `params:`")
    if space.final_phase and not space.simplex and base.mixture.weights is None:
        raise RecipeError(
            f"{origin}.params['mixture.final_phase']: boosts the mixture's weights, and the base recipe has none; "
            "add `mixture.weights: simplex` to the space or set `mixture.weights` in the recipe"
        )
    return space


def load_space(path: str, base: Recipe) -> tuple[SearchSpace, dict[str, Any]]:
    """Load a space YAML; returns the resolved space and the raw mapping (objective, proxy, ...)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as err:
        raise RecipeError(f"search space {path!r}: {err.strerror}") from None
    return parse_space(data, base, origin=str(path)), data


def _step_index(ref: str, base: Recipe, where: str) -> int:
    if ref.isdigit():
        if int(ref) >= len(base.steps):
            raise RecipeError(f"{where}: the base recipe has {len(base.steps)} steps; index {ref} is out of range")
        return int(ref)
    matches = [i for i, s in enumerate(base.steps) if s.op == ref]
    if not matches:
        ops = sorted({s.op for s in base.steps})
        raise RecipeError(f"{where}: no step with op {ref!r} in the base recipe; its ops are {ops}")
    if len(matches) > 1:
        raise RecipeError(f"{where}: op {ref!r} appears at steps {matches}; use steps.<index>.<param>")
    return matches[0]


def _parse_dist(spec: Any, where: str) -> Dist:
    if spec == "bool" or spec == {"bool": None}:
        return Dist(boolean=True)
    try:
        return Dist.model_validate(spec)
    except ValidationError as err:
        msg = "; ".join(e["msg"] for e in err.errors())
        raise RecipeError(f"{where}: {msg}") from None


def _check_param(op: str, step_params: dict[str, Any], param: str, dist: Dist, where: str) -> None:
    """Each bound (or choice) must validate in the step it goes into: with the step's other params,
    so that ops with required params or cross-field rules (``dsir_select``, ``minhash_dedup``) are checked as run."""
    cls = get_operator(op)
    fields = cls.Params.model_fields
    if param not in fields:
        raise RecipeError(f"{where}: {op!r} has no parameter {param!r}; its parameters are {sorted(fields)}")
    values = list(dist.ints or dist.floats or dist.choice or [True, False])
    for value in values:
        try:
            cls.Params.model_validate({**step_params, param: value})
        except ValidationError as err:
            raise RecipeError(
                f"{where}: value {value!r} is invalid for {op}.{param}: {err.errors()[0]['msg']}"
            ) from None


def _parse_final_phase(spec: Any, base: Recipe, where: str) -> FinalPhase:
    """``mixture.final_phase: {fraction: {float: [lo, hi]}, boost: {float: [lo, hi]}, sources: [...]}``."""
    if base.mixture.phases is not None:
        raise RecipeError(
            f"{where}: the base recipe already has `mixture.phases`; search a final phase over static weights"
        )
    if not isinstance(spec, dict) or set(spec) != {"fraction", "boost", "sources"}:
        raise RecipeError(
            f"{where}: expected {{fraction: {{float: [lo, hi]}}, boost: {{float: [lo, hi]}}, sources: [...]}}"
        )
    fraction, boost = _parse_dist(spec["fraction"], f"{where}.fraction"), _parse_dist(spec["boost"], f"{where}.boost")
    if not fraction.floats or not 0 < fraction.floats[0] <= fraction.floats[1] < 1:
        raise RecipeError(
            f"{where}.fraction: give {{float: [lo, hi]}} with 0 < lo <= hi < 1 (a share of the token budget)"
        )
    if not boost.floats or boost.floats[0] <= 0:
        raise RecipeError(f"{where}.boost: give {{float: [lo, hi]}} with 0 < lo (a multiplier; 1 = no change)")
    names = [s.name for s in base.sources]
    sources = spec["sources"] if isinstance(spec["sources"], list) else [spec["sources"]]
    unknown = sorted(set(sources) - set(names))
    if unknown or not sources:
        raise RecipeError(f"{where}.sources: {unknown or 'none'} not among the base recipe's sources {names}")
    if set(sources) == set(names):
        raise RecipeError(
            f"{where}.sources: boosting every source leaves the mixture as it is; list the target-like ones"
        )
    return FinalPhase(fraction=fraction, boost=boost, sources=sources)


def _boosted_share(weights: dict[str, float], sources: list[str]) -> float:
    total = sum(weights.values())
    return sum(w for s, w in weights.items() if s in sources) / total if total else 0.0


def _draws(shares: dict[str, float]) -> dict[str, float]:
    """The Optuna params ``mixture.<source>`` whose simplex weights are ``shares``."""
    return {f"mixture.{s}": max(math.exp(-w), SIMPLEX_FLOOR) for s, w in shares.items()}
