"""Tables, sliders, figures and sentences about attribution maps themselves: which methods there
are, how concentrated their maps are, how a pathway gradient changes with the sparsity, and how
many of a ReLU6 pathway's neurons are saturated (the attribution-maps chapter)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import methods
from ..plotting import CAP_PERCENTILE, saliency_to_display, scrubber
from .text import markdown_table, pct


def share_text(fraction: float) -> str:
    """A share as a percentage with at least two significant digits, so that a small share does
    not read as none: 0.217 -> "21.7%", 0.0051 -> "0.51%", 0.00002 -> "0.0020%", 0 -> "0%"."""
    percent = 100 * float(fraction)
    if percent == 0:
        return "0%"
    rounded = float(f"{percent:.2g}")  # 0.00997 -> 0.01: two digits, not "0.0100"
    return pct(fraction, max(1, 1 - math.floor(math.log10(abs(rounded)))))


def digits_phrase(classes: Sequence[int]) -> str:
    """The MNIST digits a chapter draws, from their classes (``data.interleaved_by_class`` order):
    "one test digit per class" for the ten classes once each, "4 test digits, one each of classes
    0 to 3" for fewer, and how many of each class otherwise."""
    classes = [int(c) for c in classes]
    n, kinds = len(classes), sorted(set(classes))
    if not classes:
        raise ValueError("no digits drawn; give at least one class.")
    if kinds == list(range(kinds[0], kinds[-1] + 1)) and len(kinds) > 2:
        span = f"classes {kinds[0]} to {kinds[-1]}"
    else:
        span = ("class " if len(kinds) == 1 else "classes ") + ", ".join(map(str, kinds))
    if n == len(kinds):
        if kinds == list(range(10)):
            return "one test digit per class"
        return f"one test digit of {span}" if n == 1 else f"{n} test digits, one each of {span}"
    counts = [classes.count(c) for c in kinds]
    return f"{n} test digits, {min(counts)} to {max(counts)} of each of {span}"


def methods_table(names: Sequence[str] | None = None) -> str:
    """The registry's methods: name, name in the paper, family and what each computes."""
    chosen = methods.names() if names is None else list(names)
    rows = [
        [n, m.paper_name or "(not in the paper)", m.family, m.description]
        for n, m in ((n, methods.METHODS[n]) for n in chosen)
    ]
    return markdown_table(["method", "name in the paper", "family", "what it computes"], rows)


def half_mass_share(maps: Any) -> float:
    """The share of pixels that hold half of a map's total magnitude (as displayed: the channel
    value of largest magnitude per pixel), averaged over the maps; smaller is more concentrated.
    A map spread evenly scores about 0.5, a single bright pixel ``1 / pixels``."""
    shown = torch.as_tensor(saliency_to_display(maps)).flatten(1)
    ordered = shown.sort(dim=1, descending=True).values
    cumulative = ordered.cumsum(dim=1) / ordered.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return float(((cumulative < 0.5).sum(dim=1) + 1).double().mean() / shown.shape[1])


def maps_summary_table(
    seconds: Mapping[str, Mapping[str, float]], maps: Mapping[str, Mapping[str, Any]]
) -> str:
    """Per method: its name in the paper, milliseconds per input and half-mass pixel share for
    each set of inputs (``seconds`` and ``maps`` map a label, e.g. "digit", to method -> value)."""
    labels = list(seconds)
    header = ["method", "paper name"] + [f"ms per {label}" for label in labels]
    header += [f"half-mass pixel share, {label}s" for label in labels]
    rows = [
        [name, methods.METHODS[name].paper_name or "-"]
        + [f"{1000 * seconds[label][name]:.0f}" for label in labels]
        + [f"{half_mass_share(maps[label][name]):.3f}" for label in labels]
        for name in seconds[labels[0]]
    ]
    return markdown_table(header, rows)


def sweep_scrubber(sweep: Mapping[str, Sequence[Any]], sparsities: Sequence[float]):
    """A slider over the sparsities: at each, the maps of every criterion in ``sweep``
    (criterion -> one map per sparsity) side by side, left to right."""
    frames = [
        np.concatenate(
            [saliency_to_display(sweep[c][i], cap_percentile=CAP_PERCENTILE)[0] for c in sweep],
            axis=1,
        )
        for i in range(len(sparsities))
    ]
    names = list(sweep)
    sides = (
        f"{names[0]} (left), {names[1]} (right)"
        if len(names) == 2
        else ", ".join(names) + " (left to right)"
    )
    labels = [f"sparsity {s}: {sides}" for s in sparsities]
    return scrubber(frames, labels, cmap="inferno", size=5.0)


def sparsity_table(changes: Mapping[str, Sequence[float]], sparsities: Sequence[float]) -> str:
    """The rank correlation of each criterion's map at each sparsity with the plain gradient's."""
    rows = [[c] + [f"{v:.2f}" for v in values] for c, values in changes.items()]
    return markdown_table(["sparsity"] + [f"{s}" for s in sparsities], rows)


def sparsity_verdict(
    name: str, sparsity: float, correlation: float, shares: Sequence[float]
) -> str:
    """How much the pathway reshapes ``name``'s map at the largest ``sparsity`` (its rank
    correlation with the plain gradient) and whether the map concentrates as sparsity grows
    (``shares``: the half-mass pixel share at each sparsity, smallest sparsity first)."""
    reshaped = (
        "changes the map substantially" if correlation < 0.5 else "reshapes the map only partly"
    )
    concentrates = (
        "concentrates on fewer pixels as sparsity grows."
        if shares[-1] < shares[0]
        else "does not concentrate."
    )
    return (
        f"At sparsity {sparsity} the {name} map keeps a rank correlation of {correlation:.2f} "
        f"with the plain gradient: the pathway {reshaped}. Half of the map's magnitude lies in "
        + ", ".join(share_text(v) for v in shares)
        + f" of the pixels at these sparsities: the map {concentrates}"
    )


def relu6_units(model: torch.nn.Module) -> int:
    """How many ``nn.ReLU6`` modules ``model`` holds (0: no unit of it saturates, and the ReLU6
    caveat does not apply)."""
    return sum(isinstance(m, torch.nn.ReLU6) for m in model.modules())


def no_relu6_sentence(title: str) -> str:
    """What the ReLU6 section says about a classifier without ReLU6 units."""
    return (
        f"{title} has no ReLU6 units: none of its neurons saturates, so every neuron of its "
        "pathways can pass gradient to the input and this caveat does not apply to it (run the "
        'chapter with `model = "efficientnet_lite0"` to see it).'
    )


def saturation_figure(per_site: Sequence[tuple[str, float, float]]):
    """Per site (``(name, share of the pathway's neurons saturated, share of all)``), the two
    shares as lines; about a dozen site names label the x-axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.plot([p[1] for p in per_site], marker=".", label="share of the pathway's neurons saturated")
    ax.plot([p[2] for p in per_site], marker=".", label="share of all neurons saturated")
    ticks = range(0, len(per_site), max(1, len(per_site) // 12))
    ax.set_xticks(list(ticks), [per_site[i][0] for i in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("share saturated (a = 6)")
    ax.legend(fontsize=8)
    return fig


def saturation_verdict(
    label: str, kept: int, saturated_kept: int, mass_share: float, network_share: float
) -> str:
    """How many of a pathway's ``kept`` neurons are saturated, the share of its contribution they
    carry, and whether contribution ranking picks saturated units more often than the network
    holds them (``network_share``)."""
    if kept < 1:
        raise ValueError("the pathway keeps no neuron; choose a lower sparsity.")
    picks = "over-selects" if saturated_kept / kept > network_share else "does not over-select"
    return (
        f"On '{label}', {saturated_kept:,} of the {kept:,} neurons of the NeuronMCT pathway "
        f"({pct(saturated_kept / kept)}) are saturated; they carry {pct(mass_share)} of the "
        "pathway's total contribution and pass no gradient to the input. Across the whole "
        f"network {pct(network_share, 2)} of the units are saturated: contribution ranking "
        f"{picks} them."
    )
