"""Threshold rules: filters whose every drop is one signal crossing one threshold.

A ``ThresholdFilter`` lists its rules in check order; the first rule a document violates drops it
with that rule's reason code, and the ledger's ``detail`` records what failed, as compact JSON::

    {"signal":"n_words","value":12,"op":"<","threshold":50,"param":"min_words"}

so ``dataplan explain`` can say why without recomputing anything.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np

from operators.core.base import KEEP, Batch, Filter

COMPARE = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal}


class Rule(NamedTuple):
    """Drop with ``reason`` where ``values <op> threshold``; a ``None`` threshold disables the rule."""

    reason: str
    signal: str
    """The signal column the values come from (named in the detail)."""
    values: np.ndarray
    op: str
    threshold: float | None
    param: str = ""
    """The ``Params`` field holding the threshold, so a user knows which knob to move."""


def first_violation(n: int, rules: list[Rule]) -> np.ndarray:
    """Per row, the reason of the first rule (in list order) that the row violates; ``KEEP`` where
    none does. NaN values violate nothing."""
    reason = np.full(n, KEEP, dtype=object)
    for rule in reversed(rules):  # earlier rules overwrite later ones
        if rule.threshold is not None:
            reason[COMPARE[rule.op](np.asarray(rule.values, dtype=np.float64), rule.threshold)] = rule.reason
    return reason


def rule_details(rules: list[Rule], reasons: np.ndarray) -> np.ndarray:
    """Per row, the JSON detail of the rule that dropped it ("" for kept rows)."""
    by_reason = {r.reason: r for r in rules if r.threshold is not None}
    details = np.full(len(reasons), "", dtype=object)
    for i in np.flatnonzero(reasons != KEEP):
        rule = by_reason.get(reasons[i])
        if rule is not None:
            details[i] = threshold_detail(rule.signal, rule.values[i], rule.op, rule.threshold, rule.param)
    return details


def threshold_detail(signal: str, value: object, op: str, threshold: float, param: str = "") -> str:
    """The ledger detail of one threshold decision, compact JSON (see the module docstring)."""
    out = {"signal": signal, "value": _number(value), "op": op, "threshold": _number(threshold)}
    if param:
        out["param"] = param
    return json.dumps(out, separators=(",", ":"))


def _number(value: object) -> int | float | None:
    v = float(value)  # type: ignore[arg-type]
    if math.isnan(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else round(v, 6)


class ThresholdFilter(Filter):
    """A filter defined by its ``rules``: ``decide`` is the first violated rule, ``details`` what it
    measured and the threshold it failed."""

    def rules(self, batch: Batch) -> list[Rule]:
        raise NotImplementedError

    def decide(self, batch: Batch) -> np.ndarray:
        rules = self.rules(batch)
        return first_violation(len(rules[0].values), rules)

    def details(self, batch: Batch, reasons: np.ndarray) -> np.ndarray:
        return rule_details(self.rules(batch), reasons)
