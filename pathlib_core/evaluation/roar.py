"""ROAR and KAR: remove (keep) the most important pixels, retrain, and measure test accuracy.

RemOve And Retrain (ROAR) and Keep And Retrain (KAR) follow Hooker et al., "A Benchmark for
Interpretability Methods in Deep Neural Networks" (NeurIPS 2019). For every attribution method
and fraction ``t``, every training and test image is degraded with that method's map of the image:
ROAR replaces its ``t`` most important pixels, KAR its ``t`` least important (it keeps the
top ``1 - t``: Hooker et al.'s convention, so both curves share the x-axis "fraction replaced").
A model is trained
from scratch on the degraded training set and evaluated on the degraded test set. Retraining keeps
train and test distributions equal, so a drop in accuracy means that information was removed, not
that the model met unfamiliar inputs. A good map makes ROAR accuracy fall fast (lower is better)
and keeps KAR accuracy high (higher is better).

The official PathwayGrad plots (``plots.roar_plot``; book/definitions.md, "ROAR and KAR") use the
fractions {10, 30, 50, 70, 90}% with 0% = the accuracy of the model trained on unmodified data, and
an AUC by the trapezoid rule (``sklearn.metrics.auc``) over the fractions (0, .1, .3, .5, .7, .9) of
the accuracy in [0, 1]; :class:`RoarResult` reports the same numbers.

Pixels are ranked per image by :func:`~pathlib_core.evaluation.maps.pixel_map` (all channels of a
position together) and chosen by :func:`~pathlib_core.evaluation.maps.top_pixels`, whose ties fall
in a fixed seeded order.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import models, resumable
from ..cache import atomic_write, cache_dir, content_key, device_options, versions
from .maps import pixel_map, replacement_images, top_pixels

__all__ = ["MODES", "RoarResult", "cached_attributions", "degrade", "mnist_trainer", "roar"]

MODES = ("roar", "kar")
Trainer = Callable[[Tensor, Tensor, int], nn.Module]
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_NO_AUGMENTATION = {"rotate": 0.0, "scale": 0.0, "shift": 0.0}


# ---------------------------------------------------------------------------------------- checks


def _check_images(images: object, what: str) -> Tensor:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(
            f"{what} must be a float tensor shaped (N, C, H, W), got "
            f"{type(images).__name__}; convert it with torch.as_tensor(..).float()."
        )
    if images.dim() != 4:
        raise ValueError(
            f"{what} must be shaped (N, C, H, W), got {tuple(images.shape)}; add "
            "the channel axis with images.unsqueeze(1) for grey images."
        )
    return images


def _check_map(images: Tensor, maps: object, what: str) -> Tensor:
    """A map must be a float tensor (N, C', H, W) or (N, H, W) with the images' N, H and W."""
    if not isinstance(maps, Tensor) or not maps.is_floating_point():
        raise TypeError(
            f"{what} must be a float tensor shaped like the images, got "
            f"{type(maps).__name__}; convert it with torch.as_tensor(..).float()."
        )
    if (
        maps.dim() not in (3, 4)
        or maps.shape[0] != images.shape[0]
        or maps.shape[-2:] != images.shape[-2:]
    ):
        raise ValueError(
            f"{what} has shape {tuple(maps.shape)} but the images are "
            f"{tuple(images.shape)}; pass one map per image, (N, C, H, W) or "
            "(N, H, W), in the order of the images."
        )
    return maps


def _check_fraction(fraction: object, *, allow_zero: bool) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number, got {type(fraction).__name__}.")
    low_ok = fraction >= 0 if allow_zero else fraction > 0
    if not (math.isfinite(fraction) and low_ok and fraction <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1] (0 is the unmodified model, always run)"
        raise ValueError(
            f"fraction must be in {interval}, got {fraction}; e.g. 0.3 for 30% of the pixels."
        )
    return float(fraction)


def _check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be one of {MODES} (remove or keep the top pixels), got {mode!r}."
        )
    return mode


def _check_labels(images: Tensor, labels: object, what: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dim() != 1 or len(labels) != len(images):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"{what} must be a 1-D tensor with one entry per image ({len(images)}), got {got}."
        )
    return labels


# --------------------------------------------------------------------------------------- degrade


def degrade(
    images: Tensor,
    attributions: Tensor,
    fraction: float,
    mode: str = "roar",
    replacement: str | float | Tensor = 0.0,
    reduce: str = "max_abs",
) -> Tensor:
    """A degraded copy of ``images`` (N, C, H, W) for ROAR / KAR (Hooker et al., 2019).

    Per image, pixels are ranked by ``pixel_map(attributions, reduce)`` and the
    ``round(fraction * H * W)`` pixels are replaced: the most important for ``mode="roar"``, the
    least important for ``"kar"`` (chosen by ``top_pixels``, ties in its fixed seeded order); all
    channels of a pixel are replaced together. ``replacement`` is what a replaced pixel becomes,
    as in :func:`~pathlib_core.evaluation.maps.replacement_images`: the default 0.0 is the dataset
    mean for standardised inputs such as :func:`pathlib_core.data.mnist` (RoarTorch also fills with
    the dataset mean). So both modes at 0 return the images unchanged and at 1 the replacement. The
    inputs are never modified.
    """
    images = _check_images(images, "images")
    attributions = _check_map(images, attributions, "attributions")
    fraction = _check_fraction(fraction, allow_zero=True)
    mode = _check_mode(mode)
    chosen = top_pixels(pixel_map(attributions.detach(), reduce), fraction, largest=mode == "roar")
    replaced = chosen.unsqueeze(1).to(images.device)
    images = images.detach()
    return torch.where(replaced, replacement_images(images, replacement), images)


# ---------------------------------------------------------------------------- attribution cache


def _compute(
    name: str,
    fn: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    targets: Tensor,
    batch_size: int,
    progress: bool,
    key: str | None,
    device: torch.device | None = None,
) -> Tensor:
    """The maps of all images, ``batch_size`` at a time (each chunk moved to ``device`` when one
    is given); with a ``key`` every finished chunk is saved (``resumable.run_in_chunks``), so a
    stopped computation resumes at the next one."""

    def compute(rows: slice) -> dict[str, Tensor]:
        x, y = images[rows], targets[rows]
        if device is not None:
            x, y = x.to(device), y.to(device)
        out = fn(x, y)
        if not isinstance(out, Tensor) or len(out) != len(x):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"fn must return a tensor with one attribution per image "
                f"({len(x)} in this chunk), got {got}."
            )
        return {"maps": out.detach().cpu()}

    parts = resumable.run_in_chunks(
        f"attributions-{name}",
        key or "",
        len(images),
        batch_size,
        compute,
        cache=key is not None,
        progress=progress,
    )
    return torch.cat([part["maps"] for part in parts])


def _load(path: Path, count: int) -> Tensor | None:
    """The cached tensor, or ``None`` (with a warning when the file is unusable)."""
    if not path.is_file():
        return None
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is recomputed
        warnings.warn(
            f"Cached attributions {path} could not be loaded ({exc}); recomputing them.",
            stacklevel=3,
        )
        return None
    if not isinstance(tensor, Tensor) or len(tensor) != count:
        warnings.warn(
            f"Cached attributions {path} do not hold {count} maps; recomputing them.", stacklevel=3
        )
        return None
    return tensor


def _save(path: Path, tensor: Tensor) -> None:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def cached_attributions(
    name: str,
    fn: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    targets: Tensor,
    key: str,
    batch_size: int = 256,
    progress: bool = True,
    cache: bool = True,
    device: str | torch.device | None = None,
) -> Tensor:
    """``fn(images_chunk, targets_chunk)`` over the whole dataset in chunks of ``batch_size``,
    concatenated on the CPU, computed once and cached: ROAR needs the map of every training and
    test image (Hooker et al., 2019).

    The file is ``cache_dir()/attributions/{name}-{hash}.pt`` (folder ``$PATHLIB_CORE_CACHE``),
    written atomically; ``hash`` is the first 16 hex digits of ``cache.content_key`` of ``key``,
    ``images`` and ``targets`` (dtype, shape and bytes). ``key`` must name everything else the maps
    depend on (method, its settings, the model's weights, e.g. a hash of the weight file). A
    present file is loaded without calling ``fn``; one that cannot be loaded or holds the wrong
    number of maps is reported with a warning and recomputed. ``cache=False`` neither reads nor
    writes the file. While the maps are computed, each finished chunk is saved
    (:mod:`pathlib_core.resumable`), so a stopped run resumes at the chunk it stopped in; the
    chunks are removed once the whole file is written.
    ``device`` is where ``fn`` computes (``None``: the images' device): each chunk is moved there
    before ``fn`` sees it, the maps are stored on the CPU, and a device other than the CPU is part
    of the key (``cache.device_options``), so maps computed on a GPU and on the CPU never stand in
    for each other. ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name must be a non-empty file-name-safe string (letters, digits, "
            f"'_', '.', '+', '-'), got {name!r}; e.g. 'NeuronIntGrad-star'."
        )
    if not isinstance(key, str):
        raise TypeError(
            f"key must be a string describing the method, its settings and the "
            f"model, got {type(key).__name__}."
        )
    if not callable(fn):
        raise TypeError("fn must be callable as fn(images, targets) -> attributions.")
    images = _check_images(images, "images")
    targets = _check_labels(images, targets, "targets")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    computed_on = images.device if device is None else models.resolve_device(device)
    content = content_key(
        {"key": key, **device_options(computed_on)}, [("images", images), ("targets", targets)]
    )
    path = cache_dir() / "attributions" / f"{name}-{content[:16]}.pt"
    stored = _load(path, len(images)) if cache else None
    if stored is not None:
        return stored
    chunk_key = content if cache else None
    moved = None if device is None else computed_on
    result = _compute(name, fn, images, targets, batch_size, progress, chunk_key, moved)
    if cache:
        _save(path, result)
        resumable.discard(f"attributions-{name}", chunk_key)
    return result


# ---------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class RoarResult:
    """Test accuracies of a ROAR or KAR run (Hooker et al., 2019; official ``plots.roar_plot``).

    ``fractions`` starts with 0.0; ``accuracy[method]`` is ``(n_seeds, n_fractions)`` in [0, 1],
    one row per seed, column 0 the model trained on unmodified data (the same for every method).
    """

    mode: str
    fractions: list[float]
    accuracy: dict[str, Tensor]

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if not self.fractions or self.fractions[0] != 0.0:
            raise ValueError("fractions must start with 0.0 (the unmodified model).")
        for method, acc in self.accuracy.items():
            if not isinstance(acc, Tensor) or acc.dim() != 2 or acc.shape[1] != len(self.fractions):
                raise ValueError(
                    f"accuracy[{method!r}] must be (n_seeds, {len(self.fractions)}) "
                    "to match the fractions."
                )

    @property
    def methods(self) -> list[str]:
        """The method names, in the order they were run."""
        return list(self.accuracy)

    def _curve(self, method: str) -> Tensor:
        if method not in self.accuracy:
            raise KeyError(f"No method {method!r} in this result; use one of {self.methods}.")
        return self.accuracy[method]

    def auc(self, method: str) -> Tensor:
        """``(n_seeds,)``: the area under accuracy-vs-fraction by the trapezoid rule over
        ``fractions`` (``sklearn.metrics.auc``, as the official ``plots.roar_plot``); a constant
        accuracy ``a`` over (0, .1, ..., .9) gives ``0.9 a``."""
        curve = self._curve(method)
        x = torch.tensor(self.fractions, dtype=curve.dtype, device=curve.device)
        return torch.trapezoid(curve, x=x, dim=1)

    def mean(self, method: str) -> Tensor:
        """``(n_fractions,)``: the accuracy averaged over seeds."""
        return self._curve(method).mean(dim=0)

    def std(self, method: str) -> Tensor:
        """``(n_fractions,)``: the sample standard deviation over seeds (zeros for one seed)."""
        curve = self._curve(method)
        return curve.std(dim=0) if len(curve) > 1 else torch.zeros_like(curve[0])


# ------------------------------------------------------------------------------------ retraining


def mnist_trainer(*, device: str | torch.device = "cpu", **train_kwargs) -> Trainer:
    """A ``train(images, labels, seed) -> model`` for :func:`roar` that calls
    :func:`pathlib_core.models.train_mnist_cnn` without augmentation (``rotate = scale = shift =
    0``: shifting or rotating a degraded digit would move the replaced pixels, so the model would
    see pixels that were removed) and without a progress bar. ``train_kwargs`` override the other
    settings, e.g. ``mnist_trainer(epochs=2)``; the default is ``train_mnist_cnn``'s 5 epochs.
    Every retraining runs on ``device`` (checked now, by ``models.resolve_device``, not at the
    first retraining). Its ``cache_key`` attribute names the settings, the training code and a
    device other than the CPU (``cache.device_options``), for ``roar(cache_key=...)``."""
    if "seed" in train_kwargs:
        raise TypeError("mnist_trainer() takes no seed: roar() passes one per run (seeds=...).")
    device = models.resolve_device(device)
    settings = {**_NO_AUGMENTATION, "progress": False, **train_kwargs}

    def train(images: Tensor, labels: Tensor, seed: int) -> nn.Module:
        return models.train_mnist_cnn(images, labels, seed=seed, device=device, **settings)

    train.cache_key = content_key(  # type: ignore[attr-defined]
        {"trainer": "mnist_trainer", **settings, **device_options(device)}, sources=("models.py",)
    )
    return train


def _check_method_maps(
    train_images: Tensor,
    test_images: Tensor,
    train_maps: Mapping[str, Tensor],
    test_maps: Mapping[str, Tensor],
) -> list[str]:
    if not isinstance(train_maps, Mapping) or not isinstance(test_maps, Mapping):
        raise TypeError("train_maps and test_maps must be mappings {method name: maps}.")
    if not train_maps:
        raise ValueError("train_maps is empty; pass at least one method, e.g. {'Gradients': g}.")
    only_train, only_test = set(train_maps) - set(test_maps), set(test_maps) - set(train_maps)
    if only_train or only_test:
        raise ValueError(
            f"Every method needs maps of both the training and the test images; "
            f"missing test maps for {sorted(only_train)}, missing training maps for "
            f"{sorted(only_test)}."
        )
    for method in train_maps:
        _check_map(train_images, train_maps[method], f"train_maps[{method!r}]")
        _check_map(test_images, test_maps[method], f"test_maps[{method!r}]")
    return list(train_maps)


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    values = [_check_fraction(f, allow_zero=False) for f in fractions]
    if not values or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(
            f"fractions must be a non-empty strictly increasing sequence in (0, 1], "
            f"got {list(fractions)}; e.g. (0.1, 0.3, 0.5, 0.7, 0.9)."
        )
    return values


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds}; e.g. (0,).")
    return seeds


def _fit_and_score(
    train: Trainer,
    seed: int,
    train_set: tuple[Tensor, Tensor],
    test_set: tuple[Tensor, Tensor],
    cache_key: str | None,
) -> float:
    """The test accuracy of a model trained on ``train_set``; with a ``cache_key`` (naming the
    trainer) it is saved and reused for the same seed and data."""

    def compute() -> dict[str, float]:
        model = train(*train_set, seed)
        if not isinstance(model, nn.Module):
            raise TypeError(f"train must return a torch.nn.Module, got {type(model).__name__}.")
        return {"accuracy": models.accuracy(model, *test_set)}

    if cache_key is None:
        return compute()["accuracy"]
    tensors = zip(
        ("train_images", "train_labels", "test_images", "test_labels"),
        (*train_set, *test_set),
        strict=False,
    )
    key = content_key({"trainer": cache_key, "seed": seed, **versions()}, tensors)
    return resumable.cached_result("retraining", key, compute)["accuracy"]


def roar(
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    train_maps: Mapping[str, Tensor],
    test_maps: Mapping[str, Tensor],
    fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    mode: str = "roar",
    seeds: Sequence[int] = (0,),
    replacement: str | float | Tensor = 0.0,
    train: Trainer | None = None,
    progress: bool = True,
    reduce: str = "max_abs",
    cache_key: str | None = None,
) -> RoarResult:
    """ROAR or KAR (Hooker et al., 2019) of every method in ``train_maps`` / ``test_maps``.

    For each seed: train on the unmodified training set and test on the unmodified test set
    (fraction 0, shared by all methods); then for each method and fraction, degrade both sets with
    :func:`degrade` (``mode``, ``replacement``, ``reduce``), retrain from scratch with the same
    seed and test. ``train(images, labels, seed) -> model`` trains a model (default:
    :func:`mnist_trainer`, the MNIST CNN without augmentation); accuracy is
    :func:`pathlib_core.models.accuracy`. A random baseline is just another method: pass seeded
    random maps under a name such as ``"Random"``. All inputs are checked before any training.
    Returns a :class:`RoarResult` with ``fractions = [0.0, *fractions]``.

    ``cache_key`` (a string naming the trainer and its settings; for a trainer with a
    ``cache_key`` attribute, as :func:`mnist_trainer`'s, it must be that one) saves the accuracy
    of every retraining as soon as it is known (:mod:`pathlib_core.resumable`, keyed also by the
    seed, the degraded training and test data and the package versions), so a stopped run
    resumes at the first retraining not yet done.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    from tqdm import tqdm  # the text bar: no widget output in executed notebooks

    train_images = _check_images(train_images, "train_images")
    test_images = _check_images(test_images, "test_images")
    train_labels = _check_labels(train_images, train_labels, "train_labels")
    test_labels = _check_labels(test_images, test_labels, "test_labels")
    methods = _check_method_maps(train_images, test_images, train_maps, test_maps)
    fractions, seeds, mode = _check_fractions(fractions), _check_seeds(seeds), _check_mode(mode)
    train = mnist_trainer() if train is None else train
    if not callable(train):
        raise TypeError("train must be callable as train(images, labels, seed) -> model.")
    if cache_key is not None and not isinstance(cache_key, str):
        raise TypeError(
            f"cache_key must be None or a string naming the trainer and its "
            f"settings (e.g. mnist_trainer().cache_key), got "
            f"{type(cache_key).__name__}."
        )
    own_key = getattr(train, "cache_key", None)
    if cache_key is not None and own_key is not None and cache_key != own_key:
        raise ValueError(
            "cache_key differs from train.cache_key, so saved accuracies of another "
            "trainer could be loaded; pass cache_key=train.cache_key."
        )
    data = ((train_images, train_labels), (test_images, test_labels))
    options = {"mode": mode, "replacement": replacement, "reduce": reduce}
    degrade(train_images[:1], train_maps[methods[0]][:1], 0.5, **options)  # check them now
    total = len(seeds) * (1 + len(methods) * len(fractions))
    with tqdm(
        total=total, desc=f"{mode.upper()} retraining", disable=not progress, leave=False
    ) as bar:
        rows = [
            _seed_row(train, seed, data, train_maps, test_maps, fractions, options, bar, cache_key)
            for seed in seeds
        ]
    accuracy = {m: torch.tensor([row[m] for row in rows], dtype=torch.float64) for m in methods}
    return RoarResult(mode=mode, fractions=[0.0, *fractions], accuracy=accuracy)


def _seed_row(
    train: Trainer,
    seed: int,
    data: tuple[tuple[Tensor, Tensor], ...],
    train_maps: Mapping[str, Tensor],
    test_maps: Mapping[str, Tensor],
    fractions: list[float],
    options: dict,
    bar,
    cache_key: str | None,
) -> dict[str, list[float]]:
    """One seed: the accuracy of each method at fraction 0 (one shared model) and each fraction."""
    (train_images, train_labels), (test_images, test_labels) = data
    base = _fit_and_score(train, seed, data[0], data[1], cache_key)
    bar.update(1)
    row = {}
    for method in train_maps:
        row[method] = [base]
        for fraction in fractions:
            bar.set_postfix(seed=seed, method=method, fraction=fraction, refresh=False)
            degraded_train = degrade(train_images, train_maps[method], fraction, **options)
            degraded_test = degrade(test_images, test_maps[method], fraction, **options)
            row[method].append(
                _fit_and_score(
                    train,
                    seed,
                    (degraded_train, train_labels),
                    (degraded_test, test_labels),
                    cache_key,
                )
            )
            bar.update(1)
    return row
