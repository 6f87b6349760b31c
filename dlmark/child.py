"""What every measurement process does first, whichever scenario it measures."""

from __future__ import annotations

import datetime as dt
import os
import sys


def log_progress(message: str) -> None:
    """A timestamped progress line on stderr, which the job log keeps."""
    print(f"[dlmark {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def limit_threads(threads: int) -> None:
    """Pin the framework's thread pools before it is imported.

    oneDNN/OpenMP read these once at start-up, so they must be set in the
    child before `import mxnet`; setting them later changes nothing.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")
