"""Proxy evaluation of a recipe's output: the one entry point the search builds on.

``evaluate_recipe_output(run_dir, mixture, targets, *, preset="nano", tokens=None, seed=0,
eval_every=None, on_eval=None, out_dir=None, device=None, ...) -> ProxyResult``

1. resolves the ``targets`` (``evaluators.targets.Target``: files, or a held-out slice of a source
   that is then excluded from training; unreadable target records are skipped and logged);
2. samples a training stream of ``tokens`` byte tokens from the run's per-source output with the
   ``mixture`` weights, honouring ``max_epochs`` and per-document ``weight`` (``sampler``); with a
   fitted BPE ``tokenizer`` (``evaluators.bpe_tokenizer``) ``tokens`` counts its tokens, and
   ``ceil(tokens * bytes_per_token)`` byte tokens are sampled (count models refuse a tokenizer);
3. tokenizes it and packs it into ``seq_len`` sequences (``concat`` or ``best_fit``);
4. trains a GPT-2 ``preset`` from scratch with ``seed`` (``trainer``); every ``eval_every``
   training tokens it scores bits per byte on the first ``intermediate_bytes`` of each target and
   calls ``on_eval(step, tokens_seen, bpb_by_target)``; ``True`` stops training (``pruned``);
5. scores bits per byte on every target in full (``bpb``), reports the 13-gram contamination of
   the stream against each target and each ``decontam_sets`` file, optionally runs lm-eval
   (``lm_eval_tasks``: name -> multiple-choice JSONL; ``lm_eval_perplexity`` adds perplexity tasks
   over the targets), and with ``out_dir`` saves the model (``out_dir/model``, Hugging Face format
   with the tokenizer) and ``out_dir/result.json``.

``ProxyResult`` carries ``bpb`` per target, the realised ``sources`` (tokens, epochs, capped),
``tokens_per_s``, ``mfu``, ``model_dir``, ``seconds`` and the loss/eval curves.
``evaluate_seeds`` repeats it over seeds and reports the mean and spread per target: a difference
between recipes inside that spread is noise.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from evaluators.bpb import bits_per_byte
from evaluators.decontam import contamination_report
from evaluators.model import Preset, context_length, get_preset
from evaluators.ngram_proxy import NgramTrained, ngram_bits_per_byte, ngram_order
from evaluators.packing import PACKING_VERSION, pack
from evaluators.sampler import SAMPLER_VERSION, MixtureSample, load_pools, sample_mixture
from evaluators.targets import Target, resolve_targets
from evaluators.trainer import save_model, train
from operators import Mixture, read_texts

if TYPE_CHECKING:
    from evaluators.bpe_tokenizer import BpeTokenizer

DEFAULT_TOKENS = 1_000_000

STREAM_VERSION = f"{SAMPLER_VERSION}p{PACKING_VERSION}"
"""The rules that turn a run's output into a proxy's training stream (the sampler's draw, the
packing's order): a stored proxy result keyed by another version is not reused."""

OnEval = Callable[[int, int, dict[str, float]], bool]


class EvalPoint(BaseModel):
    step: int
    tokens: int
    bpb: dict[str, float]


class ProxyResult(BaseModel):
    """Everything one proxy run measured (JSON-serialisable with ``model_dump``)."""

    bpb: dict[str, float] = Field(description="bits per byte per target (all of its texts)")
    target_bytes: dict[str, int]
    sources: dict[str, dict] = Field(description="per source: weight, target/realised tokens, epochs, capped")
    tokens: int = Field(description="tokens trained on (pads excluded)")
    tokenizer_sha256: str | None = Field(None, description="the fitted BPE's sha256; None: the byte tokenizer")
    budget: int
    preset: str
    params: int
    seed: int
    steps: int
    tokens_per_s: float = Field(description="sequence positions processed per second of training")
    mfu: float = Field(description="model FLOPs / measured matmul ceiling on the same device")
    matmul_gflops: float
    device: str
    threads: int
    train_seconds: float
    seconds: float = Field(description="wall time of the whole evaluation")
    pruned: bool
    packing: dict
    curve: list[EvalPoint] = Field(default_factory=list)
    losses: list[tuple[int, int, float]] = Field(default_factory=list, description="(step, tokens, loss)")
    contamination: dict[str, dict] = Field(default_factory=dict)
    lm_eval: dict[str, dict[str, float]] = Field(default_factory=dict)
    model_dir: str | None = None


def evaluate_recipe_output(
    run_dir: str | Path,
    mixture: Mixture,
    targets: list[Target],
    *,
    preset: str | Preset = "nano",
    tokens: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    on_eval: OnEval | None = None,
    eval_at: list[int] | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    threads: int | None = None,
    packing: str = "concat",
    intermediate_bytes: int = 32_768,
    decontam_sets: dict[str, str | Path] | None = None,
    lm_eval_tasks: dict[str, str | Path] | None = None,
    lm_eval_perplexity: bool = False,
    lm_eval_limit: int | None = None,
    preset_overrides: dict | None = None,
    tokenizer: BpeTokenizer | None = None,
) -> ProxyResult:
    """Train and score one proxy on ``run_dir``'s output under ``mixture`` (see the module docstring)."""
    start = time.perf_counter()
    budget = tokens or mixture.total_tokens or DEFAULT_TOKENS
    order = ngram_order(preset)
    if order is not None and tokenizer is not None:
        raise ValueError(f"preset {preset!r} is a byte-level count model: it takes no tokenizer (use nano or larger)")
    target_texts, excluded = resolve_targets(run_dir, targets)
    pools = load_pools(run_dir, exclude_ids=excluded)
    byte_budget = math.ceil(budget * tokenizer.bytes_per_token) if tokenizer else budget
    sample = sample_mixture(pools, mixture, byte_budget, seed)
    stream = sample.documents(pools)
    if order is not None:
        if lm_eval_tasks or lm_eval_perplexity:
            raise ValueError(f"lm-eval scores a neural proxy; preset {preset!r} is a count model: use nano or larger")
        fit = NgramTrained(stream, order, eval_at, _scorer(target_texts, on_eval))
        return _count_model_result(fit, target_texts, pools, sample, seed, start, out_dir)
    spec = get_preset(preset, **(preset_overrides or {}))
    packed = pack(stream, spec.seq_len, packing, seed, phase_starts=sample.phase_starts, tokenizer=tokenizer)
    quick = {name: _head(texts, intermediate_bytes) for name, texts in target_texts.items()}

    def score(model, texts: list[str]):
        return bits_per_byte(model, texts, seq_len=spec.seq_len, tokenizer=tokenizer)

    def evaluate(model) -> dict[str, float]:
        return {name: score(model, texts).bits_per_byte for name, texts in quick.items()}

    trained = train(
        packed.tokens,
        spec,
        seed=seed,
        device=device,
        threads=threads,
        evaluate=evaluate if eval_every or eval_at else None,
        eval_every=eval_every,
        on_eval=on_eval,
        eval_at=eval_at,
        tokenizer=tokenizer,
    )
    scores = {name: score(trained.model, texts) for name, texts in target_texts.items()}
    decontam = {
        name: read_texts([p], records=True, what=f"decontamination set {name!r}")
        for name, p in (decontam_sets or {}).items()
    }
    eval_sets = {**target_texts, **decontam}
    unique_texts = _unique_texts(pools, sample)
    result = ProxyResult(
        bpb={name: r.bits_per_byte for name, r in scores.items()},
        target_bytes={name: r.n_bytes for name, r in scores.items()},
        sources={name: vars(st) for name, st in sample.stats.items()},
        tokens=trained.tokens,
        tokenizer_sha256=tokenizer.sha256 if tokenizer else None,
        budget=budget,
        preset=spec.name,
        params=trained.params,
        seed=seed,
        steps=trained.steps,
        tokens_per_s=trained.tokens_per_s,
        mfu=trained.mfu,
        matmul_gflops=trained.matmul_flops / 1e9,
        device=trained.device,
        threads=trained.threads,
        train_seconds=trained.seconds,
        seconds=0.0,
        pruned=trained.stopped_early,
        packing=packed.stats.as_dict(),
        curve=[EvalPoint(step=s, tokens=t, bpb=b) for s, t, b in trained.evals],
        losses=trained.losses,
        contamination=contamination_report(unique_texts, eval_sets),
    )
    if out_dir is not None:
        result.model_dir = str(save_model(trained.model, Path(out_dir) / "model", tokenizer))
    if lm_eval_tasks or lm_eval_perplexity:
        result.lm_eval = _run_lm_eval(
            trained.model,
            target_texts if lm_eval_perplexity else {},
            lm_eval_tasks or {},
            out_dir,
            lm_eval_limit,
            tokenizer,
        )
    result.seconds = time.perf_counter() - start
    if out_dir is not None:
        (Path(out_dir) / "result.json").write_text(result.model_dump_json(indent=2))
    return result


def _scorer(target_texts: dict[str, list[str]], on_eval: OnEval | None):
    """``NgramTrained``'s callback at each ``eval_at`` count: score every target, ask ``on_eval``."""
    if on_eval is None:
        return None

    def check(model, tokens: int) -> bool:
        scores = {name: ngram_bits_per_byte(model, texts)[0] for name, texts in target_texts.items()}
        return on_eval(0, tokens, scores)

    return check


def _count_model_result(
    trained: NgramTrained,
    target_texts: dict[str, list[str]],
    pools: dict,
    sample: MixtureSample,
    seed: int,
    start: float,
    out_dir: str | Path | None,
) -> ProxyResult:
    """The ``ngram<k>`` presets: the count model fitted on the stream, every target scored in full."""
    scores = {name: ngram_bits_per_byte(trained.model, texts) for name, texts in target_texts.items()}
    result = ProxyResult(
        bpb={name: bpb for name, (bpb, _) in scores.items()},
        target_bytes={name: n for name, (_, n) in scores.items()},
        sources={name: vars(st) for name, st in sample.stats.items()},
        tokens=trained.tokens,
        budget=sample.budget,
        preset=f"ngram{trained.order}",
        params=trained.params,
        seed=seed,
        steps=0,
        tokens_per_s=trained.tokens / max(trained.seconds, 1e-9),
        mfu=0.0,
        matmul_gflops=0.0,
        device="cpu",
        threads=1,
        train_seconds=trained.seconds,
        seconds=0.0,
        pruned=trained.stopped_early,
        packing={},
        contamination=contamination_report(_unique_texts(pools, sample), target_texts),
    )
    result.seconds = time.perf_counter() - start
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "result.json").write_text(result.model_dump_json(indent=2))
    return result


def _unique_texts(pools: dict, sample: MixtureSample) -> list[str]:
    """Each document of the stream once (the contamination check's input)."""
    unique_docs = sorted({(int(s), int(d)) for s, d in sample.order})
    return [pools[sample.sources[s]].texts[d] for s, d in unique_docs]


def _head(texts: list[str], max_bytes: int) -> list[str]:
    """The first texts up to ``max_bytes`` (at least one): the cheap intermediate-eval subset."""
    out, used = [], 0
    for text in texts:
        if out and used + len(text.encode("utf-8")) > max_bytes:
            break
        out.append(text)
        used += len(text.encode("utf-8"))
    return out


def _run_lm_eval(
    model,
    perplexity: dict[str, list[str]],
    multiple_choice: dict[str, str | Path],
    out_dir: str | Path | None,
    limit: int | None,
    tokenizer: BpeTokenizer | None,
) -> dict[str, dict[str, float]]:
    from evaluators.lmeval import run_lm_eval, write_tasks
    from evaluators.tokenizer import hf_tokenizer

    hf = tokenizer.hf_tokenizer(context_length(model)) if tokenizer else hf_tokenizer(context_length(model))
    with tempfile.TemporaryDirectory() as scratch:
        task_dir = Path(out_dir) / "lm_eval_tasks" if out_dir is not None else Path(scratch)
        tasks = write_tasks(task_dir, perplexity, multiple_choice, mc_limit=limit)
        return run_lm_eval(model, hf, task_dir, tasks)


class SeedSummary(BaseModel):
    """The same recipe trained with several seeds: per-target mean and spread of bits per byte."""

    seeds: list[int]
    bpb_mean: dict[str, float]
    bpb_std: dict[str, float] = Field(description="sample standard deviation over seeds (ddof=1)")
    bpb_min: dict[str, float]
    bpb_max: dict[str, float]
    results: list[ProxyResult]


def evaluate_seeds(
    run_dir: str | Path,
    mixture: Mixture,
    targets: list[Target],
    *,
    seeds: tuple[int, ...] | list[int] = (0, 1, 2),
    out_dir: str | Path | None = None,
    **kwargs,
) -> SeedSummary:
    """``evaluate_recipe_output`` once per seed (``out_dir/seed_<s>`` each) and the spread."""
    results = [
        evaluate_recipe_output(
            run_dir,
            mixture,
            targets,
            seed=s,
            out_dir=None if out_dir is None else Path(out_dir) / f"seed_{s}",
            **kwargs,
        )
        for s in seeds
    ]
    return summarize_seeds(list(seeds), results)


def summarize_seeds(seeds: list[int], results: list[ProxyResult]) -> SeedSummary:
    names = list(results[0].bpb)
    values = {n: np.array([r.bpb[n] for r in results]) for n in names}
    return SeedSummary(
        seeds=seeds,
        bpb_mean={n: float(v.mean()) for n, v in values.items()},
        bpb_std={n: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for n, v in values.items()},
        bpb_min={n: float(v.min()) for n, v in values.items()},
        bpb_max={n: float(v.max()) for n, v in values.items()},
        results=results,
    )


def write_json(data: BaseModel | dict, path: str | Path) -> Path:
    """Write a result (pydantic model or dict) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2, default=str)
    path.write_text(text)
    return path
