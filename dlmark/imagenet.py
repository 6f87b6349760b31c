"""ILSVRC-2012 validation images: finding them, labelling them, preparing them.

Published top-1/top-5 numbers come from one exact preprocessing (resize
the shorter side to input/0.875 keeping the aspect ratio, centre crop,
scale to [0, 1], normalise with the ImageNet mean and std); any other
(squashing to a square, another resize ratio) moves top-1 by a point or
more, so it lives here in one place, with tests that would catch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CROP_FRACTION = 0.875


class DataError(ValueError):
    """Validation data the workflow cannot use; the message names the file and the fix."""


@dataclass(frozen=True)
class Sample:
    path: str
    label: int


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_labels(labels_file: Path) -> dict[str, str]:
    """`file label` per line (space, tab or comma separated); label = WordNet id or index."""
    if not labels_file.is_file():
        raise DataError(
            f"imagenet.labels_file {labels_file} does not exist; it maps each image of the "
            "flat validation folder to its WordNet id or class index"
        )
    labels: dict[str, str] = {}
    for number, line in enumerate(labels_file.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{labels_file}, line {number}: expected 'file label', got {line!r}")
        labels[Path(parts[0]).name] = parts[1]
    return labels


def discover(
    val_dir: str | Path,
    labels_file: str | Path | None = None,
    num_classes: int = 1000,
) -> list[Sample]:
    """Every validation image with its class index, in a stable order.

    Two layouts: one folder per WordNet id (class index = position in the
    sorted folder names), or the flat ILSVRC2012_img_val folder with a
    labels file. Either way the classes must number `num_classes`.
    """
    root = Path(val_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"imagenet.val_dir {root} does not exist or is not a folder; point it at the "
            "ILSVRC-2012 validation images, or remove it to use the published accuracies"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if folders:
        if len(folders) != num_classes:
            raise DataError(
                f"{root} has {len(folders)} class folders, expected {num_classes} "
                "(one per WordNet id); set imagenet.num_classes if this is intended"
            )
        samples = [Sample(str(image), index) for index, folder in enumerate(folders) for image in _images(folder)]
    else:
        if labels_file is None:
            raise DataError(
                f"{root} holds no class folders, so it is read as the flat validation folder, "
                "which needs imagenet.labels_file (each line: file name and WordNet id or index)"
            )
        labels = _read_labels(Path(labels_file).expanduser())
        images = _images(root)
        missing = [p.name for p in images if p.name not in labels]
        if missing:
            raise DataError(
                f"{labels_file} has no label for {len(missing)} image(s) of {root}, e.g. {missing[0]}"
            )
        values = {labels[p.name] for p in images}
        if all(v.isdigit() for v in values):
            index_of = {v: int(v) for v in values}
        else:
            index_of = {wnid: i for i, wnid in enumerate(sorted(values))}
            if len(index_of) != num_classes:
                raise DataError(
                    f"{labels_file} names {len(index_of)} WordNet ids, expected {num_classes}; "
                    "set imagenet.num_classes if this is intended"
                )
        samples = [Sample(str(p), index_of[labels[p.name]]) for p in images]
        bad = [s for s in samples if not 0 <= s.label < num_classes]
        if bad:
            raise DataError(f"{labels_file}: label {bad[0].label} of {bad[0].path} is outside 0..{num_classes - 1}")
    if not samples:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return samples


def subset(samples: list[Sample], per_class: int | None) -> list[Sample]:
    """The first `per_class` images of each class in file-name order: deterministic and balanced."""
    if not per_class:
        return samples
    taken: dict[int, int] = {}
    chosen = []
    for sample in sorted(samples, key=lambda s: (s.label, Path(s.path).name)):
        if taken.get(sample.label, 0) < per_class:
            taken[sample.label] = taken.get(sample.label, 0) + 1
            chosen.append(sample)
    return chosen


def resize_size(input_size: int) -> int:
    """Shorter-side size before the centre crop: 256 for 224, 342 for 299."""
    return int(round(input_size / CROP_FRACTION))


def preprocess(path: str, input_size: int) -> np.ndarray:
    """Decode one image into the normalised CHW float32 array the networks expect."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            short = resize_size(input_size)
            scale = short / min(width, height)
            size = (max(short, round(width * scale)), max(short, round(height * scale)))
            image = image.resize(size, Image.BILINEAR)
            left = (size[0] - input_size) // 2
            top = (size[1] - input_size) // 2
            image = image.crop((left, top, left + input_size, top + input_size))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)
