"""How every job script starts: its output to its log, its life tied to Snakemake's.

Snakemake gives each job a log file; redirecting the file descriptors (not
just sys.stdout) also catches what MXNet's C++ core and the measurement
child write, so one file tells the whole story of a job.

A job script is a child of the Snakemake process that runs it. If that
process dies hard (kill -9, the OOM killer, a lost session), nothing would
stop the job, and its measurement would go on loading the machine while the
next run starts: so the job asks the kernel to kill it with its parent, and
the measurement processes it starts do the same (`launchers.die_with_parent`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def start(log_path: str | Path) -> None:
    """Call first in a job script: log everything, and die with Snakemake."""
    from dlmark.measure.child import die_with_parent

    die_with_parent()
    redirect(log_path)


def redirect(log_path: str | Path) -> None:
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
