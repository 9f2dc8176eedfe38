"""Inference backends for the model-based operators, behind one interface.

``generate(prompts, params) -> texts`` and ``logprobs(prompts, continuations) -> floats`` (the summed
log-probability of each continuation given its prompt). Three implementations:

- ``transformers``: a Hugging Face model folder on local disk (never a hub id), CPU or the GPU when
  present. Each prompt is decoded on its own, seeded by (seed, prompt), so an answer never depends
  on which batch the prompt landed in. Prompts longer than the model's context keep their end.
  ``generate`` wraps a prompt in the model's chat template when it has one (``logprobs`` scores raw
  text).
- ``litellm``: any provider or OpenAI-compatible server (``openai/<name>`` or ``hosted_vllm/<name>``
  with ``api_base``), a bounded thread pool, retries with exponential backoff on HTTP 429 and 5xx,
  and a response cache on disk (``<workspace>/llm_cache``) keyed by sha256 of (model, prompt,
  params), so a re-run makes no request. Log-probabilities use the completions API (``echo``).
- ``vllm``: vLLM's offline ``LLM.generate`` on a GPU; needs the ``gpu`` extra.

Loaded models are kept per process (a Ray worker loads a model once, not once per batch).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from operators.core.env import apply_offline_defaults, workspace

RETRY_STATUS = (429, 500, 502, 503, 504)


class GenParams(BaseModel):
    """Decoding parameters; ``temperature`` 0 is greedy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new_tokens: int = Field(16, gt=0)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0


class LLMConfig(BaseModel):
    """Which model answers: ``backend`` + ``model`` (a local folder for transformers/vllm, a litellm
    model name for litellm) and the litellm transport settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: Literal["transformers", "litellm", "vllm"] = "transformers"
    model: str = Field(description="local HF model folder (transformers, vllm) or litellm model name")
    api_base: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="env variable holding the API key (never the key itself)")
    max_concurrency: int = Field(4, ge=1, description="litellm: requests in flight per worker")
    max_retries: int = Field(4, ge=0, description="litellm: retries on HTTP 429/5xx")
    backoff_s: float = Field(0.5, ge=0, description="litellm: first retry delay, doubled each retry")
    timeout_s: float = Field(60.0, gt=0)


class Backend(Protocol):
    def generate(self, prompts: list[str], params: GenParams) -> list[str]: ...

    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]: ...


def get_backend(config: LLMConfig) -> Backend:
    """The backend for ``config``, loaded once per process."""
    return _load(config)


@functools.cache
def _load(config: LLMConfig) -> Backend:
    apply_offline_defaults()
    if config.backend == "transformers":
        return TransformersBackend(config.model)
    if config.backend == "litellm":
        return LitellmBackend(config)
    return VllmBackend(config.model)


def _local_folder(model: str) -> str:
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model {model!r} is not a local Hugging Face model folder (no config.json); hub ids are not fetched"
        )
    return str(path.resolve())


class TransformersBackend:
    """A local Hugging Face causal LM (``AutoModelForCausalLM`` + ``AutoTokenizer``)."""

    def __init__(self, model: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = _local_folder(model)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.tokenizer.model_max_length = 1 << 30  # prompts are cut to the context here, not by the tokenizer
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        self.context = int(getattr(self.model.config, "n_positions", None) or self.model.config.max_position_embeddings)

    def _ids(self, text: str, room: int):
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
        return ids[-room:] if room > 0 else ids[:0]

    def generate(self, prompts: list[str], params: GenParams) -> list[str]:
        import torch

        out = []
        for prompt in prompts:
            ids = self._ids(as_chat(self.tokenizer, prompt), self.context - params.max_new_tokens)[None].to(self.device)
            torch.manual_seed(_prompt_seed(params.seed, prompt))
            sample = params.temperature > 0
            with torch.no_grad():
                tokens = self.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=params.max_new_tokens,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            out.append(self.tokenizer.decode(tokens[0, ids.shape[1] :], skip_special_tokens=True))
        return out

    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        import torch

        out = []
        for prompt, cont in zip(prompts, continuations, strict=True):
            cont_ids = self._ids(cont, self.context)
            prompt_ids = self._ids(prompt, self.context - len(cont_ids))
            ids = torch.cat([prompt_ids, cont_ids])[None].to(self.device)
            with torch.no_grad():
                logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            targets = ids[0, 1:]
            token_logp = logp.gather(1, targets[:, None])[:, 0]
            out.append(float(token_logp[-len(cont_ids) :].sum()) if len(cont_ids) else 0.0)
        return out


def as_chat(tokenizer, prompt: str) -> str:
    """``prompt`` as one user turn in the model's chat template (an instruction-tuned model answers
    it as a chat, as it would through the litellm backend); unchanged for a model without one."""
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def _prompt_seed(seed: int, prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()[:4], "little")


class LitellmBackend:
    """litellm requests, cached on disk, retried, with bounded concurrency. ``generate`` sends chat
    completions; ``logprobs`` sends a text completion of prompt + continuation with ``echo`` and
    ``logprobs`` (the OpenAI completions API, which ``vllm serve`` implements) and sums the
    log-probabilities of the tokens that start inside the continuation."""

    def __init__(self, config: LLMConfig, cache_dir: Path | None = None) -> None:
        self.config = config
        self.cache_dir = cache_dir or workspace() / "llm_cache"

    def cache_key(self, request: dict) -> str:
        blob = json.dumps({"model": self.config.model, **request}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def generate(self, prompts: list[str], params: GenParams) -> list[str]:
        return self._map(lambda prompt: self._cached({"prompt": prompt, "params": params.model_dump()}), prompts)

    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        pairs = list(zip(prompts, continuations, strict=True))
        return self._map(lambda pair: self._cached({"prompt": pair[0], "continuation": pair[1]}), pairs)

    def _map(self, fn, items: list) -> list:
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            return list(pool.map(fn, items))

    def _cached(self, request: dict):
        key = self.cache_key(request)
        path = self.cache_dir / key[:2] / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["answer"]
        answer = self._request(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"model": self.config.model, **request, "answer": answer}), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent reader sees the whole answer or none
        return answer

    def _request(self, request: dict) -> str | float:
        litellm = _litellm()
        c = self.config
        kwargs = {"model": c.model, "timeout": c.timeout_s, "drop_params": True}
        kwargs["max_retries"] = 0  # the retries below are ours, so that every attempt is counted and backed off
        kwargs["api_key"] = os.environ.get(c.api_key_env, "") if c.api_key_env else "none"
        if c.api_base:
            kwargs["api_base"] = c.api_base
        for attempt in range(c.max_retries + 1):
            try:
                if "continuation" in request:
                    return _continuation_logprob(litellm, kwargs, request["prompt"], request["continuation"])
                return _chat(litellm, kwargs, request["prompt"], GenParams(**request["params"]))
            except Exception as err:  # litellm maps provider failures to its own exception types
                status = getattr(err, "status_code", None)
                if status not in RETRY_STATUS or attempt == c.max_retries:
                    raise RuntimeError(f"{c.model}: request failed after {attempt + 1} attempts: {err}") from err
                time.sleep(c.backoff_s * 2**attempt)
        raise AssertionError("unreachable")


def _chat(litellm, kwargs: dict, prompt: str, params: GenParams) -> str:
    response = litellm.completion(
        **kwargs,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
    )
    return response.choices[0].message.content or ""


def _continuation_logprob(litellm, kwargs: dict, prompt: str, continuation: str) -> float:
    text = prompt + continuation
    response = litellm.text_completion(**kwargs, prompt=text, echo=True, logprobs=1, max_tokens=1, temperature=0.0)
    scored = response.choices[0].logprobs
    scored = scored if isinstance(scored, dict) else scored.model_dump()
    pairs = zip(scored["text_offset"], scored["token_logprobs"], strict=True)
    return float(sum(lp for offset, lp in pairs if len(prompt) <= offset < len(text) and lp is not None))


@functools.cache
def _litellm():
    apply_offline_defaults()
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class VllmBackend:
    """vLLM's offline engine (``vllm.LLM``) on a local model folder; needs ``pip install -e '.[gpu]'``."""

    def __init__(self, model: str) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "the vllm backend needs vLLM: install the `gpu` extra (pip install -e '.[gpu]') on a CUDA machine"
            ) from err
        self.vllm = vllm
        self.llm = vllm.LLM(model=_local_folder(model), seed=0, enforce_eager=True)

    def generate(self, prompts: list[str], params: GenParams) -> list[str]:
        sampling = self.vllm.SamplingParams(
            max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p, seed=params.seed
        )
        chats = [as_chat(self.llm.get_tokenizer(), p) for p in prompts]
        return [o.outputs[0].text for o in self.llm.generate(chats, sampling, use_tqdm=False)]

    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        tokenizer = self.llm.get_tokenizer()
        sampling = self.vllm.SamplingParams(max_tokens=1, prompt_logprobs=0)
        full = [p + c for p, c in zip(prompts, continuations, strict=True)]
        out = []
        for prompt, result in zip(prompts, self.llm.generate(full, sampling, use_tqdm=False), strict=True):
            start = len(tokenizer(prompt).input_ids)  # same special tokens as vLLM adds
            ids = result.prompt_token_ids
            scored = result.prompt_logprobs  # position 0 is None: nothing predicts the first token
            out.append(sum(scored[i][ids[i]].logprob for i in range(max(start, 1), len(ids))))
        return out
