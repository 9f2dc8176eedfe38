"""Every action the agent can take, as a typed tool (see ``tools.base``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from operators import Recipe, all_operators, get_operator, recipe_from_dict
from tools.base import tool


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _recipe(data: dict[str, Any]) -> Recipe:
    return recipe_from_dict(data, base_dir=data.get("base_dir", "."), origin="recipe")


class ListOperators(_In):
    kind: str | None = Field(None, description="reader, mapper, annotator, filter, global or mixer")


@tool("list_operators", "List the registered data operators (name, kind, default params, drop reasons).", ListOperators)
def list_operators(a: ListOperators) -> dict[str, Any]:
    ops = [c.describe() for c in all_operators() if a.kind in (None, c.kind)]
    return {"operators": [{k: o[k] for k in ("name", "kind", "defaults", "reasons", "signals")} for o in ops]}


class DescribeOperator(_In):
    name: str


@tool("describe_operator", "Describe one operator: docstring, params JSON schema, signals, reasons.", DescribeOperator)
def describe_operator(a: DescribeOperator) -> dict[str, Any]:
    try:
        return get_operator(a.name).describe()
    except KeyError as err:
        raise ValueError(str(err)) from None


class ProfileSources(_In):
    sources: dict[str, str] = Field(..., description="source name -> path, glob or folder")
    targets: dict[str, list[str]] = Field(default_factory=dict, description="target name -> files of target text")
    sample_docs: int = Field(300, gt=0, le=20000)
    seed: int = 0


@tool(
    "profile_sources",
    "Profile raw sources on a bounded sample: sizes, lengths, languages, duplicates, filter pass rates, PII, HTML, target similarity.",
    ProfileSources,
)
def profile_sources(a: ProfileSources) -> dict[str, Any]:
    from operators import profile_sources as run_profile

    profiles = run_profile(a.sources, sample_docs=a.sample_docs, seed=a.seed, targets=a.targets or None)
    return {"profiles": {name: p.model_dump(mode="json") for name, p in profiles.items()}}


class ValidateRecipe(_In):
    recipe: dict[str, Any]


@tool(
    "validate_recipe",
    "Validate a recipe against the operator schemas; returns its recipe_id or the error.",
    ValidateRecipe,
)
def validate_recipe(a: ValidateRecipe) -> dict[str, Any]:
    r = _recipe(a.recipe)
    r.input_files()
    return {"recipe_id": r.recipe_id(), "steps": [s.op for s in r.steps]}


class Propose(_In):
    recipe: dict[str, Any]
    space: dict[str, Any] = Field(
        ..., description="{params: {field path: range}, objective: {targets: [...]}, proxy: {...}}"
    )
    rationale: str = Field("", max_length=4000)


@tool("propose", "Propose a recipe and its search space for review; both are validated.", Propose)
def propose(a: Propose) -> dict[str, Any]:
    from experiments.search_config import ObjectiveSpec
    from experiments.space import parse_space

    r = _recipe(a.recipe)
    r.input_files()
    parse_space(a.space, r)
    ObjectiveSpec.model_validate(a.space.get("objective"))
    return {"recipe_id": r.recipe_id(), "recipe": a.recipe, "space": a.space, "rationale": a.rationale}


class RunPipeline(_In):
    recipe: dict[str, Any]
    out_dir: str


STEP_FIELDS = {"index", "name", "stage", "docs_in", "docs_out", "dropped"}
"""What the run_pipeline tool reports of each step."""


@tool("run_pipeline", "Run a recipe on Ray Data; returns per-source counts, step table and output hash.", RunPipeline)
def run_pipeline(a: RunPipeline) -> dict[str, Any]:
    from operators import run_recipe

    m = run_recipe(_recipe(a.recipe), a.out_dir)
    summary = m.model_dump(mode="json", include={"recipe_id", "sources", "input_docs", "output_docs", "dropped_docs"})
    return summary | {
        "output_sha256": m.output_sha256,
        "steps": [s.model_dump(mode="json", include=STEP_FIELDS) for s in m.steps],
        "dir": a.out_dir,
    }


class TrainProxy(_In):
    run_dir: str
    targets: dict[str, list[str]] = Field(..., description="target name -> files of held-out text")
    preset: str = "nano"
    tokens: int = Field(200_000, gt=0)
    seed: int = 0


@tool(
    "train_proxy",
    "Train a proxy LM on a pipeline output with the recipe's mixture; returns bits-per-byte per target.",
    TrainProxy,
    cost=lambda a: a.tokens,
)
def train_proxy(a: TrainProxy) -> dict[str, Any]:
    from evaluators.proxy import Target, evaluate_recipe_output
    from operators import load_manifest, recipe_from_yaml

    manifest = load_manifest(a.run_dir)
    recipe = recipe_from_yaml(manifest.recipe, base_dir=manifest.base_dir)
    targets = [Target(name=n, files=f) for n, f in a.targets.items()]
    res = evaluate_recipe_output(
        Path(a.run_dir), recipe.mixture, targets, preset=a.preset, tokens=a.tokens, seed=a.seed
    )
    return {"bpb": dict(res.bpb), "tokens": res.tokens, "tokens_per_s": res.tokens_per_s}


class LearnMixture(_In):
    recipe: dict[str, Any]
    dir: str = Field(..., description="work folder: the pipeline run, recipe.yaml, manifest.json, weights.png")
    method: Literal["doremi", "doge"] = Field(
        "doremi", description="doremi: excess loss over a reference proxy; doge: gradient alignment"
    )
    preset: str = "nano"
    tokens: int = Field(300_000, gt=0, description="tokens per proxy (DoReMi trains two)")
    seed: int = 0
    params: dict[str, float] = Field(default_factory=dict, description="method parameters (default: the paper's)")


def _learning_runs(method: str, sources: int) -> float:
    """Proxy runs one learned mixture costs (DoReMi 7/3, DoGE (1 + 2k)/3 for k sources)."""
    from evaluators.domain_reweighting import METHODS

    return METHODS[method].proxy_runs(sources)


def _mixture_cost(a: LearnMixture) -> float:
    return a.tokens * _learning_runs(a.method, len(a.recipe.get("sources", [])))


@tool(
    "learn_mixture",
    "Learn the recipe's mixture weights while proxies train (DoReMi or DoGE); returns the recipe with them "
    "as mixture.weights, the weights and the provenance manifest.",
    LearnMixture,
    cost=_mixture_cost,
)
def learn_mixture(a: LearnMixture) -> dict[str, Any]:
    import yaml

    from experiments.reweighting import learn_mixture as learn

    out = learn(
        _recipe(a.recipe), a.dir, method=a.method, params=a.params, preset=a.preset, tokens=a.tokens, seed=a.seed
    )
    recipe = yaml.safe_load(Path(out.recipe).read_text(encoding="utf-8"))
    return {"recipe": recipe, "recipe_id": out.recipe_id, "weights": out.weights, "manifest": out.manifest}


class StartSearch(_In):
    dir: str
    recipe: dict[str, Any]
    space: dict[str, Any]
    trials: int = Field(10, gt=0, le=10_000)
    sampler: str = "gp"
    seed: int = 0
    labels: dict[str, str] = Field(default_factory=dict, description="MLflow tags of the search's runs")
    experiment: str = Field("dataplan", min_length=1, description="MLflow experiment of the search's runs")


def _search_cost(trials: int, space: dict[str, Any]) -> float:
    return trials * float((space.get("proxy") or {}).get("tokens", 200_000))


@tool(
    "start_search",
    "Create a recipe search (Optuna + MLflow) from an approved proposal; does not run trials.",
    StartSearch,
    cost=lambda a: _search_cost(a.trials, a.space),
)
def start_search(a: StartSearch) -> dict[str, Any]:
    from experiments.study import Search

    s = Search.create(
        a.dir,
        _recipe(a.recipe),
        a.space,
        n_trials=a.trials,
        sampler=a.sampler,
        seed=a.seed,
        labels=a.labels,
        mlflow_experiment=a.experiment,
    )
    return {"dir": str(s.folder), "n_trials": s.config.n_trials, "targets": [t.name for t in s.config.targets]}


class RunSearch(_In):
    dir: str
    time_budget_s: float | None = Field(None, gt=0)


def _remaining_cost(a: RunSearch) -> float:
    from experiments.study import Search

    s = Search(a.dir)
    return (s.config.n_trials - s.counts()["finished"]) * s.config.proxy.tokens


@tool(
    "run_search",
    "Run the search's remaining trials (resumable); returns trial counts.",
    RunSearch,
    cost=_remaining_cost,
)
def run_search(a: RunSearch) -> dict[str, Any]:
    from experiments.study import Search

    return {"counts": Search(a.dir).run(a.time_budget_s)}


class ExtendSearch(_In):
    dir: str
    space: dict[str, Any]
    more_trials: int = Field(..., gt=0, le=10_000)


@tool("extend_search", "Continue a search over a new (narrowed or widened) space with more trials.", ExtendSearch)
def extend_search(a: ExtendSearch) -> dict[str, Any]:
    from experiments.study import Search

    s = Search(a.dir)
    s.extend(a.space, a.more_trials)
    return {"n_trials": s.config.n_trials}


class TrialSummaries(_In):
    dir: str
    top: int = Field(10, gt=0)


@tool(
    "trial_summaries",
    "The search's trials, best first: state, objective, bpb per target, params (mixture as weight.<source>, summing to 1).",
    TrialSummaries,
)
def trial_summaries(a: TrialSummaries) -> dict[str, Any]:
    from experiments.study import load_trials

    rows = [_shown(r) for r in load_trials(a.dir)]
    done = sorted((r for r in rows if r["objective"] is not None), key=lambda r: r["objective"])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {"counts": counts, "best": done[: a.top]}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A trial row with the params the recipe got (normalised weights), not Optuna's simplex draws."""
    return {**{k: v for k, v in row.items() if k != "recipe_params"}, "params": row["recipe_params"]}


class Finalize(_In):
    dir: str
    confirm: bool = True
    confirm_preset: str | None = None
    confirm_tokens: int | None = Field(None, gt=0)
    confirm_tokenizer: Literal["byte", "bpe"] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=2)
    max_seeds: int = Field(
        5, ge=2, description="seeds are added up to this many while a baseline comparison is undecided"
    )
    ablate: bool = Field(True, description="retrain the final recipe with each enabled step switched off")
    ablation_max_seeds: int | None = Field(
        None, ge=2, description="seeds an undecided ablation is grown to (None: max_seeds)"
    )
    baselines: list[str] = Field(
        default_factory=list,
        description="more rivals: published pipelines (c4, gopher, refinedweb, dclm_baseline), mixtures learned "
        "on the predicted recipe's output (doremi, doge)",
    )


def _finalize_cost(a: Finalize) -> float:
    from experiments.confirm import confirm_cost
    from experiments.reweighting import LEARNED_BASELINES
    from experiments.study import Search

    search = Search(a.dir)
    tokens = search.config.confirm_proxy(a.confirm_preset, a.confirm_tokens, a.confirm_tokenizer).tokens
    steps = sum(s.enabled for s in search.base.steps) if a.ablate else 0
    learned = [m for m in a.baselines if m in LEARNED_BASELINES]
    learning = sum(_learning_runs(m, len(search.base.sources)) for m in learned) * tokens
    return confirm_cost(tokens, steps, len(a.seeds), a.max_seeds) + learning if a.confirm else 0.0


@tool(
    "finalize",
    "Predicted-optimal recipe from a surrogate, confirmation against baselines, report.",
    Finalize,
    cost=_finalize_cost,
)
def finalize(a: Finalize) -> dict[str, Any]:
    from experiments.finalize import finalize as run_finalize

    return run_finalize(
        a.dir,
        confirm=a.confirm,
        confirm_preset=a.confirm_preset,
        confirm_tokens=a.confirm_tokens,
        confirm_tokenizer=a.confirm_tokenizer,
        seeds=tuple(a.seeds),
        max_seeds=a.max_seeds,
        ablate=a.ablate,
        ablation_max_seeds=a.ablation_max_seeds,
        baselines=tuple(a.baselines),
    )


PLANNING_TOOLS = ["list_operators", "describe_operator", "profile_sources", "validate_recipe", "propose"]
"""What a planner may call: look and propose. Running anything is the graph's job, after review."""
