"""The synthetic pipeline through SLURM vs the local executor: the same 12 jobs (manifest, render,
points and triplets of 3 shards, summary, one-epoch pretraining on 2 gloo processes), run
alternately in fresh directories; the ratio is SLURM's overhead.

Needs the cluster of scripts/slurm_up.sh:

    sudo bash scripts/slurm_up.sh && .venv/bin/python benchmarks/bench_cluster.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.cluster_run import run_pipeline, slurm_jobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "slurm": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for executor in ("local", "slurm"):
                workdir = Path(scratch) / f"{executor}-{round_}"
                result, seconds = run_pipeline(workdir, executor)
                if result.returncode != 0:
                    sys.exit(f"{executor} run failed:\n{result.stderr[-3000:]}")
                jobs = len(slurm_jobs(workdir)) if executor == "slurm" else None
                print(f"round {round_} {executor}: {seconds:.1f} s" + (f" ({jobs} SLURM jobs)" if jobs else ""))
                times[executor].append(seconds)
    local, slurm = statistics.median(times["local"]), statistics.median(times["slurm"])
    report = {"local_s": local, "slurm_s": slurm, "ratio": slurm / local, "rounds": args.rounds, "runs": times}
    print(json.dumps(report, indent=2))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "bench_cluster.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
