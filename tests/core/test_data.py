"""Tests for pathlib_core.data: the MNIST split, the bundled photos, ImageNet class names."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pathlib_core import data


def _row_hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in images}


def test_mnist_shapes_and_dtypes():
    for split, n in (("train", 4000), ("test", 1000)):
        images, labels = data.mnist(split)
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert set(labels.tolist()) == set(range(10))


def test_mnist_split_is_stratified_disjoint_and_stable():
    train_x, train_y = data.mnist("train")
    test_x, test_y = data.mnist("test")
    assert torch.bincount(test_y, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train_y, minlength=10).tolist() == [400] * 10
    train_rows, test_rows = _row_hashes(train_x), _row_hashes(test_x)
    assert len(train_rows) == 4000 and len(test_rows) == 1000
    assert not train_rows & test_rows
    again_x, again_y = data.mnist("test")
    assert torch.equal(again_x, test_x) and torch.equal(again_y, test_y)


def test_mnist_is_shuffled_and_copies():
    _, labels = data.mnist("train")
    assert (labels[1:] != labels[:-1]).float().mean() > 0.8  # not sorted by class any more
    images, _ = data.mnist("test")
    images.zero_()
    assert data.mnist("test")[0].abs().sum() > 0  # callers cannot change the cached data


def test_mnist_normalisation_round_trip():
    images, _ = data.mnist("test")
    assert abs(float(images.mean())) < 0.1 and abs(float(images.std()) - 1) < 0.1
    shown = data.mnist_to_display(images[:5])
    assert shown.shape == (5, 28, 28) and shown.min() >= 0 and shown.max() <= 1
    pixels = np.round(shown * 255)
    assert np.allclose(shown * 255, pixels, atol=1e-3)  # back to the integer grey levels


def test_mnist_bad_split():
    with pytest.raises(ValueError, match="train"):
        data.mnist("validation")


def test_photo_names_include_the_known_photos():
    names = data.photo_names()
    assert {"chelsea", "coffee", "astronaut", "rocket", "china", "flower"} <= set(names)


@pytest.mark.parametrize("name", data.photo_names())
def test_photo_loads_and_round_trips(name):
    x = data.photo(name)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    shown = data.photo_to_display(x)
    assert shown.shape == (224, 224, 3) and shown.min() >= 0 and shown.max() <= 1
    back = (torch.from_numpy(shown).permute(2, 0, 1)[None] - 0.5) / 0.5
    assert torch.allclose(back, x, atol=1e-6)


def test_photos_batch_and_errors():
    batch = data.photos(["chelsea", "coffee"])
    assert batch.shape == (2, 3, 224, 224)
    assert torch.equal(batch[1:], data.photo("coffee"))
    assert data.photos().shape[0] == len(data.photo_names())
    with pytest.raises(ValueError, match="chelsea"):
        data.photo("lena")
    with pytest.raises(TypeError):
        data.photos("chelsea")
    with pytest.raises(ValueError, match="batch"):
        data.photo_to_display(batch)


def test_imagenet_classes():
    classes = data.imagenet_classes()
    assert len(classes) == 1000
    assert classes[0] == "tench" and classes[967] == "espresso" and classes[285] == "Egyptian cat"


def test_interleaved_by_class_takes_the_classes_in_turn():
    labels = torch.tensor([2, 0, 0, 1, 2, 1, 0])
    picked = data.interleaved_by_class(labels, 5)
    assert labels[picked].tolist() == [0, 1, 2, 0, 1]
    assert picked.tolist() == [1, 3, 0, 2, 5]
    _, test_labels = data.mnist("test")
    counts = torch.bincount(test_labels[data.interleaved_by_class(test_labels, 64)], minlength=10)
    assert counts.tolist() == [7] * 4 + [6] * 6
