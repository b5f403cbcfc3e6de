"""Remove the directory lock a killed Snakemake left behind, when no Snakemake runs here.

Snakemake locks its working directory while it runs. After ``kill -9``, the OOM killer or a power
loss the lock stays, and the next run refuses to start ("Directory cannot be locked") until
``snakemake --unlock``. Unlocking under a live run would let two runs write the same outputs, so
this looks at every process first: any Snakemake whose working directory is this one keeps its
lock. ``make all`` runs this before Snakemake.

    python scripts/unlock_after_crash.py [SNAKEMAKE COMMAND...]   (default: snakemake)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def snakemake_running_here(here: Path) -> int | None:
    """The PID of a Snakemake process working in ``here``, if any."""
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != here:
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if any(arg.endswith(b"/snakemake") or arg == b"snakemake" for arg in argv[:3]):
            return int(proc.name)
    return None


def main() -> None:
    command = sys.argv[1:] or ["snakemake"]
    here = Path.cwd().resolve()
    locks = here / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return
    running = snakemake_running_here(here)
    if running is not None:
        print(f"Snakemake (PID {running}) is running in {here}: its lock stays")
        return
    print(f"removing the lock a stopped Snakemake left in {locks}")
    subprocess.run([*command, "--unlock", "--cores", "1"], check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
