"""A small validation set in both ImageNet layouts, made of real JPEG files.

Class k's images are a flat grey of level 25*k, so a nearest-grey
classifier's answers are known ahead. Two classes hold images that belong
elsewhere: class 9's images are black like class 0 (wrong in the top 1
and the top 5: grey 225 is the farthest from black) and class 8's are the
grey of class 7 (wrong in the top 1, right in the top 5: 8 is among the
five greys nearest to 7's). With 3 images per class: top-1 24/30 = 0.8,
top-5 27/30 = 0.9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 10
PER_CLASS = 3
EXPECTED_TOP1 = 0.8
EXPECTED_TOP5 = 0.9
WNIDS = [f"n{1000000 + 7 * k:08d}" for k in range(CLASSES)]


def grey_of(label: int) -> int:
    return 25 * label


def shown_grey(label: int) -> int:
    return {9: grey_of(0), 8: grey_of(7)}.get(label, grey_of(label))


def write_image(path: Path, grey: int, size=(48, 40)) -> None:
    pixels = np.full((size[1], size[0], 3), grey, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)


def make_folders(root: Path) -> Path:
    """Layout (a): one folder per WordNet id."""
    for label, wnid in enumerate(WNIDS):
        (root / wnid).mkdir(parents=True)
        for i in range(PER_CLASS):
            write_image(root / wnid / f"img_{label}_{i}.JPEG", shown_grey(label))
    return root


def make_flat(root: Path, by_index: bool = False) -> tuple[Path, Path]:
    """Layout (b): the flat ILSVRC2012_img_val folder and a labels file."""
    images = root / "ILSVRC2012_img_val"
    images.mkdir(parents=True)
    lines = []
    number = 0
    for label, wnid in enumerate(WNIDS):
        for _ in range(PER_CLASS):
            number += 1
            name = f"ILSVRC2012_val_{number:08d}.JPEG"
            write_image(images / name, shown_grey(label))
            lines.append(f"{name} {label if by_index else wnid}")
    labels = root / "val_labels.txt"
    labels.write_text("\n".join(lines) + "\n")
    return images, labels


def nearest_grey_net():
    """GlobalAvgPool -> Dense whose logits are -(distance to each class grey)^2 (up to a constant)."""
    import mxnet as mx
    from mxnet.gluon import nn

    from dlmark.imagenet import MEAN, STD

    centres = np.stack([(grey_of(k) / 255.0 - MEAN) / STD for k in range(CLASSES)])
    net = nn.HybridSequential()
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(CLASSES, in_units=3))
    net.initialize()
    dense = net[2]
    dense.weight.set_data(mx.nd.array(2 * centres))
    dense.bias.set_data(mx.nd.array(-(centres**2).sum(axis=1)))
    return net


def predict_with(net):
    """Scores of a Gluon block for a numpy batch, as numpy (what `accuracy.evaluate` calls)."""
    import mxnet as mx

    return lambda images: net(mx.nd.array(images)).asnumpy()
