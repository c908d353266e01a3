"""Sensitivity-n (Ancona et al., 2018, "Towards better understanding of gradient-based attribution
methods for deep neural networks").

A map is sensitive-n when, for every subset S of n pixels, the attribution it gives to S equals the
drop of the target output when S is removed: ``sum_{i in S} R_i = f(x) - f(x_[S removed])``. Ancona
et al. measure it by the Pearson correlation of the two sides over random subsets of size n. Here a
pixel's attribution is ``pixel_map(attributions, reduce)`` (default "sum": the sum over its
channels) and removing replaces all its channels by ``maps.replacement_images``.

Subsets: for each n, ``n_subsets`` subsets of n pixel positions are drawn uniformly without
replacement from a generator seeded by ``(seed, n)``; the same positions are used for every image
of the batch (a paired comparison, and an image gives the same result alone or in a batch), and the
draws for one n do not depend on the other ns asked for.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import Target, check_choice, check_positive_int
from .maps import pixel_map, replacement_images
from .perturbation import (
    OUTPUTS,
    check_attributions,
    check_model_and_images,
    removal_outputs,
    unperturbed_outputs,
)


@dataclass(frozen=True)
class SensitivityN:
    """``ns`` (N,): subset sizes; ``correlation`` (B, N): per image and n, the Pearson correlation
    over subsets of the summed attribution and the output drop (NaN where either is constant)."""

    ns: Tensor
    correlation: Tensor

    @property
    def mean(self) -> Tensor:
        """(N,): the correlation averaged over the images, ignoring NaN (NaN if all are)."""
        return self.correlation.nanmean(dim=0)


def sensitivity_n(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    attributions: Tensor | Mapping[str, Tensor],
    ns: Sequence[int] | Tensor | None = None,
    n_subsets: int = 100,
    replacement: str | float | Tensor = "zero",
    output: str = "logit",
    reduce: str = "sum",
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> SensitivityN | dict[str, SensitivityN]:
    """Pearson correlation, per image and subset size n, between ``sum_{i in S} R_i`` and
    ``f(x) - f(x with S removed)`` over ``n_subsets`` random pixel subsets S of size n.

    ``inputs`` (B, C, H, W); ``attributions`` (B, C, H, W), (B, 1, H, W) or (B, H, W); ``ns``:
    subset sizes in [1, H * W] (None: the powers of two up to 80% of the pixels, Ancona et al.'s
    log scale); ``target`` as in Captum (None: the predicted class); ``output``: "logit" or
    "probability". The correlation is NaN where the sums or the drops are exactly constant over
    the subsets (e.g. n = H * W, or a model that ignores the removed pixels). The model must be in
    eval mode and is never changed.

    ``attributions`` may be a mapping (method name -> maps): the result is then a mapping of
    results, and the removal passes, which do not depend on the maps, run once for all of them.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    model, inputs = check_model_and_images(model, inputs)
    n_subsets = _check_subset_count(n_subsets)
    _check_seed(seed)
    pixels = inputs.shape[-2] * inputs.shape[-1]
    sizes = _subset_sizes(ns, pixels)
    masks = _random_subsets(sizes, n_subsets, pixels, seed)
    correlation = _correlation_over_subsets(
        model,
        inputs,
        target,
        attributions,
        masks,
        len(sizes),
        replacement,
        output,
        reduce,
        batch_size,
        progress,
        "sensitivity-n",
    )
    return _results(correlation, sizes)


def patch_sensitivity(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    attributions: Tensor | Mapping[str, Tensor],
    sides: Sequence[int],
    n_patches: int = 100,
    replacement: str | float | Tensor = "zero",
    output: str = "logit",
    reduce: str = "sum",
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> SensitivityN | dict[str, SensitivityN]:
    """Sensitivity-n with square patches in place of scattered pixels: for each side k in
    ``sides``, ``n_patches`` k x k patches at uniformly drawn positions (seeded by ``(seed, k)``,
    the same for every image). Returns a ``SensitivityN`` whose ``ns`` are the patch areas k * k.

    Scattered pixels test whether attributions add up over features the network sees apart;
    patches test it over the contiguous regions a network reads together (Khakzar et al. 2019
    frame global importance as the effect of removing groups of elements). A mapping of
    ``attributions`` gives a mapping of results, as ``sensitivity_n``.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    model, inputs = check_model_and_images(model, inputs)
    n_patches = _check_subset_count(n_patches)
    _check_seed(seed)
    height, width = inputs.shape[-2], inputs.shape[-1]
    sides = _patch_sides(sides, height, width)
    masks = random_patches(sides, n_patches, height, width, seed)
    correlation = _correlation_over_subsets(
        model,
        inputs,
        target,
        attributions,
        masks,
        len(sides),
        replacement,
        output,
        reduce,
        batch_size,
        progress,
        "patch sensitivity",
    )
    return _results(correlation, sides * sides)


def _results(
    correlation: Tensor | dict[str, Tensor], ns: Tensor
) -> SensitivityN | dict[str, SensitivityN]:
    if isinstance(correlation, dict):
        return {name: SensitivityN(ns=ns, correlation=c) for name, c in correlation.items()}
    return SensitivityN(ns=ns, correlation=correlation)


def _correlation_over_subsets(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    attributions: Tensor | Mapping[str, Tensor],
    masks: Tensor,
    n_groups: int,
    replacement: str | float | Tensor,
    output: str,
    reduce: str,
    batch_size: int,
    progress: bool,
    desc: str,
) -> Tensor | dict[str, Tensor]:
    """(B, n_groups): the Pearson correlation, per image and group of subsets (``masks`` holds
    ``n_groups`` consecutive groups of equally many pixel subsets, (G * S, pixels) bool), between
    the summed attribution of a subset and the output drop when it is removed; one such tensor
    per map when ``attributions`` is a mapping (the drops are computed once)."""
    output = check_choice(output, "output", OUTPUTS)
    batch_size = check_positive_int(batch_size, "batch_size")
    several = isinstance(attributions, Mapping)
    if several and not attributions:
        raise ValueError("attributions is an empty mapping; pass at least one map tensor.")
    named = dict(attributions) if several else {"": attributions}
    importance = {
        name: pixel_map(check_attributions(a, inputs), reduce).flatten(1)
        for name, a in named.items()
    }
    filled = replacement_images(inputs, replacement)
    labels, base = unperturbed_outputs(model, inputs, target, output, batch_size)
    masks = masks.to(inputs.device)

    def removed(images: Tensor, columns: Tensor) -> Tensor:
        return masks[columns]

    outputs = removal_outputs(
        model,
        inputs,
        filled,
        labels,
        removed,
        masks.shape[0],
        output,
        batch_size,
        progress,
        desc=desc,
    )
    per_group = masks.shape[0] // n_groups
    drops = (base.unsqueeze(1) - outputs).double().view(-1, n_groups, per_group)
    subsets = masks.view(n_groups, per_group, -1)
    result = {}
    for name, weights in importance.items():
        weights = weights.double()
        sums = torch.stack([weights @ subset.double().T for subset in subsets], dim=1)
        result[name] = _pearson(sums, drops)
    return result if several else result[""]


def _pearson(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation along the last dimension; NaN where ``x`` or ``y`` is exactly
    constant there (checked on the values, not on a rounded variance)."""
    xc = x - x.mean(dim=-1, keepdim=True)
    yc = y - y.mean(dim=-1, keepdim=True)
    corr = (xc * yc).sum(-1) / ((xc * xc).sum(-1) * (yc * yc).sum(-1)).sqrt()
    constant = (x.amax(-1) == x.amin(-1)) | (y.amax(-1) == y.amin(-1))
    return corr.clamp(-1.0, 1.0).masked_fill(constant, math.nan)


def _random_subsets(sizes: Tensor, n_subsets: int, pixels: int, seed: int) -> Tensor:
    """(N * n_subsets, pixels) bool: for each n, ``n_subsets`` uniform subsets of n positions,
    drawn on the CPU from a generator seeded by ``(seed, n)``."""
    masks = torch.zeros(len(sizes), n_subsets, pixels, dtype=torch.bool)
    for i, n in enumerate(sizes.tolist()):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + n)
        keys = torch.rand(n_subsets, pixels, generator=generator, dtype=torch.float64)
        masks[i].scatter_(1, keys.argsort(dim=1)[:, :n], True)
    return masks.view(-1, pixels)


def random_patches(sides: Tensor, n_patches: int, height: int, width: int, seed: int) -> Tensor:
    """(N * n_patches, H * W) bool: for each side k, ``n_patches`` k x k squares whose top-left
    corners are drawn uniformly (with replacement) from a generator seeded by ``(seed, k)``."""
    masks = torch.zeros(len(sides), n_patches, height, width, dtype=torch.bool)
    for i, k in enumerate(sides.tolist()):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + 500_009 + k)
        rows = torch.randint(0, height - k + 1, (n_patches,), generator=generator)
        cols = torch.randint(0, width - k + 1, (n_patches,), generator=generator)
        for j, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=False)):
            masks[i, j, r : r + k, c : c + k] = True
    return masks.view(-1, height * width)


def _patch_sides(sides: Sequence[int], height: int, width: int) -> Tensor:
    """The patch sides as a long tensor, each in [1, min(H, W)]."""
    try:
        values = [operator.index(k) for k in sides]
    except TypeError as error:
        raise TypeError(
            f"sides must be a sequence of int patch sides, got {sides!r}; e.g. (2, 4, 8)."
        ) from error
    bad = [k for k in values if not 1 <= k <= min(height, width)]
    if not values or bad:
        raise ValueError(
            f"sides must be a non-empty sequence of patch sides in [1, "
            f"{min(height, width)}] (the image's shorter side), got {list(sides)}."
        )
    return torch.tensor(values, dtype=torch.long)


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}.")


def _subset_sizes(ns: Sequence[int] | Tensor | None, pixels: int) -> Tensor:
    """The subset sizes as a long tensor, each in [1, pixels]."""
    if ns is None:
        top = max(1, math.floor(0.8 * pixels))
        return torch.tensor([2**k for k in range(top.bit_length())], dtype=torch.long)
    try:
        sizes = [operator.index(n) for n in ns]
    except TypeError as error:
        raise TypeError(
            f"ns must be a sequence of int subset sizes, got {ns!r}; e.g. (1, 10, 100)."
        ) from error
    bad = [n for n in sizes if not 1 <= n <= pixels]
    if not sizes or bad:
        raise ValueError(
            f"ns must be a non-empty sequence of subset sizes in [1, {pixels}] (the number of "
            f"pixels H * W), got {list(ns)}."
        )
    return torch.tensor(sizes, dtype=torch.long)


def _check_subset_count(n_subsets: object) -> int:
    """At least two subsets: a correlation needs two points (Ancona et al. use 100)."""
    count = check_positive_int(n_subsets, "n_subsets")
    if count < 2:
        raise ValueError("n_subsets must be at least 2 to compute a correlation; use e.g. 100.")
    return count
