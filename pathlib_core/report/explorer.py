"""Figures, tables and sentences of the explorer chapter's static half: sparsity sweeps of the
pathway methods over several inputs (``explorer.Explorer.sweep``), shown as one grid of maps,
the kept fraction per site and a table of the kept fraction overall (book/definitions.md,
"Selecting a pathway"). One view's own picture is ``explorer.draw``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import plotting
from ..explorer import Explorer, View
from .text import markdown_table

Sweeps = Mapping[tuple[str, str], Sequence[View]]
"""(input name, method label) -> the views at each sparsity of a sweep."""
UNEVEN = 3.0
"""A site keeping this many times the share of another counts as an uneven spread."""


def inputs_sentence(tool: Explorer) -> str:
    """Each input of the explorer with its predicted class and probability."""
    return (
        "Inputs: "
        + "; ".join(
            f"{name} (predicted *{tool.subjects[name].classes[i]}*, p = {p:.2f})"
            for name in tool.subjects
            for i, p in tool.top_classes(name, k=1)
        )
        + "."
    )


def sweep_grid(
    tool: Explorer,
    sweeps: Sweeps,
    names: Sequence[str],
    labels: Sequence[str],
    sparsities: Sequence[float],
    size: float,
):
    """One row per input and method: the input, then its map at each sparsity."""
    images, titles = [], []
    for name in names:
        for label in labels:
            picture = tool.subjects[name].picture
            images.append(picture if picture.ndim == 3 else plt.cm.gray(picture)[..., :3])
            images += [plt.cm.inferno(v.saliency)[..., :3] for v in sweeps[name, label]]
            titles += [f"{name}\n{label}"] + [f"s = {s}" for s in sparsities]
    return plotting.image_grid(
        np.stack(images), titles=titles, ncols=len(sparsities) + 1, size=size
    )


def kept_by_site_figure(sweeps: Sweeps, shown: Sequence[tuple[str, str]]):
    """For each ``(input, method)`` of ``shown``, one panel: each site's kept fraction (log
    scale, sites in forward order), one line per sparsity of the sweep."""
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 3.6), squeeze=False)
    for ax, (name, label) in zip(axes[0], shown, strict=True):
        views = sweeps[name, label]
        if views[0].kept is None:
            raise ValueError(f"{label} has no pathway; show a pathway method's sweep.")
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(views)))
        for view, colour in zip(views, colours, strict=True):
            ax.plot(
                list(view.kept.values()),
                marker=".",
                color=colour,
                label=f"s = {view.state.sparsity:g}",
            )
        sites = list(views[0].kept)
        step = max(1, len(sites) // 12)
        ax.set_xticks(
            range(0, len(sites), step), sites[::step], rotation=60, ha="right", fontsize=7
        )
        ax.set_yscale("log")
        ax.set_ylabel("fraction of the site's neurons kept")
        ax.set_title(f"{name}: {label}", fontsize=10)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def kept_table(sweeps: Sweeps, sparsities: Sequence[float]) -> str:
    """The share of neurons kept over all sites, one row per input and method."""
    header = ["input", "method", *(f"s = {s}" for s in sparsities)]
    rows = [
        [name, label, *(f"{100 * v.kept_overall:.2f}%" for v in views)]
        for (name, label), views in sweeps.items()
    ]
    return markdown_table(header, rows)


def spread_sentence(views: Sequence[View], name: str, label: str, near: float = 0.9) -> str:
    """At the sweep's sparsity nearest ``near``: the least and the most kept site, and whether
    one keeps more than :data:`UNEVEN` times the other's share."""
    view = min(views, key=lambda v: abs(v.state.sparsity - near))
    fractions = view.kept
    if fractions is None:
        raise ValueError(f"{label} has no pathway; describe a pathway method's sweep.")
    low, high = min(fractions, key=fractions.get), max(fractions, key=fractions.get)
    return (
        f"On {name} at sparsity {view.state.sparsity:g}, {label} keeps "
        f"{100 * fractions[low]:.2f}% of `{low}` and {100 * fractions[high]:.1f}% of `{high}`: "
        + (
            "the kept neurons are spread far from evenly over the depth."
            if fractions[high] > UNEVEN * fractions[low]
            else "the sites keep similar shares."
        )
    )


def _ranges(values: Sequence[float], sparsities: Sequence[float]) -> list[tuple[int, int]]:
    """Index ranges [i, j] (j > i) of consecutive sparsities above 0 with equal kept shares."""
    found, start = [], None
    for i in range(1, len(values)):
        same = i > 1 and np.isclose(values[i], values[i - 1], rtol=0.0, atol=1e-9)
        if same and start is None:
            start = i - 1
        if start is not None and (not same or i == len(values) - 1):
            found.append((start, i if same else i - 1))
            start = None
    return found


def unchanged_sentence(sweeps: Sweeps, sparsities: Sequence[float]) -> str:
    """How far the kept share falls below its bound ``1 - s`` (neurons that score exactly zero
    are never kept, ties at the threshold leave together) and which consecutive sparsities give
    one and the same pathway, so that their grid panels and slider frames repeat it."""
    steps = [
        (1 - s - v.kept_overall, name, label, s, v.kept_overall)
        for (name, label), views in sweeps.items()
        for s, v in zip(sparsities, views, strict=True)
        if s > 0 and v.kept_overall is not None
    ]
    if not steps:
        return "No sweep has a pathway above sparsity 0."
    gap, name, label, s, kept = max(steps)
    below = sum(step[0] > 0.01 for step in steps)
    text = (
        f"The kept share falls more than a point below its bound 1 − s in {below} of the "
        f"{len(steps)} steps above sparsity 0"
    )
    text += (
        f"; the widest gap: {name}, {label} keeps {100 * kept:.2f}% at s = {s:g} (bound "
        f"{100 * (1 - s):.0f}%), because neurons whose score (contribution or DGR gate) is "
        "exactly zero are never kept and neurons tied at the threshold leave together."
        if below
        else "."
    )
    plateaus = [
        (j - i, name, label, i, j, views[i].kept_overall)
        for (name, label), views in sweeps.items()
        if views[0].kept_overall is not None
        for i, j in _ranges([v.kept_overall for v in views], sparsities)
    ]
    if not plateaus:
        return text + " Every step of every sweep changes the pathway."
    width, name, label, i, j, kept = max(plateaus, key=lambda p: p[0])
    swept = {key for key in sweeps if sweeps[key][0].kept_overall is not None}
    return text + (
        f" In {len({(p[1], p[2]) for p in plateaus})} of the {len(swept)} sweeps, consecutive "
        "sparsities give the same pathway (the same kept share, so the same map and bars): a "
        "repeated value in a row of the table above is a repeated panel in the grid and frame in "
        f"the slider. The longest run: {name}, {label} keeps {100 * kept:.2f}% from "
        f"s = {sparsities[i]:g} to {sparsities[j]:g}."
    )
