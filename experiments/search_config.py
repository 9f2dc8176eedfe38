"""The configuration of one search, stored as ``DIR/search.json`` so a search can resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluators.bpe_tokenizer import BpeTokenizer
from evaluators.model import PRESETS
from evaluators.ngram_proxy import ngram_order
from evaluators.targets import Target
from experiments.space import SearchSpace, parse_space
from operators import Recipe, RecipeError, recipe_from_yaml

SAMPLERS = ("tpe", "gp", "cmaes", "random")
CONFIRM_NEURAL_TOKENS = 100_000
"""BPE tokens of the ``nano`` proxies that confirm a count-model search (``ProxySpec.confirm_default``)."""
SEARCH_TARGET_DEFAULTS = {"fraction": 0.1, "max_bytes": 200_000, "max_docs": None}
"""A search's targets default to a larger slice than one proxy evaluation's (``Target``'s defaults)."""


class ProxySpec(BaseModel):
    """The proxy every trial trains: a neural preset (``nano`` ... ``small``) or a count model
    (``ngram3`` ... ``ngram7``). The default, ``ngram5`` at 300k tokens, is the cheapest fidelity of
    ``benchmarks/decisions.py`` that made every call its 10x-larger neural reference decided and
    ranked the recipes closest to it (Spearman 0.92), at 1/350 of its cost."""

    model_config = ConfigDict(extra="forbid")
    preset: str = "ngram5"
    tokens: int = Field(300_000, gt=0)
    eval_every: int = Field(
        0, ge=0, description="training tokens between intermediate evaluations (0 = 4 per run; count models: none)"
    )
    seq_len: int | None = Field(None, gt=1, description="context length of the proxy (None: the preset's)")
    rungs: int = Field(
        1, ge=1, le=4, description="fidelity rungs 3x apart ending at `tokens` (successive halving; 1: none)"
    )
    tokenizer: Literal["byte", "bpe"] = Field(
        "byte",
        description="bpe: a byte-level BPE (4,096 ids) fitted at search start on every source and target; "
        "`tokens` then counts its tokens (neural presets only)",
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS and ngram_order(preset) is None:
            raise ValueError(f"unknown proxy preset {preset!r}: use one of {', '.join(PRESETS)} or ngram3 ... ngram7")
        return preset

    @model_validator(mode="after")
    def _bpe_needs_a_neural_preset(self) -> ProxySpec:
        if self.tokenizer == "bpe" and self.is_count_model:
            raise ValueError(
                f"proxy tokenizer bpe needs a neural preset; {self.preset} counts bytes: use nano or larger"
            )
        return self

    @property
    def is_count_model(self) -> bool:
        return ngram_order(self.preset) is not None

    def confirm_default(self) -> ProxySpec:
        """The proxy that confirms a search on this one: itself at twice its tokens; a count-model
        search is confirmed by ``nano`` proxies with the search's BPE at ``CONFIRM_NEURAL_TOKENS``
        (seeds must change the initialisation, not only the sample, for a paired comparison to mean
        something). In ``benchmarks/decisions.py`` it ranks the 12 recipes at Spearman 0.853 against
        the search's default and 0.874 against the 10x reference, and agrees with 9 of the
        reference's 11 decided pairs; byte ``nano`` at 300k agrees with all 11, but the reference is
        a byte model too, and in ``benchmarks/recovery.py`` that proxy recovered the same steps
        with one false credit more (README, "Search spaces": the recovery benchmark)."""
        if self.is_count_model:
            return ProxySpec(preset="nano", tokens=CONFIRM_NEURAL_TOKENS, tokenizer="bpe")
        return self.model_copy(update={"tokens": 2 * self.tokens})

    def confirming(self, preset: str | None, tokens: int | None, tokenizer: str | None) -> ProxySpec:
        """The confirmation's proxy: ``confirm_default`` with the settings given (None: the default's).
        A count-model preset given alone counts bytes."""
        default = self.confirm_default()
        if tokenizer is None and preset is not None and ngram_order(preset) is not None:
            tokenizer = "byte"
        given = {"preset": preset, "tokens": tokens, "tokenizer": tokenizer}
        try:
            return ProxySpec.model_validate(
                {**default.model_dump(), **{k: v for k, v in given.items() if v is not None}, "rungs": 1}
            )
        except ValidationError as err:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise ValueError(f"confirmation proxy: {reasons}") from None


class ObjectiveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[Target] = Field(min_length=1)
    retained_tokens: bool = Field(False, description="also maximise retained tokens (multi-objective)")

    @field_validator("targets", mode="before")
    @classmethod
    def _search_defaults(cls, targets: Any) -> Any:
        if not isinstance(targets, list):
            return targets
        return [{**SEARCH_TARGET_DEFAULTS, **t} if isinstance(t, dict) else t for t in targets]


class FinalizeSpec(BaseModel):
    """What ``dataplan search`` does once its trials are done, as it was started (so ``--resume``
    does the same): finalize or not, and the confirmation's settings (None: the proxy's default)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    confirm: bool = True
    confirm_preset: str | None = None
    confirm_tokens: int | None = Field(None, gt=0)
    confirm_tokenizer: Literal["byte", "bpe"] | None = None
    seeds: int = Field(3, ge=2, description="paired seeds every recipe is confirmed with")
    max_seeds: int = Field(5, ge=2, description="seeds are added up to this many while a comparison is undecided")
    ablate: bool = True

    @model_validator(mode="after")
    def _room_for_the_seeds(self) -> FinalizeSpec:
        if self.max_seeds < self.seeds:
            raise ValueError(
                f"max_seeds ({self.max_seeds}) must be at least the confirmation seeds ({self.seeds}): raise --max-seeds"
            )
        return self


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe_yaml: str
    base_dir: str
    space: dict[str, Any]
    objective: ObjectiveSpec
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    sampler: Literal["tpe", "gp", "cmaes", "random"] = Field(
        "gp",
        description="gp: Optuna's Gaussian-process sampler fitted on the ranks of the trial values "
        "(experiments.warped_gp), the best of benchmarks/search.py after 20 trials (see the README's search section)",
    )
    pruner: Literal["hyperband", "halving", "none"] = "hyperband"
    seed: int = 0
    proxy_seed: int | None = Field(
        None,
        ge=0,
        description="seed of every trial's proxy (sample and initialisation; None: `seed`). Fixing it while "
        "`seed` varies gives every sampler the same objective function (common random numbers)",
    )
    n_trials: int = Field(20, gt=0)
    time_budget_s: float | None = None
    study_name: str = "search"
    mlflow_parent_run: str | None = None
    warm_start: bool = Field(True, description="evaluate the base recipe (the planner's proposal) as trial 0")
    prior_trials: int = Field(
        0,
        ge=0,
        description="with warm_start: trials enqueued after the proposal with mixtures drawn around its weights",
    )
    enqueued: list[dict[str, Any]] = Field(default_factory=list)
    labels: dict[str, str] = Field(
        default_factory=dict, description="MLflow tags of the search's parent and trial runs (the agent: run id, goal)"
    )
    mlflow_experiment: str = Field(
        "dataplan", description="MLflow experiment of the search's runs (an agent run's: `dataplan:<run id>`)"
    )
    targets: list[Target] = Field(default_factory=list, description="the prepared targets every trial scores")
    finalize: FinalizeSpec = Field(default_factory=FinalizeSpec)
    tokenizer_file: str | None = Field(None, description="proxy.tokenizer bpe: the BPE fitted at search start")
    tokenizer_sha256: str | None = None

    @field_validator("targets", mode="before")
    @classmethod
    def _prepared_before_one_target_model(cls, targets: Any) -> Any:
        """A search.json written before targets shared one model stored ``{name, file, weight, docs,
        bytes}``: read it as the same ``files`` target, so such a search still resumes."""
        if not isinstance(targets, list):
            return targets
        return [
            {"name": t["name"], "files": [t["file"]], "weight": t.get("weight", 1.0)}
            if isinstance(t, dict) and "file" in t
            else t
            for t in targets
        ]

    held_out_ids: str | None = None

    def base_recipe(self) -> Recipe:
        return recipe_from_yaml(self.recipe_yaml, base_dir=self.base_dir)

    def tokenizer(self) -> BpeTokenizer | None:
        """The search's fitted BPE, checked against its recorded sha256 (None: the byte tokenizer)."""
        if self.proxy.tokenizer == "byte":
            return None
        if self.tokenizer_file is None:
            raise RecipeError("proxy.tokenizer is bpe but the search fitted none; start the search again")
        tokenizer = BpeTokenizer.load(self.tokenizer_file)
        if tokenizer.sha256 != self.tokenizer_sha256:
            raise RecipeError(f"{self.tokenizer_file} changed since the search started (sha256 {tokenizer.sha256})")
        return tokenizer

    def confirm_proxy(
        self, preset: str | None = None, tokens: int | None = None, tokenizer: str | None = None
    ) -> ProxySpec:
        """The proxy that confirms this search: the settings given, else those it was started with
        (``finalize``), else the search proxy's ``confirm_default``."""
        spec = self.finalize
        return self.proxy.confirming(
            preset or spec.confirm_preset, tokens or spec.confirm_tokens, tokenizer or spec.confirm_tokenizer
        )

    @property
    def trial_seed(self) -> int:
        """The seed every search trial's proxy trains with."""
        return self.seed if self.proxy_seed is None else self.proxy_seed

    def resolved_space(self) -> SearchSpace:
        return parse_space(self.space, self.base_recipe())

    def save(self, folder: Path) -> None:
        (folder / "search.json").write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, folder: Path) -> SearchConfig:
        path = folder / "search.json"
        if not path.is_file():
            raise RecipeError(
                f"{folder} is not a search folder (no search.json); start one with `dataplan search SPACE.yaml`"
            )
        return cls.model_validate_json(path.read_text())


def parse_duration(text: str | None) -> float | None:
    """``90s``, ``15m``, ``8h``, ``1.5h`` or plain seconds -> seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        raise RecipeError(f"time budget {text!r}: use e.g. 90s, 15m, 8h") from None
