"""What bench_search.py and bench_ann_libraries.py share: single-query timing and the report file."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def interleaved_latencies(searches: dict[str, Callable], queries: np.ndarray) -> dict[str, np.ndarray]:
    """Seconds per single-query call of each search; they take turns per query, so background
    load on a shared machine hits them alike. One untimed warm-up call each."""
    for search in searches.values():
        search(queries[:1])
    times = {name: [] for name in searches}
    for row in range(len(queries)):
        for name, search in searches.items():
            began = time.perf_counter()
            search(queries[row:row + 1])
            times[name].append(time.perf_counter() - began)
    return {name: np.asarray(values) for name, values in times.items()}


def p50_p99_ms(seconds: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1e3), float(np.percentile(seconds, 99) * 1e3)


def timed(function: Callable, *args, **kwargs):
    """``function``'s result and its wall time in seconds."""
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - began


def command_line() -> str:
    """The command, the machine and how busy it was: the first line under each report's title."""
    import torch

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"`{shlex.join(['python', *sys.argv])}` on {platform.processor() or platform.machine()} "
            f"(load average {load} at the end), torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads")


def report(lines: list[str], name: str) -> Path:
    """Print the report and write it to benchmarks/out/``name``."""
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / name).write_text(text)
    return OUT / name
