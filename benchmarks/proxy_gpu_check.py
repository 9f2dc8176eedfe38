"""Train the ``small`` proxy (~26M params) on a GPU and print tokens/s and MFU as JSON.

Self-contained: the text is ``$DATAPLAN_SHARED_DATA/domains/*.jsonl`` when present, else this
repository's own source and docs (so it runs on a bare GPU box with only the working tree).
bf16 autocast; MFU is against a bf16 matmul measured on the same GPU in this run. Without CUDA it
prints ``{"skipped": ...}`` and exits 0. Usage: python benchmarks/proxy_gpu_check.py [--tokens 20M]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from agent.cli.train import parse_tokens  # noqa: E402
from evaluators.hardware import matmul_ceiling  # noqa: E402
from evaluators.model import flops_per_token, get_preset  # noqa: E402
from evaluators.packing import pack  # noqa: E402
from evaluators.trainer import train  # noqa: E402
from operators import shared_data_dir  # noqa: E402


def corpus(min_bytes: int) -> tuple[list[str], str]:
    """Texts totalling at least ``min_bytes`` (repeated when the source is smaller)."""
    shared = sorted((shared_data_dir() / "domains").glob("*.jsonl"))
    if shared:
        texts = [json.loads(line)["text"] for f in shared for line in f.open(encoding="utf-8") if line.strip()]
        origin = "shared domains"
    else:
        files = [p for ext in ("py", "md", "yaml") for p in sorted(REPO.rglob(f"*.{ext}")) if ".venv" not in p.parts]
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
        origin = "repository files"
    size = sum(len(t.encode("utf-8")) for t in texts)
    return texts * max(1, -(-min_bytes // size)), origin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="20M")
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    preset = get_preset(args.preset)
    tokens = parse_tokens(args.tokens)
    texts, origin = corpus(tokens)
    packed = pack(texts, preset.seq_len)
    sequences = packed.tokens[: -(-tokens // preset.seq_len)]
    start = time.perf_counter()
    result = train(sequences, preset, seed=0, device="cuda")
    wall = time.perf_counter() - start
    ceiling = matmul_ceiling("cuda", torch.bfloat16, 0)
    report = {
        "device": torch.cuda.get_device_name(0),
        "preset": preset.name,
        "params": result.params,
        "tokens": result.tokens,
        "data": origin,
        "tokens_per_s": round(result.tokens_per_s),
        "mfu": round(result.tokens_per_s * flops_per_token(preset, result.params) / ceiling, 4),
        "matmul_tflops_bf16": round(ceiling / 1e12, 1),
        "final_loss": round(result.losses[-1][2], 4),
        "train_seconds": round(result.seconds, 2),
        "wall_seconds": round(wall, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
