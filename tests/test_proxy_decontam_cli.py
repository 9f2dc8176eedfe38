"""13-gram decontamination (report and operator, through a real Ray run) and ``dataplan train``."""

from __future__ import annotations

import json

import mlflow
import pytest
from proxy_helpers import read_jsonl
from typer.testing import CliRunner

from agent.cli import app
from evaluators.decontam import contamination_report
from evaluators.targets import Target, holdout_rank, resolve_targets
from operators import read_ledger, read_output, read_texts, recipe_from_dict, run_recipe

PLANTED_ID = "code:planted"


@pytest.fixture(scope="module")
def input_folder(shared_data, tmp_path_factory):
    """Code with one file that carries an ARC-Easy question and its answer in a comment, and books."""
    folder = tmp_path_factory.mktemp("decontam_inputs")
    arc = read_jsonl(shared_data / "eval" / "arc_easy_dev_half.jsonl", 40)
    record = next(r for r in arc if len((r["query"] + " " + r["choices"][r["gold"]]).split()) >= 20)
    code = read_jsonl(shared_data / "domains" / "code_python_thealgorithms.jsonl", 120)
    planted = {"id": PLANTED_ID, "text": f"# {record['query']} {record['choices'][record['gold']]}\n{code[0]['text']}"}
    for name, rows in (
        ("code", [*code[1:], planted]),
        ("books", read_jsonl(shared_data / "domains" / "books_gutenberg.jsonl", 60)),
    ):
        with (folder / f"{name}.jsonl").open("w") as fh:
            fh.writelines(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows)
    return folder


def test_report_finds_the_planted_overlap(input_folder, shared_data):
    folder = input_folder
    code = [r["text"] for r in read_jsonl(folder / "code.jsonl")]
    arc = read_texts([shared_data / "eval" / "arc_easy_dev_half.jsonl"], records=True)
    report = contamination_report(
        code, {"arc_easy": arc, "copa": read_texts([shared_data / "eval" / "copa_dev_half.jsonl"], records=True)}
    )
    assert report["arc_easy"]["contaminated_train_docs"] == 1
    assert report["arc_easy"]["contaminated_records"] == 1 and report["arc_easy"]["records"] == 1238
    assert report["copa"] == {
        "records": 56,
        "contaminated_records": 0,
        "contaminated_fraction": 0.0,
        "contaminated_train_docs": 0,
    }
    clean = contamination_report(code[:-1], {"arc_easy": arc})  # without the planted file
    assert clean["arc_easy"]["contaminated_train_docs"] == 0


@pytest.fixture(scope="module")
def run_dir(input_folder, ray_started, tmp_path_factory):
    folder = input_folder
    recipe = recipe_from_dict(
        {
            "name": "decontam",
            "sources": [
                {"name": "code", "uri": str(folder / "code.jsonl")},
                {"name": "books", "uri": str(folder / "books.jsonl")},
            ],
            "steps": [
                {
                    "op": "decontaminate",
                    "params": {"eval_sets": {"arc_easy": "${DATAPLAN_SHARED_DATA}/eval/arc_easy_dev_half.jsonl"}},
                }
            ],
            "mixture": {"weights": {"code": 0.5, "books": 0.5}, "total_tokens": 40_000},
        }
    )
    out = tmp_path_factory.mktemp("decontam_run")
    run_recipe(recipe, out)
    return out


def test_operator_drops_the_contaminated_document_with_its_set_in_the_reason(run_dir):
    ledger = read_ledger(run_dir).to_pylist()
    dropped = [r for r in ledger if r["status"] == "dropped"]
    assert [(r["id"], r["reason"]) for r in dropped] == [(PLANTED_ID, "contaminated:arc_easy")]
    kept = read_output(run_dir, "code")
    assert kept.num_rows == 119 and PLANTED_ID not in kept.column("id").to_pylist()
    assert set(kept.column("contam_ngrams").to_pylist()) == {0}


def test_held_out_slice_comes_from_the_raw_input(run_dir, input_folder):
    folder = input_folder
    raw = read_jsonl(folder / "code.jsonl")
    expected = {r["id"] for r in raw if holdout_rank(r["id"]) < 0.1}
    texts, excluded = resolve_targets(
        run_dir, [Target(name="code", source="code", fraction=0.1, max_docs=500, max_bytes=10**7)]
    )
    assert excluded == {"code": expected} and len(texts["code"]) == len(expected) > 3


def test_train_cli_writes_metrics_and_logs_to_mlflow(run_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = run_dir / "proxy_cli"
    args = ["train", str(run_dir), "--preset", "nano", "--tokens", "30k", "--eval", "code", "--eval", "books"]
    args += ["--seeds", "0,1", "--threads", "1", "--out", str(out), "--experiment", "cli-test"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and set(metrics["bpb_mean"]) == {"code", "books"}
    runs = [metrics["results"][0], metrics["results"][1]]
    assert metrics["bpb_mean"]["code"] == pytest.approx(sum(r["bpb"]["code"] for r in runs) / 2)
    assert metrics["bpb_std"]["code"] > 0  # two seeds, two different models
    assert all(r["sources"]["code"]["weight"] == 0.5 for r in runs)  # the recipe's mixture

    from operators import workspace

    mlflow.set_tracking_uri(f"sqlite:///{workspace() / 'mlflow.db'}")
    found = mlflow.search_runs(experiment_names=["cli-test"], output_format="list")
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId")]
    parent = next(r for r in found if not r.data.tags.get("mlflow.parentRunId"))
    assert len(children) == 2 and parent.data.metrics["bpb_mean.code"] == pytest.approx(metrics["bpb_mean"]["code"])
    client = mlflow.MlflowClient()
    for child in children:
        seed = int(child.data.params["seed"])
        assert child.data.params["model_dir"] == str(out / f"seed_{seed}" / "model")
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert len(history) == metrics["results"][seed]["steps"]
        assert child.data.metrics["bpb.code"] == pytest.approx(metrics["results"][seed]["bpb"]["code"])


def test_train_cli_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--no-mlflow"])
    assert result.exit_code == 2 and "not a run folder (no data/)" in " ".join(result.output.split())
