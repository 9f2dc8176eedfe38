"""Domain weights learned while a proxy trains: DoReMi and DoGE behind one interface.

Both train one proxy on a stream drawn uniformly over the domains (``sample_mixture`` with equal
weights), packed with each token's domain id (``pack(labels=...)``) and its sequences shuffled
(seeded) so that a batch holds sequences from across the stream, as the papers' i.i.d. batches do.
At every optimiser step they move the domain weights ``alpha`` by exponentiated gradient on a
per-domain score, ``alpha <- (1 - c) softmax(log alpha + eta * score) + c / k`` from the uniform
``alpha_0``, and return the mean of ``alpha_0 ... alpha_T`` (as the reference implementation
averages): the mixture a recipe then trains with.

- ``doremi``: DoReMi (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up Language Model
  Pretraining", algorithm 1; reference implementation sangmichaelxie/doremi, ``doremiv1``). A
  reference proxy is first trained on the reference mixture (the recipe's). The score of a domain
  is the proxy's per-token excess loss over the reference, clipped at 0, averaged over the domain's
  tokens in the batch (a domain absent from the batch keeps its last score, at first ``log V``, the
  excess of an untrained model: the reference implementation's start); the proxy minimises
  each token's loss weighted by ``alpha[d] / u[d]`` (``u``: the stream's realised domain shares),
  normalised. ``eta = 1``, ``c = 1e-3`` (the paper's and the reference run script's values). A
  domain whose loss is high for the reference too (noise, shuffled text) has no excess and loses
  weight: DoReMi spends steps where the proxy can still catch up, not where loss is irreducible.
- ``doge``: DoGE (Fan et al. 2023, "DoGE: Domain Reweighting with Generalization Estimation";
  reference implementation Olivia-fsm/DoGE, universal generalisation). No reference model. Each
  domain's gradient ``g_i`` of its mean token loss in the batch (clipped to ``grad_clip``); score
  ``W_i = lr_t <g_i, sum_{j != i} g_j> / mean_j |g_j|``, clipped to ``[0, 5 lr_t]``: how much a
  step on domain i lowers the other domains' loss. ``eta = 1 / mu`` with ``mu = 0.01``, ``c = 0``.
  The proxy steps on ``sum_i alpha_i g_i``. Only the domains present in the batch (at least two)
  are updated; the others keep their mass.

Cost, in proxy runs of the same tokens (training FLOPs, a forward pass = 1, a backward = 2): DoReMi
``(3 + 3 + 1) / 3`` (reference, proxy, a reference forward per step); DoGE ``(1 + 2k) / 3`` for k
domains (one backward per domain). ``ReweightResult.proxy_runs`` reports it.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from evaluators.hardware import pick_device
from evaluators.model import Preset, get_preset
from evaluators.packing import pack
from evaluators.sampler import SourcePool, sample_mixture
from evaluators.tokenizer import VOCAB_SIZE
from evaluators.trainer import lr_at, token_losses, train
from operators import Mixture


def exponentiated_gradient(alpha: torch.Tensor, score: torch.Tensor, eta: float, smoothing: float) -> torch.Tensor:
    """``(1 - c) softmax(log alpha + eta * score) + c / k``: one step of the domain weights."""
    moved = torch.softmax(torch.log(alpha) + eta * score, dim=0)
    return (1 - smoothing) * moved + smoothing / len(alpha)


class Reweighter:
    """The per-step loss hook (``trainer.LossFn``) of a method; keeps ``alpha`` and its history."""

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = False
    initial_score: ClassVar[float] = 0.0

    class Params(BaseModel):
        pass

    def __init__(
        self,
        params: BaseModel,
        labels: np.ndarray,
        shares: np.ndarray,
        preset: Preset,
        device: torch.device,
        reference: torch.nn.Module | None = None,
    ) -> None:
        self.p, self.preset, self.reference = params, preset, reference
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.k = len(shares)
        self.shares = torch.tensor(shares, dtype=torch.float64, device=device)
        self.alpha = torch.full((self.k,), 1.0 / self.k, dtype=torch.float64, device=device)
        self.score = torch.full((self.k,), self.initial_score, dtype=torch.float64, device=device)
        self.loss = torch.zeros(self.k, dtype=torch.float64, device=device)
        self.total_steps = max(1, -(-len(labels) // preset.batch_size))
        self.history: dict[str, list[list[float]]] = {"alpha": [], "score": [], "loss": []}

    @staticmethod
    def proxy_runs(domains: int) -> float:
        """Training FLOPs in proxy runs of the same tokens (see the module docstring)."""
        raise NotImplementedError

    def domain_means(
        self, values: torch.Tensor, lab: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per domain: the mean of ``values`` over its counted positions, and whether it had any."""
        lab, vals = lab[mask], values[mask].double()
        sums = torch.zeros(self.k, dtype=torch.float64, device=vals.device).index_add_(0, lab, vals)
        counts = torch.bincount(lab, minlength=self.k).double()
        return sums / counts.clamp(min=1), counts > 0

    def record(self, losses: torch.Tensor, lab: torch.Tensor, mask: torch.Tensor) -> None:
        means, present = self.domain_means(losses.detach(), lab, mask)
        self.loss[present] = means[present]
        for key, value in (("alpha", self.alpha), ("score", self.score), ("loss", self.loss)):
            self.history[key].append([float(v) for v in value.cpu()])

    def batch(self, rows: slice, batch: torch.Tensor, logits: torch.Tensor):
        """Token losses, their mask and each target token's domain id (``-1`` at pads)."""
        losses, mask = token_losses(logits, batch)
        return losses, mask, self.labels[rows][:, 1:]


class DoReMi(Reweighter):
    """DoReMi's domain reweighting (Xie et al. 2023, algorithm 1; see the module docstring)."""

    name = "doremi"
    needs_reference = True
    initial_score = math.log(VOCAB_SIZE)

    @staticmethod
    def proxy_runs(domains: int) -> float:
        return (3 + 3 + 1) / 3  # the reference's training, the proxy's, a reference forward per step

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        eta: float = Field(1.0, gt=0, description="step size of the domain weights (paper: 1)")
        smoothing: float = Field(1e-3, ge=0, lt=1, description="mixed-in uniform share c (paper: 1e-3)")

    def __call__(self, model, step: int, rows: slice, batch: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        losses, mask, lab = self.batch(rows, batch, logits)
        with torch.no_grad():
            reference, _ = token_losses(self.reference(input_ids=batch).logits, batch)
        excess, present = self.domain_means((losses.detach() - reference).clamp(min=0), lab, mask)
        self.score[present] = excess[present]
        self.alpha = exponentiated_gradient(self.alpha, self.score, self.p.eta, self.p.smoothing)
        self.record(losses, lab, mask)
        per_domain = self.alpha / self.shares
        weights = (per_domain / per_domain.sum())[lab.clamp(min=0)].float() * mask
        return (losses * weights).sum() / weights.sum().clamp(min=1e-10)


class DoGE(Reweighter):
    """DoGE's gradient-alignment reweighting (Fan et al. 2023; see the module docstring)."""

    name = "doge"

    @staticmethod
    def proxy_runs(domains: int) -> float:
        return (1 + 2 * domains) / 3  # one forward, a backward per domain

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        mu: float = Field(0.01, gt=0, description="Bregman coefficient: the weights' step size is 1/mu (paper: 0.01)")
        score_min: float = Field(0.0, description="scores are clipped to [score_min, score_max] * lr_t (paper: 0, 5)")
        score_max: float = 5.0
        smoothing: float = Field(0.0, ge=0, lt=1, description="mixed-in uniform share (paper: 0)")

    def __call__(self, model, step: int, rows: slice, batch: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        losses, mask, lab = self.batch(rows, batch, logits)
        params = [p for p in model.parameters() if p.requires_grad]
        present = [d for d in range(self.k) if bool((mask & (lab == d)).any())]
        domain_loss = {d: losses[mask & (lab == d)].mean() for d in present}
        grads = torch.stack([self._flat_grad(domain_loss[d], params) for d in present])
        alpha = self.alpha.clone()
        if len(present) >= 2:
            lr = lr_at(step, self.total_steps, self.preset)
            dots = (grads @ grads.T).double()
            score = lr * (dots.sum(dim=1) - dots.diag()) / (grads.norm(dim=1).double().mean() + 1e-6)
            score = score.clamp(lr * self.p.score_min, lr * self.p.score_max)
            self.score[present] = score
            mass = alpha[present].sum()
            alpha[present] = mass * exponentiated_gradient(alpha[present] / mass, score, 1 / self.p.mu, 0.0)
            self.alpha = (1 - self.p.smoothing) * alpha + self.p.smoothing / self.k
        self.record(losses, lab, mask)
        mix = self.alpha[present] / self.alpha[present].sum()
        combined = (mix.float() @ grads).split([p.numel() for p in params])
        linear = sum((p * g.view_as(p)).sum() for p, g in zip(params, combined, strict=True))
        value = sum(float(mix[i]) * domain_loss[d].detach() for i, d in enumerate(present))
        return linear - linear.detach() + value  # the value of the weighted loss, the gradient sum_i alpha_i g_i

    def _flat_grad(self, loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
        flat = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
        return flat * (self.preset.grad_clip / (flat.norm() + 1e-6)).clamp(max=1.0)


METHODS: dict[str, type[Reweighter]] = {m.name: m for m in (DoReMi, DoGE)}


class ReweightResult(BaseModel):
    """What one reweighting run learned (JSON-serialisable with ``model_dump``)."""

    method: str
    params: dict[str, float]
    domains: list[str]
    weights: dict[str, float] = Field(description="domain weights averaged over the steps: the output")
    final: dict[str, float] = Field(description="the domain weights after the last step")
    trajectory: list[list[float]] = Field(description="per step: alpha in ``domains`` order")
    scores: list[list[float]] = Field(description="per step: excess loss (DoReMi) or alignment score (DoGE)")
    domain_loss: list[list[float]] = Field(description="per step: the proxy's mean token loss per domain (nats)")
    sampling: dict[str, float] = Field(description="realised domain shares of the proxy's stream")
    reference: dict[str, float] | None = Field(None, description="realised shares of the reference's stream")
    reference_loss: float | None = Field(None, description="the reference's last training loss (nats)")
    preset: str
    tokens: int
    seed: int
    steps: int
    proxy_runs: float = Field(description="training FLOPs in proxy runs of the same tokens")
    seconds: float


def labelled_stream(
    pools: dict[str, SourcePool], mixture: Mixture, tokens: int, seed: int, seq_len: int
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Packed sequences (rows shuffled by ``seed``), each token's domain index (sorted domain names,
    ``-1`` at pads), and the realised token share of each domain."""
    sample = sample_mixture(pools, mixture, tokens, seed)
    packed = pack(sample.documents(pools), seq_len, "concat", seed, labels=sample.order[:, 0])
    return packed.tokens, packed.labels, sample.token_shares


def check_budget(preset: str | Preset, tokens: int) -> None:
    """Refuse a token budget that does not fill one optimiser step of ``preset``."""
    spec = get_preset(preset)
    if tokens < (step := spec.batch_size * spec.seq_len):
        raise ValueError(f"{tokens} tokens do not fill one {spec.name} training step ({step} tokens): give more tokens")


def reweight_domains(
    pools: dict[str, SourcePool],
    reference: Mixture,
    *,
    method: str = "doremi",
    params: dict | None = None,
    preset: str | Preset = "nano",
    tokens: int = 1_000_000,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
) -> ReweightResult:
    """Learn domain weights over ``pools`` with ``method`` (``doremi`` or ``doge``): see the module
    docstring. DoReMi's reference proxy trains on ``reference`` (its weights, or the natural
    mixture) with the same ``preset``, ``tokens`` and ``seed`` as the reweighted proxy."""
    if method not in METHODS:
        raise ValueError(f"reweighting method {method!r}: use one of {sorted(METHODS)}")
    start = time.perf_counter()
    kind = METHODS[method]
    settings = kind.Params.model_validate(params or {})
    spec = get_preset(preset)
    domains = sorted(pools)
    if empty := [d for d in domains if pools[d].usable_tokens == 0]:
        raise ValueError(f"domains {empty} have no usable documents: reweighting needs text in every domain")
    check_budget(spec, tokens)
    uniform = Mixture(weights=dict.fromkeys(domains, 1.0), max_epochs=reference.max_epochs)
    sequences, labels, shares = labelled_stream(pools, uniform, tokens, seed, spec.seq_len)
    ref_model, ref_shares, ref_loss = None, None, None
    if kind.needs_reference:  # trained as any proxy of the recipe is: its mixture's stream, packed alike
        sample = sample_mixture(pools, reference, tokens, seed)
        ref_shares = sample.token_shares
        packed = pack(sample.documents(pools), spec.seq_len, "concat", seed, phase_starts=sample.phase_starts)
        trained = train(packed.tokens, spec, seed=seed, device=device, threads=threads)
        if not trained.losses:
            raise ValueError(
                f"the reference proxy's stream does not fill one training step: give more tokens than {tokens}"
            )
        ref_model, ref_loss = trained.model, trained.losses[-1][2]
    hook = kind(settings, labels, np.array([shares[d] for d in domains]), spec, pick_device(device), ref_model)
    result = train(sequences, spec, seed=seed, device=device, threads=threads, loss_fn=hook)
    alphas = np.array([[1.0 / len(domains)] * len(domains), *hook.history["alpha"]])  # the mean counts alpha_0
    return ReweightResult(
        method=method,
        params=settings.model_dump(),
        domains=domains,
        weights=dict(zip(domains, (alphas.mean(axis=0) / alphas.mean(axis=0).sum()).tolist(), strict=True)),
        final=dict(zip(domains, alphas[-1].tolist(), strict=True)),
        trajectory=hook.history["alpha"],
        scores=hook.history["score"],
        domain_loss=hook.history["loss"],
        sampling=shares,
        reference=ref_shares if kind.needs_reference else None,
        reference_loss=ref_loss,
        preset=spec.name,
        tokens=result.tokens,
        seed=seed,
        steps=result.steps,
        proxy_runs=kind.proxy_runs(len(domains)),
        seconds=time.perf_counter() - start,
    )
