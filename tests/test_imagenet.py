import imagenet_data as data
import numpy as np
import pytest
from PIL import Image

from dlmark import imagenet
from dlmark.scenarios import accuracy


def test_both_layouts_give_the_same_samples(tmp_path):
    folders = imagenet.discover(data.make_folders(tmp_path / "a"), num_classes=data.CLASSES)
    images, labels = data.make_flat(tmp_path / "b")
    flat = imagenet.discover(images, labels, num_classes=data.CLASSES)
    assert len(folders) == len(flat) == data.CLASSES * data.PER_CLASS
    assert sorted(s.label for s in folders) == sorted(s.label for s in flat)


def test_labels_file_may_hold_class_indices(tmp_path):
    images, labels = data.make_flat(tmp_path, by_index=True)
    samples = imagenet.discover(images, labels, num_classes=data.CLASSES)
    assert {s.label for s in samples} == set(range(data.CLASSES))


def test_measured_accuracy_equals_the_known_answer_in_both_layouts(tmp_path):
    net = data.nearest_grey_net()
    folders = imagenet.discover(data.make_folders(tmp_path / "a"), num_classes=data.CLASSES)
    images, labels = data.make_flat(tmp_path / "b")
    flat = imagenet.discover(images, labels, num_classes=data.CLASSES)
    a = accuracy.evaluate(data.predict_with(net), folders, input_size=32, batch_size=7, workers=2)
    b = accuracy.evaluate(data.predict_with(net), flat, input_size=32, batch_size=4, workers=1)
    assert (a.top1, a.top5, a.num_images) == (data.EXPECTED_TOP1, data.EXPECTED_TOP5, 30)
    assert (b.top1, b.top5, b.num_images) == (a.top1, a.top5, a.num_images)


def test_subset_is_balanced_and_deterministic(tmp_path):
    samples = imagenet.discover(data.make_folders(tmp_path), num_classes=data.CLASSES)
    chosen = imagenet.subset(list(reversed(samples)), 2)
    assert len(chosen) == 2 * data.CLASSES
    assert chosen == imagenet.subset(samples, 2)
    assert all(sum(s.label == k for s in chosen) == 2 for k in range(data.CLASSES))


def test_preprocessing_keeps_the_aspect_ratio(tmp_path):
    # 512x256: a grey centre with white outer quarters. Resizing the shorter
    # side to 256 and cropping 224 keeps only the centre; squashing to
    # 256x256 first would bring white into the crop.
    pixels = np.full((256, 512, 3), 255, dtype=np.uint8)
    pixels[:, 128:384] = 100
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    out = imagenet.preprocess(str(path), 224)
    assert out.shape == (3, 224, 224)
    restored = out.transpose(1, 2, 0) * imagenet.STD + imagenet.MEAN
    assert np.allclose(restored, 100 / 255, atol=0.01)


def test_resize_follows_the_crop_fraction():
    assert imagenet.resize_size(224) == 256
    assert imagenet.resize_size(299) == 342


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(imagenet.DataError, match="nowhere does not exist"):
        imagenet.discover(tmp_path / "nowhere")


def test_wrong_number_of_classes(tmp_path):
    with pytest.raises(imagenet.DataError, match="has 10 class folders, expected 1000"):
        imagenet.discover(data.make_folders(tmp_path))


def test_flat_folder_without_labels_file(tmp_path):
    images, _ = data.make_flat(tmp_path)
    with pytest.raises(imagenet.DataError, match="needs imagenet.labels_file"):
        imagenet.discover(images, num_classes=data.CLASSES)


def test_image_without_a_label(tmp_path):
    images, labels = data.make_flat(tmp_path)
    labels.write_text("\n".join(labels.read_text().splitlines()[1:]))
    with pytest.raises(imagenet.DataError, match="no label for 1 image.*ILSVRC2012_val_00000001.JPEG"):
        imagenet.discover(images, labels, num_classes=data.CLASSES)


def test_corrupt_image_is_reported_by_name(tmp_path):
    root = data.make_folders(tmp_path)
    bad = root / data.WNIDS[3] / "img_3_1.JPEG"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    samples = imagenet.discover(root, num_classes=data.CLASSES)
    with pytest.raises(imagenet.DataError, match="cannot read image .*img_3_1.JPEG"):
        accuracy.evaluate(data.predict_with(data.nearest_grey_net()), samples, input_size=32, workers=2)
