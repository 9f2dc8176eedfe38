"""The goal as understood: what the user asked for, with every default stated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from experiments.baselines import Pipeline

GOAL_DEFAULTS = {
    "languages": ["en"],
    "token_budget": 2_000_000,
    "trials": 12,
    "preset": "nano",
    "proxy_tokens": 50_000,
    "search_preset": "ngram5",
    "search_tokens": 300_000,
    "max_rounds": 1,
}

ABLATED_STEPS = 10
"""Steps whose ablation the approved budget covers (the rule planner proposes fewer)."""


class Goal(BaseModel):
    """Parsed from the goal text by a planner; ``defaults`` lists the fields nobody specified."""

    text: str
    sources: dict[str, str] = Field(description="source name -> path, glob or folder")
    targets: list[str] = Field(default_factory=list, description="sources whose held-out slice is the target")
    target_files: dict[str, list[str]] = Field(default_factory=dict, description="target name -> files of target text")
    languages: list[str] = Field(default_factory=lambda: list(GOAL_DEFAULTS["languages"]))
    token_budget: int = Field(GOAL_DEFAULTS["token_budget"], gt=0)
    remove_pii: bool = False
    pipeline: Pipeline | None = Field(
        None,
        description="a published pipeline (recipes/<name>.yaml) the goal asks to start from, e.g. 'start from "
        "FineWeb's pipeline', 'use the C4 recipe': the proposal's steps are its steps",
    )
    exclude_sources: list[str] = Field(default_factory=list)
    max_share: dict[str, float] = Field(default_factory=dict, description="source -> largest allowed mixture weight")
    final_phase: bool = Field(
        False, description="search a final training phase that upweights the targets (anneal, two-phase schedule)"
    )
    trials: int = Field(GOAL_DEFAULTS["trials"], gt=0)
    hours: float | None = Field(None, gt=0)
    preset: str = Field(GOAL_DEFAULTS["preset"], description="the neural proxy that confirms the result")
    proxy_tokens: int = Field(GOAL_DEFAULTS["proxy_tokens"], gt=0, description="its tokens (confirmation: twice)")
    search_preset: str = Field(
        GOAL_DEFAULTS["search_preset"],
        description="the fidelity every search trial trains: the cheapest whose decisions agree with a 10x "
        "larger reference >= 85 % of the time (benchmarks/decisions.py)",
    )
    search_tokens: int = Field(GOAL_DEFAULTS["search_tokens"], gt=0)
    search_seed: int = Field(
        0,
        ge=0,
        description="seed of the search's sampler and of its trials' proxies: another seed, another search path",
    )
    max_rounds: int = Field(GOAL_DEFAULTS["max_rounds"], ge=0, description="reflect rounds after the first search")
    confirm: bool = Field(
        True, description="confirm the result with neural proxies (False: prediction and report only)"
    )
    confirm_tokens: int | None = Field(None, gt=0, description="tokens per confirmation run (None: 2x proxy_tokens)")
    confirm_tokenizer: Literal["byte", "bpe"] = Field(
        "bpe",
        description="the confirmation proxies' tokenizer: the search's BPE (fitted on every source and target; "
        "it ranks recipes as the 10x reference does, benchmarks/decisions.py) or bytes",
    )
    confirm_seeds: int = Field(3, ge=2, description="paired seeds each recipe is confirmed with")
    ablation_max_seeds: int | None = Field(
        None, ge=2, description="seeds an undecided ablation is grown to (None: as the baselines)"
    )
    defaults: list[str] = Field(default_factory=list, description="fields that took a stated default")

    @property
    def confirm_run_tokens(self) -> int:
        """Tokens of one confirmation run: ``confirm_tokens``, else twice ``proxy_tokens``."""
        return self.confirm_tokens or 2 * self.proxy_tokens

    @property
    def confirm_max_seeds(self) -> int:
        """Seeds a confirmation may grow to while a comparison is undecided."""
        return max(5, self.confirm_seeds)

    def compute_budget(self) -> float:
        """Training tokens the approved plan may spend: the search plus its confirmation
        (``confirm_seeds`` seeds, up to ``confirm_max_seeds`` while undecided, and the ablation of
        up to ``ABLATED_STEPS`` steps, at ``confirm_run_tokens``); no confirmation costs nothing."""
        from experiments.confirm import confirm_cost

        search = self.trials * self.search_tokens * (self.max_rounds + 1)
        if not self.confirm:
            return float(search)
        return float(
            search + confirm_cost(self.confirm_run_tokens, ABLATED_STEPS, self.confirm_seeds, self.confirm_max_seeds)
        )
