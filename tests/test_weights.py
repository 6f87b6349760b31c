"""Fetching weights over real HTTP from a server on 127.0.0.1."""

import hashlib

import pytest
from conftest import publish

from dlmark import weights

PAYLOAD = b"pretend these are the parameters of a network" * 100
SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


def spec_for(tmp_path, url, **changes):
    return weights.WeightsSpec(
        model="mobilenet0.25", sha1=SHA1, dest_dir=str(tmp_path / "weights"), repo_url=url, timeout_s=5, **changes
    )


def test_good_file_is_fetched_verified_and_placed(tmp_path, model_store):
    root, url = model_store
    spec = spec_for(tmp_path, url)
    publish(root, spec.file_name, PAYLOAD)
    path = weights.fetch(spec)
    assert path.name == f"mobilenet0.25-{SHA1[:8]}.params"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_corrupt_download_is_rejected_and_nothing_is_left(tmp_path, model_store):
    root, url = model_store
    spec = spec_for(tmp_path, url)
    publish(root, spec.file_name, PAYLOAD[:-10] + b"corrupted!")
    with pytest.raises(weights.WeightsError, match="expected " + SHA1):
        weights.fetch(spec)
    assert list((tmp_path / "weights").iterdir()) == []


def test_dead_server_gives_the_offline_message(tmp_path):
    spec = spec_for(tmp_path, "http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(weights.WeightsError) as info:
        weights.fetch(spec)
    message = str(info.value)
    assert "http://127.0.0.1:9/gluon/models/mobilenet0.25-" in message
    assert spec.file_name in message and spec.dest_dir in message
    assert list((tmp_path / "weights").iterdir()) == []


def test_local_folder_is_used_without_any_network(tmp_path):
    local = tmp_path / "mxnet-models"
    local.mkdir()
    spec = spec_for(tmp_path, "http://127.0.0.1:9/", local_dirs=(str(local),))
    (local / spec.file_name).write_bytes(PAYLOAD)
    assert weights.fetch(spec).read_bytes() == PAYLOAD


def test_bad_local_copy_is_skipped_for_the_download(tmp_path, model_store):
    root, url = model_store
    local = tmp_path / "mxnet-models"
    local.mkdir()
    spec = spec_for(tmp_path, url, local_dirs=(str(local),))
    (local / spec.file_name).write_bytes(b"truncated")
    publish(root, spec.file_name, PAYLOAD)
    assert weights.fetch(spec).read_bytes() == PAYLOAD


def test_mxnet_gluon_repo_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("MXNET_GLUON_REPO", "http://mirror.example/mx")
    spec = spec_for(tmp_path, None)
    assert spec.url == f"http://mirror.example/mx/gluon/models/mobilenet0.25-{SHA1[:8]}.zip"


def test_shipped_checksums_equal_mxnets_model_store():
    from mxnet.gluon.model_zoo import model_store

    from dlmark import models

    for name in models.zoo():
        assert weights.model_store_sha1(name) == model_store._model_sha1[name]
        assert weights.file_name(name, weights.model_store_sha1(name)) == (
            f"{name}-{model_store.short_hash(name)}.params"
        )
