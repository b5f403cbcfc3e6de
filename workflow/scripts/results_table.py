"""The results table of the report: every number of the run's results files, one row per metric.

Run by the results_table rule (``script:``), which hands over ``snakemake.input.results`` and
``snakemake.output.table``. Standard library only, so it runs in any of the rules' envs. (No
``from __future__`` import: Snakemake puts its preamble before the script's first line.)
"""

import html
import json
from collections.abc import Iterator
from pathlib import Path

# Per-class scores stay in the results files: a row each would bury the headline numbers.
LEFT_OUT = ("per_class",)


def numbers(value, name: str) -> Iterator[tuple[str, float]]:
    """(dotted name, number) of every number under ``value``, but the per-class scores."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not str(key).startswith(LEFT_OUT):
                yield from numbers(inner, f"{name}.{key}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield name, value


def rows(path: Path) -> Iterator[tuple[str, str, float]]:
    """(results file, metric, value) of one results file; every task keeps its scores under
    ``metrics`` (workflow/schemas/results.schema.yaml)."""
    for name, value in numbers(json.loads(path.read_text())["metrics"], "metrics"):
        yield path.stem, name, value


def table_html(table_rows: list[tuple[str, str, float]]) -> str:
    cells = "\n".join(
        f"<tr><td>{html.escape(stem)}</td><td>{html.escape(name)}</td><td>{value:.4g}</td></tr>"
        for stem, name, value in table_rows
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>cg3d results</title>"
        "<style>td, th {padding: 2px 10px; text-align: left} td:last-child {text-align: right}</style>"
        "</head><body>\n<table>\n<tr><th>results file</th><th>metric</th><th>value</th></tr>\n"
        f"{cells}\n</table>\n</body></html>\n"
    )


def main(results: list[str], table: str, log: str) -> None:
    table_rows = [row for path in results for row in rows(Path(path))]
    Path(table).write_text(table_html(table_rows))
    Path(log).write_text(f"{len(table_rows)} numbers from {len(results)} results files\n")


main(snakemake.input.results, snakemake.output.table, snakemake.log[0])  # noqa: F821 (given by the script directive)
