"""Figures, tables and sentences of the chapter comparing pruning and contribution pathways.

The pathways come from ``pathlib_core.kinds``; the measures from ``Pathway.iou`` and
``pruning`` (``dead_fraction``, ``output_preservation``, ``decode_pathway``). The sentences
compare our numbers with the paper's pattern (book/definitions.md, "The pruning objective"), and
choose their wording from the numbers, so that a result that contradicts the paper says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor, nn

from .. import plotting, pruning
from ..kinds import ACTIVE, COLOURS, COMPARED, CONTRIBUTION, WHOLE
from ..pathway import Pathway
from ..plotting import _numpy
from .text import markdown_table, pct

Paths = Mapping[float, Mapping[str, Pathway]]
"""sparsity -> kind -> pathway, as ``kinds.Comparison.pathways``."""


SMALL = 10
"""Below this many inputs the sentences give counts ("3 of 4"), not percentages."""


def count(n: int, noun: str) -> str:
    """``n`` and the noun, singular or plural: ``count(1, "image") == "1 image"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _share(hits: int, n: int) -> str:
    """``hits`` of ``n`` inputs: a count below :data:`SMALL` inputs, else a percentage."""
    return f"{hits} of {n}" if n < SMALL else pct(hits / n)


def _middle(sparsities: Sequence[float]) -> float:
    """The sparsity the sentences speak of: 0.9 when computed, else the middle one."""
    return 0.9 if 0.9 in sparsities else sparsities[len(sparsities) // 2]


def sparsity_table(
    paths: Paths, sparsities: Sequence[float], label: str, kinds: Sequence[str] = COMPARED
) -> str:
    """Markdown: the mean fraction of neurons each kind actually removes at each requested
    sparsity (greedy and tie rules remove more or fewer than asked)."""
    rows = [[s, *(f"{float(paths[s][k].sparsity.mean()):.3f}" for k in kinds)] for s in sparsities]
    table = markdown_table(["requested", *kinds], rows)
    return f"**{label}**: mean fraction of neurons actually removed.\n\n" + table


def iou_matrices(
    paths: Paths, sparsities: Sequence[float], kinds: Sequence[str] = COMPARED
) -> dict[float, np.ndarray]:
    """sparsity -> (kinds x kinds) mean IoU (Jaccard similarity) over the inputs, as the
    official ``path_analysis.py`` averages it over images for every pair of methods."""
    return {
        s: np.array([[float(paths[s][a].iou(paths[s][b]).mean()) for b in kinds] for a in kinds])
        for s in sparsities
    }


def iou_figure(
    matrices: Mapping[float, np.ndarray], title: str, kinds: Sequence[str] = COMPARED
) -> Figure:
    """One heat map of the mean IoU per sparsity, the value written in every cell."""
    sparsities = list(matrices)
    fig, axes = plt.subplots(1, len(sparsities), figsize=(3.6 * len(sparsities) + 1.5, 4.0))
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, sparsities, strict=True):
        image = ax.imshow(matrices[s], vmin=0, vmax=1, cmap="viridis")
        for i in range(len(kinds)):
            for j in range(len(kinds)):
                value = matrices[s][i, j]
                colour = "white" if value < 0.6 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(kinds)), kinds, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(kinds)), kinds if ax is axes[0] else [], fontsize=7)
        ax.set_title(f"sparsity {s}")
    fig.colorbar(image, ax=axes, shrink=0.7, label="mean Jaccard similarity")
    fig.suptitle(title)
    return fig


def iou_summary(matrices: Mapping[float, np.ndarray], label: str) -> str:
    """Whether the two contribution pathways are closer to each other than to any pruning-
    objective pathway (the paper's pattern), at 0.9 or the middle sparsity. The matrices
    are in ``COMPARED`` order; Greedy is left out (it keeps far more neurons than asked)."""
    s = _middle(list(matrices))
    m = matrices[s]
    contribution = m[0, 1]
    cross = max(m[i, j] for i in (0, 1) for j in (2, 3))
    pruning_pair = m[2, 3]
    random_level = max(m[i, 5] for i in range(4))  # Greedy (4) is left out
    if contribution > cross:
        closeness = "largely the same neurons" if contribution >= 0.5 else "overlapping neurons"
        verdict = (
            f"agrees with the paper's pattern: the two contribution methods pick "
            f"{closeness} and are closer to each other than to any pruning-objective "
            "pathway"
        )
    else:
        verdict = (
            "does **not** agree with the paper's pattern: a pruning-objective pathway is "
            "as close to a contribution pathway as the two contribution methods are"
        )
    return (
        f"{label}, sparsity {s}: NeuronMCT and NeuronIntGrad share {contribution:.2f} (Jaccard); "
        f"the closest contribution/DGR pair shares {cross:.2f}; the two DGR initialisations "
        f"share {pruning_pair:.2f} with each other; none of these four shares more than "
        f"{random_level:.2f} with random removal. Greedy is left out of the comparison (it "
        f"shares {m[4, 5]:.2f} with random removal): its pathways keep far more neurons than "
        f"asked (table above). This {verdict}."
    )


def _site_ticks(ax, sites: Sequence[str]) -> None:
    ticks = range(0, len(sites), max(1, len(sites) // 12))
    ax.set_xticks(list(ticks), [sites[i] for i in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("site (forward order)")


def layerwise_figure(
    paths: Mapping[str, Pathway],
    title: str,
    reference: str = "NeuronIntGrad",
    kinds: Sequence[str] = COMPARED,
) -> Figure:
    """Per site (forward order): the IoU of each kind with ``reference`` (left, the official
    ``layerwise_all`` plot) and each kind's kept fraction (right, log scale)."""
    ref = paths[reference]
    sites = ref.sites
    fig, (ax_j, ax_k) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for kind in kinds:
        if kind == reference:
            continue
        by_site = ref.iou(paths[kind], by_site=True)
        ax_j.plot(
            [float(by_site[n].mean()) for n in sites], marker=".", label=kind, color=COLOURS[kind]
        )
    for kind in kinds:
        kept = paths[kind].kept_fraction()
        ax_k.plot(
            [float(kept[n].mean()) for n in sites], marker=".", label=kind, color=COLOURS[kind]
        )
    for ax in (ax_j, ax_k):
        _site_ticks(ax, sites)
    ax_j.set_ylabel(f"Jaccard with {reference}")
    ax_k.set_ylabel("fraction of the site's neurons kept")
    ax_k.set_yscale("log")
    fig.legend(  # every kind, the reference too, below the panels: off the data
        *ax_k.get_legend_handles_labels(), fontsize=7, ncol=len(kinds), loc="outside lower center"
    )
    fig.suptitle(title)
    return fig


def _nanmean(values: Tensor) -> float:
    """The mean over the inputs whose value is defined (NaN where a pathway keeps no neuron
    of a site: drawn as a missing point, not worth a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(_numpy(values)))


def dead_shares(
    paths: Mapping[str, Pathway],
    activations: Mapping[str, Tensor],
    kinds: Sequence[str] = COMPARED,
) -> dict[str, float]:
    """kind -> the share of its pathway's neurons that are dead, averaged over the inputs
    (inputs whose pathway is empty left out)."""
    return {k: _nanmean(pruning.dead_fraction(paths[k], activations)) for k in kinds}


def dead_figure(
    paths: Paths,
    activations: Mapping[str, Tensor],
    sparsities: Sequence[float],
    title: str,
    per_site_at: float = 0.9,
    kinds: Sequence[str] = COMPARED,
) -> Figure:
    """Stacked bars of dead and active shares per kind at each sparsity, then the dead share
    per site at ``per_site_at``."""
    fig, axes = plt.subplots(1, len(sparsities) + 1, figsize=(3.4 * (len(sparsities) + 1), 3.6))
    for ax, s in zip(axes, sparsities, strict=False):
        shares = dead_shares(paths[s], activations, kinds)
        dead = [shares[k] for k in kinds]
        ax.bar(kinds, dead, color="black", label="dead")
        ax.bar(kinds, [1 - d for d in dead], bottom=dead, color="tab:green", label="active")
        ax.set_title(f"sparsity {s}")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0].set_ylabel("share of the pathway's neurons")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper left", ncol=2)  # off the bars
    ax = axes[-1]
    s = per_site_at
    sites = paths[s][kinds[0]].sites
    for kind in kinds:
        by_site = pruning.dead_fraction(paths[s][kind], activations, by_site=True)
        ax.plot(
            [_nanmean(by_site[n]) for n in sites],
            marker=".",
            color=COLOURS[kind],
            label=kind,
        )
    ax.set_title(f"per site, sparsity {s}")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the lines
    _site_ticks(ax, sites)
    ax.set_ylabel("dead share")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _nonzero_digits(share: float) -> int:
    """Decimals that show a small non-zero share as non-zero (0.4% -> 1, 0.004% -> 3)."""
    return max(1, -math.floor(math.log10(100 * share)))


def dead_summary(
    shares: Mapping[float, Mapping[str, float]], active_kept: float, label: str
) -> str:
    """The dead share of every kind at every sparsity (``shares``: sparsity -> kind -> share,
    from ``dead_shares``), and whether, at 0.9 or the first sparsity, the contribution
    pathways hold none while DGR (init U) does (the paper's contrast). A kind is "without" dead
    neurons only at a share of exactly zero; up to 1% it holds "almost none", shown with its
    share. ``active_kept`` is the mean fraction of neurons the active sub-network keeps."""
    sparsities = list(shares)
    rows = [
        f"at sparsity {s}: " + ", ".join(f"{k} {pct(v)}" for k, v in shares[s].items())
        for s in sparsities
    ]
    s = 0.9 if 0.9 in sparsities else sparsities[0]
    at = shares[s]
    # "without" means exactly none; a share up to 1% is "almost none" and shows its share
    with_dead = [k for k in at if at[k] > 0.01]
    almost_none = [k for k in at if 0 < at[k] <= 0.01]
    without = [k for k in at if at[k] == 0]
    contribution_clean = all(at[k] == 0 for k in CONTRIBUTION)
    groups = [f"pathways with dead neurons: {', '.join(with_dead) or 'none'}"]
    if almost_none:
        groups.append(
            "almost none: "
            + ", ".join(f"{k} ({pct(at[k], _nonzero_digits(at[k]))})" for k in almost_none)
        )
    if without:
        groups.append(f"without: {', '.join(without)}")
    verdict = "; ".join(groups) + ". "
    if contribution_clean and "DGR (init U)" in with_dead:
        dgr, chance = at["DGR (init U)"], at["Random"]
        versus = (
            "about as many as"
            if abs(dgr - chance) <= 0.05
            else ("fewer than" if dgr < chance else "more than")
        )
        verdict += (
            f"DGR (init U) keeps {pct(dgr)} dead neurons, {versus} random removal "
            f"({pct(chance)}) and far from the contribution pathways' none (a dead neuron's gate "
            "gets no gradient from the output, only the L1 pull, which lowers every such gate "
            "alike, so those kept are the ones that started highest), which agrees with the "
            "paper's point that the pruning objective does not avoid them"
        )
        if "DGR (init 1)" in without + almost_none:
            verdict += (
                f"; DGR (init 1) keeps {'none' if at['DGR (init 1)'] == 0 else 'almost none'}, "
                "because its dead gates tie and are removed together (see above)"
            )
        verdict += "."
    else:
        verdict += "This does **not** show the paper's contrast."
    return (
        f"{label}: {pct(1 - active_kept)} of all neurons are dead on average (so the active "
        f"sub-network keeps {pct(active_kept)}). Dead share of each pathway "
        + "; ".join(rows)
        + f". At sparsity {s}, {verdict} Greedy keeps dead neurons by its rule of putting back "
        "every zero-score neuron."
    )


def preservation_figure(
    preservation: Mapping[str, Mapping[float, tuple[pruning.Preservation, float]]],
    active: pruning.Preservation,
    active_removed: float,
    title: str,
) -> Figure:
    """Share of inputs whose prediction each kind keeps (left) and the median relative change
    of p(class) (right), against the fraction of neurons actually removed; a cross for the
    active sub-network. ``preservation`` is ``kinds.Comparison.preservation``."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for kind, by_sparsity in preservation.items():
        removed = [removed for _, removed in by_sparsity.values()]
        results = [result for result, _ in by_sparsity.values()]
        style = {"marker": "o", "color": COLOURS[kind], "label": kind}
        ax_a.plot(removed, [float(r.prediction_kept.float().mean()) for r in results], **style)
        ax_b.plot(removed, [float(r.relative_change.median()) for r in results], **style)
    kept = float(active.prediction_kept.float().mean())
    ax_a.plot(active_removed, kept, "kx", ms=9, label="active sub-network")
    ax_b.plot(active_removed, float(active.relative_change.median()), "kx", ms=9)
    ax_a.set_ylabel("share of inputs with the prediction kept")
    ax_b.set_ylabel("median relative change of p(class)")
    ax_b.set_yscale("symlog", linthresh=1e-3)
    for ax in (ax_a, ax_b):
        ax.set_xlabel("fraction of neurons actually removed")
    ax_a.legend(fontsize=7)
    fig.suptitle(title)
    return fig


def preservation_summary(
    preservation: Mapping[str, Mapping[float, tuple[pruning.Preservation, float]]],
    matrices: Mapping[float, np.ndarray],
    label: str,
    s: float = 0.9,
) -> str:
    """Which kinds keep the prediction for at least 90% of the inputs at ``s``, and whether a
    contribution pathway and a pathway of another kind that shares less than half its neurons
    with it both do (then meeting the pruning objective does not single out the critical
    neurons). ``matrices`` are ``iou_matrices`` in ``COMPARED`` order; Greedy is left out."""
    kinds = list(preservation)
    hits = {k: int(preservation[k][s][0].prediction_kept.sum()) for k in kinds}
    n = len(preservation[kinds[0]][s][0].prediction_kept)
    kept = {k: hits[k] / n for k in kinds}
    meeting = [k for k in kinds if kept[k] >= 0.9 and k != "Greedy"]  # Greedy: far less sparse
    need = math.ceil(0.9 * n - 1e-9)  # inputs that make 90%
    if n == 1:
        most = "on the one input"
    elif n < SMALL:
        most = f"on all {n} inputs" if need == n else f"on at least {need} of the {n} inputs"
    else:
        most = "for at least 90% of the inputs"
    m = matrices[s]
    index = {k: COMPARED.index(k) for k in kinds}
    distinct = [
        (a, b)
        for a in meeting
        for b in meeting
        if index[a] < index[b]
        and m[index[a], index[b]] < 0.5
        and (a in CONTRIBUTION) != (b in CONTRIBUTION)
    ]
    text = (
        f"{label}, sparsity {s}: the prediction is kept by "
        + ", ".join(f"{k} {_share(hits[k], n)}" for k in kinds)
        + ". "
    )
    if distinct:
        change = {k: float(preservation[k][s][0].relative_change.double().median()) for k in kinds}
        pairs = ", ".join(
            f"{a} and {b} (Jaccard {m[index[a], index[b]]:.2f}; median relative change of "
            f"p(class) {change[a]:.2f} and {change[b]:.2f})"
            for a, b in distinct
        )
        text += (
            f"A contribution pathway and another kind that share less than half their "
            f"neurons both keep the predicted class {most}: {pairs}. Keeping the predicted "
            "class, the weakest form of the pruning objective (the official code also "
            "reports the change of p(class)), does not single out the critical neurons, as "
            "the paper argues"
            + (
                f" (with {count(n, 'input')}: an illustration of the argument, not a measurement)."
                if n < SMALL
                else "."
            )
        )
    else:
        text += (
            "No pathway of another kind that differs much from a contribution pathway keeps "
            f"the prediction {most} here, so this figure does not illustrate the paper's "
            "argument at this sparsity."
        )
    return text


def image_rows_figure(
    inputs: Tensor,
    panels: Sequence[Tensor],
    titles: Sequence[str],
    to_display: Callable[[Tensor], np.ndarray],
    size: float,
    cmap: str = "gray",
    panel_display: Callable[[Tensor], np.ndarray] | None = None,
) -> Figure:
    """One row per input: the input, then one panel per kind (``panels[j][i]``, kind ``j`` of
    input ``i``); ``titles`` name the columns. ``to_display`` turns an input into an image, and
    a panel too unless ``panel_display`` is given."""
    panel_display = panel_display or to_display
    images = []
    for i in range(len(inputs)):
        images.append(to_display(inputs[i]))
        images.extend(panel_display(panels[j][i]) for j in range(len(titles) - 1))
    return plotting.image_grid(
        np.stack(images),
        titles=list(titles) + [""] * (len(images) - len(titles)),
        ncols=len(titles),
        size=size,
        cmap=cmap,
    )


def recognised_sentence(
    label: str, recognised: Tensor, kinds: Sequence[str], note: str | None = None
) -> str:
    """The share of decoded inputs the whole network assigns to the target, per kind
    (``recognised``: kinds x inputs, as ``kinds.decode_kinds`` returns it), as counts below
    :data:`SMALL` inputs. When no pathway's decoded image is recognised, the active sub-network's
    (``kinds.ACTIVE``) included, a second sentence says that the ascent budget (``note``, e.g.
    "48 ascent steps") decoded nothing here, so the test cannot tell the kinds apart."""
    n = recognised.shape[1]
    hits = [int(recognised[j].sum()) for j in range(len(kinds))]
    what = "share of decoded images" if n >= SMALL else f"decoded images (of {count(n, 'input')})"
    text = (
        f"{label}: {what} that the whole network assigns to the target class: "
        + ", ".join(f"{k} {_share(h, n)}" for k, h in zip(kinds, hits, strict=True))
        + (f" ({note})" if note else "")
        + "."
    )
    pathways = [h for k, h in zip(kinds, hits, strict=True) if k != WHOLE]
    if any(pathways):
        text += _decode_separation(dict(zip(kinds, hits, strict=True)), n)
    if ACTIVE in kinds and pathways and not any(pathways):
        whole = dict(zip(kinds, hits, strict=True)).get(WHOLE)
        who = (
            "No decoded image is recognised, not even the whole network's"
            if whole == 0
            else "No pathway's decoded image is recognised"
            + (" (only the whole network's is)" if whole else "")
            + ", not even the active sub-network's, which keeps every active neuron"
        )
        budget = f" ({note})" if note else ""
        text += (
            f" {who}: this run cannot tell the kinds apart. Its ascent budget{budget} may be "
            "too small for a pathway, and a pathway whose gradient is zero everywhere cannot "
            "be decoded at all, whatever the budget."
        )
    return text


PRUNING_KINDS = ("DGR (init 1)", "DGR (init U)")
"""The pathways of the pruning objective, which the paper expects to decode less of the input."""


def _decode_separation(hits: Mapping[str, int], n: int) -> str:
    """Whether the decoded images of every contribution pathway are recognised more often than
    those of every pruning pathway (the paper's expectation), the reverse, or neither."""
    ours = {k: hits[k] for k in CONTRIBUTION if k in hits}
    theirs = {k: hits[k] for k in PRUNING_KINDS if k in hits}
    if not ours or not theirs:
        return ""
    if min(ours.values()) > max(theirs.values()):
        return (
            " As the paper expects, every contribution pathway's decoded images are recognised "
            "more often than any pruning pathway's."
        )
    if max(ours.values()) < min(theirs.values()):
        return (
            " Unlike the paper's expectation, every pruning pathway's decoded images are "
            "recognised more often than any contribution pathway's."
        )
    level = [k for k in theirs if theirs[k] >= min(ours.values())]
    behind = [k for k in theirs if k not in level]
    shown = ", ".join(f"{k} {_share(theirs[k], n)}" for k in level)
    return (
        f" This run does not separate the two as the paper expects: {shown} "
        f"{'is' if len(level) == 1 else 'are'} recognised at least as often as a contribution "
        f"pathway (the lowest, {_share(min(ours.values()), n)})"
        + (
            f", while {', '.join(f'{k} {_share(theirs[k], n)}' for k in behind)} "
            f"{'falls' if len(behind) == 1 else 'fall'} behind both."
            if behind
            else "."
        )
    )


def gradient_display(grey: bool = False) -> Callable[[Tensor], np.ndarray]:
    """A function that turns one input gradient into an image: per pixel the signed channel
    value of largest magnitude, its absolute value capped at the ``plotting.CAP_PERCENTILE``
    percentile of the map's non-zero magnitudes (the official display divides by the maximum,
    which leaves sparse maps black); ``grey`` repeats it into RGB (so no colour map applies)."""

    def display(map_: Tensor) -> np.ndarray:
        shown = plotting.saliency_to_display(map_[None], cap_percentile=plotting.CAP_PERCENTILE)
        return np.repeat(shown[0][..., None], 3, axis=2) if grey else shown[0]

    return display


def input_bounds(normalisation: Any) -> tuple[float, float]:
    """The range ``(low, high)`` of normalised images: pixels 0 and 1 mapped through
    ``normalisation`` (an ``images.Normalisation``). ``pruning.decode_pathway`` takes one range
    for all channels, so this is the overall minimum and maximum over the channels: with
    EfficientNet-Lite0's ``(x - 0.5) / 0.5`` exactly (-1, 1); with torchvision's ImageNet
    statistics about (-2.12, 2.64), which lets a channel leave its own range a little (the
    display clips it)."""
    mean, std = np.asarray(normalisation.mean, float), np.asarray(normalisation.std, float)
    if mean.shape != std.shape or not bool((std > 0).all()):
        raise ValueError(f"expected per-channel means and positive stds, got {normalisation!r}.")
    return float(np.min((0.0 - mean) / std)), float(np.max((1.0 - mean) / std))


def has_relu6(model: nn.Module) -> bool:
    """Whether ``model`` has ReLU6 units (EfficientNet-Lite0 has; VGG and ResNet have not)."""
    return any(isinstance(m, nn.ReLU6) for m in model.modules())


def relu6_note(model: nn.Module, title: str) -> str:
    """The limitation bullet about ReLU6 saturation, or one sentence that it does not apply."""
    if has_relu6(model):
        return (
            f"- {title} uses ReLU6. A saturated unit ($a = 6$) passes no gradient, but its Taylor "
            r"score on the output, $6\,\lvert \partial y/\partial a \rvert$, is not zero: it can "
            "be selected even though the pathway gradient does not flow through it."
        )
    return f"- {title} has no ReLU6 units: no kept active neuron saturates and blocks the gradient."


def setting_note(title: str, n_images: int, bundled: bool) -> str:
    """The limitation bullet about the photo setting: the paper's (VGG-16 on 1,000 ImageNet
    validation images) against what ran (``bundled``: the photographs shipped offline)."""
    if bundled:
        where = (
            "ImageNet is not available offline, so this run uses a small CNN on real digits and "
            f"{title} on {count(n_images, 'bundled photograph')}"
        )
    else:
        where = (
            f"this run uses the MNIST CNN and {title} on {count(n_images, 'image')} from an "
            "ImageNet-style folder"
        )
    return (
        f"- The official analysis used VGG-16 on 1,000 ImageNet validation images; {where}. The "
        "figure numbers of the paper could not be checked (its full text was not available to "
        "us); the comparison is with the official code's plots."
    )
