"""CIFAR-10 from torchvision's on-disk format (a tiny fake written here) and its cached CNN."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from pathlib_core import data, models

pytestmark = pytest.mark.usefixtures("single_thread")

N_PER_BATCH, N_TEST = 4, 3


def _batch(path, labels: list[int], first: int, protocol: int = 2) -> None:
    """A batch in the original format: a pickled dict of bytes keys; image ``i`` (counting from
    ``first``) is the constant colour ``(i, 2 i, 3 i)``."""
    pixels = np.stack(
        [
            np.repeat(np.array([i, 2 * i, 3 * i], dtype=np.uint8), 1024)
            for i in range(first, first + len(labels))
        ]
    )
    entry = {
        b"batch_label": b"fake",
        b"labels": labels,
        b"data": pixels,
        b"filenames": [b"x.png"] * len(labels),
    }
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=protocol)


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(5):
        labels = [(2 * b + i) % 10 for i in range(N_PER_BATCH)]
        # protocol 2 like the real files; the last batch with today's default protocol
        _batch(
            folder / f"data_batch_{b + 1}",
            labels,
            b * N_PER_BATCH,
            2 if b < 4 else pickle.DEFAULT_PROTOCOL,
        )
    _batch(folder / "test_batch", [9, 0, 5], 40)
    return tmp_path / "cifar"


def test_reads_both_splits(cifar_root):
    images, labels = data.cifar10(cifar_root, "train")
    assert images.shape == (5 * N_PER_BATCH, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert labels.tolist() == [(2 * b + i) % 10 for b in range(5) for i in range(N_PER_BATCH)]
    mean, std = torch.tensor(data.CIFAR10_MEAN), torch.tensor(data.CIFAR10_STD)
    expected = (torch.tensor([7.0, 14.0, 21.0]) / 255 - mean) / std
    assert torch.allclose(images[7, :, 5, 9], expected)
    test_images, test_labels = data.cifar10(cifar_root / "cifar-10-batches-py", "test")
    assert test_images.shape == (N_TEST, 3, 32, 32) and test_labels.tolist() == [9, 0, 5]
    assert data.CIFAR10_CLASSES[3] == "cat" and len(data.CIFAR10_CLASSES) == 10
    images[0] = 0  # fresh copies
    assert not torch.equal(data.cifar10(cifar_root)[0][0], images[0])


def test_display_undoes_the_normalisation(cifar_root):
    images, _ = data.cifar10(cifar_root)
    one = data.cifar10_to_display(images[7])
    assert one.shape == (32, 32, 3)
    assert np.allclose(one[0, 0], np.array([7, 14, 21]) / 255, atol=1e-6)
    assert data.cifar10_to_display(images[7:8]).shape == (32, 32, 3)
    assert data.cifar10_to_display(images).shape == (len(images), 32, 32, 3)


def test_wrong_layout_says_how_to_make_it(tmp_path, cifar_root):
    with pytest.raises(
        FileNotFoundError, match=r"cifar-10-batches-py.*CIFAR10\(root, download=True\)"
    ):
        data.cifar10(tmp_path / "nothing")
    os.remove(cifar_root / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="train batches missing in .*: data_batch_3\\."):
        data.cifar10(cifar_root, "train")
    assert len(data.cifar10(cifar_root, "test")[1]) == N_TEST
    with pytest.raises(ValueError, match="split"):
        data.cifar10(cifar_root, "validation")


def test_corrupt_or_foreign_batches_are_refused(cifar_root):
    batch = cifar_root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch"):
        data.cifar10(cifar_root, "test")
    with open(batch, "wb") as fh:  # a pickle that would run code
        pickle.dump({"data": os.getcwd}, fh)
    with pytest.raises(ValueError, match="refusing to load"):
        data.cifar10(cifar_root, "test")


def test_cifar10_cnn_trains_and_caches(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path / "cache"))
    quick = {"epochs": 1, "batch_size": 10}
    model = models.cifar10_cnn(cifar_root, progress=False, training=quick)
    assert isinstance(model, models.ConvNetSimple) and not model.training
    assert model.conv1.in_channels == 3
    images, _ = data.cifar10(cifar_root, "test")
    assert model(images).shape == (N_TEST, 10)
    path = models.cifar10_cnn_cache_path(cifar_root, training=quick)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.name.startswith("cifar10_cnn-")
    assert path != models.cifar10_cnn_cache_path(cifar_root)  # the recipe is in the key

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not retrained")

    monkeypatch.setattr(models, "train_mnist_cnn", no_training)
    again = models.cifar10_cnn(cifar_root, progress=False, training=quick)
    for ours, theirs in zip(again.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    untrained = models.cifar10_cnn(cifar_root, pretrained=False)
    assert not torch.equal(untrained.conv1.weight, model.conv1.weight)
    with pytest.raises(ValueError, match="Unknown training settings"):
        models.cifar10_cnn(cifar_root, training={"epoch": 1})
