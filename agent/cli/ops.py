"""``dataplan ops list|show``: the operator registry with each operator's params schema."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.console import console, fail, print_json
from operators import UnknownOperatorError, all_operators, get_operator

app = typer.Typer(help="List and describe the registered data operators.", no_args_is_help=True)


@app.command("list")
def list_ops(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table (the one in README.md)"),
) -> None:
    """Every registered operator: name, kind, params (with defaults) and drop reasons."""
    ops = [cls.describe() for cls in all_operators()]
    if as_json:
        print_json(ops)
        return
    if markdown:
        print(markdown_table(ops))
        return
    table = Table(title=f"{len(ops)} operators")
    for col in ("name", "kind", "params (defaults)", "reasons"):
        table.add_column(col, overflow="fold")
    for op in ops:
        params = ", ".join(f"{k}={v}" for k, v in (op["defaults"] or {}).items())
        table.add_row(op["name"], op["kind"], params, ", ".join(op["reasons"]))
    console.print(table)


def markdown_table(ops: list[dict]) -> str:
    """One row per operator: name, kind, first docstring line, params with defaults, reasons."""
    rows = ["| operator | kind | what it does | params (defaults) | drop reasons |", "|---|---|---|---|---|"]
    for op in ops:
        props = op["params_schema"].get("properties", {})
        params = ", ".join(
            f"`{k}`" + (f"={v['default']!r}" if "default" in v else " (required)") for k, v in props.items()
        )
        params = params.replace("|", "\\|")
        summary = op["doc"].split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        reasons = ", ".join(f"`{r}`" for r in op["reasons"])
        rows.append(f"| `{op['name']}` | {op['kind']} | {summary} | {params} | {reasons} |")
    return "\n".join(rows)


@app.command("show")
def show_op(name: str, as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One operator in full: docstring, params JSON schema, signal columns, reasons."""
    try:
        desc = get_operator(name).describe()
    except UnknownOperatorError as err:
        fail(str(err))
    if as_json:
        print_json(desc)
        return
    console.print(f"[bold]{desc['name']}[/] ({desc['kind']}, version {desc['version']})\n\n{escape(desc['doc'])}\n")
    console.print("[bold]params schema[/]")
    console.print_json(json.dumps(desc["params_schema"]))
    if desc["signals"]:
        console.print(
            f"[bold]signals[/] {desc['signals']}  (annotation depends on {desc['annotate_params'] or 'no params'})"
        )
    if desc["reasons"]:
        console.print(f"[bold]drop reasons[/] {', '.join(desc['reasons'])}")
