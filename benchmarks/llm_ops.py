"""LLM backends on a tiny local model: transformers prompts/s, litellm requests/s by concurrency,
and what a cached re-run costs.

    python benchmarks/llm_ops.py --json benchmarks/out/llm_ops.json

A nano proxy (evaluators, ~8k bytes of wikitext) is trained and saved; ``llm_quality_score``
prompts are built from ``domains/medical_medquad.jsonl``. The transformers backend answers them in
this process (one thread). The litellm backend sends them to ``tests/llm_server.py`` (a real
OpenAI-compatible server on 127.0.0.1 serving the same model, ``--latency`` seconds added to each
request to stand in for a remote model) at each ``max_concurrency``; then once more from the
response cache (the JSON records how many requests that made: 0). The server generates one
request at a time (one model), so past a few requests in flight its own compute is the limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from llm_server import ChatServer  # noqa: E402

from evaluators.model import get_preset  # noqa: E402
from evaluators.packing import pack  # noqa: E402
from evaluators.trainer import save_model, train  # noqa: E402
from operators import shared_data_dir  # noqa: E402
from operators.llm.llm_backends import LitellmBackend, LLMConfig, TransformersBackend, _litellm  # noqa: E402
from operators.llm.llm_ops import LlmQualityScore  # noqa: E402


def _jsonl(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line, _ in zip(fh, range(n), strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = shared_data_dir() / "domains"
    work = Path(tempfile.mkdtemp(prefix="llm_ops_bench_"))
    sequences = pack(_jsonl(data / "wiki_wikitext2_valid.jsonl", 2), 256).tokens[:32]
    model = str(save_model(train(sequences, get_preset("nano"), seed=0, threads=1).model, work / "model"))
    op = LlmQualityScore({"llm": {"model": model}})
    prompts = op.params.render(np.array(_jsonl(data / "medical_medquad.jsonl", args.docs), dtype=object))
    params = op.params.generation
    local = TransformersBackend(model)
    start = time.perf_counter()
    answers = local.generate(prompts, params)
    result = {
        "docs": len(prompts),
        "max_new_tokens": params.max_new_tokens,
        "transformers_prompts_per_s": len(prompts) / (time.perf_counter() - start),
        "server_latency_s": args.latency,
        "litellm": [],
    }
    _litellm()  # import litellm (2-3 s) before timing
    server = ChatServer(model, delay_s=args.latency)
    try:
        for concurrency in (1, 4, 16):
            config = LLMConfig(backend="litellm", model="openai/tiny", api_base=server.url, max_concurrency=concurrency)
            before, start = server.requests, time.perf_counter()
            got = LitellmBackend(config, cache_dir=work / f"cache{concurrency}").generate(prompts, params)
            seconds = time.perf_counter() - start
            before_cached, start = server.requests, time.perf_counter()
            LitellmBackend(config, cache_dir=work / f"cache{concurrency}").generate(prompts, params)
            result["litellm"].append(
                {
                    "max_concurrency": concurrency,
                    "requests": before_cached - before,
                    "requests_per_s": len(prompts) / seconds,
                    "peak_in_flight": server.peak,
                    "answers_equal_transformers": got == answers,
                    "cached_rerun_requests": server.requests - before_cached,
                    "cached_rerun_s": time.perf_counter() - start,
                }
            )
            server.peak = 0
    finally:
        server.close()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
