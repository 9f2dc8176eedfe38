"""lm-eval on a proxy, fully offline: task YAMLs generated from local files, ``simple_evaluate`` in memory.

- Perplexity tasks (``loglikelihood_rolling``) over ``{"text": ...}`` JSONL files: lm-eval reports
  ``bits_per_byte``, ``byte_perplexity`` and ``word_perplexity``.
- Multiple-choice tasks over ``{"query", "choices", "gold"}`` JSONL files (the shared ``eval/``
  files): ``acc`` and ``acc_norm``; each choice is scored as a continuation of the query.
  ARC-style queries get llm-foundry's ``"\\nAnswer:"`` prompt suffix (DCLM core tasks).

Tasks read their data with ``dataset_path: json`` and absolute ``data_files``; the task index is
built from our folder only (``include_defaults=False``) and the model is passed as an in-memory
``HFLM``, so nothing is downloaded and no built-in task is indexed.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from evaluators.model import context_length
from operators import apply_offline_defaults

PREFIX = "dataplan"
QUERY_SUFFIX = {"arc_easy": "\nAnswer:", "arc_challenge": "\nAnswer:"}


def task_name(kind: str, name: str) -> str:
    """``dataplan_ppl_<name>`` / ``dataplan_mc_<name>`` with the name reduced to ``[a-z0-9_]``."""
    return f"{PREFIX}_{kind}_{re.sub(r'[^a-z0-9_]+', '_', name.lower()).strip('_')}"


def perplexity_task(name: str, data_file: str | Path) -> dict[str, Any]:
    """A ``loglikelihood_rolling`` task over a JSONL file of ``{"text": ...}`` records."""
    return {
        "task": task_name("ppl", name),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [
            {"metric": "word_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
            {"metric": "byte_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
            {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False},
        ],
        "metadata": {"version": 1.0},
    }


def multiple_choice_task(name: str, data_file: str | Path) -> dict[str, Any]:
    """A ``multiple_choice`` task over a JSONL file of ``{"query", "choices", "gold"}`` records."""
    suffix = QUERY_SUFFIX.get(name, "")
    return {
        "task": task_name("mc", name),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{query}}" + suffix if suffix else "query",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def write_texts_jsonl(texts: list[str], path: str | Path) -> Path:
    """Write ``texts`` as ``{"text": ...}`` lines (the input of a perplexity task)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return path


def write_tasks(
    folder: str | Path,
    perplexity: dict[str, list[str]] | None = None,
    multiple_choice: dict[str, str | Path] | None = None,
    mc_limit: int | None = None,
) -> list[str]:
    """Write one YAML per task into ``folder``: perplexity tasks from texts (name -> texts, written
    beside the YAMLs) and multiple-choice tasks from files (name -> JSONL path; with ``mc_limit``
    the first records are copied beside the YAMLs, so perplexity tasks always score every text).
    Returns the task names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    configs = []
    for name, texts in (perplexity or {}).items():
        configs.append(perplexity_task(name, write_texts_jsonl(texts, folder / f"{task_name('ppl', name)}.jsonl")))
    for name, path in (multiple_choice or {}).items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"multiple-choice file {path} does not exist")
        if mc_limit is not None:
            lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
            path = folder / f"{task_name('mc', name)}.jsonl"
            path.write_text("\n".join(lines[:mc_limit]) + "\n", encoding="utf-8")
        configs.append(multiple_choice_task(name, path))
    for config in configs:
        (folder / f"{config['task']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return [c["task"] for c in configs]


def run_lm_eval(
    model,
    tokenizer,
    task_dir: str | Path,
    tasks: list[str],
    *,
    batch_size: int = 16,
    device: str | None = None,
) -> dict[str, dict[str, float]]:
    """``lm_eval.simple_evaluate`` on an in-memory model over the tasks in ``task_dir``.

    Returns task -> {metric: value} (lm-eval's ``"bits_per_byte,none"`` keys become ``bits_per_byte``),
    plus ``samples``, the number of documents scored."""
    apply_offline_defaults()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=context_length(model),
        device=device or str(next(model.parameters()).device),
    )
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    out = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=0,
        log_samples=False,
        bootstrap_iters=0,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    return {
        task: {
            **{k.split(",")[0]: float(v) for k, v in metrics.items() if isinstance(v, int | float) and "," in k},
            "samples": float(out["n-samples"][task]["effective"]),
        }
        for task, metrics in out["results"].items()
    }
