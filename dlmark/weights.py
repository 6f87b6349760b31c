"""Pretrained weights: found locally or downloaded, always checksum-verified.

Accuracy is only meaningful for the exact published weights, so every file
is checked against the SHA-1 that MXNet's model store ships, whatever its
source. A download goes to a temporary name and is renamed into place only
once verified: a partial or corrupt file is never left where the workflow
would take it for the real one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

MXNET_REPO_URL = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"
URL_FORMAT = "{repo_url}gluon/models/{file_name}.zip"


class WeightsError(RuntimeError):
    """Weights that cannot be had; the message says where to put them by hand."""


@dataclass(frozen=True)
class WeightsSpec:
    model: str
    sha1: str
    dest_dir: str
    local_dirs: tuple[str, ...] = ()
    repo_url: str | None = None
    timeout_s: float = 60.0

    @property
    def file_name(self) -> str:
        return file_name(self.model, self.sha1)

    @property
    def url(self) -> str:
        repo = self.repo_url or os.environ.get("MXNET_GLUON_REPO") or MXNET_REPO_URL
        if not repo.endswith("/"):
            repo += "/"
        return URL_FORMAT.format(repo_url=repo, file_name=self.file_name[: -len(".params")])


SHA1_TABLE = "model_store_sha1.csv"


@lru_cache(maxsize=1)
def _shipped_sha1() -> dict[str, str]:
    text = resources.files("dlmark.data").joinpath(SHA1_TABLE).read_text(encoding="utf-8")
    return {row["model"]: row["sha1"] for row in csv.DictReader(text.splitlines())}


def model_store_sha1(model: str) -> str:
    """The SHA-1 MXNet's model store lists for `model`'s pretrained weights.

    Read from a shipped copy of mxnet's table (a test keeps it equal), so
    the workflow can name weight files while building its DAG without
    importing MXNet.
    """
    try:
        return _shipped_sha1()[model]
    except KeyError:
        raise WeightsError(f"MXNet's model store has no pretrained weights for '{model}'") from None


def file_name(model: str, sha1: str) -> str:
    """MXNet's model-store name: `<model>-<first 8 hex of sha1>.params`."""
    return f"{model}-{sha1[:8]}.params"


def sha1_of(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _place(source: Path, spec: WeightsSpec, target: Path) -> None:
    """Copy `source` next to `target`, verify it, then rename: all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        got = sha1_of(tmp)
        if got != spec.sha1:
            raise WeightsError(
                f"{source} has SHA-1 {got}, expected {spec.sha1} for {spec.model}: "
                "the file is corrupt or not these weights; delete it and fetch again"
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _download(spec: WeightsSpec, target: Path, progress: Callable[[str], None]) -> None:
    url = spec.url
    progress(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=spec.timeout_s) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(
            f"cannot download the weights of {spec.model} from {url} ({reason}). "
            f"Offline? Put {spec.file_name} (SHA-1 {spec.sha1}) in {spec.dest_dir} or in a "
            "folder listed in weights.local_dirs (e.g. ~/.mxnet/models), or set weights.repo_url "
            "(or MXNET_GLUON_REPO) to a mirror."
        ) from exc
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            member = next((n for n in archive.namelist() if n.endswith(".params")), None)
            if member is None:
                raise WeightsError(f"{url} holds no .params file; is weights.repo_url right?")
            with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
                extracted = Path(archive.extract(member, scratch))
                _place(extracted, spec, target)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{url} is not a valid zip archive ({exc}); the download is corrupt") from exc


def fetch(spec: WeightsSpec, progress: Callable[[str], None] = lambda _: None) -> Path:
    """The verified weights file in `dest_dir`, from the first source that has it.

    Sources in order: `dest_dir` itself, each local folder, the repository.
    A local file with the wrong checksum is reported and skipped.
    """
    target = Path(spec.dest_dir) / spec.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha1_of(target) == spec.sha1:
        progress(f"{target} already verified")
        return target
    for folder in spec.local_dirs:
        candidate = Path(folder).expanduser() / spec.file_name
        if candidate.exists():
            try:
                _place(candidate, spec, target)
                progress(f"copied {candidate} (SHA-1 verified)")
                return target
            except WeightsError as exc:
                progress(f"skipping {candidate}: {exc}")
    _download(spec, target, progress)
    progress(f"downloaded and verified {target}")
    return target
