"""Sanity checks for attribution maps (Adebayo et al., 2018, "Sanity checks for saliency maps").

A map that explains the model must change when the model changes. Two checks:

- cascading parameter randomisation (``cascading_randomisation``): re-initialise the weights from
  the output layer down, one unit more per stage, and compare each method's map with its map on the
  trained model;
- data randomisation (``data_randomisation``): compare the maps of the trained model with those of a
  model of the same architecture trained on shuffled labels.

Similarity is measured per sample with the metrics of the official PathwayGrad code
(``sanity_checks/sanity_checks.py``): Spearman rank correlation of the signed and of the absolute
maps, SSIM, and the Pearson correlation of HOG features. As there, each map is first reduced to one
signed value per pixel (the channel value of largest magnitude) and divided by its largest
magnitude. A method passes when its similarity drops as more of the model is randomised; a method
whose maps stay similar (e.g. an edge detector of the input) does not depend on the model.

The user's model is never modified: everything is computed on ``copy.deepcopy(model)``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from scipy.stats import rankdata
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import Tensor, nn
from tqdm import tqdm

from .. import resumable
from .._validation import (
    Target,
    as_input_tuple,
    check_choice,
    check_eval_mode,
    check_logits,
    check_module,
    check_positive_int,
    resolve_target,
)
from ..cache import MAP_SOURCES, content_key, device_options, model_device, versions
from .maps import normalise, pixel_map

AttributionFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``fn(model, inputs, target)`` -> input-shaped maps ``(B, C, H, W)``; ``target`` is a 1-D long
tensor of class indices, one per sample."""

Stage = tuple[str, list[str]]
StageSpec = str | tuple[str, str | Sequence[str]]

METRICS = ("spearman", "spearman_abs", "ssim", "hog")
SSIM_WINDOW = 5
SSIM_DATA_RANGE = 2.0  # normalised signed maps lie in [-1, 1]
HOG_CELLS_PER_BLOCK = (3, 3)  # skimage's default, as in the official code

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")  # characters of a method name kept out of file names


# --------------------------------------------------------------------------------------------
# Stages and randomisation
# --------------------------------------------------------------------------------------------


def _units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Children of ``module`` in definition order; containers are expanded recursively."""
    for name, child in module.named_children():
        qualified = f"{prefix}.{name}" if prefix else name
        if isinstance(child, _CONTAINERS):
            yield from _units(child, qualified)
        else:
            yield qualified, child


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def cascading_stages(model: nn.Module) -> list[Stage]:
    """The randomisation stages of ``model``, from the output layer down, as ``(name, [name])``.

    Units: the module tree is walked from the model (expanded whether or not it is a container,
    i.e. its direct children are taken); ``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict``
    are expanded recursively and any other module -- a layer (Conv2d, Linear, BatchNorm) or a whole
    block (a torchvision ``Bottleneck``, a timm ``InvertedResidual``) -- is one unit. Units without
    parameters (ReLU, pooling, flatten) are skipped. The units are returned in reverse definition
    order (the last unit first); ``cascading_randomisation`` randomises them cumulatively, stage i
    randomising units 0..i.

    This follows the rule of the official PathwayGrad ``sanity_checks.py`` (a new map after each
    ``Linear`` or residual block, Adebayo et al., 2018, Sec. 3). Definition order is taken as the
    forward order; for models whose ``forward`` calls children in another order, pass ``stages``
    to ``cascading_randomisation`` explicitly. Parameters registered directly on a non-container
    model (e.g. a ViT's ``cls_token``) belong to no unit and are never randomised.
    """
    check_module(model)
    units = [(name, unit) for name, unit in _units(model) if _has_parameters(unit)]
    return [(name, [name]) for name, _ in reversed(units)]


def randomise_(module: nn.Module, generator: torch.Generator, std: float = 0.1) -> nn.Module:
    """Re-initialise in place every floating-point parameter of ``module`` with N(0, ``std``).

    As the official ``sanity_checks.py``: weights and biases of every layer, BatchNorm's affine
    parameters included, are drawn from N(0, 0.1); buffers (BatchNorm running statistics) are left
    untouched. Values are drawn on the CPU from ``generator`` (in ``module.parameters()`` order) and
    then moved to each parameter's device, so a seed gives the same weights on every device.
    """
    check_module(module)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "create one with torch.Generator().manual_seed(seed)."
        )
    _check_std(std)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.is_floating_point():
                noise = torch.randn(
                    parameter.shape,
                    generator=generator,
                    dtype=parameter.dtype,
                    device=generator.device,
                )
                parameter.copy_(noise.mul_(std).to(parameter.device))
    return module


def _check_std(std: object) -> float:
    if isinstance(std, bool) or not isinstance(std, (int, float)):
        raise TypeError(f"std must be a positive number, got {type(std).__name__}; e.g. std=0.1.")
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite number, got {std}; e.g. std=0.1.")
    return float(std)


def _as_stage(spec: object) -> Stage:
    """A stage given as a module name, or as ``(stage name, module name or names)``."""
    if isinstance(spec, str):
        return spec, [spec]
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str):
        names = [spec[1]] if isinstance(spec[1], str) else list(spec[1])
        if names and all(isinstance(n, str) for n in names):
            return spec[0], names
    raise TypeError(
        f"each stage must be a module name or a (stage name, [module names]) pair, got {spec!r}; "
        "see cascading_stages(model) for the default stages."
    )


def _resolve_stages(model: nn.Module, stages: Sequence[StageSpec] | None) -> list[Stage]:
    """The stages to randomise, checked against the model's module names."""
    if stages is None:
        resolved = cascading_stages(model)
    elif isinstance(stages, str):
        resolved = [_as_stage(stages)]
    else:
        resolved = [_as_stage(spec) for spec in stages]
    if not resolved:
        raise ValueError(
            "there are no stages to randomise: the model has no parameterised submodules; "
            "pass stages=[(name, [module names])] with names from model.named_modules()."
        )
    modules = dict(model.named_modules())
    for stage, names in resolved:
        for name in names:
            if name not in modules:
                raise ValueError(
                    f"stage {stage!r} names module {name!r}, which the model does not have; use "
                    "names from model.named_modules() (cascading_stages(model) lists the default)."
                )
            if not _has_parameters(modules[name]):
                raise ValueError(
                    f"module {name!r} of stage {stage!r} has no parameters, so randomising it "
                    "changes nothing; remove it from stages."
                )
    return resolved


# --------------------------------------------------------------------------------------------
# Similarity metrics
# --------------------------------------------------------------------------------------------


def _prepare(maps: object, name: str) -> np.ndarray:
    """The official preprocessing: one signed value per pixel, divided by the largest magnitude;
    ``(B, H, W)`` float64 on the CPU."""
    if not isinstance(maps, Tensor):
        raise TypeError(
            f"{name} must be a tensor of maps shaped (B, C, H, W) or (B, H, W), "
            f"got {type(maps).__name__}; convert it with torch.as_tensor(...)."
        )
    pixels = pixel_map(maps.detach(), "signed_max_abs").double()
    return normalise(pixels).cpu().numpy()


def _prepare_pair(a: Tensor, b: Tensor) -> tuple[np.ndarray, np.ndarray]:
    x, y = _prepare(a, "a"), _prepare(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"the maps have different shapes after reduction to pixels: {x.shape} and {y.shape}; "
            "compare maps of the same inputs."
        )
    return x, y


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> Tensor:
    """Pearson correlation of each row of ``x`` with the same row of ``y``; 0.0 where either row
    is constant (the correlation is undefined there), NaN where a row holds NaN."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip((xc * yc).sum(axis=1) / denominator, -1.0, 1.0)
    return torch.from_numpy(np.where(denominator == 0, 0.0, r))


def spearman(a: Tensor, b: Tensor, absolute: bool = False) -> Tensor:
    """``(B,)``: Spearman rank correlation of each pair of flattened maps (of their magnitudes if
    ``absolute``), ties ranked by their average rank as ``scipy.stats.spearmanr`` does.

    Returns 0.0 for a pair where either map is constant (e.g. all zero), where SciPy returns NaN:
    a map without any ranking carries no information about the model. Official code:
    ``SanityCheck.calc_spearman``.
    """
    x, y = _prepare_pair(a, b)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if absolute:
        x, y = np.abs(x), np.abs(y)
    return _pearson_rows(rankdata(x, axis=1), rankdata(y, axis=1))


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """``(B,)``: structural similarity (``skimage.metrics.structural_similarity``) of each pair of
    signed normalised maps, with a 5x5 window and ``data_range=2`` (the values lie in [-1, 1]), as
    the official ``SanityCheck.calc_SSIM``. Maps must be at least 5x5 pixels."""
    x, y = _prepare_pair(a, b)
    if min(x.shape[1:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM uses a {SSIM_WINDOW}x{SSIM_WINDOW} window but the maps are "
            f"{x.shape[1]}x{x.shape[2]} pixels; leave 'ssim' out of metrics for such small maps."
        )
    values = [
        structural_similarity(xi, yi, win_size=SSIM_WINDOW, data_range=SSIM_DATA_RANGE)
        for xi, yi in zip(x, y, strict=False)
    ]
    return torch.tensor(values, dtype=torch.float64)


def _check_cells(pixels_per_cell: object, height: int, width: int) -> tuple[int, int]:
    """``pixels_per_cell`` as two positive ints, small enough for one HOG block in the maps."""
    cells = pixels_per_cell
    if isinstance(cells, int) and not isinstance(cells, bool):
        cells = (cells, cells)
    if (
        not isinstance(cells, (tuple, list))
        or len(cells) != 2
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in cells)
    ):
        raise TypeError(
            f"pixels_per_cell must be two positive ints (rows, columns), got {pixels_per_cell!r}; "
            "e.g. (16, 16) for 224x224 images or (4, 4) for 28x28 MNIST images."
        )
    need_y, need_x = HOG_CELLS_PER_BLOCK
    if height // cells[0] < need_y or width // cells[1] < need_x:
        largest = (max(1, height // need_y), max(1, width // need_x))
        raise ValueError(
            f"pixels_per_cell={tuple(cells)} is too large for {height}x{width} maps: HOG needs at "
            f"least {need_y}x{need_x} cells (one block); use pixels_per_cell={largest} or smaller, "
            "e.g. (4, 4) for 28x28 MNIST images."
        )
    return int(cells[0]), int(cells[1])


def hog_correlation(a: Tensor, b: Tensor, pixels_per_cell: tuple[int, int] = (16, 16)) -> Tensor:
    """``(B,)``: Pearson correlation of the HOG features (``skimage.feature.hog``, 9 orientations,
    3x3 cells per block) of each pair of absolute normalised maps; 0.0 where either feature vector
    is constant (a constant map has no gradients).

    The official ``SanityCheck.calc_HOG`` uses 16x16-pixel cells for 224x224 ImageNet maps; smaller
    maps need smaller cells (e.g. (4, 4) for 28x28 MNIST)."""
    x, y = _prepare_pair(a, b)
    cells = _check_cells(pixels_per_cell, x.shape[1], x.shape[2])
    features = [
        np.stack(
            [
                hog(np.abs(m), pixels_per_cell=cells, cells_per_block=HOG_CELLS_PER_BLOCK)
                for m in maps
            ]
        )
        for maps in (x, y)
    ]
    return _pearson_rows(*features)


SIMILARITIES: dict[str, Callable[..., Tensor]] = {
    "spearman": spearman,
    "spearman_abs": partial(spearman, absolute=True),
    "ssim": ssim,
    "hog": hog_correlation,
}
"""Metric name -> ``fn(a, b) -> (B,)``; ``"hog"`` also takes ``pixels_per_cell``."""

_TAKES_CELLS = frozenset({"hog"})


def _check_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise ValueError(f"metrics is empty; choose some of {METRICS}.")
    return tuple(check_choice(name, "metric", tuple(SIMILARITIES)) for name in names)


def similarities(
    a: Tensor,
    b: Tensor,
    metrics: str | Sequence[str] = METRICS,
    pixels_per_cell: tuple[int, int] = (16, 16),
) -> dict[str, Tensor]:
    """Metric name -> ``(B,)`` similarity of each pair of maps (see ``SIMILARITIES``)."""
    scores = {}
    for name in _check_metrics(metrics):
        options = {"pixels_per_cell": pixels_per_cell} if name in _TAKES_CELLS else {}
        scores[name] = SIMILARITIES[name](a, b, **options)
    return scores


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SanityResult:
    """Result of ``cascading_randomisation``.

    ``stages``: ``"original"`` followed by the name of each randomisation stage (cumulative).
    ``scores``: method -> metric -> ``(n_stages, B)`` similarity of each sample's map at a stage to
    its map on the trained model (row 0 compares the original map with itself: 1 unless the map is
    constant). ``maps``: with ``keep_maps=True``, method -> ``(n_stages, B, H, W)`` maps reduced to
    one normalised signed value per pixel, for display; otherwise ``None``.
    """

    stages: list[str]
    scores: dict[str, dict[str, Tensor]]
    maps: dict[str, Tensor] | None = None

    def mean(self, method: str, metric: str) -> Tensor:
        """``(n_stages,)``: the similarity averaged over samples, ignoring NaN."""
        check_choice(method, "method", tuple(self.scores))
        check_choice(metric, "metric", tuple(self.scores[method]))
        return torch.nanmean(self.scores[method][metric], dim=1)


def _copy_model(model: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(model)
    except Exception as error:  # deepcopy raises many kinds of errors
        raise TypeError(
            f"copy.deepcopy(model) failed ({error}); the sanity checks work on a copy so that your "
            "model stays unchanged: make the model deep-copyable (e.g. no non-leaf tensors "
            "stored as attributes)."
        ) from error


def _check_inputs(inputs: object) -> Tensor:
    if isinstance(inputs, tuple):
        raise TypeError(
            "inputs must be one tensor (B, C, H, W): the sanity checks compare input-shaped "
            "maps; wrap a multi-input model so that it takes one tensor."
        )
    (tensor,), _ = as_input_tuple(inputs)  # type: ignore[arg-type]
    return tensor


def _check_methods(methods: object) -> Mapping[str, AttributionFn]:
    if not isinstance(methods, Mapping) or not methods:
        raise TypeError(
            "methods must be a non-empty mapping name -> fn(model, inputs, target), "
            "e.g. {'gradient': gradient}."
        )
    for name, fn in methods.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(
                f"methods[{name!r}] must map a str name to a callable fn(model, inputs, target) "
                "that returns input-shaped maps."
            )
    return methods


def _chunks(count: int, batch_size: int | None) -> list[slice]:
    size = count if batch_size is None else check_positive_int(batch_size, "batch_size")
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _labels(model: nn.Module, inputs: Tensor, target: Target, batch_size: int | None) -> Tensor:
    """``target`` as one class index per sample; ``None``: the model's predicted classes."""
    with torch.no_grad():
        logits = torch.cat(
            [
                check_logits(model(inputs[part]), inputs[part].shape[0])
                for part in _chunks(len(inputs), batch_size)
            ]
        )
    return resolve_target(target, logits)


def _attribute(
    name: str,
    fn: AttributionFn,
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    batch_size: int | None,
    cache_key: str | None = None,
) -> Tensor:
    """The maps of one method for all inputs, computed in chunks, detached, on the CPU; with a
    ``cache_key``, each chunk is saved when done and loaded on a later call
    (``resumable.run_in_chunks``), keyed also by the model, inputs, targets and library code."""

    def compute(part: slice) -> Tensor:
        with torch.enable_grad():
            maps = fn(model, inputs[part], labels[part])
        return _check_maps(maps, name, len(inputs[part])).detach().cpu()

    if cache_key is None:
        return torch.cat([compute(part) for part in _chunks(len(inputs), batch_size)])
    key = content_key(
        {
            "cache_key": cache_key,
            "method": name,
            **resumable.model_identity(model),
            **versions(),
            **device_options(model_device(model)),
        },
        [*model.state_dict().items(), ("inputs", inputs), ("labels", labels)],
        MAP_SOURCES,
    )
    size = len(inputs) if batch_size is None else check_positive_int(batch_size, "batch_size")
    stored = resumable.run_in_chunks(
        f"maps-{_SAFE.sub('_', name)}",
        key,
        len(inputs),
        size,
        lambda rows: {"maps": compute(rows)},
        progress=False,
    )
    return torch.cat([part["maps"] for part in stored])


def _check_maps(maps: object, name: str, count: int) -> Tensor:
    """An attribution function must return a float tensor with one map per input."""
    if not isinstance(maps, Tensor) or not maps.is_floating_point():
        raise TypeError(
            f"method {name!r} returned {type(maps).__name__}"
            f"{'' if not isinstance(maps, Tensor) else f' of dtype {maps.dtype}'}; an attribution "
            "function must return a float tensor of input-shaped maps (B, C, H, W)."
        )
    if maps.dim() == 0 or maps.shape[0] != count:
        raise ValueError(
            f"method {name!r} returned shape {tuple(maps.shape)} for a batch of {count}; an "
            "attribution function must return one map per input, shaped (B, C, H, W)."
        )
    return maps


def _all_maps(
    methods: Mapping[str, AttributionFn],
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    batch_size: int | None,
    cache_key: str | None = None,
    bar: tqdm | None = None,
) -> dict[str, Tensor]:
    maps = {}
    for name, fn in methods.items():
        maps[name] = _attribute(name, fn, model, inputs, labels, batch_size, cache_key)
        if bar is not None:
            bar.update()
    return maps


def _check_cache_key(cache_key: object) -> str | None:
    if cache_key is not None and not isinstance(cache_key, str):
        raise TypeError(
            f"cache_key must be None or a string naming the methods and their "
            f"settings, got {type(cache_key).__name__}."
        )
    return cache_key


def _score_all(
    reference: dict[str, Tensor],
    maps: dict[str, Tensor],
    metrics: Sequence[str],
    pixels_per_cell: tuple[int, int],
) -> dict[str, dict[str, Tensor]]:
    """Method -> metric -> ``(B,)`` similarity of ``maps`` to ``reference``."""
    return {
        name: similarities(reference[name], maps[name], metrics, pixels_per_cell)
        for name in reference
    }


def _pixel_maps(maps: Tensor) -> Tensor:
    return normalise(pixel_map(maps, "signed_max_abs"))


def cascading_randomisation(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    methods: Mapping[str, AttributionFn],
    stages: Sequence[StageSpec] | None = None,
    metrics: str | Sequence[str] = METRICS,
    pixels_per_cell: tuple[int, int] = (16, 16),
    std: float = 0.1,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
    keep_maps: bool = False,
    cache_key: str | None = None,
) -> SanityResult:
    """Cascading parameter randomisation (Adebayo et al., 2018, Sec. 3.1).

    Each method's maps are computed on the trained model; then, on one ``copy.deepcopy(model)``,
    the ``stages`` (default ``cascading_stages(model)``: the output layer first) are re-initialised
    with N(0, ``std``) one after another, cumulatively, drawing from a ``torch.Generator`` seeded
    with ``seed``; after each stage the maps are recomputed and compared with the trained model's
    maps by ``metrics``. ``target`` (``None``: the trained model's predicted classes) stays the same
    at every stage, so the maps explain the same class throughout -- unlike the official
    ``sanity_checks.py``, which explains the randomised model's own prediction.

    ``stages`` may also be given as module names (one stage each) or ``(name, [module names])``
    pairs. ``batch_size`` splits the inputs into chunks for the forward and attribution calls;
    ``keep_maps`` keeps the reduced maps of every stage in the result. The model must be in eval
    mode (this function never changes the mode); it is left unchanged, also when a method raises.
    Everything runs on the model's device (the inputs are moved there, the randomised copy stays
    there, its new weights drawn on the CPU so a seed gives the same weights on every device);
    the maps are kept on the CPU.

    ``cache_key`` (a string that names the methods and all their settings, which cannot be read
    off the functions) saves each method's maps at each stage, a chunk of ``batch_size`` inputs
    at a time, in ``cache_dir()/chunks`` (:mod:`pathlib_core.resumable`); a later call with the
    same key, model class and architecture, stage weights, inputs, targets, library code,
    package versions (``cache.versions``) and device type (``cache.device_options``) loads them,
    so a stopped run resumes where it stopped. An edit to a model's own ``forward`` that keeps
    all of these is not seen: change ``cache_key`` then. ``progress`` draws a tqdm bar on
    stderr; it changes no result.
    """
    check_module(model)
    check_eval_mode(model)
    inputs = _check_inputs(inputs).to(model_device(model))
    methods = _check_methods(methods)
    metrics = _check_metrics(metrics)
    _check_std(std)
    cache_key = _check_cache_key(cache_key)
    similarities(inputs[:1], inputs[:1], metrics, pixels_per_cell)  # fail before the slow part
    resolved = _resolve_stages(model, stages)
    work = _copy_model(model)
    labels = _labels(work, inputs, target, batch_size)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(work.named_modules())

    original = _all_maps(methods, work, inputs, labels, batch_size, cache_key)
    rows = [_score_all(original, original, metrics, pixels_per_cell)]
    kept = [original] if keep_maps else []
    for _, names in tqdm(resolved, desc="randomising stages", disable=not progress):
        for name in names:
            randomise_(modules[name], generator, std)
        maps = _all_maps(methods, work, inputs, labels, batch_size, cache_key)
        rows.append(_score_all(original, maps, metrics, pixels_per_cell))
        if keep_maps:
            kept.append(maps)

    scores = {
        method: {metric: torch.stack([row[method][metric] for row in rows]) for metric in metrics}
        for method in methods
    }
    stacked = {m: torch.stack([_pixel_maps(s[m]) for s in kept]) for m in methods} if kept else None
    return SanityResult(["original", *(name for name, _ in resolved)], scores, stacked)


def data_randomisation(
    model: nn.Module,
    random_label_model: nn.Module,
    inputs: Tensor,
    target: Target,
    methods: Mapping[str, AttributionFn],
    metrics: str | Sequence[str] = METRICS,
    pixels_per_cell: tuple[int, int] = (16, 16),
    batch_size: int | None = None,
    cache_key: str | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Tensor]]:
    """Data randomisation (Adebayo et al., 2018, Sec. 3.2): method -> metric -> ``(B,)``
    similarity of the maps of ``model`` to those of ``random_label_model``, the same architecture
    trained on randomly permuted labels (training it is the caller's job).

    ``target`` (``None``: the trained model's predicted classes) is the class explained in both
    models. Both models must be in eval mode and on one device (the inputs are moved there); both
    are left unchanged (maps are computed on copies).
    ``cache_key`` saves the maps as in :func:`cascading_randomisation`. ``progress`` draws a tqdm
    bar on stderr; it changes no result.
    """
    for candidate in (model, random_label_model):
        check_module(candidate)
        check_eval_mode(candidate)
    device, other = model_device(model), model_device(random_label_model)
    if device != other:
        raise ValueError(
            f"model is on {device} but random_label_model on {other}; the maps of both must be "
            f"computed alike: move one, e.g. random_label_model.to('{device}')."
        )
    inputs = _check_inputs(inputs).to(device)
    methods = _check_methods(methods)
    metrics = _check_metrics(metrics)
    cache_key = _check_cache_key(cache_key)
    similarities(inputs[:1], inputs[:1], metrics, pixels_per_cell)  # fail before the slow part
    trained, shuffled = _copy_model(model), _copy_model(random_label_model)
    labels = _labels(trained, inputs, target, batch_size)
    _labels(shuffled, inputs, labels, batch_size)  # the same classes must exist in both models
    with tqdm(total=2 * len(methods), desc="data randomisation", disable=not progress) as bar:
        reference = _all_maps(methods, trained, inputs, labels, batch_size, cache_key, bar)
        maps = _all_maps(methods, shuffled, inputs, labels, batch_size, cache_key, bar)
    return _score_all(reference, maps, metrics, pixels_per_cell)
