"""The record of a confirmation's finished trainings, so an interrupted finalize resumes from there.

``DIR/confirmations.jsonl`` holds one JSON line per finished training: the recipe id, the proxy
(preset, tokens), the seed, the scale (``search`` or ``confirm``), the objective and the bits per
byte per target. A line is appended and fsynced the moment its training ends, so a killed process
(SIGKILL included) loses at most the training that was running. A later finalize of the same folder
reuses a recorded training instead of retraining it when the recipe id, the seed and the setup (the
proxy, the targets and the held-out slice) are the same; a changed recipe has a new id and trains.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from evaluators.packing import PACKING_VERSION
from evaluators.sampler import SAMPLER_VERSION
from experiments.search_config import SearchConfig

RECORD = "confirmations.jsonl"

Key = tuple[str, str, int]
"""(recipe id, setup fingerprint, seed)."""


def setup_fingerprint(config: SearchConfig) -> str:
    """What a training's result depends on besides the recipe and the seed: the proxy (its BPE's
    sha256 included), the targets, the held-out slice and the objective's weighting."""
    # the proxy fields a finished training's value depends on, named: a field added to the spec
    # later (as ``rungs``, which only decides when a search stops a trial) keeps old records valid
    proxy = {"preset", "tokens", "eval_every", "seq_len"}
    setup = config.model_dump(
        mode="json", include={"proxy": proxy, "targets": True, "held_out_ids": True, "objective": True}
    )
    if config.proxy.tokenizer == "bpe":
        setup["proxy"]["tokenizer"] = config.tokenizer_sha256
    setup["sampler"] = SAMPLER_VERSION  # a training drawn by another rule saw other documents
    setup["packing"] = PACKING_VERSION  # ... or saw them in another order
    return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:16]


class ConfirmLog:
    """Finished trainings of one folder, read once and appended to as trainings finish."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RECORD
        self.entries: dict[Key, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self._complete_lines():
                entry = json.loads(line)
                self.entries[(entry["recipe_id"], entry["setup"], entry["seed"])] = entry

    def _complete_lines(self) -> list[str]:
        """The file's lines, after cutting a line torn by a kill mid-write (so the next append starts
        on a line of its own)."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(end)
        return [line for line in data[:end].decode().splitlines() if line.strip()]

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, entry: dict[str, Any]) -> None:
        """Record one finished training durably: one write of one line, flushed and fsynced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.entries[(entry["recipe_id"], entry["setup"], entry["seed"])] = entry
