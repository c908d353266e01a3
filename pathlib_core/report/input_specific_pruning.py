"""Figures, tables and sentences of the input-specific pruning chapter (the 2019 precursor).

The chapter tests one claim of Khakzar et al. 2019: the pruned network's gradient predicts what
removing a *large* group of pixels does better than the plain gradient (book/definitions.md,
"Input-specific pruning"). The maps are built by
``evaluation.method_maps.input_specific_pruning_functions``; everything else here only
summarises, draws and words the results of ``evaluation.sensitivity``, ``evaluation.sanity``
and ``evaluation.perturbation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .. import plotting
from ..evaluation.perturbation import PerturbationCurve
from ..evaluation.sanity import SanityResult
from ..evaluation.sensitivity import SensitivityN
from ..plotting import _numpy
from .evaluation import at_last, curve_panel
from .sanity import SPEARMAN_ABS
from .text import markdown_table

AttributionFn = Callable[[Any, Tensor, Tensor], Tensor]
Groups = tuple[Mapping[str, SensitivityN], Mapping[str, SensitivityN]]
"""The two group-removal tests of one model: (random pixel subsets, square patches)."""
Claim = Mapping[str, tuple[float, float, float, float]]
"""Method -> (subsets <= 1%, subsets >= 10%, patches <= 1%, patches >= 10%) mean correlations."""

SMALL = 0.01  # groups of at most this share of the pixels are "small"
LARGE = 0.1  # and of at least this share "large"
MIN_GAIN = 0.05  # a verdict needs a difference of at least this, whatever the noise
FEW_INPUTS = 2
"""With fewer inputs than this, a model's group test is inconclusive whatever its numbers."""


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
                100 * _numpy(result.ns) / pixels,
                _numpy(result.mean),
                marker=".",
                label=method,
                **style[method],
            )
        ax.set_xscale("log")
        ax.set_xlabel("% of the pixels removed together")
        ax.set_title(label)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0].set_ylabel("correlation of (map x input) sum with the logit drop")
    fig.legend(*axes[1].get_legend_handles_labels(), fontsize=7, loc="outside right")
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


RANGES = ("subsets <=1%", "subsets >=10%", "patches <=1%", "patches >=10%")
"""The four numbers of :data:`Claim`, as the table's headers name them."""


def nan_note(claims: Mapping[str, Claim]) -> str:
    """One sentence per model range with a nan in the claim table (``""`` when there is none):
    which maps, and why a correlation is undefined there (model label -> :data:`Claim`)."""
    notes = []
    for label, claim in claims.items():
        for i, where in enumerate(RANGES):
            missing = [name for name, values in claim.items() if math.isnan(values[i])]
            if not missing:
                continue
            if len(missing) == len(claim):
                why = (
                    "the logit drop is the same for every group of those sizes, so no map's "
                    "correlation with it is defined"
                )
            else:
                maps = ", ".join(missing)
                why = (
                    f"{maps} sum{'s' if len(missing) == 1 else ''} to the same value over every "
                    "group of those sizes, for every input (typically 0: a sparse map whose "
                    "non-zero pixels no such group touches), so the correlation with the logit "
                    "drop is undefined"
                )
            notes.append(f"*nan* in {label} {where}: {why}.")
    return " ".join(notes)


def claim_table(mnist: Claim, photo: Claim, photo_label: str = "Lite0") -> str:
    """The claim's Markdown table: one row per map, the four numbers of each model
    (``photo_label`` names the ImageNet classifier in the header), and under it the
    :func:`nan_note` when a cell is nan."""
    header = [
        "map (x input)",
        *(f"MNIST {r}" for r in RANGES),
        *(f"{photo_label} {r}" for r in RANGES),
    ]
    rows = [[name, *(f"{v:.3f}" for v in mnist[name] + photo[name])] for name in mnist]
    note = nan_note({"MNIST": mnist, photo_label: photo})
    return markdown_table(header, rows) + (f"\n\n{note}" if note else "")


def noise_level(groups: Groups) -> float:
    """The largest |correlation| the Random map reaches in either test: differences between
    methods smaller than this are within the sampling noise of this many inputs and subsets."""
    return max(float(result["Random"].mean.abs().nan_to_num().max()) for result in groups)


class Verdict(NamedTuple):
    """What one model's group test says of the claim."""

    outcome: str
    """"supported", "not supported" or "inconclusive"."""
    reason: str
    """Why it is inconclusive ("1 image", "differences within the noise level"); else ""."""
    text: str
    """The sentence that says so, with the numbers."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _large(claim: Claim, name: str) -> float:
    """The sum of the two large-group numbers; -inf when one is nan (never the best)."""
    total = claim[name][1] + claim[name][3]
    return -math.inf if math.isnan(total) else total


def verdict(
    claim: Claim, noise: float, label: str, pruned: Sequence[str], n_inputs: int, noun: str
) -> Verdict:
    """Does the best pruned gradient (largest sum of its two large-group numbers) beat the plain
    gradient on large groups, in both tests, by more than ``max(0.05, noise)``?

    Supported: both gains exceed that. Not supported: both are losses beyond it, or neither gain
    reaches 0.05 (pruning does not improve the prediction). Inconclusive: anything between (the
    differences are within the noise level), or fewer than :data:`FEW_INPUTS` inputs
    (``n_inputs`` of them, each a ``noun``: "digit", "image"), whatever the numbers."""
    base = claim["Gradient"]
    changed = [name for name in pruned if tuple(claim[name]) != tuple(base)]
    best = max(changed or pruned, key=lambda name: _large(claim, name))
    gains = (claim[best][1] - base[1], claim[best][3] - base[3])
    threshold = max(MIN_GAIN, noise)
    few = n_inputs < FEW_INPUTS
    inputs = _count(n_inputs, noun)
    too_few = f", but {inputs} {'is' if n_inputs == 1 else 'are'} too few to decide: inconclusive."
    reasons = [inputs] if few else []
    if min(gains) > threshold:
        outcome = "supported"
        ending = f"Both gains exceed the noise level ({threshold:.2f})" + (
            too_few
            if few
            else ": pruning makes the gradient a better predictor of what removing large groups "
            "does, as the 2019 paper claims."
        )
    elif max(gains) < -threshold:
        outcome = "not supported"
        ending = f"Both are losses larger than the noise level ({threshold:.2f})" + (
            too_few
            if few
            else ": here pruning makes the gradient a worse predictor of what removing large "
            "groups does."
        )
    elif max(gains) <= MIN_GAIN:
        outcome = "not supported"
        ending = f"Neither gain reaches {MIN_GAIN:.2f}" + (
            too_few
            if few
            else ": pruning does not make the gradient a better predictor of what removing large "
            "groups does, so this test does not support the claim here."
        )
    else:
        outcome = "inconclusive"
        reasons.append("differences within the noise level")
        ending = (
            f"The differences are within the noise level ({threshold:.2f}, the larger of 0.05 "
            "and what a random map reaches), so this test cannot decide here"
            + (f", and {inputs} would be too few in any case." if few else ".")
        )
    if few:
        outcome = "inconclusive"
    nan = (
        " (nan: see the note under the table). " if np.isnan([*claim[best], *base]).any() else ". "
    )
    each = "; ".join(
        f"{name} {claim[name][1] - base[1]:+.2f} / {claim[name][3] - base[3]:+.2f}"
        + (" (the gradient's own map)" if name not in changed else "")
        for name in pruned
    )
    text = (
        f"**{label}.** The best pruned gradient ({best}) against the plain gradient, for groups "
        f"of at least 10% of the pixels: {claim[best][1]:.2f} vs {base[1]:.2f} (random subsets) "
        f"and {claim[best][3]:.2f} vs {base[3]:.2f} (patches); for groups of at most 1%: "
        f"{claim[best][0]:.2f} vs {base[0]:.2f} and {claim[best][2]:.2f} vs {base[2]:.2f}"
        + nan
        + ending
        + f" Gains over the plain gradient on large groups, every pruned map (random subsets / "
        f"patches): {each}."
    )
    return Verdict(outcome, ", ".join(reasons), text)


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
            if n_images < FEW_INPUTS
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
    """Spearman of |map| and SSIM of each map to its trained-model map, stage by stage."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    for ax, metric, label in zip(
        axes, ["spearman_abs", "ssim"], [SPEARMAN_ABS, "SSIM"], strict=True
    ):
        for method in cascade.scores:
            ax.plot(_numpy(cascade.mean(method, metric)), marker=".", label=method, **style[method])
        ax.set_xticks(
            range(len(cascade.stages)), cascade.stages, rotation=60, ha="right", fontsize=7
        )
        ax.set_title(label)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[1].legend(fontsize=7)
    return fig


SANITY_GAP = 0.1
"""Spearman of |map| after the output layer within this of the gradient's: "about as much"."""


def _against_gradient(gap: float) -> str:
    """How a map's Spearman of |map| after the output layer compares with the gradient's."""
    if gap > SANITY_GAP:
        return "closer"
    return "same" if gap > -SANITY_GAP else "further"


def sanity_sentence(
    cascade: SanityResult,
    pruned: str,
    sparsity: float,
    other_sparsity: float | None = None,
    pathway: str = "NeuronIntGrad",
) -> str:
    """Spearman of |map| after the output layer and with every layer random, for the gradient, the
    ``pruned`` gradient and PrunePGD, what a gap of more than 0.1 either way means, whether the
    2021 ``pathway`` method (when the cascade ran it) falls on the same side, and the
    ``sparsity`` of these maps beside ``other_sparsity``, that of the sanity-checks chapter."""
    after_output = {m: float(cascade.mean(m, "spearman_abs")[1]) for m in cascade.scores}
    all_random = {m: float(cascade.mean(m, "spearman_abs")[-1]) for m in cascade.scores}
    side = _against_gradient(after_output[pruned] - after_output["Gradient"])
    both = False  # the 2021 pathway falls on the same side as the pruned gradient
    if pathway in cascade.scores:
        pathway_side = _against_gradient(after_output[pathway] - after_output["Gradient"])
        numbers = f"{after_output[pathway]:.2f} and {all_random[pathway]:.2f}"
        both = pathway_side == side
        if both:
            also = f", and so does the 2021 {pathway} pathway at the same sparsity ({numbers})"
        else:
            words = {
                "closer": "stays much closer to them than the gradient",
                "same": "changes about as much as the gradient",
                "further": "changes more than the gradient",
            }[pathway_side]
            also = (
                f"; the 2021 {pathway} pathway at the same sparsity ({numbers}) "
                f"{words}, so this does not hold for pathways in general"
            )
    else:
        also = ""
    maps = "the 2019 maps" + (f" and the 2021 {pathway} pathway" if both else "")
    these = f"The pruned maps at sparsity {sparsity:g}"
    if side == "closer":
        meaning = (
            f"{these} stay much closer to the trained model's maps than the gradient does"
            + also
            + ", probably because a pruned network keeps the neurons the input itself drives "
            "most, whatever the weights, so that part of its map follows the input even in a "
            f"random network: by this test {maps} depend less on what the network learned than "
            "the plain gradient."
        )
    elif side == "same":
        meaning = (
            f"{these} change about as much as the gradient"
            + also
            + f": by this test {maps} depend on what the network learned as much as the "
            "gradient does."
        )
    else:
        meaning = f"{these} change more than the gradient" + also + "."
    others = [m for m in cascade.scores if m.startswith("PruneGrad ") and m != pruned]
    if others:
        compared = {
            "closer": "closer to the trained model's maps than the gradient",
            "same": "about as close to them as the gradient",
            "further": "further from them than the gradient",
        }

        def against(m: str) -> str:
            first = compared[_against_gradient(after_output[m] - after_output["Gradient"])]
            last = compared[_against_gradient(all_random[m] - all_random["Gradient"])]
            if first == last:
                return first
            return f"{first} after the output layer but {last} with every layer random"

        meaning += (
            " The other sparsities, after the output layer and with every layer random (the "
            f"gradient: {after_output['Gradient']:.2f} and {all_random['Gradient']:.2f}): "
            + "; ".join(
                f"{m} {after_output[m]:.2f} and {all_random[m]:.2f}, {against(m)}" for m in others
            )
            + "."
        )
    if other_sparsity is None:
        where = ""
    elif other_sparsity == sparsity:
        where = f" The sanity-checks chapter uses the same sparsity ({sparsity:g})."
    else:
        where = (
            f" These maps are pruned to this chapter's sparsity, {sparsity:g}; the "
            f"sanity-checks chapter runs its pathway methods at {other_sparsity:g}, so the two "
            "chapters' results describe different pathways."
        )
    return (
        f"After the output layer is randomised, {SPEARMAN_ABS} with the trained model's map is "
        f"{after_output['Gradient']:.2f} for the gradient, {after_output[pruned]:.2f} for "
        f"{pruned} and {after_output['PrunePGD']:.2f} for PrunePGD; with every layer random, "
        f"{all_random['Gradient']:.2f}, {all_random[pruned]:.2f} and "
        f"{all_random['PrunePGD']:.2f}. " + meaning + where
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
        "sanity: MNIST Spearman of \\|map\\| after fc2",
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
                f"{at_last(mnist['lerf'][name]):#.3g}",
                f"{float(mnist['morf'][name].aopc.mean()):.2f}",
                f"{at_last(photo['lerf'][name]):#.3g}",
                f"{float(photo['morf'][name].aopc.mean()):.2f}",
            ]
        )
    return markdown_table(header, rows)


TIE = 0.05
"""Two scores within this share of the larger are "about even"."""


def _versus(scores: Mapping[str, float], ours: Sequence[str], lower_is_better: bool) -> str:
    """The best of ``ours`` against the best other method in ``scores``, for or against the
    claim that ours do better."""
    pick = min if lower_is_better else max
    mine = pick((m for m in scores if m in ours), key=scores.get)
    other = pick((m for m in scores if m not in ours), key=scores.get)
    wins = scores[mine] < scores[other] if lower_is_better else scores[mine] > scores[other]
    tie = abs(scores[mine] - scores[other]) <= TIE * max(abs(scores[mine]), abs(scores[other]))
    verdict = (
        f"about even (within {TIE:.0%})"
        if tie
        else "for the claim"
        if wins
        else "against the claim"
    )
    digits = 3 if f"{scores[mine]:.3g}" != f"{scores[other]:.3g}" else 4  # never show a false tie
    return f"{mine} {scores[mine]:.{digits}g} against {other} {scores[other]:.{digits}g}, {verdict}"


def claims_sentence(
    cascade: SanityResult,
    mnist: Curves,
    photo: Curves,
    ours: Sequence[str],
    photo_label: str = "Lite0",
) -> str:
    """The 2019 abstract says its method does better than the other methods in the sanity
    checks, pixel perturbation and ROAR; evaluation by evaluation, the best of ``ours`` (the
    2019 maps) against the best other map (the random map included): Spearman of |map| after
    the output layer (lower: the map depends more on the weights), LeRF at its last step
    (lower) and MoRF's AOPC (higher)."""
    after = {m: float(cascade.mean(m, "spearman_abs")[1]) for m in cascade.scores}
    parts = [f"sanity check on MNIST, {_versus(after, ours, lower_is_better=True)}"]
    for label, curves in (("MNIST", mnist), (photo_label, photo)):
        lerf = {name: at_last(curve) for name, curve in curves["lerf"].items()}
        morf = {name: float(curve.aopc.mean()) for name, curve in curves["morf"].items()}
        parts.append(f"LeRF on {label}, {_versus(lerf, ours, lower_is_better=True)}")
        parts.append(f"MoRF on {label}, {_versus(morf, ours, lower_is_better=False)}")
    return (
        "Against the 2019 abstract's claim that its maps do better than the other methods "
        "(the best 2019 map against the best other map, the random one included): "
        + "; ".join(parts)
        + ". ROAR was not run for the 2019 maps."
    )


def claim_outcome(mnist: Verdict, photo: Verdict, photo_label: str = "Lite0") -> str:
    """The two verdicts as the end of a sentence ("is not supported on MNIST and inconclusive on
    Lite0 (1 image)."; ``photo_label``: the ImageNet classifier)."""

    def said(v: Verdict, where: str) -> str:
        return f"{v.outcome} on {where}" + (f" ({v.reason})" if v.reason else "")

    if (mnist.outcome, mnist.reason) == (photo.outcome, photo.reason):
        return f"is {said(mnist, 'both models')}."
    return f"is {said(mnist, 'MNIST')} and {said(photo, photo_label)}."


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
