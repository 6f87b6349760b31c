"""Where a result came from: the workflow's version and the settings used.

Two numbers can only be compared when it is clear they were measured the
same way, so every record carries the workflow's git commit (and whether
the tree had uncommitted changes) and a hash of the settings of its
measurement.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@lru_cache(maxsize=1)
def workflow_version() -> dict[str, Any]:
    """The git commit of the workflow and whether its tree was dirty.

    A copy made by `git archive` (the GPU bundle) has no repository of its
    own, and may sit inside someone else's: its REVISION file names the
    commit it was made from; whether it was changed since is unknown.
    """
    if not (REPO / ".git").exists() and (REPO / "REVISION").is_file():
        return {"git_commit": (REPO / "REVISION").read_text().strip(), "git_dirty": None}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or "unknown", "git_dirty": bool(status) if status is not None else None}


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of a measurement's settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
