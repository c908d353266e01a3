"""Figures, tables and sentences of the transferable-pathways chapter (GEN-CNP).

The numbers come from ``pathlib_core.transfer`` (training history, generated and class pathways,
faithfulness, class relevance, transfer accuracy) and its ``analysis`` module (the controls of
equal size, the class IoU matrix, gradients through pathways); this module only draws them and
puts them into words. Sentences are chosen from the numbers, so a verdict changes when they do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from ..plotting import CAP_PERCENTILE, _numpy, image_grid, method_style, saliency_to_display
from .text import markdown_table, pct

__all__ = [
    "CLEAR_MARGIN",
    "TRAINING_TERMS",
    "TRANSFER_COLOURS",
    "class_iou_figure",
    "cross_class_figure",
    "cross_class_verdict",
    "faithfulness_table",
    "faithfulness_verdict",
    "gradient_figure",
    "relevance_table",
    "relevance_verdict",
    "similarity_sentence",
    "sparsity_figure",
    "sparsity_sentence",
    "training_figure",
    "training_sentence",
    "transfer_claim",
    "transfer_figure",
    "transfer_table",
    "transfer_verdict",
]

TRAINING_TERMS = {
    "total": "black",
    "faithfulness": "tab:blue",
    "sparsity": "tab:red",
    "relevance": "tab:green",
}
"""The loss terms drawn in ``training_figure`` and their colours."""

TRANSFER_COLOURS = {
    "Random": "black",
    "Random channels": "tab:gray",
    "own GEN-CNP": "navajowhite",
    "own NeuronMCT": "lightsteelblue",
}
"""Bar colours of ``transfer_figure`` for the references; the class pathways take the colours of
their methods (``plotting.method_style``)."""

CLEAR_MARGIN = 0.1
"""How much more mean probability of the true class a class pathway must keep than a reference
(random pathways; for the strong transfer claim also the pathways of other classes) to count as
clearly better (``transfer_claim``)."""


def _percent(value: float) -> str:
    """A value already in percent (e.g. ``Faithfulness.average_drop``), as ``pct`` writes it."""
    return pct(float(value) / 100)


# ------------------------------------------------------------------------------------ training


def training_figure(history: Mapping[str, Sequence[float]]):
    """The loss and its unweighted terms per epoch (left) and the share of neurons kept by the
    hard pathways (right), from ``generator.history``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epoch_axis = np.arange(1, len(history["total"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for term, colour in TRAINING_TERMS.items():
        axes[0].plot(epoch_axis, history[term], "o-", color=colour, label=term)
    axes[0].set(
        xlabel="epoch", ylabel="mean over the epoch", title="loss and its terms (unweighted)"
    )
    axes[0].legend(fontsize=8)
    axes[1].plot(epoch_axis, history["kept"], "o-", color=method_style("GEN-CNP")["color"])
    axes[1].set(
        xlabel="epoch",
        ylabel="share of neurons kept",
        title="hard pathways during training",
        ylim=(0, 1),
    )
    for ax in axes:  # whole epochs only (matplotlib would put ticks at 1.25, 1.5, ...)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


LAST_EPOCHS = 5
"""Training has levelled off when the loss moved by under 2% of its whole fall over this many
epochs (one epoch is too short: the loss can pause and fall again)."""


def training_sentence(history: Mapping[str, Sequence[float]], full_epochs: int = 60) -> str:
    """Where training ended, and whether it had levelled off: the fall of the loss over the last
    :data:`LAST_EPOCHS` epochs as a share of its whole fall since the first epoch (the loss can
    sit near 0, since the relevance term is negative, so its value is no scale). ``full_epochs``:
    the ``full`` profile's epochs, named when training was shorter."""
    total = list(history["total"])
    epochs = len(total)
    span = min(LAST_EPOCHS, epochs - 1)
    fall = total[0] - total[-1]
    last = (total[-1 - span] - total[-1]) / fall if span > 0 and fall > 0 else math.nan
    if abs(last) < 0.02:
        verdict = "so training has levelled off."
    elif last < 0:
        verdict = "so training has not settled: the loss went back up at the end."
    elif epochs < full_epochs:
        verdict = (
            "so it is still falling: longer training would change the numbers below (the `full` "
            f"profile trains for {full_epochs} epochs)."
        )
    else:
        verdict = (
            "so it is still falling slowly even after the `full` profile's epochs: the numbers "
            "below are those of a generator not trained to the end."
        )
    start = (
        f"After {epochs} epoch{'s' if epochs != 1 else ''} the training digits' pathways keep "
        f"{pct(history['kept'][-1])} of the neurons (KL {history['faithfulness'][-1]:.3f})"
    )
    if math.isnan(last):
        return f"{start}; too few epochs to tell whether the loss has levelled off."
    moved = f"fell by {pct(last)}" if last >= 0 else f"rose by {pct(-last)}"
    window = "epoch" if span == 1 else f"{span} epochs"
    return (
        f"{start}; over the last {window} the loss {moved} of its whole fall since the first "
        f"epoch, {verdict}"
    )


# ------------------------------------------------------------------------------------ sparsity


def _share_by_class(by_site: Mapping[str, Tensor], classes: Tensor, n_classes: int) -> np.ndarray:
    """Mean kept share of each site (columns) over the samples of each class (rows)."""
    return np.array(
        [[float(by_site[s][classes == c].mean()) for s in by_site] for c in range(n_classes)]
    )


def sparsity_figure(
    kept: Tensor, by_site: Mapping[str, Tensor], classes: Tensor, n_classes: int = 10
):
    """Left: each sample's kept share (``kept``), boxes by class. Right: the mean kept share of
    every site (``Pathway.kept_fraction()``) by class."""
    import matplotlib.pyplot as plt

    site_names = list(by_site)
    fig, axes = plt.subplots(
        1, 2, figsize=(10, 3.4), constrained_layout=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    axes[0].boxplot(
        [_numpy(kept[classes == c]) for c in range(n_classes)],
        positions=range(n_classes),
        widths=0.6,
        flierprops={"markersize": 2},
    )
    axes[0].set(
        xlabel="digit class",
        ylabel="share of neurons kept",
        title=f"per digit ({len(classes)} test digits)",
    )
    share = _share_by_class(by_site, classes, n_classes)
    image = axes[1].imshow(share, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axes[1].set(
        xticks=range(len(site_names)),
        xticklabels=site_names,
        yticks=range(n_classes),
        ylabel="digit class",
        title="mean share kept per site",
    )
    fig.colorbar(image, ax=axes[1], label="share of the site's neurons kept")
    return fig


def sparsity_sentence(
    kept: Tensor, by_site: Mapping[str, Tensor], classes: Tensor, n_classes: int = 10
) -> str:
    """The spread of the kept share: over all samples, between the classes' means and between
    the sites' means."""
    site_names = list(by_site)
    class_means = [float(kept[classes == c].mean()) for c in range(n_classes)]
    sites = _share_by_class(by_site, classes, n_classes).mean(axis=0)
    return (
        f"The test digits' pathways keep {pct(kept.mean())} of the neurons on average "
        f"(standard deviation {pct(kept.std())}, from {pct(kept.min())} to {pct(kept.max())}). "
        f"By class, the mean ranges from {pct(min(class_means))} "
        f"(digit {int(np.argmin(class_means))}) to "
        f"{pct(max(class_means))} (digit {int(np.argmax(class_means))}). By site, from "
        f"{pct(sites.min())} ({site_names[int(sites.argmin())]}) to {pct(sites.max())} "
        f"({site_names[int(sites.argmax())]})."
    )


# -------------------------------------------------------------------------------- faithfulness


def faithfulness_table(
    faith: Mapping[str, Sequence[object]], active_share: Mapping[str, float]
) -> str:
    """One row per kind of pathway: kept share, share of the active neurons kept, and the
    ``transfer.Faithfulness`` measures, each the mean over the kind's pathways (random seeds)."""

    def mean(results: Sequence[object], field: str) -> float:
        return float(np.mean([getattr(r, field) for r in results]))

    header = [
        "pathway",
        "kept share",
        "share of active neurons kept",
        "prediction kept",
        "Average Drop",
        "mDC (points)",
        "mIC (points)",
        "IiC",
    ]
    rows = [
        [
            name,
            f"{float(results[0].kept_fraction.mean()):.3f}",
            f"{active_share[name]:.3f}",
            _percent(mean(results, "prediction_kept")),
            _percent(mean(results, "average_drop")),
            f"{mean(results, 'mean_decrease'):.2f}",
            f"{mean(results, 'mean_increase'):.2f}",
            _percent(mean(results, "increase_in_confidence")),
        ]
        for name, results in faith.items()
    ]
    return markdown_table(header, rows)


def faithfulness_verdict(drop: Mapping[str, float]) -> str:
    """Which kind of pathway loses least of the target's probability (Average Drop in %, keys
    ``"GEN-CNP"`` and ``"Random channels"`` required), and what that says of the generator."""
    best = min(drop, key=drop.get)
    if best == "GEN-CNP":
        verdict = "beat every pathway of the same sparsity on this measure."
    elif drop["GEN-CNP"] < drop["Random channels"]:
        verdict = (
            f"({drop['GEN-CNP']:.1f}%) are beaten by {best}: with as many active neurons, the "
            "generator's channel-level choice is less faithful than a choice made neuron by "
            "neuron for this digit, though it does better than random channels "
            f"({drop['Random channels']:.1f}%)."
        )
    else:
        verdict = "are no better than random channels of the same structure."
    return f"Lowest Average Drop: {best} ({drop[best]:.1f}%). The generated pathways {verdict}"


def paper_sentence(prediction_kept: float, drop: Mapping[str, float]) -> str:
    """Our faithfulness beside the 2023 paper's: its abstract says the pathways predict as well
    as the whole model, with no number we could compare. ``prediction_kept``: the share (%) of
    digits whose prediction the generated pathway keeps; ``drop``: Average Drop (%) per kind, as
    for ``faithfulness_verdict``."""
    best = min(drop, key=drop.get)
    ours = f"here the generated pathways keep the prediction of {prediction_kept:.1f}% of the "
    ours += f"digits (Average Drop {drop['GEN-CNP']:.1f}%)"
    if best == "GEN-CNP":
        ours += ", and no pathway of the same size beats them on Average Drop"
    else:
        ours += f", and {best} with as many active neurons does better ({drop[best]:.1f}%)"
    return (
        "**Beside the 2023 paper.** Its abstract says that the generated pathways predict as "
        "well as the whole model, and a third-party summary reports them more faithful than "
        f"earlier methods, both without numbers we could set beside ours; {ours}."
    )


# ----------------------------------------------------------------------------- class relevance


def class_iou_figure(matrices: Mapping[str, np.ndarray]):
    """One panel per kind of pathway: ``analysis.class_iou_matrix`` on its own colour scale."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(9.5, 4), constrained_layout=True)
    for ax, (name, matrix) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        image = ax.imshow(matrix, cmap="magma")
        n = len(matrix)
        ax.set(title=name, xlabel="class", ylabel="class", xticks=range(n), yticks=range(n))
        fig.colorbar(image, ax=ax, label="mean IoU of two digits' pathways", shrink=0.8)
    return fig


def relevance_table(within: Mapping[str, float], across: Mapping[str, float]) -> str:
    """Mean IoU within and across classes, and their gap, per kind of pathway."""
    header = ["pathway", "IoU within a class", "IoU across classes", "within - across"]
    rows = [
        [name, f"{within[name]:.3f}", f"{across[name]:.3f}", f"{within[name] - across[name]:+.3f}"]
        for name in within
    ]
    return markdown_table(header, rows)


def overlapping_pairs(matrix: np.ndarray) -> tuple[int, int]:
    """Of the pairs of different classes, how many overlap (``class_iou_figure``'s matrix) at
    least as much as one of the two classes with itself; and how many pairs there are."""
    matrix = np.asarray(matrix)
    n = len(matrix)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    close = sum(matrix[a, b] >= min(matrix[a, a], matrix[b, b]) for a, b in pairs)
    return int(close), len(pairs)


def relevance_verdict(gap: Mapping[str, float], matrix: np.ndarray | None = None) -> str:
    """Whether the generated pathways are more class-specific (IoU within minus across classes)
    than NeuronMCT's and random channels' (keys ``"GEN-CNP"``, ``"NeuronMCT"``,
    ``"Random channels"``), and, given the generated pathways' class ``matrix``, whether that
    holds class by class or only on average."""
    met = gap["GEN-CNP"] > max(gap["NeuronMCT"], gap["Random channels"])
    verdict = (
        "The class-relevance criterion is met: a digit's generated pathway is closer to those of "
        "its class than to those of other classes, by more than NeuronMCT's pathways are."
        if met
        else "The generated pathways are not more class-specific than the references."
    )
    if matrix is not None and met:  # on average; class by class?
        close, pairs = overlapping_pairs(matrix)
        if close:
            verdict += (
                f" Class by class it is less clear: for {close} of the {pairs} pairs of classes, "
                "the two classes' generated pathways overlap as much as one of them with itself, "
                "so some classes share their pathways."
            )
    return (
        f"The generated pathways' gap between classes is {gap['GEN-CNP']:+.3f} IoU, "
        f"NeuronMCT's {gap['NeuronMCT']:+.3f} and random channels' "
        f"{gap['Random channels']:+.3f}. {verdict}"
    )


# ------------------------------------------------------------------------------------ transfer


def transfer_table(
    scores: Mapping[str, Mapping[int, tuple[float, float, float]]],
    names: Sequence[str],
    n_digits: Mapping[int, int],
    kept_of: str = "GEN-CNP class pathway",
) -> str:
    """Accuracy (%) per class through each of ``names`` and the whole model (``scores["model"]``),
    then the means of accuracy and of confidence. ``scores[name][c]`` is (accuracy in %,
    confidence, kept share); the kept share shown is ``kept_of``'s."""
    classes = list(scores[kept_of])
    columns = ["model", *names]
    header = ["class", "digits", "kept share", *columns]
    rows = [
        [c, n_digits[c], f"{scores[kept_of][c][2]:.3f}"]
        + [_percent(scores[n][c][0]) for n in columns]
        for c in classes
    ]
    mean = {n: [np.mean([scores[n][c][k] for c in classes]) for k in range(3)] for n in columns}
    rows.append(["mean", "", f"{mean[kept_of][2]:.3f}"] + [_percent(mean[n][0]) for n in columns])
    rows.append(["mean confidence", "", ""] + [f"{mean[n][1]:.3f}" for n in columns])
    return markdown_table(header, rows)


def transfer_figure(
    scores: Mapping[str, Mapping[int, tuple[float, float, float]]], names: Sequence[str]
):
    """Accuracy (top; its axis cut below the lowest bar when that is at least 20%, and said so
    in its label) and confidence (bottom) per class, one bar per kind of pathway in ``names``,
    the whole model as a black dash."""
    import matplotlib.pyplot as plt

    classes = list(scores["model"])
    positions = np.arange(len(classes))
    colours = [_transfer_colour(name) for name in names]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True, constrained_layout=True)
    width = 0.8 / len(names)
    lowest = min(scores[name][c][0] for name in names for c in classes)
    cut = 10 * (lowest // 10) - 5 if lowest >= 20 else 0
    for ax, k_score, label, bottom in (
        (axes[0], 0, f"accuracy (%{f', axis from {cut:g}' if cut else ''})", cut),
        (axes[1], 1, "probability of the true class", 0),
    ):
        for k, (name, colour) in enumerate(zip(names, colours, strict=True)):
            ax.bar(
                positions + (k - (len(names) - 1) / 2) * width,
                [scores[name][c][k_score] - bottom for c in classes],
                width,
                bottom=bottom,
                color=colour,
                label=name,
            )
        ax.plot(
            positions,
            [scores["model"][c][k_score] for c in classes],
            "k_",
            markersize=24,
            label="whole model",
        )
        ax.set(ylabel=label, ylim=(bottom, 101 if k_score == 0 else 1.01))
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes[1].set(xticks=range(len(classes)), xlabel="digit class")
    axes[0].set_title("the other test digits of each class, through one pathway")
    return fig


def _transfer_colour(name: str) -> str:
    for method in ("GEN-CNP", "NeuronMCT"):
        if name == f"{method} class pathway":
            return method_style(method)["color"]
    if name not in TRANSFER_COLOURS:
        raise ValueError(
            f"no colour for {name!r}; name the pathways as the chapter does "
            f"({', '.join(TRANSFER_COLOURS)}, or '<method> class pathway')."
        )
    return TRANSFER_COLOURS[name]


def transfer_verdict(accuracy: Mapping[str, float], confidence: Mapping[str, float]) -> str:
    """How the class pathway transfers against random pathways of its sparsity and the transferred
    NeuronMCT pathway. Mean accuracy (%) and confidence per kind of pathway, keys ``"model"``,
    ``"GEN-CNP class pathway"``, ``"Random"``, ``"Random channels"``, ``"NeuronMCT class
    pathway"``. Whether the transfer claim holds needs the cross-class test too: that verdict is
    ``transfer_claim``'s."""
    ours, rand, mct = (
        accuracy[n] for n in ("GEN-CNP class pathway", "Random", "NeuronMCT class pathway")
    )
    conf_ours, conf_rand, conf_mct = (
        confidence[n] for n in ("GEN-CNP class pathway", "Random", "NeuronMCT class pathway")
    )
    separation = (
        "Accuracy hardly separates them on this robust little network; confidence does: "
        if ours - rand < 5
        else "Confidence separates them further: "
    )
    if mct >= ours and conf_mct > conf_ours:
        reference = (
            f"But the transferred NeuronMCT pathway, which needs no training, does better still "
            f"({_percent(mct)}, probability {conf_mct:.2f})."
        )
    else:
        reference = (
            f"The transferred NeuronMCT pathway reaches {_percent(mct)} (probability "
            f"{conf_mct:.2f})."
        )
    return (
        f"Through its class pathway a digit is classified correctly {_percent(ours)} of the time "
        f"(the whole model: {_percent(accuracy['model'])}; random pathways of the same sparsity "
        f"{_percent(rand)}, random channels {_percent(accuracy['Random channels'])}). "
        f"{separation}the true class keeps a mean probability of {conf_ours:.2f} through the "
        f"class pathway against {conf_rand:.2f} through random pathways and "
        f"{confidence['Random channels']:.2f} through random channels (whole model "
        f"{confidence['model']:.2f}). {reference} Whether what transfers is specific to the "
        "class is the next section's question."
    )


# --------------------------------------------------------------------------------- cross-class


def cross_class_figure(accuracy: np.ndarray, confidence: np.ndarray):
    """Samples of class ``b`` (columns) through the class pathway of class ``a`` (rows):
    accuracy in % (left) and the mean probability of class ``b`` (right)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    for ax, matrix, top, label in (
        (axes[0], accuracy, 100, "accuracy (%)"),
        (axes[1], confidence, 1, "mean probability of class b"),
    ):
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=top)
        n = len(matrix)
        ax.set(
            xlabel="class b of the digits",
            ylabel="class a of the pathway",
            xticks=range(n),
            yticks=range(n),
        )
        fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    return fig


def diagonal_and_rest(matrix: np.ndarray) -> tuple[float, float]:
    """The mean of a square matrix's diagonal and the mean of its other entries."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or len(matrix) < 2:
        raise ValueError(f"need a square matrix of at least 2 x 2, got shape {matrix.shape}.")
    return float(np.diag(matrix).mean()), float(matrix[~np.eye(len(matrix), dtype=bool)].mean())


NEAR_OWN = 0.9
"""Another class's pathway keeping this share of the own pathway's mean accuracy counts as
sharing it."""
SHARED_PAIRS = 0.1
"""Above this share of such pairs, the verdict says that groups of classes share pathways."""


def cross_class_verdict(accuracy: np.ndarray, confidence: np.ndarray) -> str:
    """How much of what its own class pathway keeps a sample keeps through another class's
    pathway (``cross_class_figure``'s matrices): class-specific below half the confidence,
    largely shared above 80%, partly specific between."""
    diagonal, off = diagonal_and_rest(accuracy)
    diagonal_conf, off_conf = diagonal_and_rest(confidence)
    matrix = np.asarray(accuracy)
    others = matrix[~np.eye(len(matrix), dtype=bool)]
    near = int((others >= NEAR_OWN * diagonal).sum())
    if off_conf < 0.5 * diagonal_conf:
        verdict = (
            "Class pathways are class-specific on average: another class's pathway loses most "
            "of what the own class's pathway keeps"
            + (
                f"; but for {near} of the {others.size} ordered pairs of different classes the "
                f"other class's pathway keeps at least {NEAR_OWN:.0%} of the own pathway's mean "
                "accuracy, so some groups of classes share their pathways."
                if near > SHARED_PAIRS * others.size
                else "."
            )
        )
    elif off_conf > 0.8 * diagonal_conf:
        verdict = (
            "Class pathways are largely shared: another class's pathway keeps most of the "
            "accuracy and confidence, so much of what a class pathway keeps serves every class."
        )
    else:
        verdict = (
            "Class pathways are partly class-specific: another class's pathway keeps some of the "
            f"accuracy ({off / diagonal:.0%} of the own class pathway's) and of the confidence "
            f"({off_conf / diagonal_conf:.0%}), so they hold class-relevant neurons and shared "
            "ones."
        )
    return (
        f"Through the pathway of the digits' own class: accuracy {_percent(diagonal)}, "
        f"probability {diagonal_conf:.2f}; through the pathway of another class: {_percent(off)}, "
        f"{off_conf:.2f}. {verdict}"
    )


def transfer_claim(
    accuracy: Mapping[str, float],
    confidence: Mapping[str, float],
    cross_accuracy: np.ndarray,
    cross_confidence: np.ndarray,
    epochs: int,
    full_epochs: int = 60,
    across_iou: float | None = None,
) -> str:
    """The verdict on the transfer claim. It holds in the strong sense only if the class pathway
    keeps the true class's probability clearly (:data:`CLEAR_MARGIN`) above random pathways of
    its sparsity *and* above the pathways of other classes (``cross_*``: ``cross_class_figure``'s
    matrices); above random only, it holds weakly (the class pathway is nearly class-agnostic).
    ``accuracy``/``confidence`` as for ``transfer_verdict``; ``epochs``: the generator's training
    epochs, named when fewer than the ``full`` profile's ``full_epochs``; ``across_iou``: the
    generated pathways' mean IoU across classes, quoted in the weak verdict when given."""
    ours, rand = accuracy["GEN-CNP class pathway"], accuracy["Random"]
    conf_ours, conf_rand = confidence["GEN-CNP class pathway"], confidence["Random"]
    own, other = diagonal_and_rest(cross_accuracy)
    own_conf, other_conf = diagonal_and_rest(cross_confidence)
    against_random = f"(probability of the true class {conf_ours:.2f} against {conf_rand:.2f})"
    if not (ours > rand and conf_ours > conf_rand + CLEAR_MARGIN):
        claim = (
            "The transfer claim does not hold on this model: a class pathway does not keep its "
            f"class's digits clearly better than random pathways of its sparsity {against_random}."
        )
    elif own_conf > other_conf + CLEAR_MARGIN:
        claim = (
            "The transfer claim holds on this model: a class pathway keeps its class's digits "
            f"clearly better than random pathways of its sparsity {against_random} and than "
            f"the pathways of other classes ({_percent(other)}, probability {other_conf:.2f}, "
            f"against {_percent(own)}, {own_conf:.2f})."
        )
        mct = "NeuronMCT class pathway"
        if mct in confidence and confidence[mct] > conf_ours:
            claim += (
                " A class pathway needs no generator for this, though: the transferred NeuronMCT "
                f"pathway, which is not trained, keeps them better still ({_percent(accuracy[mct])}"
                f", probability {confidence[mct]:.2f})."
            )
    else:
        as_well = "almost as well" if other_conf <= own_conf else "as well or better"
        shared = (
            f"; the generated pathways of two different classes overlap with IoU {across_iou:.3f}"
            if across_iou is not None
            else ""
        )
        claim = (
            "The transfer claim holds only weakly on this model: a class pathway keeps its "
            f"class's digits better than random pathways of its sparsity {against_random}, but "
            f"another class's pathway does {as_well} ({_percent(other)}, probability "
            f"{other_conf:.2f}, against {_percent(own)}, {own_conf:.2f}){shared}. The class "
            "pathway is nearly class-agnostic: what transfers is a pathway for digits in general "
            "more than one for its class."
        )
    if epochs < full_epochs:
        claim += (
            f" The generator behind it trained for {epochs} epoch{'s' if epochs != 1 else ''}, "
            f"fewer than the `full` profile's {full_epochs}, so this verdict may change with "
            "longer training."
        )
    return claim


# ----------------------------------------------------------------------------------- gradients


def gradient_figure(
    digits: Sequence[Tensor], maps: Sequence[Mapping[str, Tensor]], size: float = 1.5
):
    """One row per digit: the digit (an MNIST tensor ``(1, 28, 28)``) and its maps (name ->
    ``(1, 28, 28)`` attribution), magnitudes in the inferno colours, each map capped at
    ``plotting.CAP_PERCENTILE`` of its non-zero magnitudes; the first row titled."""
    import matplotlib.pyplot as plt

    from ..data import mnist_to_display

    if not digits or len(digits) != len(maps):
        raise ValueError("give one mapping of maps per digit, and at least one digit.")
    names = list(maps[0])
    shown = []
    for digit, row in zip(digits, maps, strict=True):
        shown.append(np.repeat(mnist_to_display(digit)[..., None], 3, axis=-1))
        shown.extend(
            plt.cm.inferno(saliency_to_display(row[name][None], cap_percentile=CAP_PERCENTILE)[0])[
                ..., :3
            ]
            for name in names
        )
    titles = ["digit", *names] + [""] * (len(shown) - len(names) - 1)
    return image_grid(np.stack(shown), titles=titles, ncols=len(names) + 1, size=size)


def similarity_sentence(similarity: Mapping[str, float], n_digits: int) -> str:
    """The mean cosine similarity of each map with the gradient through the digit's own
    generated pathway (keys ``"class pathway"``, ``"gradient"``, ``"own NeuronMCT"``)."""
    return (
        f"Mean cosine similarity with the gradient through the digit's own generated pathway, "
        f"over all {n_digits} non-voting digits: the class pathway's "
        f"{similarity['class pathway']:.3f}, the whole model's {similarity['gradient']:.3f}, the "
        f"own NeuronMCT pathway's {similarity['own NeuronMCT']:.3f}."
    )
