"""Figures, tables and sentences of the local-linearity chapter.

The radii come from ``linearity.linear_radius`` (exact, book/definitions.md, "Local linearity")
and the profiles from ``linearity.linearity_profile``; the pathways from ``pathlib_core.kinds``
(kind -> sparsity -> pathway, the whole network as ``None``). The sentences choose their wording
from the numbers, so a result that contradicts the paper's argument says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..kinds import ACTIVE, COLOURS, WHOLE
from ..linearity import LinearityProfile, LinearRadius, _check_piecewise_linear
from ..pathway import Pathway
from ..sites import SITE_TYPES
from .text import markdown_table

Radii = Mapping[tuple[str, float], LinearRadius]
"""(kind, sparsity) -> exact radius of that pathway for every input."""
Paths = Mapping[str, Mapping[float, Pathway | None]]
"""kind -> sparsity -> pathway (``None``: the whole network), as ``kinds.by_kind``."""

_FLOOR = 1e-12  # radii of 0 are drawn here on a log scale


def median(values: Tensor | Sequence[float]) -> float:
    """The median as a float (float64, NaN-free inputs)."""
    return float(torch.as_tensor(values).double().median())


def share(fraction: float) -> str:
    """A fraction as a percentage with two significant digits (flip shares are tiny)."""
    return f"{100 * fraction:.2g}%"


def _removed(pathway: Pathway | None) -> float:
    return 0.0 if pathway is None else float(pathway.sparsity.mean())


def _most_often(names: Sequence[str], order: Sequence[str]) -> str:
    """The name that occurs most often; among ties, the first in ``order`` (forward order), so
    that the table does not depend on the order of a set."""
    return max(order, key=list(names).count)


FEW = 20
"""Below this many digits, shares are written as counts ("3 of 4 digits"), not percentages."""
_CHANCE = 0.02
"""A count of n out of n that chance alone reaches more often than this (0.5 ** n) is too few
digits for a verdict: the summary then says the verdict is a first look."""


def _of(mask: Tensor, noun: str | None = "digits") -> str:
    """How many entries of the boolean ``mask`` are true: a count below :data:`FEW` entries
    ("3 of 4 digits"), else a percentage ("75% of the digits"); ``None``: no noun."""
    n, k = mask.numel(), int(mask.sum())
    if n < FEW:
        return f"{k} of {n}" + (f" {noun}" if noun else "")
    return f"{k / n:.0%}" + (f" of the {noun}" if noun else "")


def radius_table(radii: Radii, paths: Paths, neurons_only: bool = False) -> str:
    """Markdown: per pathway the fraction removed, the median radius, how many inputs have
    radius 0 (a count below :data:`FEW` inputs, else a percentage) and the constraint that binds
    most often (the earliest among ties); ``neurons_only`` ignores max-pooling (which then is not
    a linearity radius of the network, but isolates the neurons)."""
    rows = []
    for (kind, s), result in radii.items():
        if neurons_only:
            value = result.neuron_radius
            names = [n for n, k in result.kinds.items() if k != "pool"]
            stacked = torch.stack([result.by_constraint[n] for n in names], 1).argmin(1)
            binding = _most_often([names[i] for i in stacked.tolist()], names)
        else:
            value = result.radius
            binding = _most_often(result.binding, list(result.by_constraint))
        zero = _of(value == 0, None)
        rows.append(
            [kind, s, f"{_removed(paths[kind][s]):.3f}", f"{median(value):.3g}", zero, binding]
        )
    header = ["pathway", "sparsity", "actually removed", "median radius"]
    header += ["inputs with radius 0", "binding constraint (most often)"]
    title = (
        "**Exact radius, neuron kinks only** (max-pooling switches ignored, so this is not a "
        "linearity radius of this network; it isolates what the neurons contribute):"
        if neurons_only
        else "**Exact radius, all constraints** (neurons and max-pooling):"
    )
    return title + "\n\n" + markdown_table(header, rows)


def radius_figure(
    radii: Radii, paths: Paths, kinds: Sequence[str], sparsities: Sequence[float], title: str
) -> Figure:
    """Median exact radius against the fraction removed, per kind (lines) and for the whole
    network and the active sub-network (crosses); all constraints left, neuron kinks right."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    panels = zip(
        axes, ["radius", "neuron_radius"], ["all constraints", "neuron kinks only"], strict=True
    )
    for ax, attribute, panel_title in panels:
        for kind in kinds:
            xs = [_removed(paths[kind][s]) for s in sparsities]
            ys = [max(median(getattr(radii[kind, s], attribute)), _FLOOR) for s in sparsities]
            ax.plot(xs, ys, marker="o", color=COLOURS[kind], label=kind)
        for kind in (WHOLE, ACTIVE):
            y = max(median(getattr(radii[kind, 0.0], attribute)), _FLOOR)
            x = _removed(paths[kind][0.0])
            ax.plot(x, y, marker="X", ms=9, ls="", color=COLOURS[kind], label=kind)
        ax.set_yscale("log")
        ax.set_xlabel("fraction of neurons removed")
        ax.set_title(panel_title)
    axes[0].set_ylabel("median exact radius (L2, input space)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def _mostly(mask: Tensor) -> bool:
    return float(mask.double().mean()) > 0.5


EVEN = (0.35, 0.65)
"""A share of inputs between these bounds on which one pathway beats another is called about
even (with 32 inputs, 12 to 20 of them)."""


def _side(mask: Tensor) -> str:
    """'larger', 'even' or 'smaller': how often the first pathway wins, against :data:`EVEN`."""
    share = float(mask.double().mean())
    return "larger" if share > EVEN[1] else "smaller" if share < EVEN[0] else "even"


LEVEL = 1.5
"""Two median radii within this factor of each other are called level in the sparsity sweep."""


def _across(radii: Radii, kind: str, other: str) -> str:
    """At which sparsities of the sweep ``kind``'s median neuron-kink radius is the larger one,
    at which ``other``'s (and by how much, smallest to largest factor), and at which the two
    are within ``LEVEL`` times of each other."""
    shared = sorted(t for k, t in radii if k == kind and (other, t) in radii)
    ratio = {
        t: median(radii[other, t].neuron_radius) / max(median(radii[kind, t].neuron_radius), 1e-30)
        for t in shared
    }
    if len(shared) < 2:
        return ""
    behind = [t for t in shared if ratio[t] > LEVEL]
    ahead = [t for t in shared if ratio[t] < 1 / LEVEL]
    level = [t for t in shared if t not in behind and t not in ahead]
    if not behind and not level:
        return f" {kind}'s median radius is the larger at every sparsity swept ({_list(shared)})."
    factors = sorted({f"{ratio[t]:.2g}" for t in behind}, key=float)
    by = (
        f" (by {factors[0]} to {factors[-1]} times)"
        if len(factors) > 1
        else (f" (by {factors[0]} times)" if factors else "")
    )
    parts = [
        f"{kind}'s median radius is the larger at "
        + (f"sparsity {_list(ahead)}" if ahead else "no sparsity"),
        f"{other}'s at {_list(behind)}{by}" if behind else f"{other}'s at none",
    ]
    if level:
        parts.append(f"the two are within {LEVEL:g} times of each other at {_list(level)}")
    return (
        " Over the sparsities swept, "
        + " and ".join(parts[:2])
        + "".join(f"; {p}" for p in parts[2:])
        + "."
    )


def _list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def radius_summary(radii: Radii, s: float) -> str:
    """At sparsity ``s``, neuron kinks only: for how many digits the NeuronMCT pathway is linear
    on a larger ball than the whole network, a random pathway of the same sparsity and DGR
    (init 1), and what that says about the paper's argument; and how often max-pooling puts
    the whole network on a kink.

    The verdict separates three explanations of a larger ball: sparsity itself (a random
    pathway of the same sparsity does as well), removing unimportant neurons by any criterion
    (the random pathway does worse, the pruning objective as well or better) and the
    contribution criterion in particular (NeuronMCT beats both)."""
    mct = radii["NeuronMCT", s].neuron_radius
    whole = radii[WHOLE, 0.0].neuron_radius
    rnd = radii["Random", s].neuron_radius
    dgr = radii["DGR (init 1)", s].neuron_radius
    on_kink = radii[WHOLE, 0.0].radius == 0
    over_whole, over_random = _mostly(mct > whole), _mostly(mct > rnd)
    versus_dgr = _side(mct > dgr)
    numbers = (
        f"Neuron kinks only, sparsity {s}: the NeuronMCT pathway's radius is larger than the "
        f"whole network's for {_of(mct > whole)} (median {median(mct):.3g} against "
        f"{median(whole):.3g}), larger than the random pathway's of the same sparsity for "
        f"{_of(mct > rnd)} (median {median(rnd):.3g}) and larger than the pruning objective's "
        f"for {_of(mct > dgr)} (median {median(dgr):.3g}). With max-pooling included, the whole "
        f"network has radius 0 for {_of(on_kink)}: equal values in a pooling window put the "
        f"input on a kink; the NeuronMCT pathway has radius 0 for "
        f"{_of(radii['NeuronMCT', s].radius == 0)} and the random pathway for "
        f"{_of(radii['Random', s].radius == 0)}. "
    )
    whole_clause = (
        "than the whole network and "
        if over_whole
        else "(though not consistently than the whole network) "
    )
    if over_random and versus_dgr == "larger":
        verdict = (
            f"The contribution pathway is linear on a larger ball {whole_clause}than both a "
            "random pathway of the same sparsity and the pruning objective's pathway, as the "
            "paper's argument predicts: the contribution criterion itself widens the ball."
        )
    elif over_random:
        verdict = (
            f"The contribution pathway is linear on a larger ball {whole_clause}than a random "
            "pathway of the same sparsity, so which neurons are removed matters, not only how "
            "many; "
            + (
                "against the pruning objective's pathway, which removes neurons by a different "
                "criterion, it is about even at this sparsity"
                if versus_dgr == "even"
                else "but the pruning objective's pathway, which removes neurons by a different "
                "criterion, is linear on the larger ball"
            )
            + ". The gain comes from removing unimportant neurons, by either criterion, not from "
            "the contribution criterion in particular."
        )
    else:
        verdict = (
            "The contribution pathway is **not** consistently linear on a larger ball than a "
            "random pathway of the same sparsity"
            + (
                ", although it is than the whole network: the gain comes with sparsity itself, "
                "not with which neurons are removed"
                if over_whole
                else " or than the whole network: the paper's argument is not borne out here"
            )
            + (
                " (its radius does exceed the pruning objective's pathway's)."
                if versus_dgr == "larger"
                else "."
            )
        )
    verdict += _across(radii, "NeuronMCT", "DGR (init 1)")
    n = mct.numel()
    caveat = (
        f" These are {n} digits: even {n} of {n} happens by chance once in {2**n} if neither "
        "pathway tends to be larger, so this verdict is a first look (`n_radius` sets the "
        "number of digits)."
        if 0.5**n > _CHANCE
        else ""
    )
    return numbers + verdict + caveat


def probe_table(fractions: Sequence[float], errors: np.ndarray, flips: np.ndarray) -> str:
    """Markdown: at each distance (a multiple of each input's own radius), the largest relative
    first-order error and the largest share of kept neurons flipped over the inputs
    (``errors``, ``flips``: inputs x fractions, NaN for inputs with radius 0)."""
    worst = lambda values: [f"{np.nanmax(values[:, i]):.1e}" for i in range(len(fractions))]  # noqa: E731
    return markdown_table(
        ["distance / radius", *(f"{f:g}" for f in fractions)],
        [
            ["largest relative error", *worst(errors)],
            ["largest share of kept neurons flipped", *worst(flips)],
        ],
    )


def probe_summary(
    fractions: Sequence[float], errors: np.ndarray, flips: np.ndarray, roundoff: float
) -> str:
    """Whether the first-order prediction is exact inside the radius (fractions below 1: errors
    at the test's own round-off and no kept neuron flipped, as the proposition says), still at
    twice the radius, and whether errors appear beyond it."""
    fractions = np.asarray(fractions, dtype=float)
    inside_cols, beyond_cols = fractions < 1, fractions > 2
    inside = float(np.nanmax(errors[:, inside_cols]))
    no_flips_inside = bool(np.nanmax(flips[:, inside_cols]) == 0)
    twice = fractions == 2
    exact_at_twice = bool(twice.any()) and bool(
        np.nanmax(errors[:, twice]) <= 10 * max(inside, roundoff)
    )
    far = bool(beyond_cols.any()) and bool(np.nanmax(errors[:, beyond_cols]) > 100 * inside)
    at_roundoff = inside <= 10 * roundoff
    return (
        f"Inside the radius the largest error is {inside:.1e}"
        + (
            ", of the order of the round-off of the test itself (the cancellation in "
            f"$f(x + \\delta) - f(x)$ alone is about {roundoff:.1e} here). "
            if at_roundoff
            else f", **more than ten times the test's own round-off** (about {roundoff:.1e}): "
            "the first-order prediction is not exact inside the radius, which contradicts the "
            "proposition. "
        )
        + (
            "No kept neuron changes state. "
            if no_flips_inside
            else "**Some kept neurons change state inside the radius, which contradicts the "
            "proposition.** "
        )
        + (
            "At twice the radius the directions tried are still exact: the radius is a "
            "guarantee over all directions, not the distance at which a typical direction "
            "leaves the region. "
            if exact_at_twice
            else ""
        )
        + (
            "Further out, errors and state changes appear."
            if far
            else "Even far beyond it the directions tried stay nearly linear."
        )
    )


def _visible(errors: Tensor, roundoff: Tensor) -> Tensor:
    """Median errors, NaN where they are within 10x of the round-off level (not drawn)."""
    median_error = errors.median(dim=0).values
    return torch.where(median_error > 10 * roundoff.median(dim=0).values, median_error, np.nan)


def profile_figure(
    profiles: Mapping[str, LinearityProfile],
    radii: Sequence[float],
    title: str,
    marker: float | None = None,
) -> Figure:
    """Median relative first-order error (left) and mean share of kept neurons flipped (right)
    against the distance, along random directions (solid) and the gradient (dashed), per kind;
    errors within 10x of round-off are not drawn. ``marker`` draws a vertical line there."""
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    for kind, profile in profiles.items():
        colour = COLOURS[kind]
        random_error = profile.relative_error[:, :, :-1].median(dim=2).values
        ax_e.plot(
            radii,
            _visible(random_error, profile.roundoff),
            color=colour,
            marker=".",
            label=f"{kind}, random",
        )
        ax_e.plot(
            radii,
            _visible(profile.relative_error[:, :, -1], profile.roundoff),
            color=colour,
            ls="--",
            label=f"{kind}, gradient",
        )
        for flipped, style in (
            (profile.flipped[:, :, :-1].mean(dim=(0, 2)), {"marker": "."}),
            (profile.flipped[:, :, -1].mean(dim=0), {"ls": "--"}),
        ):  # no flip is not drawn: a log axis would show it as a plunge
            ax_f.plot(radii, torch.where(flipped > 0, flipped, np.nan), color=colour, **style)
    for ax in (ax_e, ax_f):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("distance r from the input (L2)")
        if marker is not None:
            ax.axvline(marker, color="tab:blue", lw=0.8, ls=":")
    ax_e.set_ylabel("median relative first-order error")
    ax_f.set_ylabel("mean share of kept neurons flipped")
    fig.legend(fontsize=7, ncol=len(profiles), loc="outside lower center")  # off the data
    fig.suptitle(title)
    return fig


def profile_summary(
    profiles: Mapping[str, LinearityProfile], radii: Sequence[float], label: str, r_probe: float
) -> str:
    """At the profile distance nearest ``r_probe``: the kinds ordered by median error along
    random directions, how strongly each restricted network responds to its input and how many
    kept neurons flip; and, when the most linear pathway is not a contribution pathway, whether
    it is simply the one that responds least."""
    i = int(np.argmin(np.abs(np.array(radii) - r_probe)))
    errs = {k: median(p.relative_error[:, i, :-1]) for k, p in profiles.items()}
    floors = {k: median(p.roundoff[:, i]) for k, p in profiles.items()}
    ordered = sorted(errs, key=errs.get)
    paragraphs = [
        f"{label}, at r = {radii[i]:g} along random directions, median relative error: "
        + ", ".join(f"{k} {errs[k]:.1e} (round-off {floors[k]:.0e})" for k in ordered)
        + f". Most linear: {ordered[0]}."
    ]
    norms = {k: median(p.gradient_norm) for k, p in profiles.items()}
    flips = {k: float(p.flipped[:, i, :-1].mean()) for k, p in profiles.items()}
    paragraphs.append(
        f"{label}, how strongly each restricted network responds to its input (median input-"
        "gradient norm) and how many of its kept neurons change state at that distance: "
        + ", ".join(f"{k} {norms[k]:.2g} ({share(flips[k])} flipped)" for k in profiles)
        + "."
    )
    pathways_only = [k for k in profiles if k != WHOLE]
    best = min(pathways_only, key=errs.get)
    if best not in ("NeuronMCT", "NeuronIntGrad") and "NeuronMCT" in norms:
        weakest = min(pathways_only, key=norms.get)
        ratio = (
            f"{norms['NeuronMCT'] / norms[best]:.2g} times below NeuronMCT's"
            if norms[best] > 0
            else "zero"
        )
        paragraphs.append(
            f"{label}: the most linear pathway is {best}, not a contribution pathway. "
            + (
                f"It is also the one that responds least to its input (gradient norm {ratio}), "
                f"with {share(flips[best])} of its kept neurons flipped against "
                f"{share(flips['NeuronMCT'])}. The two go together here; whether a pathway that "
                "nearly cuts the input off is linear says nothing of whether it carries the "
                "prediction (the comparison chapter measures that)."
                if weakest == best
                else f"Its gradient norm is not the smallest ({weakest}'s is), so it is not just "
                "the pathway that responds least."
            )
        )
    return "\n\n".join(paragraphs)


def _smooth_nonlinearities(model: nn.Module) -> list[str]:
    """Class names of the modules of ``model`` that are not piecewise linear (GELU, SiLU, ...)."""
    from ..sites import _NOT_PIECEWISE_LINEAR, _NOT_PIECEWISE_LINEAR_NAMES

    return sorted(
        {
            type(m).__name__
            for m in model.modules()
            if isinstance(m, _NOT_PIECEWISE_LINEAR)
            or type(m).__name__.lower() in _NOT_PIECEWISE_LINEAR_NAMES
        }
    )


def model_note(model: nn.Module, title: str, n_inputs: int) -> tuple[bool, str]:
    """Whether the chapter can analyse the image classifier ``model`` at all, and one paragraph
    saying what applies to it (``n_inputs`` values per image).

    Pathways are made of ReLU/ReLU6 outputs: a model without them cannot be analysed (``False``).
    The proposition needs every nonlinearity piecewise linear; ``linearity.linear_radius`` also
    needs non-overlapping max pooling (VGG-16 and EfficientNet-Lite0 meet both; ResNet's first
    max pooling overlaps) and costs ``n_inputs`` forward passes per image, so for images the
    chapter only probes along directions (``linearity.linearity_profile``)."""
    if not any(isinstance(m, SITE_TYPES) for m in model.modules()):
        return False, (
            f"{title} has no ReLU or ReLU6 modules, so it has no neurons to build a pathway from "
            '(book/definitions.md, "Neurons and sites"): its profiles are skipped.'
        )
    smooth = _smooth_nonlinearities(model)
    if smooth:
        return True, (
            f"{title} also has nonlinearities that are not piecewise linear ({', '.join(smooth)}): "
            "the proposition does not apply to it, and no ball makes its first-order error exactly "
            "zero. The profile below still shows how fast the error grows; its state changes count "
            "the ReLU units only."
        )
    try:
        _check_piecewise_linear(model, None)
    except ValueError as exc:
        reason = str(exc).split(";")[0]
        return True, (
            f"{title} is piecewise linear, so the proposition applies, but "
            f"`linearity.linear_radius` cannot compute its exact radius ({reason}). It is probed "
            "along directions only; the state changes count its ReLU units, not its max-pooling "
            "winners."
        )
    return True, (
        f"{title} is piecewise linear as the proposition requires, so `linearity.linear_radius` "
        f"applies in principle, but its {n_inputs:,} input values cost {n_inputs:,} forward passes "
        "per image: it is probed along directions only, which is cheap."
    )


def relu6_note(model: nn.Module, title: str) -> str:
    """The limitation bullet about ReLU6 saturation, or one sentence that it does not apply."""
    if any(isinstance(m, nn.ReLU6) for m in model.modules()):
        return (
            f"- {title} has ReLU6 units: their saturation at 6 is a second kink, counted in the "
            "state changes. A kept saturated unit passes no gradient, so a pathway's gradient "
            "ignores it although the unit's output matters."
        )
    return f"- {title} has no ReLU6 units, so its only kinks are the ReLUs' (and max pooling's)."
