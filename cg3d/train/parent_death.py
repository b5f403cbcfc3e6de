"""A torchrun worker dies with its launcher.

torchrun starts its workers in sessions of their own, so a SIGKILL of the launcher (the OOM
killer, ``kill -9``, a cluster agent) or of the Snakemake process group does not reach them: the
orphans keep training and rewriting ``last.pt`` beside the rerun. Linux's parent-death signal
(``prctl(PR_SET_PDEATHSIG)``) has the kernel kill the worker the moment its parent exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux); exit now if it
    already has. Checkpoints are written atomically, so dying at any moment loses nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent or parent == 1:
        sys.exit("the launcher of this worker has already exited")
