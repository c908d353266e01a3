"""Pixel perturbation: LeRF / MoRF curves and AOPC.

Pixels are ranked per image by an attribution map (``maps.pixel_map``, all channels of a pixel
together) and removed, i.e. replaced by ``maps.replacement_images``, in that order:

- MoRF, most relevant first (Samek et al., 2017, "Evaluating the visualization of what a deep
  neural network has learned"): a good map makes the target output fall fast, so its AOPC (area
  over the perturbation curve) is high. Samek et al. remove 9x9 regions and fill them with noise;
  here single pixels are removed, with the replacements of ``maps``.
- LeRF, least relevant first (the official PathwayGrad ``plots.pixel_perturbation_plot``, after
  FullGrad, Srinivas & Fleuret, 2019): a good map leaves the output unchanged, so its "absolute
  fractional output change" ``|f(x_k) - f(x)| / |f(x)|`` stays low.

Removing a fraction ``t`` of the pixels replaces the ``round(t * H * W)`` first pixels of the order,
so every step removes a superset of the previous one. All (image, fraction) perturbed inputs run
through the model in chunks of ``batch_size``, built chunk by chunk; the model is only called (no
hooks, no change of mode, no gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

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
from ..cache import model_device
from .maps import pixel_map, pixel_order, replacement_images

ORDERS = ("lerf", "morf")
OUTPUTS = ("logit", "probability")
DEFAULT_FRACTIONS = tuple(k / 100 for k in range(1, 11))

# (image indices (n,), column indices (n,)) -> removed pixels (n, H * W), bool.
RemovedPixels = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PerturbationCurve:
    """The target output of each image as pixels are removed.

    ``fractions`` (F,): fraction of pixels removed, first entry 0; ``order``: "lerf" or "morf";
    ``output`` (B, F): the target output (logit or probability), column 0 unperturbed;
    ``fractional_change`` (B, F): ``|f(x_k) - f(x)| / |f(x)|``, the official "absolute fractional
    output change" (0 in column 0; inf or NaN where ``f(x) = 0`` exactly).
    """

    fractions: Tensor
    order: str
    output: Tensor
    fractional_change: Tensor

    @property
    def aopc(self) -> Tensor:
        """(B,): Samek et al.'s AOPC, the mean over k = 0..F-1 of ``f(x) - f(x_k)``. For MoRF
        higher is better, for LeRF lower is better."""
        return (self.output[:, :1] - self.output).mean(dim=1)

    @property
    def mean_change(self) -> Tensor:
        """(F,): the fractional output change averaged over the images (the official curve)."""
        return self.fractional_change.mean(dim=0)


def pixel_perturbation(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    attributions: Tensor,
    fractions: Sequence[float] | Tensor = DEFAULT_FRACTIONS,
    order: str = "lerf",
    replacement: str | float | Tensor = "zero",
    output: str = "logit",
    reduce: str = "max_abs",
    batch_size: int = 256,
    progress: bool = True,
) -> PerturbationCurve:
    """Remove the least (``order="lerf"``) or most (``"morf"``) important pixels of each image.

    ``inputs`` (B, C, H, W); ``attributions`` (B, C, H, W), (B, 1, H, W) or (B, H, W), ranked by
    ``pixel_map(attributions, reduce)`` (ties in the fixed seeded order of ``maps``);
    ``fractions`` in [0, 1], strictly increasing, 0 prepended when absent; ``target`` as in Captum
    (None: the predicted class); ``output``: "logit" (the target logit) or "probability" (its
    softmax probability). The model must be in eval mode and is never changed.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    model, inputs = check_model_and_images(model, inputs)
    order = check_choice(order, "order", ORDERS)
    output = check_choice(output, "output", OUTPUTS)
    batch_size = check_positive_int(batch_size, "batch_size")
    grid = _fraction_grid(fractions)
    importance = pixel_map(check_attributions(attributions, inputs), reduce)
    filled = replacement_images(inputs, replacement)
    labels, base = unperturbed_outputs(model, inputs, target, output, batch_size)
    rank = _rank(pixel_order(importance, largest=order == "morf"))
    pixels = inputs.shape[-2] * inputs.shape[-1]
    counts = torch.tensor([round(float(t) * pixels) for t in grid[1:]], device=inputs.device)

    def removed(images: Tensor, steps: Tensor) -> Tensor:
        return rank[images] < counts[steps].unsqueeze(1)

    perturbed = removal_outputs(
        model,
        inputs,
        filled,
        labels,
        removed,
        len(counts),
        output,
        batch_size,
        progress,
        desc=f"pixel perturbation ({order})",
    )
    curve = torch.cat([base.unsqueeze(1), perturbed], dim=1)
    change = (curve - base.unsqueeze(1)).abs() / base.abs().unsqueeze(1)
    return PerturbationCurve(fractions=grid, order=order, output=curve, fractional_change=change)


def random_attributions(inputs: Tensor, seed: int = 0) -> Tensor:
    """A seeded standard-normal map shaped like ``inputs``: the chance baseline of the evaluations.

    Drawn in float64 on the CPU, so a seed gives the same map for every dtype and device.
    """
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise TypeError("inputs must be a float tensor; random_attributions copies its shape.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}.")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(inputs.shape, generator=generator, dtype=torch.float64)
    return noise.to(device=inputs.device, dtype=inputs.dtype)


# Shared with ``sensitivity``.


def check_model_and_images(model: object, inputs: object) -> tuple[nn.Module, Tensor]:
    """An ``nn.Module`` in eval mode and one float tensor of images ``(B, C, H, W)``, detached and
    on the model's device: every mask, replacement and noise is then made where the model runs."""
    model = check_module(model)
    check_eval_mode(model)
    items, is_tuple = as_input_tuple(inputs)  # type: ignore[arg-type]
    if is_tuple:
        raise TypeError(
            "inputs must be one tensor of images (B, C, H, W), not a tuple; the pixel evaluations "
            "perturb a single image input."
        )
    images = items[0]
    if images.dim() != 4:
        raise ValueError(
            f"inputs must be images shaped (B, C, H, W), got {tuple(images.shape)}; add the batch "
            "dimension with x.unsqueeze(0) or the channel dimension with x.unsqueeze(1)."
        )
    return model, images.detach().to(model_device(model))


def check_attributions(attributions: object, inputs: Tensor) -> Tensor:
    """Attributions shaped like the inputs (B, C, H, W), or one map per image (B, 1, H, W) or
    (B, H, W); returned detached, on the inputs' device."""
    if not isinstance(attributions, Tensor):
        raise TypeError(
            f"attributions must be a tensor, got {type(attributions).__name__}; pass the map "
            "computed for these inputs (e.g. by a Captum attribution method)."
        )
    b, c, h, w = inputs.shape
    if tuple(attributions.shape) not in {(b, c, h, w), (b, 1, h, w), (b, h, w)}:
        raise ValueError(
            f"attributions have shape {tuple(attributions.shape)} but the inputs are "
            f"{(b, c, h, w)}; pass one map per input, shaped {(b, c, h, w)} or {(b, h, w)}."
        )
    return attributions.detach().to(inputs.device)


@torch.no_grad()
def unperturbed_outputs(
    model: nn.Module, inputs: Tensor, target: Target, output: str, batch_size: int
) -> tuple[Tensor, Tensor]:
    """The target classes (B,) (``target=None``: the predicted ones) and their outputs ``f(x)``."""
    logits = torch.cat(
        [check_logits(model(chunk), chunk.shape[0]) for chunk in inputs.split(batch_size)]
    )
    labels = resolve_target(target, logits)
    return labels, _select(logits, labels, output)


@torch.no_grad()
def removal_outputs(
    model: nn.Module,
    inputs: Tensor,
    filled: Tensor,
    labels: Tensor,
    removed: RemovedPixels,
    columns: int,
    output: str,
    batch_size: int,
    progress: bool = True,
    desc: str = "perturbation",
) -> Tensor:
    """(B, columns): the target output of image b with the pixels ``removed(b, k)`` replaced by
    ``filled``, for every column k. The B * columns inputs are built and run chunk by chunk.
    ``progress`` draws a tqdm bar on stderr; it changes no result."""
    total = inputs.shape[0] * columns
    shape = (-1, 1, *inputs.shape[-2:])
    values = []
    for start in tqdm(range(0, total, batch_size), desc=desc, disable=not progress):
        index = torch.arange(start, min(start + batch_size, total), device=inputs.device)
        images, steps = index // columns, index % columns
        mask = removed(images, steps).view(shape)
        batch = torch.where(mask, filled[images], inputs[images])
        logits = check_logits(model(batch), batch.shape[0])
        values.append(_select(logits, labels[images], output))
    return torch.cat(values).view(-1, columns)


def _select(logits: Tensor, labels: Tensor, output: str) -> Tensor:
    """The target logit, or its softmax probability, of each row."""
    if output == "probability":
        logits = torch.softmax(logits, dim=1)
    return logits.gather(1, labels.view(-1, 1)).squeeze(1)


def _rank(order: Tensor) -> Tensor:
    """(B, P): the position of each pixel in ``order`` (0 = removed first)."""
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def _fraction_grid(fractions: Sequence[float] | Tensor) -> Tensor:
    """The fractions as a float64 tensor, checked, with 0 prepended when absent."""
    if isinstance(fractions, (int, float)) or (
        isinstance(fractions, Tensor) and fractions.dim() != 1
    ):
        raise TypeError(
            f"fractions must be a 1-D sequence of numbers, got {fractions!r}; e.g. (0.05, 0.1)."
        )
    try:
        values = torch.tensor([float(t) for t in fractions], dtype=torch.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"fractions must be numbers in [0, 1], got {fractions!r}; e.g. (0.05, 0.1)."
        ) from error
    bad = [v for v in values.tolist() if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        hint = " (percentages? divide by 100)" if all(1.0 < v <= 100.0 for v in bad) else ""
        raise ValueError(
            f"fractions must be in [0, 1] (the fraction of pixels removed), got {bad}{hint}."
        )
    if values.numel() == 0 or values.max() == 0:
        raise ValueError("fractions must hold at least one fraction above 0, e.g. (0.05, 0.1).")
    if bool((values[1:] <= values[:-1]).any()):
        raise ValueError(
            f"fractions must increase strictly, got {values.tolist()}; sort them and drop "
            "repeats (each step removes a superset of the previous one)."
        )
    if values[0] > 0:
        values = torch.cat([values.new_zeros(1), values])
    return values
