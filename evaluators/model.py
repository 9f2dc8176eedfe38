"""GPT-2 proxy model presets (``transformers``) and their FLOPs per token.

Sizes follow the small end of the scaling-law sweeps (Kaplan et al. 2020; nanoGPT's shapes): a
preset fixes depth, width, heads (head size 32, 64 for ``small``), context and the optimisation
defaults that work at that size.

| preset | layers x width | params | context | batch | lr |
| --- | --- | --- | --- | --- | --- |
| nano  | 2 x 64  | 0.15M | 256 | 8  | 2e-3 |
| micro | 4 x 128 | 0.89M | 256 | 16 | 2e-3 |
| mini  | 6 x 256 | 4.9M  | 256 | 16 | 1e-3 |
| small | 8 x 512 | 25.7M | 512 | 32 | 6e-4 (meant for a GPU) |

``nano``'s batch and learning rate were chosen by the 3-seed spread after 1M tokens of code, books
and legal text: batch 8 / lr 2e-3 gave 3.85 / 3.75 bits per byte on held-out code / books with a
seed std of 0.035 / 0.053, against 3.98 / 3.95 and 0.12 / 0.19 for batch 16 / lr 3e-3.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluators.tokenizer import EOT_ID, PAD_ID, VOCAB_SIZE

if TYPE_CHECKING:
    from evaluators.bpe_tokenizer import BpeTokenizer


class Preset(BaseModel):
    """Model shape and optimisation defaults (AdamW, linear warmup, then cosine decay to
    ``min_lr_ratio`` or, with ``schedule="wsd"``, a constant rate and a linear decay over the last
    ``decay_frac`` of the steps: warmup-stable-decay, Hu et al. 2024, MiniCPM). ``arch="llama"``
    builds the same shape as a LLaMA decoder (RoPE, RMSNorm, SwiGLU; Touvron et al. 2023)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    n_layer: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    seq_len: int = Field(gt=1)
    batch_size: int = Field(gt=0, description="sequences per optimiser step")
    lr: float = Field(gt=0)
    min_lr_ratio: float = 0.1
    warmup_frac: float = Field(0.05, ge=0, lt=1, description="share of the steps spent warming up")
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    arch: Literal["gpt2", "llama"] = "gpt2"
    schedule: Literal["cosine", "wsd"] = "cosine"
    decay_frac: float = Field(0.2, gt=0, le=1, description="wsd: share of the steps spent decaying")


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(name="nano", n_layer=2, n_embd=64, n_head=2, seq_len=256, batch_size=8, lr=2e-3),
        Preset(name="micro", n_layer=4, n_embd=128, n_head=4, seq_len=256, batch_size=16, lr=2e-3),
        Preset(name="mini", n_layer=6, n_embd=256, n_head=8, seq_len=256, batch_size=16, lr=1e-3),
        Preset(name="small", n_layer=8, n_embd=512, n_head=8, seq_len=512, batch_size=32, lr=6e-4),
    )
}


def get_preset(name: str | Preset, **overrides) -> Preset:
    """A preset by name, with fields overridden (e.g. ``batch_size=8``)."""
    if isinstance(name, Preset):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise ValueError(f"unknown preset {name!r}: use one of {sorted(PRESETS)}")
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None}) if overrides else base


class _RightPaddingNotice(logging.Filter):
    """Drops transformers' one-time "passing in an `attention_mask`" notice. Our proxies are causal
    and pad only on the right (``bits_per_byte``'s last window, ``packing``'s tail), with the pads'
    targets masked out of the loss: no scored position ever attends to a pad, so the notice is a
    false alarm on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attention_mask" not in record.getMessage()


logging.getLogger("transformers.modeling_utils").addFilter(_RightPaddingNotice())


def build_model(preset: Preset, tokenizer: BpeTokenizer | None = None):
    """A freshly initialised proxy of ``preset.arch`` (see ``build_gpt2`` and ``build_llama``) over
    ``tokenizer``'s vocabulary (None: the byte tokenizer's)."""
    build = build_llama if preset.arch == "llama" else build_gpt2
    return build(preset, tokenizer)


def token_ids(tokenizer: BpeTokenizer | None = None) -> dict[str, int]:
    """The model config's vocabulary size and special ids under ``tokenizer`` (None: bytes)."""
    if tokenizer is None:
        return {"vocab_size": VOCAB_SIZE, "bos_token_id": EOT_ID, "eos_token_id": EOT_ID, "pad_token_id": PAD_ID}
    eot = tokenizer.eot_id
    return {
        "vocab_size": tokenizer.vocab_size,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": tokenizer.pad_id,
    }


def build_llama(preset: Preset, tokenizer: BpeTokenizer | None = None):
    """A LLaMA decoder of the preset's shape: SwiGLU width ``8/3 d`` rounded up to a multiple of 32
    (LLaMA's rule), untied embeddings for the reason ``build_gpt2`` gives, SDPA attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **token_ids(tokenizer),
        hidden_size=preset.n_embd,
        intermediate_size=-(-8 * preset.n_embd // 3 // 32) * 32,
        num_hidden_layers=preset.n_layer,
        num_attention_heads=preset.n_head,
        max_position_embeddings=preset.seq_len,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


def context_length(model) -> int:
    """The context a built proxy was made for, whatever its architecture."""
    config = model.config
    return getattr(config, "n_positions", None) or config.max_position_embeddings


def build_gpt2(preset: Preset, tokenizer: BpeTokenizer | None = None):
    """A freshly initialised GPT-2 with SDPA attention, no dropout (proxies see each token about
    once) and exact GELU: one fused kernel on CPU, where GPT-2's tanh approximation runs as five
    elementwise passes and cost ~30 % of a nano step. Input and output embeddings are untied: with
    tied ones, a byte the training stream never contains (say ``"`` in a books-only sample) gets an
    embedding pushed far from everything by the softmax, and every context after it breaks (a
    books proxy scored held-out code at 5.9 or 8.7 bits per byte depending on the sample); untied,
    the unseen byte only costs its own prediction."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        **token_ids(tokenizer),
        n_positions=preset.seq_len,
        n_embd=preset.n_embd,
        n_layer=preset.n_layer,
        n_head=preset.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu",
        tie_word_embeddings=False,
    )
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(preset: Preset, n_params: int, vocab_size: int = VOCAB_SIZE) -> int:
    """Training FLOPs per token, the PaLM/nanoGPT estimate: ``6 N + 12 L d T`` where ``N`` counts the
    weights used in a matmul (the token and position embeddings are lookups, the LM head is a
    matmul) and the second term is attention's scores and weighted sum; ``vocab_size`` is the
    model's (the byte tokenizer's by default)."""
    lookups = vocab_size + (preset.seq_len if preset.arch == "gpt2" else 0)  # LLaMA has no position table
    matmul_params = n_params - lookups * preset.n_embd
    return 6 * matmul_params + 12 * preset.n_layer * preset.n_embd * preset.seq_len
