"""The photo chapters' classifier and images, in the book's offline default or the paper's setting.

- Default (offline): EfficientNet-Lite0 on the photographs bundled with scikit-image, scikit-learn
  and matplotlib (:func:`pathlib_core.data.photos`), normalised as ``(x - 0.5) / 0.5``.
- The paper's setting (book/definitions.md, "Models and data"): torchvision's VGG-16 and ResNet-50
  with the ``IMAGENET1K_V1`` weights (what ``pretrained=True`` gave in the official code) on
  ImageNet validation images, preprocessed as torchvision's ImageNet evaluation (short side 256,
  centre crop 224, ImageNet mean and standard deviation).

    clf = images.classifier("resnet50")
    imgs = images.image_set("/data/imagenet/val", n_images=8, normalisation=clf.normalisation)
    logits = clf.model(imgs.images)

An image folder has one of two layouts (nothing is downloaded):

(a) ImageNet's validation layout: one subfolder per class named by its WordNet id, e.g.
    ``val/n01440764/ILSVRC2012_val_00000293.JPEG``;
(b) a flat folder of images plus ``labels.txt`` or ``labels.csv``: one ``filename label`` per
    line, separated by a comma or by spaces, ``label`` a class index 0-999 or a WordNet id; empty
    lines, lines starting with ``#`` and a header line ``filename,label`` are skipped. File names
    cannot contain spaces or commas.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data, models

__all__ = [
    "Normalisation",
    "LITE0",
    "IMAGENET",
    "Classifier",
    "classifier",
    "ImageSet",
    "image_set",
    "IMAGE_EXTENSIONS",
    "LABEL_FILES",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".tif", ".tiff")
"""File name endings read as images (case-insensitive)."""
LABEL_FILES: tuple[str, ...] = ("labels.txt", "labels.csv")
"""Names of the labels file of a flat image folder (layout (b))."""
_WORDNET_ID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class Normalisation:
    """A per-channel RGB normalisation ``(x - mean) / std`` of images ``x`` in [0, 1]: each
    classifier expects its own, so images and model must agree."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() < 3 or x.shape[-3] != 3:
            raise ValueError(f"Expected (..., 3, H, W) RGB images, got shape {tuple(x.shape)}.")
        kw = {"dtype": x.dtype, "device": x.device}
        return torch.tensor(self.mean, **kw).view(3, 1, 1), torch.tensor(self.std, **kw).view(
            3, 1, 1
        )

    def apply(self, x01: torch.Tensor) -> torch.Tensor:
        """``(..., 3, H, W)`` images in [0, 1] -> normalised."""
        mean, std = self._stats(x01)
        return (x01 - mean) / std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(..., 3, H, W)`` images -> [0, 1] (not clipped)."""
        mean, std = self._stats(x)
        return x * std + mean


LITE0 = Normalisation(data.PHOTO_MEAN, data.PHOTO_STD)
"""EfficientNet-Lite0's input scaling, ``(x - 0.5) / 0.5`` (timm ``tf_efficientnet_lite0``)."""
IMAGENET = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""torchvision's ImageNet mean and standard deviation, which its classifiers expect."""


# ------------------------------------------------------------------------------------ classifiers

_LITE0_NAME = "efficientnet_lite0"
_TITLES = {_LITE0_NAME: "EfficientNet-Lite0", "vgg16": "VGG-16", "resnet50": "ResNet-50"}
_FAMILIES = {
    "alexnet": "AlexNet",
    "convnext": "ConvNeXt",
    "densenet": "DenseNet",
    "efficientnet": "EfficientNet",
    "googlenet": "GoogLeNet",
    "inception": "Inception",
    "maxvit": "MaxViT",
    "mnasnet": "MNASNet",
    "mobilenet": "MobileNet",
    "regnet": "RegNet",
    "resnet": "ResNet",
    "resnext": "ResNeXt",
    "shufflenet": "ShuffleNet",
    "squeezenet": "SqueezeNet",
    "swin": "Swin",
    "vgg": "VGG",
    "vit": "ViT",
    "wide": "Wide",
}


def _title(name: str) -> str:
    """Display name of a classifier: ``"resnet18"`` -> ``"ResNet-18"``, ``"vgg16_bn"`` ->
    ``"VGG-16 BN"``, ``"mobilenet_v2"`` -> ``"MobileNet V2"``."""
    if name in _TITLES:
        return _TITLES[name]
    words = []
    for token in name.split("_"):
        match = re.fullmatch(r"([a-z]+)(\d+)", token)
        if match and match[1] in _FAMILIES:
            words.append(f"{_FAMILIES[match[1]]}-{match[2]}")
        elif token in _FAMILIES:
            words.append(_FAMILIES[token])
        else:
            words.append(token.upper() if len(token) <= 3 else token.capitalize())
    return " ".join(words)


@dataclass
class Classifier:
    """An ImageNet classifier with what its inputs must look like: ``normalisation`` and the crop
    ``size`` (pass both to :func:`image_set`) and a ``title`` for figures."""

    model: nn.Module
    name: str
    title: str
    normalisation: Normalisation
    size: int = 224


def _torchvision_classifiers() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def classifier(
    name: str = _LITE0_NAME, device: str | torch.device = "cpu", download: bool = False
) -> Classifier:
    """The classifier ``name`` in eval mode: ``"efficientnet_lite0"`` (the offline default,
    :func:`pathlib_core.models.efficientnet_lite0`) or a torchvision ImageNet classifier such as
    the paper's ``"vgg16"`` and ``"resnet50"`` with its ``IMAGENET1K_V1`` weights
    (:func:`pathlib_core.models.torchvision_model`; from torch's hub cache, fetched there only
    with ``download=True``). Its crop size and normalisation come from the weights' metadata."""
    if name == _LITE0_NAME:
        model = models.efficientnet_lite0(device)
        return Classifier(model, name, _title(name), LITE0, data.PHOTO_SIZE)
    choices = _torchvision_classifiers()
    if name not in choices:
        raise ValueError(
            f"Unknown classifier {name!r}; use {_LITE0_NAME!r} (offline default), 'vgg16' or "
            f"'resnet50' (the paper's), or another torchvision classifier: {', '.join(choices)}."
        )
    weights = "IMAGENET1K_V1"
    model = models.torchvision_model(name, device, weights=weights, download=download)
    preset = getattr(models._weights_enum(name, weights).transforms, "keywords", {})
    normalisation = Normalisation(
        tuple(preset.get("mean", IMAGENET.mean)), tuple(preset.get("std", IMAGENET.std))
    )
    size = int(preset.get("crop_size", 224))
    return Classifier(model, name, _title(name), normalisation, size)


# ------------------------------------------------------------------------------------- image sets


@dataclass
class ImageSet:
    """Images ready for a classifier: ``images`` ``(N, 3, S, S)`` normalised by ``normalisation``,
    their ``names`` (photo names or file paths relative to the folder) and their true ImageNet
    class indices ``labels`` (``None`` for the bundled photos, which have none)."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None
    normalisation: Normalisation

    def __len__(self) -> int:
        return len(self.images)

    def display(self, image: torch.Tensor) -> np.ndarray:
        """One image, ``(1, 3, H, W)`` or ``(3, H, W)``, as an ``H x W x 3`` array in [0, 1] for
        plotting (the inverse of the normalisation, like :func:`data.photo_to_display`)."""
        norm = self.normalisation
        return data._to_display(image, norm.mean, norm.std, "ImageSet.display")


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def _wordnet_index(wnid: str, where: str) -> int:
    ids = data._imagenet_wordnet_ids()
    if wnid not in ids:
        raise ValueError(
            f"Unknown WordNet id {wnid!r} ({where}); ImageNet-1k classes are named by their "
            f"WordNet ids, e.g. {ids[0]!r} ({data.imagenet_classes()[0]}); see "
            "data.imagenet_wordnet_ids()."
        )
    return ids.index(wnid)


def _class_folders(folder: Path, subfolders: list[Path]) -> list[tuple[str, int]]:
    files = []
    for sub in subfolders:
        label = _wordnet_index(sub.name, f"subfolder {sub}")
        files += [(f"{sub.name}/{p.name}", label) for p in sorted(sub.iterdir()) if _is_image(p)]
    return files


def _label(text: str, where: str) -> int:
    if text.isdigit():
        if not 0 <= int(text) < 1000:
            raise ValueError(f"Class index {text} out of range 0-999 ({where}).")
        return int(text)
    if _WORDNET_ID.fullmatch(text):
        return _wordnet_index(text, where)
    raise ValueError(
        f"Malformed label {text!r} ({where}): a label is a class index 0-999 or a WordNet id "
        "such as n01440764."
    )


def _labels_file(folder: Path, labels_path: Path, images: list[Path]) -> list[tuple[str, int]]:
    files: dict[str, int] = {}
    lines = labels_path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in re.split(r"[,\s]+", line) if f]
        where = f"{labels_path}, line {number}"
        if len(fields) != 2:
            raise ValueError(
                f"Malformed line {line!r} ({where}): write one 'filename label' per line, "
                "separated by a comma or spaces, e.g. 'ILSVRC2012_val_00000001.JPEG,65'."
            )
        if number == 1 and [f.lower() for f in fields] == ["filename", "label"]:
            continue  # a CSV header
        name, label = fields
        if name in files:
            raise ValueError(f"{name} is listed twice ({where}); list each image once.")
        files[name] = _label(label, where)
    present = {p.name for p in images}
    missing = sorted(set(files) - present)
    unlisted = sorted(present - set(files))
    if missing:
        raise FileNotFoundError(
            f"{labels_path} lists {len(missing)} image(s) that are not in {folder}, e.g. "
            f"{missing[0]}; add them or remove their lines."
        )
    if unlisted:
        raise ValueError(
            f"{len(unlisted)} image(s) in {folder} have no line in {labels_path}, e.g. "
            f"{unlisted[0]}; add a 'filename label' line for each or move them out."
        )
    return sorted(files.items())


def _listing(folder: Path) -> list[tuple[str, int]]:
    """``(relative path, class index)`` of every image in ``folder`` (layout (a) or (b)), sorted."""
    layouts = (
        "either one subfolder per class named by its WordNet id (n01440764/xxx.JPEG) or images "
        f"plus {' or '.join(LABEL_FILES)} ('filename label' per line)"
    )
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Image folder {folder} does not exist; pass a folder holding {layouts}."
        )
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    subfolders = [p for p in entries if p.is_dir()]
    images = [p for p in entries if _is_image(p)]
    label_files = [folder / n for n in LABEL_FILES if (folder / n).is_file()]
    if subfolders and (images or label_files):
        flat = [p.name for p in images + label_files]
        raise ValueError(
            f"{folder} mixes layouts: class subfolders ({subfolders[0].name}, ...) and "
            f"{', '.join(flat[:3])} at its top level; keep one layout: {layouts}."
        )
    if subfolders:
        files = _class_folders(folder, subfolders)
    elif len(label_files) > 1:
        raise ValueError(f"{folder} holds both {' and '.join(LABEL_FILES)}; keep one.")
    elif images and not label_files:
        raise FileNotFoundError(
            f"{folder} holds images but no {' or '.join(LABEL_FILES)} with their classes; add one "
            f"('filename label' per line) or sort the images into WordNet-id subfolders."
        )
    elif label_files:
        files = _labels_file(folder, label_files[0], images)
    else:
        files = []
    if not files:
        raise ValueError(
            f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); it must hold {layouts}."
        )
    return files


def _choose(files: list[tuple[str, int]], n: int, seed: int | None) -> list[tuple[str, int]]:
    """``n`` files spread over the classes: one per class in turn (class order and the order
    within each class shuffled by ``seed`` with :func:`data._seeded_order`, a hash that is the same
    on every machine; ``None``: class index order, then file name order)."""
    by_class: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(files):
        by_class.setdefault(label, []).append(i)
    classes = sorted(by_class)
    if seed is not None:
        classes = [classes[i] for i in data._seeded_order(np.arange(len(classes)), seed, "classes")]
        for label, members in by_class.items():
            order = data._seeded_order(np.arange(len(members)), seed, f"class{label}")
            by_class[label] = [members[i] for i in order]
    ordered = [i for label in classes for i in by_class[label]]
    rank = {label: r for r, label in enumerate(classes)}
    picked = data.interleaved_by_class(torch.tensor([rank[files[i][1]] for i in ordered]), n)
    return [files[ordered[int(i)]] for i in picked]


def _read_image(path: Path, size: int) -> torch.Tensor:
    """A ``(1, 3, size, size)`` image in [0, 1], preprocessed as torchvision's ImageNet
    evaluation: RGB (greyscale, CMYK and palette images converted), short side resized to
    ``size * 256 / 224``, centre crop."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any unreadable image is reported the same way
        raise ValueError(
            f"Cannot read the image {path} ({type(exc).__name__}: {exc}); the file is corrupt or "
            "not an image: replace it or move it out of the folder."
        ) from exc
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
    return data._resize_crop(x, size, resize=round(size * 256 / 224))


def image_set(
    folder: str | os.PathLike | None = None,
    n_images: int | None = 2,
    normalisation: Normalisation = LITE0,
    size: int = 224,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
) -> ImageSet:
    """``n_images`` images (``None``: all) ready for a classifier with ``normalisation``.

    ``folder=None``: the first ``n_images`` bundled photographs of :func:`data.photo_names`, as
    the book uses them offline (with :data:`LITE0` exactly the tensors of :func:`data.photos`;
    ``labels`` is ``None``). A folder (layouts in this module's docstring) gives images chosen
    deterministically and spread over its classes (:func:`_choose`; ``seed`` shuffles the class
    order and the order within a class, ``None`` keeps index and name order), preprocessed as
    torchvision's ImageNet evaluation, with their true class indices as ``labels``.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}.")
    if n_images is not None and (not isinstance(n_images, int) or n_images < 1):
        raise ValueError(f"n_images must be a positive int or None (all), got {n_images!r}.")
    device = models.resolve_device(device)
    if folder is None:
        available = data.photo_names()
        _check_count(n_images, len(available), "bundled photographs")
        names = available[:n_images]
        x = data.photos(names, size)
        if normalisation != LITE0:
            x = normalisation.apply(LITE0.invert(x))
        return ImageSet(x.to(device), names, None, normalisation)
    folder = Path(folder).expanduser()
    files = _listing(folder)
    _check_count(n_images, len(files), f"images in {folder}")
    chosen = _choose(files, len(files) if n_images is None else n_images, seed)
    x = torch.cat([_read_image(folder / name, size) for name, _ in chosen])
    labels = torch.tensor([label for _, label in chosen], dtype=torch.long)
    names = [name for name, _ in chosen]
    return ImageSet(normalisation.apply(x).to(device), names, labels.to(device), normalisation)


def _check_count(n_images: int | None, available: int, what: str) -> None:
    if n_images is not None and n_images > available:
        raise ValueError(
            f"n_images={n_images} but there are only {available} {what}; ask for at most "
            f"{available}, or n_images=None for all."
        )
