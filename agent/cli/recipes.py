"""``dataplan recipes list|show|init``: the published pipelines (C4, Gopher, RefinedWeb, FineWeb,
DCLM-baseline) and the examples in ``recipes/``, ready to run on your own source."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from rich.table import Table

from agent.cli.console import console, fail, print_json
from operators import RecipeError, recipe_from_dict, remote_scheme

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SOURCE = '"${SOURCE}"'
EXTRACT = "  - {op: html_extract}\n"

app = typer.Typer(help="Ready recipes: the published pipelines, to run on your own source.", no_args_is_help=True)
AS_JSON = typer.Option(False, "--json", help="machine-readable output on stdout")


def _names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def _text(name: str) -> str:
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        fail(f"no recipe {name!r}; one of {_names()} (`dataplan recipes list`)")
    return path.read_text(encoding="utf-8")


def _title(text: str) -> str:
    """What the recipe is and its paper, from its first comment line: ``C4: Colossal Clean Crawled
    Corpus (Raffel et al. 2020, "...`` -> ``C4: Colossal Clean Crawled Corpus; Raffel et al. 2020``."""
    first = next((line for line in text.splitlines() if line.startswith("#")), "# ").lstrip("# ").strip()
    what, _, cited = first.partition(" (")
    return f"{what}; {cited.split(',')[0].rstrip(').')}" if cited else what


@app.command("list")
def list_recipes(as_json: bool = AS_JSON) -> None:
    """Every ready recipe: its name, what it is, and its steps."""
    rows = []
    for name in _names():
        text = _text(name)
        steps = [s["op"] for s in yaml.safe_load(text).get("steps", [])]
        rows.append({"name": name, "title": _title(text), "steps": steps, "needs_source": SOURCE in text})
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} ready recipes ({RECIPES})")
    for col in ("name", "what", "steps"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["title"], ", ".join(r["steps"]))
    console.print(table)
    console.print("`dataplan recipes init NAME --source PATH` writes one to run on your source", highlight=False)


@app.command("show")
def show(name: str = typer.Argument(..., help="a name from `dataplan recipes list`")) -> None:
    """The recipe's YAML, with its comments: the paper, each stage and its parameters, the stand-ins."""
    typer.echo(_text(name), nl=False)


@app.command("init")
def init(
    name: str = typer.Argument(..., help="a name from `dataplan recipes list`"),
    source: str = typer.Option(..., "--source", help="the source: a file, folder, glob or remote URI"),
    out: Path | None = typer.Option(None, "--out", "-o", help="the YAML to write (default: ./<name>.yaml)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
    as_json: bool = AS_JSON,
) -> None:
    """Write a runnable copy of a ready recipe with your source filled in. Its text-extraction step
    is dropped when the source is not WARC (JSONL, Parquet and text sources hold text already)."""
    text = _text(name)
    if SOURCE not in text:
        fail(f"recipe {name!r} names its own sources; copy it with `dataplan recipes show {name} > FILE`")
    target = out or Path(f"{name}.yaml")
    if target.exists() and not force:
        fail(f"{target} exists; give another --out, or --force to overwrite it")
    where = source if remote_scheme(source) else str(Path(source).expanduser().absolute())
    written = text.replace(SOURCE, json.dumps(where))
    try:
        recipe = recipe_from_dict(yaml.safe_load(written), Path.cwd())
        if recipe.reader_class(recipe.sources[0]).name != "warc":
            written = written.replace(EXTRACT, "")
            recipe = recipe_from_dict(yaml.safe_load(written), Path.cwd())
        recipe.input_files()  # the source exists and holds readable files
    except RecipeError as err:
        fail(str(err))
    target.write_text(written, encoding="utf-8")
    steps = [s.op for s in recipe.steps]
    if as_json:
        print_json({"path": str(target.resolve()), "recipe_id": recipe.recipe_id(), "steps": steps})
        return
    console.print(f"wrote {target} ({len(steps)} steps: {', '.join(steps)})", highlight=False)
    console.print(f"run it: dataplan run {target} --out DIR", highlight=False)
