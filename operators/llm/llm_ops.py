"""Model-based operators: LLM quality scores, rephrasing synthesis and LLM PII redaction.

Each asks a model (``operators.llm.llm_backends``: transformers, litellm or vLLM) with a prompt kept in
``operators/llm/prompts/<name>.txt``. A prompt file is versioned by its name (``..._v1``) and pinned by
its sha256: ``prompt_sha256`` is filled in from the file, so it enters the annotate cache key, the
litellm response cache key (through the prompt text) and the recipe id; a recipe that names a
sha256 the file no longer has is refused instead of silently scoring with another prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from operators.core.base import KEEP, Batch, Filter, Mapper, OperatorParams, register
from operators.llm.llm_backends import GenParams, LLMConfig, get_backend

PROMPTS = Path(__file__).with_name("prompts")
SCORE = re.compile(r"^\s*(?:\**\s*)?([0-5])(?![\d.])")
PLACEHOLDER = re.compile(r"\[(?:NAME|EMAIL|PHONE|ADDRESS|ID)\]")


def prompt_text(name: str) -> str:
    path = PROMPTS / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS.glob("*.txt"))
        raise ValueError(f"prompt {name!r} not found in {PROMPTS}; one of {known}")
    return path.read_text(encoding="utf-8")


def prompt_sha256(name: str) -> str:
    return hashlib.sha256(prompt_text(name).encode("utf-8")).hexdigest()


class LLMParams(OperatorParams):
    """The model, the prompt (pinned by sha256) and the decoding parameters."""

    llm: LLMConfig
    prompt: str
    prompt_sha256: str | None = Field(None, description="filled in from the prompt file; a mismatch is an error")
    max_chars: int = Field(2000, gt=0, description="documents are cut to their first max_chars characters")
    generation: GenParams = GenParams()

    @model_validator(mode="after")
    def _pin_prompt(self):
        actual = prompt_sha256(self.prompt)
        if self.prompt_sha256 not in (None, actual):
            raise ValueError(
                f"prompt {self.prompt!r} changed: the recipe pins sha256 {self.prompt_sha256[:12]}..., "
                f"the file has {actual[:12]}...; add a new prompt version instead of editing one"
            )
        self.prompt_sha256 = actual
        return self

    def render(self, texts: np.ndarray) -> list[str]:
        template = prompt_text(self.prompt)
        return [template.replace("{text}", str(t)[: self.max_chars]) for t in texts]

    def ask(self, texts: np.ndarray) -> list[str]:
        return get_backend(self.llm).generate(self.render(texts), self.generation)


VLLM_BATCH = 256
"""Documents per vLLM call (Ray needs a batch size for GPU tasks; vLLM batches internally)."""


class UsesLLM:
    """Mixin of the operators whose ``params.llm`` names a model: with the ``vllm`` backend each
    Ray task that calls the model reserves one GPU and takes ``VLLM_BATCH`` documents."""

    params: LLMParams

    def ray_args(self) -> dict:
        return {"num_gpus": 1, "batch_size": VLLM_BATCH} if self.params.llm.backend == "vllm" else {}


def parse_score(answer: str) -> int:
    """The 0-5 score an answer starts with, or -1 (FineWeb-Edu's prompt asks for the integer alone)."""
    match = SCORE.match(answer)
    return int(match.group(1)) if match else -1


@register
class LlmQualityScore(UsesLLM, Filter):
    """FineWeb-Edu-style educational quality score (Penedo et al. 2024): an LLM grades each
    document with the additive 0-5 rubric of the FineWeb-Edu annotation prompt (Llama-3-70B
    annotated 450k pages with it); FineWeb-Edu keeps score >= 3 (``threshold``). ``llm_score`` is
    the parsed integer (-1 when the answer does not start with one), ``llm_answer`` the raw answer.
    Drops ``llm_score_below_threshold`` and ``llm_unparsable``."""

    name = "llm_quality_score"
    survivors_only = True
    reasons = ("llm_score_below_threshold", "llm_unparsable")
    signals = {"llm_score": "int64", "llm_answer": "str"}
    annotate_params = ("llm", "prompt", "prompt_sha256", "max_chars", "generation")

    class Params(LLMParams):
        prompt: str = "quality_score_v1"
        generation: GenParams = GenParams(max_new_tokens=4)
        threshold: int = Field(3, ge=0, le=5, description="FineWeb-Edu keeps int score >= 3")

    def annotate(self, batch: Batch) -> Batch:
        answers = self.params.ask(batch["text"])
        scores = np.array([parse_score(a) for a in answers], dtype=np.int64)
        return {"llm_score": scores, "llm_answer": np.array(answers, dtype=object)}

    def decide(self, batch: Batch) -> np.ndarray:
        scores = batch["llm_score"]
        reasons = np.where(scores >= self.params.threshold, KEEP, "llm_score_below_threshold").astype(object)
        reasons[scores < 0] = "llm_unparsable"
        return reasons


def chosen(ids: np.ndarray, fraction: float, salt: str) -> np.ndarray:
    """Rows whose sha256(salt, id) falls below ``fraction``: a stable choice, independent of batching."""
    keys = [int.from_bytes(hashlib.sha256(f"{salt}\0{i}".encode()).digest()[:8], "big") for i in ids]
    return np.array([k / 2**64 < fraction for k in keys], dtype=bool)


@register
class LlmRephrase(UsesLLM, Mapper):
    """Rephrasing synthesis (Maini et al. 2024, "Rephrasing the Web"): an LLM rewrites a
    ``fraction`` of the documents (chosen by a hash of their id) in one style: ``wiki`` (high
    quality English, as on Wikipedia), ``qa`` (question-answer conversation) or ``simple`` (very
    simple sentences), with the paper's prompts. A rewritten document gets id
    ``<id>:rephrased:<style>``, ``meta.synthetic = true`` and ``meta.parent_id = <id>``; the mixer's
    ``max_synthetic_share`` caps how much of the training stream such documents may be (the paper
    trains on a 1:1 mix of real and synthetic data). An empty answer leaves the document as it was.
    Signal ``llm_rephrased`` (bool). Drops nothing."""

    name = "llm_rephrase"
    survivors_only = True
    signals = {"llm_rephrased": "bool"}

    class Params(LLMParams):
        style: Literal["wiki", "qa", "simple"] = "wiki"
        prompt: str = ""
        fraction: float = Field(
            0.5, ge=0, le=1, description="share of documents rewritten (Maini et al.: 1:1 real:synthetic)"
        )
        generation: GenParams = GenParams(max_new_tokens=512)

        @model_validator(mode="before")
        @classmethod
        def _style_prompt(cls, data):
            if isinstance(data, dict) and not data.get("prompt"):
                data = {**data, "prompt": f"rephrase_{data.get('style', 'wiki')}_v1"}
            return data

    def map(self, batch: Batch) -> Batch:
        p = self.params
        pick = np.flatnonzero(chosen(batch["id"], p.fraction, f"llm_rephrase:{p.style}"))
        answers = p.ask(batch["text"][pick]) if len(pick) else []
        ids, texts, metas = batch["id"].copy(), batch["text"].copy(), batch["meta"].copy()
        rephrased = np.zeros(len(ids), dtype=bool)
        for row, answer in zip(pick, answers, strict=True):
            if not answer.strip():
                continue
            meta = json.loads(metas[row] or "{}")
            metas[row] = json.dumps({**meta, "synthetic": True, "parent_id": str(ids[row])}, sort_keys=True)
            ids[row] = f"{ids[row]}:rephrased:{p.style}"
            texts[row] = answer.strip()
            rephrased[row] = True
        return {"id": ids, "text": texts, "meta": metas, "llm_rephrased": rephrased}


def plausible_redaction(original: str, answer: str) -> bool:
    """The answer is the original with one or more spans replaced by placeholders (whitespace
    runs compared as one space): its text between placeholders must appear in order in the original,
    and each placeholder must stand for 1-100 characters of it."""
    pieces = PLACEHOLDER.split(" ".join(answer.split()))
    if len(pieces) < 2:
        return False
    pattern = ".{1,100}?".join(re.escape(piece) for piece in pieces)
    return re.fullmatch(pattern, " ".join(original.split()), flags=re.DOTALL) is not None


@register
class LlmPiiRedact(UsesLLM, Mapper):
    """LLM-based de-identification (the DeID-GPT approach, Liu et al. 2023): the model rewrites a
    document with names, e-mails, phone numbers, addresses and ID numbers replaced by
    ``[NAME]``/``[EMAIL]``/``[PHONE]``/``[ADDRESS]``/``[ID]``. An answer that is not a plausible
    redaction of the document (see ``plausible_redaction``) is rejected and the original kept;
    documents longer than ``max_chars`` are not sent. Signal ``llm_pii_status``: ``redacted``,
    ``unchanged`` (the answer equals the document), ``rejected`` or ``too_long``. Drops nothing."""

    name = "llm_pii_redact"
    survivors_only = True
    signals = {"llm_pii_status": "str"}

    class Params(LLMParams):
        prompt: str = "pii_redact_v1"
        generation: GenParams = GenParams(max_new_tokens=1024)

    def map(self, batch: Batch) -> Batch:
        p = self.params
        texts = batch["text"].copy()
        status = np.full(len(texts), "too_long", dtype=object)
        fits = np.flatnonzero([len(str(t)) <= p.max_chars for t in texts])
        answers = p.ask(texts[fits]) if len(fits) else []
        for row, answer in zip(fits, answers, strict=True):
            answer = answer.strip()
            if answer == texts[row].strip():
                status[row] = "unchanged"
            elif plausible_redaction(texts[row], answer):
                texts[row], status[row] = answer, "redacted"
            else:
                status[row] = "rejected"
        return {"text": texts, "llm_pii_status": status}
