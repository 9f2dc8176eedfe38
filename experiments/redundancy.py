"""Redundant steps: the ones whose drops other steps of the same recipe would make anyway.

Leave-one-out ablation credits a step only with what no other step does: when two filters both
remove gibberish, switching either off changes little, and each reads "no measurable effect" though
together they may matter a great deal. Grouped variable importance (Gregorutti, Michel and
Saint-Pierre 2015, "Grouped variable importance with random forests and application to multiple
functional data analysis") answers the same question for correlated features by removing the
correlated group at once. Here the groups are read from the ledgers the single-step ablations
already wrote: a document that step ``i`` drops in the recipe and step ``j`` drops once ``i`` is
off is one ``j`` *catches* for ``i``. When other steps catch at least ``MIN_CAUGHT`` of ``i``'s
drops, ``i`` and every step catching at least ``MIN_PARTNER`` of them form a group, which the
confirmation ablates together. A group's own ablation is read the same way: when yet another step
catches what the group drops, the group grows by it and is ablated again.

Groups are formed around steps that help on their own too: their stand-ins (the steps that would
remove the same documents were they off) do nothing while they run, and only the group shows that
the stand-ins matter at all, as Shapley values share a joint effect among interchangeable players.
Steps that hurt on their own are left out of every group.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

MIN_CAUGHT = 0.5
"""Share of a step's drops that other steps must catch for it to count as redundant."""
MIN_PARTNER = 0.2
"""Share of a redundant step's drops one other step must catch to join its group."""


def ledger_fates(ledger: Path) -> dict[tuple[str, str], int | None]:
    """(source, id) -> the ledger step index that dropped the document (None: kept)."""
    rows = pq.read_table(ledger, columns=["id", "source", "status", "step"]).to_pylist()
    return {(r["source"], r["id"]): r["step"] if r["status"] == "dropped" else None for r in rows}


def redundancy_groups(
    recipe_ledger: Path,
    without: dict[int, Path] | dict[tuple[int, ...], Path],
    offset: int = 0,
    exclude: frozenset[int] = frozenset(),
    trained: frozenset[str] | None = None,
) -> list[tuple[int, ...]]:
    """Groups of recipe step indices to ablate together, in step order, without repeats.

    ``recipe_ledger``: the ledger of the recipe; ``without``: a step index (or a group of them) ->
    the ledger of the recipe with it off (the candidates); ``offset``: ledger step index minus recipe
    step index (the steps a run puts first, such as the held-out exclusion); ``exclude``: steps never
    made partners (those that hurt on their own); ``trained``: the sources the recipe trains on
    (None: all), the only ones whose drops are counted, since a document of a source the mixture
    weighs 0 never reaches training whichever step drops it. Given the ledgers of groups already ablated, it
    returns the larger groups still needed: when a third step takes over what a pair drops (a
    repetition filter and MinHash both catch a spam flood that a quality filter drops first), the
    pair's ablation shows little and the three go together."""
    dropped_by: dict[int, list[tuple[str, str]]] = {}
    for doc, step in ledger_fates(recipe_ledger).items():
        if step is not None and (trained is None or doc[0] in trained):
            dropped_by.setdefault(step - offset, []).append(doc)
    groups: list[tuple[int, ...]] = []
    for key, path in sorted(without.items(), key=lambda kv: _steps(kv[0])):
        off = _steps(key)
        mine = [doc for i in off for doc in dropped_by.get(i, [])]
        if not mine:
            continue
        there = ledger_fates(path)
        catchers = Counter(there[d] - offset for d in mine if there.get(d) is not None and there[d] >= offset)
        if sum(catchers.values()) < MIN_CAUGHT * len(mine):
            continue
        partners = {j for j, n in catchers.items() if n >= MIN_PARTNER * len(mine) and j not in exclude}
        group = tuple(sorted({*off, *partners}))
        if len(group) > len(off) and group not in groups:
            groups.append(group)
    return groups


def _steps(key: int | tuple[int, ...]) -> tuple[int, ...]:
    return key if isinstance(key, tuple) else (key,)
