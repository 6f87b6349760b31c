"""Send everything a job prints, its child processes included, to its log.

Snakemake gives each job a log file; redirecting the file descriptors (not
just sys.stdout) also catches what MXNet's C++ core and the measurement
child write, so one file tells the whole story of a job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def redirect(log_path: str | Path) -> None:
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
