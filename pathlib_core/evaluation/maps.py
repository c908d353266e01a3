"""Shared conversions for the evaluations: one value per pixel, and what a removed pixel becomes.

Every evaluation ranks pixels (all channels of a position together, as the official code and
ROAR do), so an input-shaped map ``(B, C, H, W)`` is first collapsed to ``(B, H, W)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

REDUCTIONS = ("max_abs", "signed_max_abs", "sum", "abs_sum")
REPLACEMENTS = ("zero", "mean", "blur")


def pixel_map(attributions: Tensor, reduce: str = "max_abs") -> Tensor:
    """``(B, C, H, W)`` (or ``(B, H, W)``) -> ``(B, H, W)``, one value per pixel.

    ``"signed_max_abs"``: the channel value of largest magnitude with its sign (the official
    display, book/definitions.md, "The pathway gradient"); ``"max_abs"``: its magnitude (the
    importance the perturbation evaluations rank by); ``"sum"``: the sum over channels (the total
    attribution of the pixel, for sensitivity-n); ``"abs_sum"``: the sum of magnitudes.
    """
    if not isinstance(attributions, Tensor) or not attributions.is_floating_point():
        raise TypeError("attributions must be a float tensor shaped (B, C, H, W) or (B, H, W).")
    if attributions.dim() == 3:
        attributions = attributions.unsqueeze(1)
    if attributions.dim() != 4:
        raise ValueError(
            f"attributions must be (B, C, H, W) or (B, H, W); got {tuple(attributions.shape)}. "
            "Evaluations of images rank pixels; reshape other inputs to one of these."
        )
    if reduce == "sum":
        return attributions.sum(dim=1)
    if reduce == "abs_sum":
        return attributions.abs().sum(dim=1)
    if reduce in ("max_abs", "signed_max_abs"):
        largest, smallest = attributions.max(dim=1).values, attributions.min(dim=1).values
        signed = torch.where(largest.abs() >= smallest.abs(), largest, smallest)
        return signed.abs() if reduce == "max_abs" else signed
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}.")


def normalise(maps: Tensor) -> Tensor:
    """Each map divided by its largest magnitude (an all-zero map stays zero)."""
    peak = maps.flatten(1).abs().max(dim=1).values.clamp_min(torch.finfo(maps.dtype).tiny)
    return maps / peak.view(-1, *[1] * (maps.dim() - 1))


def replacement_images(
    inputs: Tensor, replacement: str | float | Tensor = "zero", sigma: float = 4.0
) -> Tensor:
    """What removed pixels become, shaped like ``inputs`` (B, C, H, W).

    ``"zero"``: 0 in the model's input space (the dataset mean when inputs are standardised);
    ``"mean"``: each image's per-channel mean; ``"blur"``: the image under a Gaussian blur of
    standard deviation ``sigma`` pixels; a number: that value everywhere; a tensor broadcastable to
    ``inputs`` (e.g. a per-channel dataset mean ``(1, C, 1, 1)``): itself.
    """
    if isinstance(replacement, Tensor):
        return replacement.to(inputs.dtype).to(inputs.device).expand_as(inputs)
    if isinstance(replacement, (int, float)) and not isinstance(replacement, bool):
        return torch.full_like(inputs, float(replacement))
    if replacement == "zero":
        return torch.zeros_like(inputs)
    if replacement == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
    if replacement == "blur":
        return gaussian_blur(inputs, sigma)
    raise ValueError(
        f"replacement must be one of {REPLACEMENTS}, a number or a tensor; got {replacement!r}."
    )


def gaussian_blur(inputs: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of each channel, kernel radius ``ceil(3 sigma)``, reflect padding."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, inputs.shape[-1] - 1, inputs.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=inputs.dtype, device=inputs.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = inputs.shape[1]
    x = torch.nn.functional.pad(inputs, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(
        x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels
    )
    return torch.nn.functional.conv2d(
        x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels
    )


def top_pixels(importance: Tensor, fraction: float, largest: bool = True) -> Tensor:
    """Boolean ``(B, H, W)`` marking, per image, the ``round(fraction * H * W)`` pixels of largest
    (or smallest) importance. Ties are broken by a fixed seeded permutation, not by position, so a
    constant map removes random pixels rather than the top rows."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    b, h, w = importance.shape
    count = round(fraction * h * w)
    flat = importance.reshape(b, -1)
    order = _ranked(flat, largest)
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen.scatter_(1, order[:, :count], True)
    return chosen.view(b, h, w)


def _ranked(flat: Tensor, largest: bool) -> Tensor:
    """Per row, positions from most to least important (``largest``) or the reverse; ties in a
    seeded random order."""
    generator = torch.Generator().manual_seed(0)
    shuffle = torch.randperm(flat.shape[1], generator=generator).to(flat.device)
    shuffled = flat[:, shuffle].double()
    order = torch.sort(shuffled, dim=1, descending=largest, stable=True).indices
    return shuffle[order]


def pixel_order(importance: Tensor, largest: bool = True) -> Tensor:
    """``(B, H * W)``: per image, pixel positions from most important to least (``largest``), or
    from least to most; ties in a fixed seeded order."""
    return _ranked(importance.reshape(importance.shape[0], -1), largest)
