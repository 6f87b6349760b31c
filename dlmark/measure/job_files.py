"""The folders that carry a call to a measurement process and its answer back.

A parent writes `(target, arg)` to a pickle in a folder of its own; the
child runs it and writes its answer beside it; the parent reads the answer
and removes the folder. A parent killed hard (kill -9, the OOM killer, a
lost node) cannot remove its folders, so each is named after the host and
process that made it, and the next parent to make one on that host removes
those whose maker has died: an interrupted run leaves nothing behind in the
temp folder for long. (The host is in the name in case the temp folder is
shared: a process of another host is never judged dead from here.)
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import psutil

PREFIX = "dlmark-child-"


def _own_prefix() -> str:
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())
    return f"{PREFIX}{host}-"


def sweep_orphans(root: str | Path | None = None) -> list[Path]:
    """Remove this host's folders whose makers have died; return them."""
    removed = []
    owned = re.compile(re.escape(_own_prefix()) + r"(\d+)-")
    for folder in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = owned.match(folder.name)
        if owner and not psutil.pid_exists(int(owner.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@functools.cache
def _sweep_once() -> None:
    sweep_orphans()


def make(target: Any, arg: Any) -> tuple[str, str, str]:
    """A folder holding the pickled call: (folder, job file, where the answer will be)."""
    if getattr(target, "__module__", None) == "__main__":
        raise ValueError("a measurement's target must be importable by module name, not from __main__")
    _sweep_once()
    workdir = tempfile.mkdtemp(prefix=f"{_own_prefix()}{os.getpid()}-")
    job_path = os.path.join(workdir, "job.pkl")
    with open(job_path, "wb") as f:
        pickle.dump((target, arg), f)
    return workdir, job_path, os.path.join(workdir, "answer.pkl")
