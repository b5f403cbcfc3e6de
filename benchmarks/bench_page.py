"""Query to results on `cg3d serve`'s search page, in headless Chromium, side by side in one process
with the API-only time (``searcher.search(searcher.embed_text(q))``) as the baseline.

The page's times are its own (performance.now in the browser): from the Search button's submit
to the result cards in the page, and to their thumbnails decoded. They include the HTTP round
trip, Flask, the JSON and the DOM on top of the same embed and search. The model caches each
distinct text's embedding, so the API and the page take turns on distinct queries of one kind
("a wooden chair", "a tall lamp", ...), after one untimed warm-up of each; the page then repeats
its query, which shows what the page adds to a search whose text is already embedded.

Needs an index with thumbnails (`cg3d embed --thumbnails`) and Debian's chromium and chromium-driver.

    python benchmarks/bench_page.py --index index.parquet [--checkpoint checkpoint.pt] [--queries 30]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path

import numpy as np
from search_timing import command_line, p50_p99_ms, report
from selenium.webdriver.common.by import By

import cg3d
from cg3d.inference.search import ShapeSearch
from cg3d.search.embeddings_file import inspect_embeddings
from cg3d.serve.app import DEFAULT_HITS, create_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import helpers.search_page as search_page  # noqa: E402

SHAPES = ("chair", "table", "lamp", "sofa", "bed", "bookshelf", "vase", "cup", "bottle", "airplane")
STYLES = ("a wooden", "a tall", "a round", "a small", "a modern", "an old")


def text_queries(count: int) -> list[str]:
    """Distinct short descriptions, as a person would type them."""
    return [f"{style} {shape}" for style, shape in itertools.islice(itertools.product(STYLES, SHAPES), count)]


def page_times(driver, query: str) -> tuple[float, float]:
    """Seconds from submit to the results shown, and to their thumbnails decoded, as the page timed them."""
    search_page.search_text(driver, query)
    if search_page.shown_error(driver):
        raise RuntimeError(f"{query!r}: the page showed {search_page.shown_error(driver)!r}")
    body = driver.find_element(By.TAG_NAME, "body")
    return float(body.get_attribute("data-results-ms")) / 1e3, float(body.get_attribute("data-thumbnails-ms")) / 1e3


def api_time(searcher: ShapeSearch, query: str, k: int) -> float:
    began = time.perf_counter()
    searcher.search(searcher.embed_text(query), k)
    return time.perf_counter() - began


def measure(searcher: ShapeSearch, queries: list[str], k: int) -> dict[str, np.ndarray]:
    """Seconds per query of each path; ``queries`` alternate between the API and the page."""
    times = {"api": [], "results": [], "thumbnails": [], "repeated": []}
    with search_page.serving(create_app(searcher)) as url, search_page.headless_chromium() as driver:
        driver.get(url)
        api_time(searcher, "warm-up", k)
        page_times(driver, "warm-up")
        for api_query, page_query in zip(queries[::2], queries[1::2]):
            times["api"].append(api_time(searcher, api_query, k))
            shown, with_thumbnails = page_times(driver, page_query)
            times["results"].append(shown)
            times["thumbnails"].append(with_thumbnails)
            times["repeated"].append(page_times(driver, page_query)[1])
    return {name: np.asarray(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="an embeddings file with thumbnails")
    parser.add_argument("--checkpoint", help="default: the checkpoint the index names")
    parser.add_argument("--queries", type=int, default=30, help=f"per path, at most {len(STYLES) * len(SHAPES) // 2}")
    args = parser.parse_args()
    if search_page.browser_missing():
        sys.exit(search_page.MISSING_BROWSER)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in the report

    checkpoint = args.checkpoint or inspect_embeddings(args.index)[1]["checkpoint"]
    searcher = ShapeSearch(cg3d.load(checkpoint, device="cpu"), args.index)
    k = DEFAULT_HITS  # what the page asks for
    times = measure(searcher, text_queries(2 * args.queries), k)
    api_p50 = p50_p99_ms(times["api"])[0]
    lines = [
        f"## Search page: text query to results, k={k}, {searcher.table.num_rows} shapes, {args.queries} queries\n",
        f"{command_line()}. Page times are the browser's (headless Chromium, Werkzeug single-threaded "
        f"on 127.0.0.1); API is embed_text + search in the server's process.\n",
        "| path | p50 ms | p99 ms | p50 / API p50 |",
        "|---|---:|---:|---:|",
    ]
    for name, title in (("api", "API only: embed_text + search"), ("results", "page: submit to results shown"),
                        ("thumbnails", "page: submit to thumbnails decoded"),
                        ("repeated", "page, the same query again (text embedding cached): to thumbnails")):
        p50, p99 = p50_p99_ms(times[name])
        lines.append(f"| {title} | {p50:.1f} | {p99:.1f} | {p50 / api_p50:.2f}x |")
    report(lines, "page.md")


if __name__ == "__main__":
    main()
