"""Tests for pathlib_core.models: the cached MNIST CNN, EfficientNet-Lite0, torchvision loading."""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import pytest
import torch
from torch import nn

from pathlib_core import cache, models
from pathlib_core.data import imagenet_classes, mnist, photo

# ----------------------------------------------------------------------------------- MNIST CNN


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_architecture_names_and_relus():
    model = models.mnist_cnn(pretrained=False)
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    assert relus == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    assert [n for n, _ in model.named_children()][-1] == "fc2"
    assert not model.training
    out = model(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)


def test_untrained_model_is_seeded():
    a, b = models.mnist_cnn(pretrained=False), models.mnist_cnn(pretrained=False)
    _assert_same_weights(a, b)


def test_trained_model_accuracy(mnist_model):
    images, labels = mnist("test")
    acc = models.accuracy(mnist_model, images, labels)
    assert acc >= 0.97, acc
    assert not mnist_model.training


def test_cache_files_and_no_temporaries(mnist_cache_dir, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(mnist_cache_dir))
    path = models.mnist_cnn_cache_path()
    assert path.parent == mnist_cache_dir and path.is_file()
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == cache.sha256_file(path)
    assert record["test_accuracy"] >= 0.97
    assert not [p for p in os.listdir(mnist_cache_dir) if p.endswith(".tmp")]


def test_training_is_deterministic_and_restores_settings():
    images, labels = mnist("train")
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    runs = [
        models.train_mnist_cnn(images[:128], labels[:128], epochs=1, batch_size=32, progress=False)
        for _ in range(2)
    ]
    _assert_same_weights(*runs)
    assert all(p.grad is None for p in runs[0].parameters())  # as a model loaded from the cache
    other = models.train_mnist_cnn(
        images[:128], labels[:128], epochs=1, batch_size=32, seed=1, progress=False
    )
    assert not torch.equal(other.fc2.weight, runs[0].fc2.weight)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_training_argument_errors():
    images, labels = mnist("test")
    with pytest.raises(ValueError, match="both"):
        models.train_mnist_cnn(images, None)
    with pytest.raises(ValueError, match="length"):
        models.accuracy(models.mnist_cnn(pretrained=False), images[:3], labels[:2])


def test_corrupted_cache_is_detected_and_rebuilt(mnist_cache_dir, tmp_path, monkeypatch):
    """Flip bytes in a copy of the cached weights: mnist_cnn warns and retrains (training is
    replaced by a cheap stand-in here; the real training is covered above)."""
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(mnist_cache_dir))
    source = models.mnist_cnn_cache_path()
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    path = models.mnist_cnn_cache_path()
    path.write_bytes(source.read_bytes())
    path.with_suffix(".json").write_bytes(source.with_suffix(".json").read_bytes())
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = bytes(
        b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 8]
    )
    path.write_bytes(bytes(data))

    calls = []

    def fake_training(progress=True, device="cpu"):
        calls.append(progress)
        return models.mnist_cnn(pretrained=False)

    monkeypatch.setattr(models, "train_mnist_cnn", fake_training)
    with pytest.warns(UserWarning, match="corrupted"):
        model = models.mnist_cnn(progress=False)
    assert calls == [False]
    assert torch.equal(model.fc2.weight, models.mnist_cnn(pretrained=False).fc2.weight)
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == cache.sha256_file(path)  # rewritten, valid again
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cache_without_checksum_or_unreadable(tmp_path):
    path = tmp_path / "w.pt"
    digest = cache.save_state_dict(path, {"a": torch.ones(3)}, {"note": "x"})
    assert digest == cache.sha256_file(path)
    assert torch.equal(cache.load_state_dict(path)["a"], torch.ones(3))
    path.with_suffix(".json").unlink()
    with pytest.warns(UserWarning, match="checksum"):
        assert cache.load_state_dict(path) is None
    assert cache.load_state_dict(tmp_path / "absent.pt") is None


def test_atomic_write_cleans_up_on_failure(tmp_path):
    target = tmp_path / "f.bin"

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.atomic_write(target, broken)
    assert os.listdir(tmp_path) == []
    cache.atomic_write(target, lambda fh: fh.write(b"whole"))
    assert os.listdir(tmp_path) == ["f.bin"] and target.read_bytes() == b"whole"


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path / "here"))
    assert cache.cache_dir() == tmp_path / "here" and (tmp_path / "here").is_dir()


def test_resolve_device():
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="auto"):
        models.resolve_device("tpu-ish")


# --------------------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0():
    return models.efficientnet_lite0()


def _top3(model, name):
    with torch.no_grad():
        probs = model(photo(name)).softmax(dim=1)[0]
    classes = imagenet_classes()
    return [classes[i] for i in probs.topk(3).indices.tolist()]


def test_lite0_recognises_cat_and_espresso(lite0):
    assert not lite0.training
    assert any(isinstance(m, nn.ReLU6) for m in lite0.modules())
    cat = _top3(lite0, "chelsea")
    assert cat[0] in {"Egyptian cat", "tabby", "tiger cat"}, cat
    assert _top3(lite0, "coffee")[0] == "espresso"


@pytest.fixture(scope="module")
def lite0_source():
    return torch.load(models._lite0_weights_file(), map_location="cpu", weights_only=True)


def test_lite0_mapping_rejects_a_changed_shape(lite0, lite0_source):
    bad = OrderedDict(lite0_source)
    key = "_blocks.3._depthwise_conv.weight"
    bad[key] = torch.zeros(144, 1, 3, 3)
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv\.weight.*conv_dw"):
        models.map_lite0_state_dict(bad, lite0)


def test_lite0_mapping_rejects_a_missing_entry(lite0, lite0_source):
    bad = OrderedDict(lite0_source)
    del bad["_fc.bias"]
    with pytest.raises(ValueError, match="295 entries"):
        models.map_lite0_state_dict(bad, lite0)


def test_lite0_mapping_rejects_a_reordering(lite0, lite0_source):
    items = list(lite0_source.items())
    items[1], items[2] = items[2], items[1]  # two (32,) tensors: same shapes, wrong kinds
    with pytest.raises(ValueError, match="kind"):
        models.map_lite0_state_dict(OrderedDict(items), lite0)


def test_lite0_checksum_is_enforced(tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"x": torch.zeros(1)}, fake)
    monkeypatch.setattr(models, "_lite0_weights_file", lambda: fake)
    with pytest.raises(ValueError, match="sha256"):
        models.efficientnet_lite0()


# --------------------------------------------------------------------------- torchvision models


def test_torchvision_missing_file_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        models.torchvision_model("vgg16")
    message = str(info.value)
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        models.torchvision_model("resnet50")


def test_torchvision_unknown_name_or_weights():
    with pytest.raises(ValueError, match="vgg16"):
        models.torchvision_model("alexnet2")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        models.torchvision_model("vgg16", weights="IMAGENET9K")


def test_torchvision_loads_a_cached_file(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    name = os.path.basename(torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1.url)
    reference = torchvision.models.squeezenet1_1()
    torch.save(reference.state_dict(), folder / name)
    model = models.torchvision_model("squeezenet1_1")
    assert not model.training
    _assert_same_weights(model, reference)
    with pytest.raises(ValueError, match="corrupted"):
        models.torchvision_model("squeezenet1_1", check_hash=True)  # random weights, wrong hash
    torch.save({"features.0.weight": torch.zeros(1)}, folder / name)
    with pytest.raises(ValueError, match="could not be loaded"):
        models.torchvision_model("squeezenet1_1")
