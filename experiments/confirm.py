"""Confirm: retrain the predicted-optimal recipe, its rivals and its ablations at a larger scale.

Every recipe is trained once at the search scale and with several seeds at the confirm scale (a
bigger preset and/or more tokens). Comparisons are *paired* (common random numbers): seed k means
the same initialisation and the same sampling and packing order for every recipe, so what one
seed's luck does to a recipe it does to the other, and the per-seed differences
``predicted - other`` carry the comparison. Its 95 % interval is Student's t over those
differences; a recipe compared with itself (the same recipe id) shares its runs and differs by
exactly zero. While a comparison with a baseline is undecided (its interval contains zero), seeds
are added one at a time up to ``max_seeds``. Ablations retrain the recipe with each enabled step
switched off; a step whose removal lowers bits per byte beyond the interval hurts. Steps whose
drops other steps would make anyway (``experiments.redundancy``) are also ablated together, so that
two filters removing the same junk are credited jointly where neither shows an effect alone; a
group grows while yet another step takes over what it drops. In a group that helps, each member is
then kept on with the rest of the group off: a member is credited with the group's effect only when
it does part of that work alone. When steps hurt, the recommended recipe switches them off, and the
other steps' ablations (groups and members too) are taken again against that recipe
(``recommended_`` rows): a step that hurts can hide what another does, as a repetition filter that
drops clean licences also catches the spam a quality filter removes first. Each step the search
switched off (on in the proposal, off in the final recipe) is switched back on, as proposed, and
compared with the final recipe the same way (``with_`` rows): the search's cheaper proxy can misjudge
a step, and a step that helps here is switched back on in the recommended recipe, whose ablation is
then taken again as for the steps that hurt. The search ranked its recipes at its cheaper scale:
when one of its other recipes (the best observed trial, the proposal) beats the predicted one
beyond the paired interval here, that one is the final recipe, and every comparison and the
ablation are taken against it. The Spearman rank correlation between search-scale and confirm-scale scores says whether the small
proxy ranks recipes the way the larger one does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from experiments.baselines import baseline_recipes, natural_mixture
from experiments.confirm_log import ConfirmLog, Key, setup_fingerprint
from experiments.objective import evaluate_trial
from experiments.progress import CONFIRMATIONS
from experiments.redundancy import redundancy_groups
from experiments.search_config import ProxySpec, SearchConfig
from experiments.targets import exclude_held_out
from experiments.tracking import log_confirmation
from operators import Recipe

PREDICTED = "predicted_optimal"
ABLATED = "without_"
"""Name prefix of an ablation: ``without_<step index>_<op>``."""
ADDED = "with_"
"""Name prefix of a step the search switched off, switched back on: ``with_<step index>_<op>``."""
KEPT = "only_"
"""Name prefix of a group member's row: ``only_<step index>_<op>_of_<group's step indices>``."""
PROPOSAL = "proposal"
"""The planner's proposal among the recipes confirmed: the steps it has on and the final recipe off
are the ones the search switched off."""
RECOMMENDED = "recommended"
"""The final recipe with the steps that hurt switched off and the switched-off steps that help
switched back on; its ablation rows' names start ``recommended_``."""


class RecipeScore(BaseModel):
    name: str
    recipe_id: str
    search_scale: float
    seeds: list[int]
    confirm: list[float]
    """Confirm-scale objective per seed, aligned with ``seeds``."""
    mean: float
    std: float
    bpb: dict[str, float]


class Gap(BaseModel):
    """The predicted-optimal recipe against another recipe, paired by seed."""

    baseline: str
    diff: float
    """Mean of the per-seed differences, predicted-optimal minus the other (negative = better: bpb is
    lower-is-better). For an ablation: the recipe minus the recipe without the step (negative = the
    step helps)."""
    ci95: tuple[float, float]
    verdict: str
    seeds: list[int]
    diffs: list[float]
    step: int | None = None
    """For a step's ablation: the index of the step switched off."""
    steps: list[int] | None = None
    """For a grouped ablation: the indices of the redundant steps switched off together."""
    kept: int | None = None
    """For a member of a group that helps: the step kept on while the rest of ``steps`` is off. Then
    ``diff`` is the recipe without the rest minus the recipe without the whole group (negative = the
    step alone does part of the group's work, so it is credited with the group's effect)."""
    added: int | None = None
    """For a step the final recipe has off and the proposal on: its index. The row is the recipe with
    the step switched on, as proposed, against the recipe: ``diff`` is the recipe with the step minus
    the recipe (negative = the step would help; the same sign as an ablation's)."""
    against: str | None = None
    """For an ablation row taken against another recipe than the final one: ``recommended`` (the
    name's prefix is ``recommended_``)."""

    @property
    def same_data(self) -> bool:
        """Every paired difference exactly 0: both recipes train on the same data (for an ablation,
        the step changes nothing the proxies see: it finds nothing to drop or edit, or only what
        earlier steps drop)."""
        return bool(self.diffs) and not any(self.diffs)


class ConfirmResult(BaseModel):
    final: str = PREDICTED
    """The recipe every gap and ablation is taken against: the predicted one, or a candidate (the
    best observed trial, the proposal) that the confirmation found better beyond the interval."""
    preset: str
    tokens: int
    tokenizer: str = "byte"
    """``bpe``: the search's BPE (``SearchConfig.tokenizer_sha256``); ``tokens`` count its tokens."""
    seeds: list[int]
    """Every seed the final recipe was compared with (the initial ones and those added)."""
    max_seeds: int
    runs: int
    """Confirm-scale trainings spent (recipes sharing a recipe id share their runs)."""
    scores: list[RecipeScore]
    gaps: list[Gap]
    ablations: list[Gap] = []
    spearman: float | None


def confirm_recipes(
    predicted: Recipe, best: Recipe | None, proposal: Recipe | None = None, baselines: list[str] | None = None
) -> dict[str, Recipe]:
    """The recipes a confirmation compares: the predicted-optimal one first, then its rivals
    (``baselines``: names in ``experiments.baselines``; None: its defaults)."""
    recipes = {PREDICTED: predicted}
    if best is not None:
        recipes["best_observed"] = best
    if proposal is not None:
        recipes[PROPOSAL] = proposal
    recipes.update(baseline_recipes(predicted, baselines))
    return recipes


def ablation_recipes(recipe: Recipe, prefix: str = "") -> dict[str, tuple[int, Recipe]]:
    """Name -> (step index, the recipe with that enabled step switched off), for each enabled step
    (the natural-mixture ablation is the ``natural_mixture`` baseline); ``prefix`` starts each name."""
    return {
        f"{prefix}{ABLATED}{i}_{step.op}": (i, without(recipe, (i,)))
        for i, step in enumerate(recipe.steps)
        if step.enabled
    }


def group_recipes(
    recipe: Recipe, groups: list[tuple[int, ...]], prefix: str = ""
) -> dict[str, tuple[tuple[int, ...], Recipe]]:
    """Name -> (step indices, the recipe with those steps switched off together), per group; names
    read ``without_2-6_language_id-gopher_quality`` (characters MLflow accepts in a metric key)."""
    return {
        f"{prefix}{ABLATED}{'-'.join(map(str, g))}_{'-'.join(recipe.steps[i].op for i in g)}": (g, without(recipe, g))
        for g in groups
    }


def without(recipe: Recipe, indices: tuple[int, ...], on: tuple[int, ...] = ()) -> Recipe:
    """``recipe`` with the steps ``indices`` switched off and those of ``on`` switched on."""
    variant = recipe.model_copy(deep=True)
    for i in indices:
        variant.steps[i].enabled = False
    for i in on:
        variant.steps[i].enabled = True
    return variant


OnRun = Callable[[dict[str, Any]], None]
"""Called after each training a confirmation rests on, trained or reused from the record: ``name``,
``recipe_id``, ``scale`` (search or confirm), ``seed``, ``objective``, ``reused``, ``done`` and
``planned`` (the trainings known so far: seeds added for undecided comparisons raise it)."""


class _Runs:
    """Confirm-scale trainings by recipe id and seed; one recipe's runs serve every name it has.
    Each finished training is recorded (``experiments.confirm_log``) and a recorded one is reused."""

    def __init__(
        self,
        folder: Path,
        config: SearchConfig,
        recipes: dict[str, Recipe],
        proxy: ProxySpec,
        on_run: OnRun | None = None,
    ):
        self.folder, self.config, self.recipes = folder / "confirm", config, recipes
        self.big = config.model_copy(update={"proxy": proxy})
        self.pivot = PREDICTED
        """The recipe every gap compares against: the predicted one, or the candidate that beat it."""
        self.log, self.on_run = ConfirmLog(folder), on_run
        self.setups = {"search": setup_fingerprint(config), "confirm": setup_fingerprint(self.big)}
        self.values: dict[str, dict[int, float]] = {}
        self.bpb: dict[str, dict[int, dict[str, float]]] = {}
        self.small: dict[str, float] = {}
        self.count = 0
        self.planned: set[tuple[str, Key]] = set()
        self.done: set[tuple[str, Key]] = set()
        """(scale, key): a confirm proxy equal to the search's shares its seed-``config.seed`` training"""

    def _keys(self, name: str, seeds: list[int], search_scale: bool) -> list[tuple[str, Key]]:
        rid = self.recipes[name].recipe_id()
        keys = [("search", (rid, self.setups["search"], self.config.seed))] if search_scale else []
        return keys + [("confirm", (rid, self.setups["confirm"], s)) for s in seeds]

    def expect(self, name: str, seeds: list[int], search_scale: bool = True) -> None:
        """Count ``name``'s trainings for ``seeds`` in the plan (the progress total)."""
        self.planned.update(self._keys(name, seeds, search_scale))

    def train(self, name: str, seeds: list[int], search_scale: bool = True) -> None:
        """Confirm-scale runs of ``name`` for ``seeds`` not yet trained, and (for the Spearman check)
        one search-scale run; recorded ones are reused."""
        self.expect(name, seeds, search_scale)
        for scale, key in self._keys(name, seeds, search_scale):
            rid, _, seed = key
            if (scale, key) in self.done:
                continue
            entry, reused = self.log.get(key), True
            if entry is None:
                entry, reused = self._run(name, scale, key), False
            if scale == "search":
                self.small[rid] = entry["objective"]
            else:
                self.values.setdefault(rid, {})[seed] = entry["objective"]
                self.bpb.setdefault(rid, {})[seed] = entry["bpb"]
                self.count += 1
            self.done.add((scale, key))
            if self.on_run:
                self.on_run(
                    {
                        **{"name": name, "recipe_id": rid, "scale": scale, "seed": seed},
                        **{"objective": entry["objective"], "reused": reused},
                        **{"done": len(self.done), "planned": len(self.planned)},
                    }
                )

    def _run(self, name: str, scale: str, key: Key) -> dict[str, Any]:
        rid, setup, seed = key
        recipe = self.recipes[name]
        trial_dir = self.folder / name / ("search_scale" if scale == "search" else f"seed{seed}")
        config = self.config if scale == "search" else self.big
        out = evaluate_trial(recipe, trial_dir, config, None, seed=seed)
        entry = {
            "recipe_id": rid,
            "setup": setup,
            "seed": seed,
            "scale": scale,
            "name": name,
            "preset": config.proxy.preset,
            "tokens": config.proxy.tokens,
            "tokenizer": config.proxy.tokenizer,
            "objective": out.objective,
            "bpb": out.bpb,
            "dir": trial_dir.relative_to(self.folder.parent).as_posix(),
        }
        self.log.append(entry)
        log_confirmation(self.config.mlflow_parent_run, self.config.labels, entry)
        return entry

    def ledger(self, name: str) -> Path | None:
        """The ledger of ``name``'s pipeline run at the confirm scale (None: not recorded)."""
        rid = self.recipes[name].recipe_id()
        entry = self.log.get((rid, self.setups["confirm"], min(self.values[rid])))
        path = self.folder.parent / entry["dir"] / "run" / "ledger.parquet" if entry and "dir" in entry else None
        return path if path and path.exists() else None

    def score(self, name: str) -> RecipeScore:
        rid = self.recipes[name].recipe_id()
        seeds = sorted(self.values[rid])
        values = [self.values[rid][s] for s in seeds]
        first = self.bpb[rid][seeds[0]]
        return RecipeScore(
            name=name,
            recipe_id=rid,
            search_scale=self.small[rid],
            seeds=seeds,
            confirm=values,
            mean=float(np.mean(values)),
            std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            bpb={k: float(np.mean([self.bpb[rid][s][k] for s in seeds])) for k in first},
        )

    def gap(self, name: str, verdicts: tuple[str, str, str], against: str | None = None) -> Gap:
        """``against`` (default: the pivot) minus ``name``, paired by seed."""
        against = against or self.pivot
        ours, other = (self.values[self.recipes[n].recipe_id()] for n in (against, name))
        seeds = sorted(set(ours) & set(other))
        diffs = [ours[s] - other[s] for s in seeds]
        lo, hi = paired_ci(diffs)
        same = self.recipes[name].recipe_id() == self.recipes[against].recipe_id()
        verdict = "same recipe" if same else verdicts[0] if hi < 0 else verdicts[1] if lo > 0 else verdicts[2]
        return Gap(baseline=name, diff=float(np.mean(diffs)), ci95=(lo, hi), verdict=verdict, seeds=seeds, diffs=diffs)


BASELINE_VERDICTS = ("better", "worse", "within noise")
ABLATION_VERDICTS = ("helps", "hurts", "no measurable effect")
UNDECIDED = "within noise"


def run_confirm(
    folder: Path,
    config: SearchConfig,
    recipes: dict[str, Recipe],
    *,
    proxy: ProxySpec,
    seeds: list[int],
    max_seeds: int = 5,
    ablate: bool = True,
    on_run: OnRun | None = None,
    ablation_max_seeds: int | None = None,
    candidates: tuple[str, ...] = (),
) -> ConfirmResult:
    """Train ``recipes`` (the predicted-optimal one first) with ``seeds`` at the confirm scale, add
    seeds while a baseline comparison is undecided, and ablate each step of the final recipe: the
    predicted one, unless one of ``candidates`` (names in ``recipes``: the search's other recipes)
    beats it beyond the paired interval, when the best of those is final and every gap is taken
    against it. Each step the proposal (``PROPOSAL`` in ``recipes``) has on and the final recipe off
    is switched back on against the final recipe (``with_`` rows). When steps of the final recipe
    hurt, or switched back on help, the ablation is taken again against the recipe with the ones that
    hurt off and the ones that help on (``RECOMMENDED``); the table then keeps, of the first
    ablation, the rows of the steps that hurt and every ``with_`` row. Trainings recorded in
    ``folder`` by an earlier, interrupted call are reused (``confirm_log``); ``on_run`` hears of each
    training as it finishes; ``ablation_max_seeds`` caps the seeds an undecided ablation grows to
    (None: ``max_seeds``)."""
    runs = _Runs(folder, config, dict(recipes), proxy, on_run or CONFIRMATIONS.get())
    if len(set(seeds)) < 2 or max_seeds < len(set(seeds)):
        raise ValueError(
            f"confirmation needs at least 2 distinct seeds and max_seeds >= their number: {seeds}, {max_seeds}"
        )
    seeds = initial = sorted(set(seeds))
    for name in recipes:
        runs.expect(name, seeds)
    for name in recipes:
        runs.train(name, seeds)
    seeds, gaps = _compare(runs, seeds, max_seeds)
    while better := [g for g in gaps if g.baseline in candidates and g.verdict == BASELINE_VERDICTS[1]]:
        runs.pivot = max(better, key=lambda g: g.diff).baseline  # each pivot has a lower mean: this ends
        seeds, gaps = _compare(runs, seeds, max_seeds)
    scores = [runs.score(n) for n in recipes]
    final = recipes[runs.pivot]
    cap = ablation_max_seeds or max_seeds
    table = _ablations(runs, final, initial, cap) if ablate else []
    if ablate and PROPOSAL in recipes:
        table += _additions(runs, final, recipes[PROPOSAL], initial, cap)
    against, hurting, restored = None, _hurting(table), _restored(table)
    if hurting or restored:
        final, against = without(final, tuple(hurting), on=tuple(restored)), RECOMMENDED
        runs.recipes[RECOMMENDED] = final
        runs.train(RECOMMENDED, initial, search_scale=False)
        again = _ablations(runs, final, initial, cap, RECOMMENDED)
        table = [g for g in table if g.step in hurting or g.added is not None] + again
    if "natural_mixture" in recipes and ablate:
        natural = f"{against}_mixture_natural" if against else "mixture_natural"
        runs.recipes[natural] = natural_mixture(final)  # the baseline's runs, when final is predicted
        runs.train(natural, initial, search_scale=False)
        rows = _ablation_table(runs, {natural: {}}, initial, max_seeds, against)
        table += [g.model_copy(update={"against": against}) for g in rows]
    return ConfirmResult(
        preset=proxy.preset,
        tokens=proxy.tokens,
        tokenizer=proxy.tokenizer,
        final=runs.pivot,
        seeds=seeds,
        max_seeds=max_seeds,
        runs=runs.count,
        scores=scores,
        gaps=gaps,
        ablations=table,
        spearman=spearman(scores, initial),
    )


def _compare(runs: _Runs, seeds: list[int], max_seeds: int) -> tuple[list[int], list[Gap]]:
    """Every recipe against the pivot, adding seeds (to the pivot and the undecided rivals) while a
    comparison is within noise, up to ``max_seeds``. A candidate that became the pivot is listed
    against itself too (exactly 0, as the predicted recipe against a rival with its recipe id)."""
    overturned = runs.pivot != PREDICTED
    rivals = [n for n in runs.recipes if overturned or n != PREDICTED]
    gaps = [runs.gap(n, BASELINE_VERDICTS) for n in rivals]
    while len(seeds) < max_seeds and (open_ := [g.baseline for g in gaps if g.verdict == UNDECIDED]):
        seeds = [*seeds, max(seeds) + 1]
        for name in [runs.pivot, *open_]:
            runs.train(name, seeds)
        gaps = [runs.gap(n, BASELINE_VERDICTS) for n in rivals]
    return seeds, gaps


def _ablations(runs: _Runs, final: Recipe, seeds: list[int], cap: int, pivot: str | None = None) -> list[Gap]:
    """The final recipe (named ``pivot``; default: the runs' pivot) with each enabled step off, then
    each redundant group off together (groups grow while another step takes over what a group drops);
    rows of a ``pivot`` other than the runs' name it as ``against`` and have names starting
    ``<pivot>_``."""
    pivot, prefix = (runs.pivot, "") if pivot is None else (pivot, f"{pivot}_")
    single = ablation_recipes(final, prefix)
    runs.recipes.update({n: r for n, (_, r) in single.items()})
    for name in single:
        runs.expect(name, seeds, search_scale=False)
    for name in single:
        runs.train(name, seeds, search_scale=False)
    table = rows = _ablation_table(runs, {n: {"step": i} for n, (i, _) in single.items()}, seeds, cap, pivot)
    hurting = frozenset(_hurting(table))
    ablated: set[tuple[int, ...]] = set()
    while groups := [g for g in _redundant(runs, rows, final, hurting, pivot) if g not in ablated]:
        ablated.update(groups)  # each round reads only the last round's rows, whose groups are larger: this ends
        grouped = group_recipes(final, groups, prefix)
        runs.recipes.update({n: r for n, (_, r) in grouped.items()})
        for name in grouped:
            runs.train(name, seeds, search_scale=False)
        rows = _ablation_table(runs, {n: {"steps": list(g)} for n, (g, _) in grouped.items()}, seeds, cap, pivot)
        table = table + rows
    helping = [g for g in table if g.steps and g.verdict == ABLATION_VERDICTS[0]]
    table = table + _members(runs, final, helping, cap, prefix)
    return [g.model_copy(update={"against": pivot}) for g in table] if prefix else table


def _members(runs: _Runs, final: Recipe, groups: list[Gap], cap: int, prefix: str = "") -> list[Gap]:
    """Which members of each helping group do its work: per member, the recipe with the rest of the
    group off against the recipe with all of it off, from the group's seeds, adding seeds to both
    while that is undecided, up to ``cap``. A group is formed around
    a step that helps alone, and its effect says nothing of a partner that removes nothing the
    group's work needs: length and C4 quality off together help as much as C4 quality off alone."""
    rows = []
    for group in groups:
        for kept in group.steps:
            ((rest, (_, recipe)),) = group_recipes(final, [tuple(i for i in group.steps if i != kept)], prefix).items()
            runs.recipes[rest] = recipe  # a single step's name and recipe id are its ablation's
            runs.train(rest, group.seeds, search_scale=False)
            label = f"{prefix}{KEPT}{kept}_{final.steps[kept].op}_of_{'-'.join(map(str, group.steps))}"
            member = {"baseline": label, "steps": group.steps, "kept": kept}
            rows += _ablation_table(runs, {group.baseline: member}, group.seeds, cap, against=rest)
    return rows


def _additions(runs: _Runs, final: Recipe, proposal: Recipe, seeds: list[int], cap: int) -> list[Gap]:
    """The final recipe with each step the search switched off (on in ``proposal``, off in
    ``final``) switched back on, as proposed, against the final recipe (``with_`` rows)."""
    if [s.op for s in final.steps] != [s.op for s in proposal.steps]:
        return []  # not the recipe the proposal's steps describe: no step to match
    switched = {
        f"{ADDED}{i}_{step.op}": i
        for i, (step, proposed) in enumerate(zip(final.steps, proposal.steps, strict=True))
        if proposed.enabled and not step.enabled
    }
    for name, i in switched.items():
        runs.recipes[name] = without(final, (), on=(i,))
        runs.expect(name, seeds, search_scale=False)
    for name in switched:
        runs.train(name, seeds, search_scale=False)
    return _ablation_table(runs, {n: {"added": i} for n, i in switched.items()}, seeds, cap, switched_on=True)


def _ablation_table(
    runs: _Runs,
    switched: dict[str, dict[str, Any]],
    seeds: list[int],
    max_seeds: int,
    against: str | None = None,
    switched_on: bool = False,
) -> list[Gap]:
    """One paired gap per ablation (``switched``: its name -> the fields its row gets, such as the
    ``step`` or ``steps`` it switched off), taken from ``against`` (default: the recipe), adding seeds
    (to ``against`` and the undecided ablations only) while an effect is still within noise, up to
    ``max_seeds``. ``switched_on``: the named recipes switch steps on, so each row is the named
    recipe minus ``against`` (an ablation's row is ``against`` minus the named recipe)."""
    against = against or runs.pivot

    def row(name: str) -> Gap:
        return runs.gap(against, ABLATION_VERDICTS, name) if switched_on else runs.gap(name, ABLATION_VERDICTS, against)

    def table() -> list[Gap]:
        return [row(n).model_copy(update={"baseline": n, **fields}) for n, fields in switched.items()]

    rows = table()
    while len(seeds) < max_seeds and (open_ := [n for n, g in zip(switched, rows, strict=True) if _undecided(g)]):
        seeds = [*seeds, max(seeds) + 1]
        for name in (against, *open_):  # the recipe's search-scale run is already trained
            runs.train(name, seeds, search_scale=False)
        rows = table()
    return rows


def _redundant(
    runs: _Runs, table: list[Gap], recipe: Recipe, hurting: frozenset[int], pivot: str
) -> list[tuple[int, ...]]:
    """The groups of redundant steps of ``recipe`` (named ``pivot``), formed around each step or
    group of ``table`` whose ablation does not hurt; ``hurting``: the steps that hurt alone, never
    made partners."""
    offset = len(exclude_held_out(recipe, runs.config.held_out_ids).steps) - len(recipe.steps)  # steps run first
    candidates = {
        (g.step,) if g.step is not None else tuple(g.steps): g.baseline
        for g in table
        if (g.step is not None or g.steps) and g.verdict != ABLATION_VERDICTS[1]
    }
    ledgers = {i: runs.ledger(name) for i, name in candidates.items()}
    recipe_ledger = runs.ledger(pivot)
    if recipe_ledger is None or any(path is None for path in ledgers.values()):
        return []
    return redundancy_groups(recipe_ledger, ledgers, offset, exclude=hurting, trained=recipe.trained_sources())


def _undecided(gap: Gap) -> bool:
    """Within noise, and not because the step changes nothing (every paired difference exactly 0:
    the recipe without it trains on the same data, and more seeds cannot change that)."""
    return gap.verdict == ABLATION_VERDICTS[2] and not gap.same_data


CONFIRMED = 7
"""Recipes a confirmation trains at most: predicted, best observed, proposal and four baselines."""


def confirm_cost(tokens: int, steps: int, seeds: int, max_seeds: int) -> float:
    """Training tokens a confirmation may spend at most: every recipe and ablation (one per step,
    switched off or, where the search switched it off, back on; at most one group per step and, in a
    group that helps, one per member kept on; where a step hurts or one switched back on helps, the
    recipe with those changes and all its ablations again) with ``seeds`` seeds, then
    each again for every seed added while it is undecided (recipes sharing an id cost less)."""
    return float((CONFIRMED + 1 + 6 * steps) * max(seeds, max_seeds) * tokens)


def hurting_steps(result: ConfirmResult, against: str | None = None) -> list[int]:
    """Indices of the steps whose removal lowered bits per byte beyond the paired interval, in the
    final recipe (the ones the recommended recipe has off) or, with ``against=RECOMMENDED``, in the
    recommended recipe (kept on there: no recipe without them was measured)."""
    return _hurting([g for g in result.ablations if g.against == against])


def restored_steps(result: ConfirmResult) -> list[int]:
    """Indices of the steps the search switched off that, switched back on, lowered bits per byte
    beyond the paired interval."""
    return _restored(result.ablations)


def _hurting(table: list[Gap]) -> list[int]:
    return [g.step for g in table if g.step is not None and g.verdict == ABLATION_VERDICTS[1]]


def _restored(table: list[Gap]) -> list[int]:
    return [g.added for g in table if g.added is not None and g.verdict == ABLATION_VERDICTS[0]]


def paired_ci(diffs: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of paired differences (n - 1 degrees of freedom);
    differences without spread (a recipe against itself) give a zero-width interval at their mean."""
    from scipy import stats

    if len(diffs) < 2:
        raise ValueError(f"a paired interval needs at least 2 seeds, got {len(diffs)}")
    d = np.asarray(diffs, dtype=float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    if se == 0.0:
        return (mean, mean)
    t = float(stats.t.ppf(0.5 + level / 2, len(d) - 1))
    return (mean - t * se, mean + t * se)


def spearman(scores: list[RecipeScore], seeds: list[int]) -> float | None:
    """Rank correlation of search-scale scores with confirm-scale means over ``seeds`` (the seeds
    every recipe has: those added for undecided comparisons would tilt the means)."""
    from scipy import stats

    if len(scores) < 3:
        return None
    confirm = [np.mean([v for s, v in zip(sc.seeds, sc.confirm, strict=True) if s in seeds]) for sc in scores]
    rho = stats.spearmanr([s.search_scale for s in scores], confirm).statistic
    return None if np.isnan(rho) else float(rho)
