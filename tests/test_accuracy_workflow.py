"""End-to-end accuracy: weights over HTTP, a generated validation set, the CSV and figure."""

import hashlib

import imagenet_data as data
import mxnet as mx
import pandas as pd
import pytest
from conftest import publish, snakemake, write_config

from dlmark import imagenet, models
from dlmark.scenarios import accuracy

MODEL = "mobilenet0.25"


@pytest.mark.workflow
def test_measured_accuracy_replaces_the_published_one(tmp_path, tiny_config, model_store):
    store, url = model_store
    # Weights of our own (random) network, published as the model store would.
    params = tmp_path / "own.params"
    net = models.build_net(MODEL, mx.cpu())
    net(mx.nd.zeros(models.input_shape(MODEL, 1)))  # finish the deferred initialisation
    net.save_parameters(str(params))
    payload = params.read_bytes()
    sha1 = hashlib.sha1(payload).hexdigest()
    publish(store, f"{MODEL}-{sha1[:8]}.params", payload)
    val_dir = data.make_folders(tmp_path / "val")

    tiny_config.update(
        models=[MODEL],
        batch_sizes=[1],
        imagenet={"val_dir": str(val_dir), "num_classes": data.CLASSES, "images_per_class": 2},
        weights={"repo_url": url, "local_dirs": [], "checksums": {MODEL: sha1}},
    )
    work = tmp_path / "work"
    write_config(work, tiny_config)
    # The accuracy table alone: its weights, its variant and the pass (the rest is the tiny run's).
    snakemake(work, "results/accuracy.csv")

    fetched = work / f"resources/weights/{MODEL}-{sha1[:8]}.params"
    assert fetched.read_bytes() == payload
    table = pd.read_csv(work / "results/accuracy.csv")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"] == "measured" and row["num_images"] == 2 * data.CLASSES

    # The same network on the same subset, evaluated here, gives the same numbers.
    samples = imagenet.subset(imagenet.discover(val_dir, num_classes=data.CLASSES), 2)
    net.load_parameters(str(fetched))
    expected = accuracy.evaluate(data.predict_with(net), samples, input_size=224, workers=1)
    assert (row["top1"], row["top5"]) == (expected.top1, expected.top5)


def test_bad_val_dir_fails_before_any_benchmark(tmp_path, tiny_config):
    tiny_config["imagenet"] = {"val_dir": str(tmp_path / "no-such-folder")}
    write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    assert "imagenet.val_dir" in result.stderr + result.stdout
    assert "no-such-folder does not exist" in result.stderr + result.stdout
