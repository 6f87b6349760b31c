"""Cost of the data pipeline in an accuracy pass: decode + preprocess + inference vs inference.

Generates ImageNet-sized JPEGs (500x375, smooth random content, quality 90,
about the size of real validation images), then runs the accuracy pass of
dlmark on them with the given model and reports images per second of the
whole pass and of inference alone.

    python benchmarks/accuracy_pipeline.py [--model resnet18_v1] [--images 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from dlmark import config as dlconfig
from dlmark import imagenet, models
from dlmark.measure import child
from dlmark.scenarios import accuracy


def make_images(root: Path, count: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(exist_ok=True)
        coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((500, 375), Image.BICUBIC).save(folder / f"{i:05d}.JPEG", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18_v1")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    child.limit_threads(dlconfig.cpu_threads({}))
    import mxnet as mx

    with tempfile.TemporaryDirectory() as scratch:
        make_images(Path(scratch), args.images)
        samples = imagenet.discover(scratch, num_classes=10)
        net = models.build_net(args.model, mx.cpu())

        def predict(images: np.ndarray) -> np.ndarray:
            return net(mx.nd.array(images)).asnumpy()

        size = models.model_info(args.model).input_size
        accuracy.evaluate(predict, samples[: args.batch], size, args.batch, args.workers)  # warm-up
        result = accuracy.evaluate(predict, samples, size, args.batch, args.workers)
    print(
        f"{args.model}, {result.num_images} JPEGs 500x375, batch {args.batch}, {args.workers} decode workers: "
        f"whole pass {result.images_per_second:.1f} img/s, inference alone "
        f"{result.inference_images_per_second:.1f} img/s; the data pipeline costs "
        f"{1 - result.images_per_second / result.inference_images_per_second:.0%} of the pass's speed"
    )


if __name__ == "__main__":
    main()
