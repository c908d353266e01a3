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
from .evaluation import PAPER_PATHWAYS, listed
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
        _stage_ticks(ax, result.stages)
        ax.axhline(0, color="grey", lw=0.5)
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("similarity to the trained model's map")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.suptitle(title)
    return fig


def _stage_ticks(ax, stages: Sequence[str], most: int = 10) -> None:
    """Name at most about ``most`` stages on the x-axis, always the first randomised one (the
    summary's "after" column) and the last."""
    step = max(1, len(stages) // most)
    shown = sorted({*range(0, len(stages), step), min(1, len(stages) - 1), len(stages) - 1})
    ax.set_xticks(shown, [stages[i] for i in shown], rotation=60, ha="right", fontsize=7)


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
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5 * len(metrics), 3.8), sharey=True, layout="constrained"
    )
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        for paper_name, curve in paper_numbers.SANITY[metric].items():
            ours = paper_numbers.REGISTRY_NAME[paper_name]
            ax.plot(
                curve, marker=".", label=f"{paper_name} ({ours})", **plotting.method_style(ours)
            )
        ax.set_title(f"paper, ResNet-50: {METRIC_LABELS[metric]}")
        _stage_ticks(ax, paper_numbers.SANITY_STAGES)
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("similarity to the trained model's map")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
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


LIKE_GRADIENT = 0.15
"""A pathway gradient this close to the plain gradient's similarity decorrelates "about as fast"."""
FLOOR = 0.3
"""With every weight random, a similarity above this is far from what unrelated maps score."""
MULTIPLYING = ("InputXGradient", "IntegratedGradients", "DeepLift")
"""The methods whose maps are multiplied by the input (or its difference from a baseline)."""


def _paper(name: str) -> tuple[float, ...] | None:
    """The paper's Spearman of |map| curve of our method ``name`` (``None`` where it has none)."""
    paper_of = {ours: paper for paper, ours in paper_numbers.REGISTRY_NAME.items()}
    return paper_numbers.SANITY["spearman_abs"].get(paper_of.get(name, ""))


def _pathway_clause(firsts: Mapping[str, float], gradient: float, where: str) -> str:
    """The paper's pathway gradients after the first stage against the plain gradient, each
    with the paper's number, and whether they decorrelate about as fast (``LIKE_GRADIENT``)."""
    shown = listed(
        [
            f"{n} {v:.2f} (paper: {_paper(n)[1]:.2f})" if _paper(n) else f"{n} {v:.2f}"
            for n, v in firsts.items()
        ]
    )
    paper_gradient = _paper("Gradient")
    furthest = max(firsts.values(), key=lambda v: abs(v - gradient))
    like = max(firsts.values()) < gradient + LIKE_GRADIENT
    return (
        f"{where} the paper's pathway gradients keep {shown}, against {gradient:.2f} for the "
        + (
            f"plain gradient (paper: {paper_gradient[1]:.2f}): "
            if paper_gradient
            else "plain gradient: "
        )
        + (
            f"like the paper, they decorrelate about as fast as the gradient (within "
            f"{LIKE_GRADIENT:.2f}; the largest difference is {furthest - gradient:+.2f})"
            if like
            else "unlike the paper, they stay noticeably more similar than the gradient"
        )
        + "."
    )


def agreement_sentence(
    summary: Mapping[str, Summary],
    pathway_methods: Sequence[str],
    paper_pathways: Sequence[str] = PAPER_PATHWAYS,
) -> str:
    """MNIST against the paper: Guided Backprop after the output layer and with every weight
    random; the paper's pathway gradients against the plain gradient, and that the agreement
    says little when their numbers equal the gradient's (their maps are then the gradient's);
    our other pathway methods (DGR) apart; Grad-CAM against the paper."""
    gbp = summary["GuidedBackprop"]
    paper_gbp = _paper("GuidedBackprop")
    gradient = summary["Gradient"].after_first
    sentences = [
        "**Agreement with the paper (MNIST).** After the output layer is randomised, Guided "
        f"Backprop's map keeps {SPEARMAN_ABS} {gbp.after_first:.2f} (paper, ResNet-50: "
        f"{paper_gbp[1]:.2f}): "
        + (
            "it fails the test here too"
            if gbp.after_first > 0.8
            else "here it changes more than in the paper"
        )
        + f"; with every weight random it keeps {gbp.all_random:.2f} (paper: "
        f"{paper_gbp[-1]:.2f})."
    ]
    firsts = {n: summary[n].after_first for n in paper_pathways if n in summary}
    if firsts:
        sentences.append(_pathway_clause(firsts, gradient, "After the output layer"))
        same = [n for n in firsts if f"{firsts[n]:.3f}" == f"{gradient:.3f}"]
        if same:
            sentences.append(
                f"But {listed(same)} {'scores' if len(same) == 1 else 'score'} exactly the "
                f"gradient's {gradient:.3f}: on this CNN a pathway of sparsity 0.7 most likely "
                "removes neurons that are inactive on the digit anyway, so the map is the "
                "gradient's and this agreement says little about pathways."
            )
    order = sorted(summary, key=lambda n: -summary[n].after_first)
    top = f"{order[0]} {summary[order[0]].after_first:.2f}"
    for name in (n for n in pathway_methods if n in summary and n not in paper_pathways):
        rank = order.index(name) + 1
        sentences.append(
            f"{name} (ours, not in the paper) keeps {summary[name].after_first:.2f}: "
            + (
                f"the most similar of the {len(order)} methods."
                if rank == 1
                else f"ranked {rank} of the {len(order)} methods by similarity (the most "
                f"similar: {top})."
            )
        )
    if "GradCAM" in summary and (paper_cam := _paper("GradCAM")):
        cam = summary["GradCAM"]
        faster = cam.after_first < paper_cam[1]
        sentences.append(
            f"Grad-CAM keeps {cam.after_first:.2f} after the output layer and "
            f"{cam.all_random:.2f} with every weight random (paper: {paper_cam[1]:.2f} and "
            f"{paper_cam[-1]:.2f}): it decorrelates {'faster' if faster else 'more slowly'} "
            "here than in the paper. One difference may count: we explain the trained model's "
            "class at every stage, the official code the randomised model's own prediction."
        )
    return " ".join(sentences)


def photo_sentence(result: SanityResult, label: str, n_images: int) -> str:
    """The ImageNet classifier's cascade against the paper's ResNet-50, after its first stage:
    Guided Backprop, and the paper's pathway gradients against the plain gradient; on a few
    images, with their number."""
    first = {n: float(result.mean(n, "spearman_abs")[1]) for n in result.scores}
    stage = result.stages[1] if len(result.stages) > 1 else "the first stage"
    parts = [
        f"**{label}** ({n_images} image{'s' if n_images != 1 else ''}), after `{stage}` is "
        "randomised."
    ]
    if "GuidedBackprop" in first:
        parts.append(
            f"Guided Backprop keeps {first['GuidedBackprop']:.2f} (paper: "
            f"{_paper('GuidedBackprop')[1]:.2f})."
        )
    pathways = {n: first[n] for n in PAPER_PATHWAYS if n in first}
    if pathways and "Gradient" in first:
        parts.append(_pathway_clause(pathways, first["Gradient"], "Here"))
    if n_images < 10:
        parts.append(
            f"These are means over {n_images} image{'s' if n_images != 1 else ''}; MNIST's "
            "digits carry the verdict."
        )
    return " ".join(parts)


def floor_sentence(summary: Mapping[str, Summary]) -> str | None:
    """The methods whose maps stay far from unrelated (above ``FLOOR``) even with every weight
    random, and why the input-multiplied ones can (``None`` when none does): their curves are
    read against each other, not against zero."""
    high = sorted(
        (n for n in summary if summary[n].all_random > FLOOR), key=lambda n: -summary[n].all_random
    )
    if not high:
        return None
    shown = listed([f"{n} {summary[n].all_random:.2f}" for n in high])
    multiplied = [n for n in high if n in MULTIPLYING]
    why = (
        f" {listed(multiplied)} multiply by the input, which keeps the digit's shape in "
        f"{'its map' if len(multiplied) == 1 else 'their maps'} whatever the weights (see the "
        "maps above)."
        if multiplied
        else ""
    )
    return (
        f"With every weight random, {shown} still keep{'s' if len(high) == 1 else ''} more than "
        f"{FLOOR:.1f} on MNIST, far from what unrelated maps score.{why} Read these curves "
        "against each other, not against zero."
    )


def shuffled_sentence(summary: Mapping[str, Summary], pathway_methods: Sequence[str]) -> str:
    """The data test: every method's similarity to the shuffled-label model's map, ranked, and
    how it compares with the same method's similarity once every weight is random."""
    order = sorted(summary, key=lambda n: -summary[n].shuffled)
    above = [n for n in order if summary[n].shuffled > summary[n].all_random]
    lowest = summary[order[-1]].shuffled
    verdict = (
        f"Every method's map is more like the trained model's here than with every weight "
        f"random, and the lowest similarity is {lowest:.2f}: by {SPEARMAN_ABS} no method passes "
        "this test clearly."
        if len(above) == len(order)
        else f"{len(above)} of {len(order)} methods keep more here than with every weight random."
    )
    return (
        "**Shuffled labels.** Similarity to the map of the model that memorised shuffled labels "
        "(most similar first): "
        + ", ".join(f"{n} {summary[n].shuffled:.2f}" for n in order)
        + f". {verdict} The paper does not report this test."
    )
