"""Figures, tables and sentences of the sanity-checks chapter (book/definitions.md, "Sanity
checks"): cascading randomisation curves, the maps after each stage, the paper's ResNet-50 curves
and the summary that sets ours beside the paper's and the shuffled-label test.

The results come from ``evaluation.sanity`` (``SanityResult`` and ``data_randomisation``'s
method -> metric -> per-input similarities); the paper's curves from ``paper_numbers.SANITY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .. import paper_numbers, plotting
from ..evaluation.sanity import SanityResult
from ..plotting import _numpy
from .text import markdown_table

METRICS = ("spearman_abs", "ssim", "spearman", "hog")
"""The similarities the chapter plots, in panel order."""
METRIC_LABELS = {
    "spearman_abs": "Spearman of |map|",
    "ssim": "SSIM",
    "spearman": "Spearman (signed)",
    "hog": "HOG correlation",
}
SPEARMAN_ABS = METRIC_LABELS["spearman_abs"]
"""How the chapter names the rank correlation of the maps' magnitudes (it can be negative, so it
is not written |Spearman|)."""
MEMORISED = 0.9
"""The shuffled-label model must fit this share of its labels for the data test to mean anything."""


def cascade_figure(result: SanityResult, title: str, metrics: Sequence[str] = METRICS):
    """One panel per metric: each method's mean similarity to its trained-model map, stage by
    stage (at most about ten stage names on the axis), in the registry's method styles."""
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics), 4.2), sharey=True, layout="constrained"
    )
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        for method in result.scores:
            ax.plot(
                _numpy(result.mean(method, metric)),
                marker=".",
                label=method,
                **plotting.method_style(method),
            )
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ticks = range(len(result.stages))
        step = max(1, len(result.stages) // 10)
        ax.set_xticks(
            list(ticks)[::step], result.stages[::step], rotation=60, ha="right", fontsize=7
        )
        ax.axhline(0, color="grey", lw=0.5)
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[-1].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def cascade_maps_figure(result: SanityResult, sample: int = 0):
    """One input's map magnitude for every method (rows) after every stage (columns); needs a
    result computed with ``keep_maps=True``."""
    if result.maps is None:
        raise ValueError("the result holds no maps; run cascading_randomisation(keep_maps=True).")
    shown = list(result.maps)
    stages = result.stages
    images = [_numpy(result.maps[m][s, sample].abs()) for m in shown for s in range(len(stages))]
    titles = [f"{s}" for s in stages] + [""] * (len(images) - len(stages))
    fig = plotting.image_grid(
        np.stack(images), titles=titles, ncols=len(stages), size=1.0, cmap="inferno"
    )
    for row, method in enumerate(shown):
        fig.axes[row * len(stages)].text(-4, 14, method, ha="right", va="center", fontsize=7)
    return fig


def paper_cascade_figure(metrics: Sequence[str] = ("spearman_abs", "ssim")):
    """The paper's cascading randomisation of ResNet-50 (``paper_numbers.SANITY``), one panel per
    metric, each curve labelled with the paper's name and ours."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        for paper_name, curve in paper_numbers.SANITY[metric].items():
            ours = paper_numbers.REGISTRY_NAME[paper_name]
            ax.plot(
                curve, marker=".", label=f"{paper_name} ({ours})", **plotting.method_style(ours)
            )
        ax.set_title(f"paper, ResNet-50: {METRIC_LABELS[metric]}")
        stages = paper_numbers.SANITY_STAGES
        ax.set_xticks(range(0, len(stages), 2), stages[::2], rotation=60, ha="right", fontsize=7)
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[-1].legend(fontsize=7)
    return fig


class Summary(NamedTuple):
    """One method's Spearman of |map| after the first stage and after the last, and against the
    shuffled-label model's map (mean over the inputs)."""

    after_first: float
    all_random: float
    shuffled: float


def summarise(
    result: SanityResult, shuffled: Mapping[str, Mapping[str, Tensor]]
) -> dict[str, Summary]:
    """:class:`Summary` of every method of the cascade ``result``; ``shuffled`` is
    ``data_randomisation``'s result (method -> metric -> per-input similarity)."""
    out = {}
    for method in result.scores:
        curve = result.mean(method, "spearman_abs")
        out[method] = Summary(
            float(curve[1]),
            float(curve[-1]),
            float(torch.nanmean(shuffled[method]["spearman_abs"])),
        )
    return out


def summary_table(
    summary: Mapping[str, Summary],
    photo: SanityResult,
    memorised_enough: bool,
    photo_label: str = "Lite0",
) -> str:
    """Per method: MNIST after the first stage and all random, the same on the ImageNet
    classifier named ``photo_label`` (its first stage named as in ``photo.stages``; ``-`` for a
    method the photo cascade left out), the paper's ResNet-50 numbers (``-`` where it has none)
    and the shuffled-label similarity, a column left out when that test is void (the model did
    not memorise its labels: ``memorised_sentence`` says so)."""
    paper_of = {ours: paper for paper, ours in paper_numbers.REGISTRY_NAME.items()}
    header = [
        "method",
        "MNIST after fc2",
        "MNIST all random",
        f"{photo_label} after {photo.stages[1] if len(photo.stages) > 1 else 'stage 1'}",
        f"{photo_label} all random",
        "paper ResNet-50 after fc",
        "paper all random",
    ] + (["MNIST shuffled labels"] if memorised_enough else [])
    rows = []
    for method, row in summary.items():
        p = photo.mean(method, "spearman_abs") if method in photo.scores else None
        paper = paper_numbers.SANITY["spearman_abs"].get(paper_of.get(method, ""), None)
        rows.append(
            [
                method,
                f"{row.after_first:.3f}",
                f"{row.all_random:.3f}",
                f"{float(p[1]):.3f}" if p is not None else "-",
                f"{float(p[-1]):.3f}" if p is not None else "-",
                f"{paper[1]:.3f}" if paper else "-",
                f"{paper[-1]:.3f}" if paper else "-",
            ]
            + ([f"{row.shuffled:.3f}"] if memorised_enough else [])
        )
    return markdown_table(header, rows)


def memorised_sentence(memorised: float, epochs: int, lr: float) -> str:
    """Whether the shuffled-label model memorised its labels (at least :data:`MEMORISED`), and
    so whether the data randomisation test means anything."""
    if memorised >= MEMORISED:
        verdict = (
            "It has memorised them, so the comparison below is the test Adebayo et al. describe."
        )
    else:
        verdict = (
            f"After {epochs} epoch{'s' if epochs != 1 else ''} at peak learning rate {lr:g} it "
            f"has not memorised them (we ask for {MEMORISED:.0%}), so the test is void here and "
            "the summary leaves its column out; train it longer (`random_label_epochs`) for a "
            "real test."
        )
    return (
        f"The shuffled-label model fits {memorised:.0%} of its shuffled training labels "
        "(chance: 10%). " + verdict
    )


def agreement_sentence(summary: Mapping[str, Summary], pathway_methods: Sequence[str]) -> str:
    """Guided Backprop after the output layer, ours and the paper's; and whether the pathway
    gradients (the most similar of them) decorrelate about as fast as the plain gradient
    (within 0.15), as the paper reports."""
    gbp = summary["GuidedBackprop"].after_first
    paper_gbp = paper_numbers.SANITY["spearman_abs"]["GBP"][1]
    pathway_first = max(summary[n].after_first for n in pathway_methods if n in summary)
    gradient_first = summary["Gradient"].after_first
    return (
        "**Agreement with the paper.** After the output layer is randomised, Guided Backprop's "
        f"map keeps {SPEARMAN_ABS} {gbp:.2f} on MNIST (paper, ResNet-50: {paper_gbp:.2f}): "
        + ("it fails the test here too" if gbp > 0.8 else "here it changes more than in the paper")
        + f". The pathway gradients keep at most {pathway_first:.2f}, against "
        f"{gradient_first:.2f} for the plain gradient: "
        + (
            "like the paper, they decorrelate about as fast as the gradient"
            if pathway_first < gradient_first + 0.15
            else "unlike the paper, they stay noticeably more similar than the gradient"
        )
        + "."
    )


def floor_sentence(summary: Mapping[str, Summary]) -> str | None:
    """A warning when even with every weight random no method falls below 0.2 (``None`` when
    some method does): then the curves are read against each other, not against zero."""
    floor = min(row.all_random for row in summary.values())
    if floor <= 0.2:
        return None
    return (
        f"Even with every weight random, no method's {SPEARMAN_ABS} on MNIST falls below "
        f"{floor:.2f}: rank correlations of the maps' magnitudes stay well above zero here, so "
        "read the curves against each other, not against zero."
    )


def shuffled_sentence(summary: Mapping[str, Summary], pathway_methods: Sequence[str]) -> str:
    """Guided Backprop, the plain gradient and the most similar pathway gradient against the
    model that memorised shuffled labels."""
    pathway_shuffled = max(summary[n].shuffled for n in pathway_methods if n in summary)
    return (
        "**Shuffled labels.** Against the model that memorised shuffled labels, Guided Backprop "
        f"keeps {SPEARMAN_ABS} {summary['GuidedBackprop'].shuffled:.2f}, the plain gradient "
        f"{summary['Gradient'].shuffled:.2f} and the pathway gradients at most "
        f"{pathway_shuffled:.2f}. The paper does not run this test."
    )
