"""pathlib_core.images: the photo chapters' classifier and images, offline default or the paper's
torchvision models on ImageNet-style folders (written here from the bundled photos)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from pathlib_core import data, images, models

pytestmark = pytest.mark.usefixtures("single_thread")

CAT, ESPRESSO, SHUTTLE = "n02123045", "n07920052", "n04266014"  # tabby, espresso, space shuttle


def _wnid_index(wnid: str) -> int:
    from timm.data import ImageNetInfo

    return ImageNetInfo().label_names().index(wnid)


def _save(photo: str, path, mode: str = "RGB", size=(120, 90)) -> None:
    """A bundled photo, shrunk (fast tests), saved as ``path`` in PIL ``mode``."""
    Image.fromarray(data._read_rgb(photo)).resize(size).convert(mode).save(path)


@pytest.fixture
def class_folder(tmp_path):
    """ImageNet's validation layout: WordNet-id subfolders, 2 + 1 + 1 images."""
    folder = tmp_path / "val"
    for wnid, photos in {
        CAT: ["chelsea", "chelsea"],
        ESPRESSO: ["coffee"],
        SHUTTLE: ["rocket"],
    }.items():
        (folder / wnid).mkdir(parents=True)
        for i, photo in enumerate(photos):
            _save(photo, folder / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG", size=(120 + i, 90))
    return folder


@pytest.fixture
def flat_folder(tmp_path):
    """A flat folder of images with a labels.txt (a class index and a WordNet id)."""
    folder = tmp_path / "flat"
    folder.mkdir()
    _save("chelsea", folder / "cat.jpg")
    _save("coffee", folder / "cup.png")
    (folder / "labels.txt").write_text(
        f"# file label\ncat.jpg {_wnid_index(CAT)}\n\ncup.png  {ESPRESSO}\n"
    )
    return folder


# ---------------------------------------------------------------------------- normalisations


def test_normalisations_and_round_trip():
    assert images.Normalisation(data.PHOTO_MEAN, data.PHOTO_STD) == images.LITE0
    assert images.IMAGENET.mean == (0.485, 0.456, 0.406)
    assert images.IMAGENET.std == (0.229, 0.224, 0.225)
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    y = images.IMAGENET.apply(x)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.456) / 0.224)
    assert torch.allclose(images.IMAGENET.invert(y), x)
    assert torch.allclose(images.LITE0.invert(images.LITE0.apply(x[0])), x[0])  # (3, H, W)
    with pytest.raises(ValueError, match="RGB"):
        images.IMAGENET.apply(torch.zeros(1, 1, 4, 4))


# ------------------------------------------------------------------------------ bundled photos


def test_default_is_the_bundled_photos():
    got = images.image_set()
    names = data.photo_names()[:2]
    assert got.names == names and got.labels is None and len(got) == 2
    assert got.normalisation == images.LITE0
    assert torch.equal(got.images, data.photos(names))
    assert np.array_equal(got.display(got.images[0]), data.photo_to_display(got.images[0]))
    assert got.display(got.images[:1]).shape == (224, 224, 3)


def test_bundled_photos_in_another_normalisation():
    got = images.image_set(n_images=1, normalisation=images.IMAGENET, size=64)
    reference = data.photos(data.photo_names()[:1], size=64)
    assert torch.allclose(
        images.IMAGENET.invert(got.images), images.LITE0.invert(reference), atol=1e-6
    )
    assert np.allclose(got.display(got.images[0]), data.photo_to_display(reference), atol=1e-6)


def test_too_many_bundled_photos():
    with pytest.raises(ValueError, match="only .* bundled photographs"):
        images.image_set(n_images=len(data.photo_names()) + 1)
    assert len(images.image_set(n_images=None, size=16)) == len(data.photo_names())


# ------------------------------------------------------------------------------- folders


def test_class_folders_give_true_labels(class_folder):
    got = images.image_set(class_folder, n_images=None, normalisation=images.IMAGENET, size=64)
    assert got.images.shape == (4, 3, 64, 64) and got.images.dtype == torch.float32
    assert sorted(got.names) == sorted(
        f"{p.parent.name}/{p.name}" for p in class_folder.rglob("*.JPEG")
    )
    for name, label in zip(got.names, got.labels.tolist(), strict=True):
        assert label == _wnid_index(name.split("/")[0])
    assert data.imagenet_classes()[_wnid_index(CAT)] == "tabby"
    shown = got.display(got.images[0])
    assert shown.shape == (64, 64, 3) and shown.min() >= 0 and shown.max() <= 1


def test_choice_is_deterministic_and_spread_over_classes(class_folder):
    first = images.image_set(class_folder, n_images=3, size=32)
    again = images.image_set(class_folder, n_images=3, size=32)
    assert first.names == again.names and torch.equal(first.images, again.images)
    assert len(set(first.labels.tolist())) == 3  # one per class before a second of any
    ordered = images.image_set(class_folder, n_images=4, size=32, seed=None)
    assert ordered.labels.tolist() == sorted(_wnid_index(w) for w in (CAT, ESPRESSO, SHUTTLE)) + [
        _wnid_index(CAT)
    ]
    assert ordered.names[0] == f"{CAT}/ILSVRC2012_val_{CAT}_0.JPEG"
    seeds = {tuple(images.image_set(class_folder, 3, size=16, seed=s).names) for s in range(6)}
    assert len(seeds) > 1  # the seed changes which classes come first


def test_preprocessing_matches_torchvision_evaluation(class_folder):
    from torchvision import transforms

    path = class_folder / ESPRESSO / f"ILSVRC2012_val_{ESPRESSO}_0.JPEG"
    ours = images._read_image(path, 224)[0]
    with Image.open(path) as img:
        theirs = transforms.Compose(
            [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
        )(img.convert("RGB"))
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert (ours - theirs).abs().mean() < 0.02


def test_greyscale_and_cmyk_images_become_rgb(tmp_path):
    folder = tmp_path / "val"
    (folder / CAT).mkdir(parents=True)
    _save("chelsea", folder / CAT / "grey.JPEG", mode="L")
    _save("chelsea", folder / CAT / "cmyk.JPEG", mode="CMYK")
    got = images.image_set(folder, n_images=2, size=32)
    assert got.images.shape == (2, 3, 32, 32)
    grey = got.names.index(f"{CAT}/grey.JPEG")
    assert torch.allclose(got.images[grey, 0], got.images[grey, 2])


def test_flat_folder_with_labels_file(flat_folder):
    got = images.image_set(flat_folder, n_images=None, size=32, seed=None)
    assert dict(zip(got.names, got.labels.tolist(), strict=True)) == {
        "cat.jpg": _wnid_index(CAT),
        "cup.png": _wnid_index(ESPRESSO),
    }
    (flat_folder / "labels.txt").unlink()
    (flat_folder / "labels.csv").write_text(f"filename,label\ncat.jpg,{CAT}\ncup.png, 967\n")
    got = images.image_set(flat_folder, n_images=2, size=32, seed=None)
    assert sorted(got.labels.tolist()) == sorted([_wnid_index(CAT), 967])


# ---------------------------------------------------------------------------------- errors


def test_missing_empty_and_mixed_folders(tmp_path, class_folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        images.image_set(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        images.image_set(tmp_path / "empty")
    _save("coffee", class_folder / "stray.jpg")
    with pytest.raises(ValueError, match="mixes layouts.*stray.jpg"):
        images.image_set(class_folder)


def test_unknown_wordnet_id_and_too_many_images(class_folder):
    with pytest.raises(ValueError, match=r"only 4 images in .*n_images=None"):
        images.image_set(class_folder, n_images=5)
    (class_folder / "n99999999").mkdir()
    _save("coffee", class_folder / "n99999999" / "x.JPEG")
    with pytest.raises(ValueError, match="Unknown WordNet id 'n99999999'"):
        images.image_set(class_folder)


def test_labels_file_errors(flat_folder):
    labels = flat_folder / "labels.txt"
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="no labels.txt or labels.csv"):
        images.image_set(flat_folder)
    cases = {
        "cat.jpg 281\ncup.png\n": "Malformed line 'cup.png'.*line 2",
        "cat.jpg 281\ncup.png 1000\n": "out of range",
        "cat.jpg 281\ncup.png teacup\n": "Malformed label 'teacup'",
        "cat.jpg 281\ncup.png n99999999\n": "Unknown WordNet id 'n99999999'",
        "cat.jpg 281\n": "no line in .*cup.png",
        "cat.jpg 281\ncup.png 967\ndog.jpg 207\n": "not in .*dog.jpg",
        "cat.jpg 281\ncat.jpg 282\ncup.png 967\n": "cat.jpg is listed twice",
    }
    for text, message in cases.items():
        labels.write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            images.image_set(flat_folder)


def test_corrupt_image_is_named(class_folder):
    bad = class_folder / CAT / "ILSVRC2012_val_broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="Cannot read the image .*ILSVRC2012_val_broken.JPEG"):
        images.image_set(class_folder, n_images=None, size=32)


def test_argument_errors():
    with pytest.raises(ValueError, match="n_images"):
        images.image_set(n_images=0)
    with pytest.raises(ValueError, match="size"):
        images.image_set(size=0)


# ----------------------------------------------------------------------------- classifiers


def test_titles():
    assert images._title("resnet50") == "ResNet-50"
    assert images._title("vgg16") == "VGG-16"
    assert images._title("efficientnet_lite0") == "EfficientNet-Lite0"
    assert images._title("resnet18") == "ResNet-18"
    assert images._title("vgg16_bn") == "VGG-16 BN"
    assert images._title("mobilenet_v2") == "MobileNet V2"


def test_unknown_classifier_lists_the_choices():
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet50") as info:
        images.classifier("resnet51")
    assert "vgg16" in str(info.value)


def test_default_classifier_is_lite0():
    clf = images.classifier()
    assert (clf.name, clf.title, clf.size) == ("efficientnet_lite0", "EfficientNet-Lite0", 224)
    assert clf.normalisation == images.LITE0 and not clf.model.training


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and a downloader that fails the test if it is called."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _resnet18_file(folder) -> tuple[str, torch.nn.Module]:
    import torchvision

    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.manual_seed(0)
    return os.path.basename(url), torchvision.models.resnet18()


def test_torchvision_classifier_from_the_hub_cache(hub):
    name, reference = _resnet18_file(hub)
    with pytest.raises(FileNotFoundError, match=f"{name}.*download=True"):
        images.classifier("resnet18")  # missing, and download=False fetches nothing
    hub.mkdir(parents=True)
    torch.save(reference.state_dict(), hub / name)
    clf = images.classifier("resnet18")
    assert (clf.name, clf.title, clf.size) == ("resnet18", "ResNet-18", 224)
    assert clf.normalisation == images.IMAGENET and not clf.model.training
    for (key, ours), theirs in zip(
        clf.model.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), key
    (hub / name).write_bytes((hub / name).read_bytes()[:1000])  # truncated download
    with pytest.raises(ValueError, match=f"(?s){name}.*corrupted.*download.pytorch.org"):
        images.classifier("resnet18")


def test_download_goes_to_the_hub_cache(hub, monkeypatch):
    name, reference = _resnet18_file(hub)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        torch.save(reference.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    clf = images.classifier("resnet18", download=True)
    assert calls == [(f"https://download.pytorch.org/models/{name}", str(hub / name), name[9:17])]
    assert torch.equal(clf.model.conv1.weight, reference.conv1.weight)
    images.classifier("resnet18", download=True)  # cached now: no second download
    assert len(calls) == 1
    assert isinstance(models.torchvision_model("resnet18"), torch.nn.Module)
