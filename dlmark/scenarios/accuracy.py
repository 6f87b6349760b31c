"""Top-1/top-5 accuracy of a network over validation images.

Decoding JPEGs costs more CPU than a small network's inference, so images
are decoded by a pool of worker processes while the network runs; the time
of each part is kept, so the cost of the data pipeline is visible next to
inference alone.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from dlmark.imagenet import Sample, preprocess
from dlmark.specs import Measured

if TYPE_CHECKING:
    from dlmark.results.records import AccuracyRecord


@dataclass
class AccuracyResult:
    top1: float
    top5: float
    num_images: int
    seconds_total: float
    seconds_inference: float

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds_total

    @property
    def inference_images_per_second(self) -> float:
        return self.num_images / self.seconds_inference


def batches(
    samples: list[Sample], input_size: int, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Preprocessed batches in order, decoded in parallel ahead of use."""
    decode = partial(preprocess, input_size=input_size)
    paths = [s.path for s in samples]
    labels = np.array([s.label for s in samples])
    if workers <= 1:
        images: Iterator[np.ndarray] = map(decode, paths)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        images = pool.map(decode, paths, chunksize=8)
    try:
        for start in range(0, len(paths), batch_size):
            chunk = [next(images) for _ in range(min(batch_size, len(paths) - start))]
            yield np.stack(chunk), labels[start : start + len(chunk)]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def evaluate(
    predict: Callable[[np.ndarray], np.ndarray],
    samples: list[Sample],
    input_size: int,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> AccuracyResult:
    """Run `predict` over `samples`; count how often the label is in the top 1 / top 5.

    `predict` maps a batch of preprocessed images to class scores, so any
    runtime (MXNet, ONNX Runtime, INT8) is measured by the same code.
    """
    top1 = top5 = done = 0
    inference = 0.0
    started = time.perf_counter()
    for images, labels in batches(samples, input_size, batch_size, workers):
        t0 = time.perf_counter()
        scores = predict(images)
        inference += time.perf_counter() - t0
        # Ties broken by class index, as argsort is stable: deterministic.
        ranked = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        top1 += int((ranked[:, 0] == labels).sum())
        top5 += int((ranked == labels[:, None]).any(axis=1).sum())
        done += len(labels)
        progress(done, len(samples))
    total = time.perf_counter() - started
    return AccuracyResult(top1 / done, top5 / done, done, total, inference)


@dataclass(frozen=True, kw_only=True)
class AccuracySpec(Measured):
    """One pass over the validation images with the pretrained weights (on the CPU)."""

    machine: str
    params_file: str
    val_dir: str
    labels_file: str | None
    num_classes: int
    images_per_class: int | None
    batch_size: int
    workers: int


def run_accuracy(spec: AccuracySpec) -> AccuracyRecord:
    """Measure one model's accuracy and return its complete record."""
    from dataclasses import asdict

    from tqdm import tqdm

    from dlmark import imagenet, models, variants
    from dlmark.measure.child import limit_threads, log_progress
    from dlmark.results.records import AccuracyRecord
    from dlmark.specs import header

    limit_threads(spec.threads)

    samples = imagenet.subset(
        imagenet.discover(spec.val_dir, spec.labels_file, spec.num_classes), spec.images_per_class
    )
    log_progress(f"{spec.model}: {len(samples)} images from {spec.val_dir}")
    predict = variants.load(
        variants.VariantSpec(
            spec.model, spec.runtime, spec.precision, spec.variant_dir, spec.threads, spec.params_file
        )
    )
    with tqdm(total=len(samples), unit="img", mininterval=10, desc=spec.model) as bar:
        result = evaluate(
            predict,
            samples,
            models.model_info(spec.model).input_size,
            spec.batch_size,
            spec.workers,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    log_progress(
        f"{spec.model}: top-1 {result.top1:.4f}, top-5 {result.top5:.4f} on {result.num_images} images; "
        f"{result.images_per_second:.1f} img/s with decoding, {result.inference_images_per_second:.1f} "
        "img/s inference alone"
    )
    return AccuracyRecord(
        **header(spec, spec.machine),
        top1=result.top1,
        top5=result.top5,
        num_images=result.num_images,
        source="measured",
        images_per_second=result.images_per_second,
        inference_images_per_second=result.inference_images_per_second,
        seconds_total=result.seconds_total,
        seconds_inference=result.seconds_inference,
        settings=asdict(spec),
    )
