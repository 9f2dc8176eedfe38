"""The proxy tells domains apart: trained on code it models held-out code better than a proxy
trained on as many tokens of books, and the reverse on held-out books, beyond the 3-seed spread."""

from __future__ import annotations

from proxy_helpers import domains_run

from evaluators.proxy import evaluate_seeds
from evaluators.targets import Target
from operators import Mixture

TARGETS = [Target(name="code", source="code", max_bytes=24_000), Target(name="books", source="books", max_bytes=24_000)]


def test_code_proxy_wins_on_code_and_books_proxy_wins_on_books(shared_data, tmp_path):
    run = domains_run(
        tmp_path, shared_data, {"code": "code_python_thealgorithms.jsonl", "books": "books_gutenberg.jsonl"}
    )
    common = {"preset": "nano", "tokens": 100_000, "threads": 1, "seeds": (0, 1, 2)}
    on_code = evaluate_seeds(run, Mixture(weights={"code": 1.0}), TARGETS, **common)
    on_books = evaluate_seeds(run, Mixture(weights={"books": 1.0}), TARGETS, **common)
    for result in on_code.results:
        assert result.sources["books"]["tokens"] == 0 and result.sources["code"]["tokens"] >= 95_000
    for target, winner, loser in (("code", on_code, on_books), ("books", on_books, on_code)):
        gap = loser.bpb_mean[target] - winner.bpb_mean[target]
        spread = max(winner.bpb_max[target] - winner.bpb_min[target], loser.bpb_max[target] - loser.bpb_min[target])
        assert winner.bpb_max[target] < loser.bpb_min[target]  # every seed of the winner beats every seed of the loser
        assert gap > 3 * spread, (target, gap, spread)
        assert winner.bpb_std[target] > 0  # seeds really differ
