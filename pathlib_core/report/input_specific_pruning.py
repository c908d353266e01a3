"""Figures, tables and sentences of the input-specific pruning chapter (the 2019 precursor).

The chapter tests one claim of Khakzar et al. 2019: the pruned network's gradient predicts what
removing a *large* group of pixels does better than the plain gradient (book/definitions.md,
"Input-specific pruning"). The maps are built by
``evaluation.method_maps.input_specific_pruning_functions``; everything else here only
summarises, draws and words the results of ``evaluation.sensitivity``, ``evaluation.sanity``
and ``evaluation.perturbation``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .. import plotting
from ..evaluation.perturbation import PerturbationCurve
from ..evaluation.sanity import SanityResult
from ..evaluation.sensitivity import SensitivityN
from .evaluation import at_last, curve_panel
from .text import markdown_table

AttributionFn = Callable[[Any, Tensor, Tensor], Tensor]
Groups = tuple[Mapping[str, SensitivityN], Mapping[str, SensitivityN]]
"""The two group-removal tests of one model: (random pixel subsets, square patches)."""
Claim = Mapping[str, tuple[float, float, float, float]]
"""Method -> (subsets <= 1%, subsets >= 10%, patches <= 1%, patches >= 10%) mean correlations."""

SMALL = 0.01  # groups of at most this share of the pixels are "small"
LARGE = 0.1  # and of at least this share "large"
MIN_GAIN = 0.05  # a verdict needs a difference of at least this, whatever the noise


def styles(pruned: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Line styles: the registry's colours for the references, purple for PrunePGD and shades of
    blue (darker: sparser) for the pruned gradients, so that the sparsities read as one family."""
    style = {
        "Gradient": plotting.method_style("Gradient"),
        "IntegratedGradients": plotting.method_style("IntegratedGradients"),
        "NeuronIntGrad": plotting.method_style("NeuronIntGrad"),
        "PrunePGD": {"color": "tab:purple", "ls": "-."},
        "Random": plotting.method_style("Random"),
    }
    for i, name in enumerate(pruned):
        style[name] = {"color": plt.cm.Blues(0.45 + 0.55 * i / max(1, len(pruned) - 1)), "ls": "--"}
    return style


def _upscaled(images: list[np.ndarray]) -> list[np.ndarray]:
    size = max(im.shape[0] for im in images)
    return [
        np.kron(im, np.ones((size // im.shape[0], size // im.shape[0], 1)))
        if im.shape[0] < size
        else im
        for im in images
    ]


def maps_figure(rows: Sequence[tuple[np.ndarray, Mapping[str, Tensor]]], shown: Sequence[str]):
    """One row per input: the picture ((H, W) or (H, W, 3) in [0, 1]) and its maps (each a batch
    of one) in the order ``shown``, as magnitudes capped at ``plotting.CAP_PERCENTILE``; smaller
    pictures are enlarged by whole pixels to the largest one's size."""
    if not rows:
        raise ValueError("maps_figure needs at least one (picture, maps) row.")
    images, titles = [], []
    for row, (picture, maps) in enumerate(rows):
        images.append(picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=-1))
        images.extend(
            plt.cm.inferno(
                plotting.saliency_to_display(maps[k], cap_percentile=plotting.CAP_PERCENTILE)[0]
            )[..., :3]
            for k in shown
        )
        titles += (["input", *shown]) if row == 0 else [""] * (len(shown) + 1)
    return plotting.image_grid(
        np.stack(_upscaled(images)), titles=titles, ncols=len(shown) + 1, size=1.6
    )


def groups_figure(groups: Groups, pixels: int, title: str, style: Mapping[str, Mapping]):
    """Two panels (random subsets, square patches): each map's mean correlation with the logit
    drop against the share of the ``pixels`` removed together, on a log axis."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
    for ax, results, label in zip(
        axes, groups, ("random pixel subsets", "square patches"), strict=True
    ):
        for method, result in results.items():
            ax.plot(
                100 * result.ns.numpy() / pixels,
                result.mean.numpy(),
                marker=".",
                label=method,
                **style[method],
            )
        ax.set_xscale("log")
        ax.set_xlabel("% of the pixels removed together")
        ax.set_title(label)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0].set_ylabel("correlation of (map x input) sum with the logit drop")
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def small_and_large(result: SensitivityN, pixels: int) -> tuple[float, float]:
    """Mean correlation over the groups of at most 1% of the ``pixels`` and of at least 10%
    (NaN where no group size falls in a range)."""
    share = result.ns.double() / pixels
    curve = result.mean
    return (
        float(torch.nanmean(curve[share <= SMALL])),
        float(torch.nanmean(curve[share >= LARGE])),
    )


def claim_rows(groups: Groups, pixels: int) -> dict[str, tuple[float, float, float, float]]:
    """Method -> small and large groups of the subsets, then of the patches (:data:`Claim`)."""
    scattered, patches = groups
    return {
        name: small_and_large(scattered[name], pixels) + small_and_large(patches[name], pixels)
        for name in scattered
    }


def claim_table(mnist: Claim, photo: Claim, photo_label: str = "Lite0") -> str:
    """The claim's Markdown table: one row per map, the four numbers of each model
    (``photo_label`` names the ImageNet classifier in the header)."""
    ranges = ("subsets <=1%", "subsets >=10%", "patches <=1%", "patches >=10%")
    header = [
        "map (x input)",
        *(f"MNIST {r}" for r in ranges),
        *(f"{photo_label} {r}" for r in ranges),
    ]
    rows = [[name, *(f"{v:.3f}" for v in mnist[name] + photo[name])] for name in mnist]
    return markdown_table(header, rows)


def noise_level(groups: Groups) -> float:
    """The largest |correlation| the Random map reaches in either test: differences between
    methods smaller than this are within the sampling noise of this many inputs and subsets."""
    return max(float(result["Random"].mean.abs().nan_to_num().max()) for result in groups)


def verdict(claim: Claim, noise: float, label: str, pruned: Sequence[str]) -> tuple[bool, str]:
    """Does the best pruned gradient (largest sum of its two large-group numbers) beat the plain
    gradient on large groups, in both tests, by more than ``max(0.05, noise)``? Returns that
    and the sentence that says so with the numbers."""
    base = claim["Gradient"]
    best = max(pruned, key=lambda n: claim[n][1] + claim[n][3])
    gains = (claim[best][1] - base[1], claim[best][3] - base[3])
    threshold = max(MIN_GAIN, noise)
    holds = min(gains) > threshold
    worse = max(gains) < -threshold
    if holds:
        ending = (
            f"Both gains exceed the noise level ({threshold:.2f}): pruning makes the gradient a "
            "better predictor of what removing large groups does, as the 2019 paper claims."
        )
    elif worse:
        ending = (
            f"Both are losses larger than the noise level ({threshold:.2f}): here pruning makes "
            "the gradient a worse predictor of what removing large groups does."
        )
    else:
        ending = (
            f"The differences are within the noise level ({threshold:.2f}, the larger of 0.05 "
            "and what a random map reaches), so this test does not support the claim here."
        )
    nan = (
        " (nan: the map sums to the same value, usually 0, on every group of that size). "
        if np.isnan([*claim[best], *base]).any()
        else ". "
    )
    return holds, (
        f"**{label}.** The best pruned gradient ({best}) against the plain gradient, for groups "
        f"of at least 10% of the pixels: {claim[best][1]:.2f} vs {base[1]:.2f} (random subsets) "
        f"and {claim[best][3]:.2f} vs {base[3]:.2f} (patches); for groups of at most 1%: "
        f"{claim[best][0]:.2f} vs {base[0]:.2f} and {claim[best][2]:.2f} vs {base[2]:.2f}"
        + nan
        + ending
    )


def inactive_sentence(mnist_active: float, photo_active: float, photo_label: str = "Lite0") -> str:
    """Why the lowest sparsity can leave the gradient unchanged: the inactive neurons go first."""
    return (
        f"**Why sparsity 0.5 changes nothing on MNIST.** Only {mnist_active:.0%} of the MNIST "
        f"CNN's neurons are active (positive) for a typical digit ({photo_active:.0%} of "
        f"{photo_label}'s for these images). Inactive neurons pass no gradient and have zero "
        "contribution, so they are the first to be pruned, and removing them leaves the gradient "
        "exactly as it was: pruning changes the gradient only once the sparsity exceeds "
        f"{1 - mnist_active:.2f} on MNIST."
    )


def noise_sentence(
    mnist_noise: float, photo_noise: float, n_images: int, photo_label: str = "Lite0"
) -> str:
    """The noise levels in words, with a warning when one image is all the ImageNet classifier
    (``photo_label``) has."""
    return (
        f"**Noise level.** A random map reaches |correlation| up to {mnist_noise:.2f} on MNIST "
        f"and {photo_noise:.2f} on {photo_label} with these numbers of inputs and subsets; "
        "differences between methods smaller than that are not evidence either way"
        + (
            f" (a single image makes the {photo_label} numbers mostly noise; the full profile "
            "uses four images and more subsets)."
            if n_images < 2
            else "."
        )
    )


def reference_sentence(claim: Claim, pruned: Sequence[str], epsilon: float) -> str:
    """Large random subsets of MNIST: Integrated Gradients, the best pruned gradient, PrunePGD."""
    return (
        "For reference, on large random subsets of MNIST: Integrated Gradients, a method built so "
        "that its attributions add up to the output change, reaches "
        f"{claim['IntegratedGradients'][1]:.2f}; the best pruned gradient "
        f"{max(claim[n][1] for n in pruned):.2f}; PrunePGD (budget {epsilon:g}) "
        f"{claim['PrunePGD'][1]:.2f}."
    )


def sanity_figure(cascade: SanityResult, style: Mapping[str, Mapping]):
    """|Spearman| and SSIM of each map to its trained-model map, stage by stage."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    for ax, metric, label in zip(
        axes, ["spearman_abs", "ssim"], ["|Spearman|", "SSIM"], strict=True
    ):
        for method in cascade.scores:
            ax.plot(cascade.mean(method, metric).numpy(), marker=".", label=method, **style[method])
        ax.set_xticks(
            range(len(cascade.stages)), cascade.stages, rotation=60, ha="right", fontsize=7
        )
        ax.set_title(label)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[1].legend(fontsize=7)
    return fig


def sanity_sentence(cascade: SanityResult, pruned: str) -> str:
    """|Spearman| after the output layer and with every layer random, for the gradient, the
    ``pruned`` gradient and PrunePGD, and what a gap of more than 0.1 either way means."""
    after_output = {m: float(cascade.mean(m, "spearman_abs")[1]) for m in cascade.scores}
    all_random = {m: float(cascade.mean(m, "spearman_abs")[-1]) for m in cascade.scores}
    gap = after_output[pruned] - after_output["Gradient"]
    if gap > 0.1:
        meaning = (
            "The pruned maps stay much closer to the trained model's maps than the gradient does. "
            "A pruned network keeps the neurons the input itself drives most, whatever the "
            "weights, so part of its map follows the input's strokes even in a random network: "
            "by this test the 2019 maps depend less on what the network learned than the plain "
            "gradient."
        )
    elif gap > -0.1:
        meaning = (
            "The pruned maps change about as much as the gradient: by this test they depend on "
            "what the network learned as much as the gradient does."
        )
    else:
        meaning = "The pruned maps change more than the gradient."
    return (
        "After the output layer is randomised, |Spearman| with the trained model's map is "
        f"{after_output['Gradient']:.2f} for the gradient, {after_output[pruned]:.2f} for "
        f"{pruned} and {after_output['PrunePGD']:.2f} for PrunePGD; with every layer random, "
        f"{all_random['Gradient']:.2f}, {all_random[pruned]:.2f} and "
        f"{all_random['PrunePGD']:.2f}. " + meaning
    )


Curves = Mapping[str, Mapping[str, PerturbationCurve]]
"""Order ("lerf", "morf") -> method -> curve, of one model."""


def perturbation_figure(curves: Mapping[str, Curves], style: Mapping[str, Mapping]):
    """LeRF (log scale, from the first removal) and MoRF panels for each model, left to right."""
    fig, axes = plt.subplots(1, 2 * len(curves), figsize=(17, 3.8), layout="constrained")
    for col, (label, by_order) in enumerate(curves.items()):
        for k, order in enumerate(("lerf", "morf")):
            ax = axes[2 * col + k]
            curve_panel(ax, order, by_order[order], style)
            better = "lower" if order == "lerf" else "higher"
            ax.set_title(f"{label}, {order.upper()} ({better} is better)")
            if order == "lerf":
                ax.set_yscale("log")
    axes[0].set_ylabel("mean absolute fractional change of the logit")
    axes[-1].legend(fontsize=7)
    return fig


def summary_table(
    names: Sequence[str],
    cascade: SanityResult,
    mnist: Curves,
    photo: Curves,
    photo_label: str = "Lite0",
) -> str:
    """One row per map: sanity after the output layer and all random (``-`` for a map the
    cascade did not run), then LeRF at the last step and MoRF's AOPC on each model
    (``photo_label`` names the ImageNet classifier)."""
    header = [
        "map",
        "sanity: MNIST \\|Spearman\\| after fc2",
        "all random",
        "MNIST LeRF @10%",
        "MNIST MoRF AOPC",
        f"{photo_label} LeRF @10%",
        f"{photo_label} MoRF AOPC",
    ]
    rows = []
    for name in names:
        if name in cascade.scores:
            curve = cascade.mean(name, "spearman_abs")
            sane = [f"{float(curve[1]):.3f}", f"{float(curve[-1]):.3f}"]
        else:
            sane = ["-", "-"]
        rows.append(
            [
                name,
                *sane,
                f"{at_last(mnist['lerf'][name]):.3f}",
                f"{float(mnist['morf'][name].aopc.mean()):.2f}",
                f"{at_last(photo['lerf'][name]):.3f}",
                f"{float(photo['morf'][name].aopc.mean()):.2f}",
            ]
        )
    return markdown_table(header, rows)


def claim_outcome(mnist_holds: bool, photo_holds: bool, photo_label: str = "Lite0") -> str:
    """Where the claim held, as the end of a sentence (``photo_label``: the ImageNet classifier)."""
    if mnist_holds and photo_holds:
        return "holds on both models."
    if mnist_holds:
        return f"holds on MNIST but not on {photo_label}."
    if photo_holds:
        return f"holds on {photo_label} but not on MNIST."
    return "holds on neither model."


LITE0_SCALE = 0.5
"""EfficientNet-Lite0's input scaling ``(x - 0.5) / 0.5``: one unit of a [0, 1] pixel is
``1 / 0.5`` units of its [-1, 1] inputs."""
LITE0_SIZE = 224
"""The side of the images the photo budget is stated for."""


def photo_budget(epsilon: float, normalisation: Any, size: int) -> float:
    """The L2 budget ``epsilon``, stated for EfficientNet-Lite0's 224 x 224 inputs in [-1, 1],
    as the same perturbation of the [0, 1] pixels in another classifier's input space.

    A change ``d`` of the [0, 1] pixels is ``d / std`` in the classifier's inputs (per channel):
    for a change spread evenly over the channels its norm grows by the root mean square of
    ``0.5 / std`` against Lite0's (about 2.2 for torchvision's ImageNet statistics). The norm of
    a change of the same per-pixel size also grows with the side of the image, ``size / 224``.
    Lite0 itself keeps ``epsilon``."""
    std = np.asarray(normalisation.std, dtype=float)
    if not bool((std > 0).all()):
        raise ValueError(f"expected positive per-channel stds, got {normalisation!r}.")
    channels = float(np.sqrt(np.mean((LITE0_SCALE / std) ** 2)))
    return float(epsilon) * channels * size / LITE0_SIZE
