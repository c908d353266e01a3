"""Curves, rankings, tables and verdict sentences of the evaluation chapters (pixel perturbation,
sensitivity-n, ROAR and KAR; book/definitions.md, "Evaluation protocols").

The results come from ``pathlib_core.evaluation``; the paper's numbers from
``pathlib_core.paper_numbers``. A ranking lists method names from best to worst; a sentence that
compares ours with the paper says which methods lead in each and whether they agree.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import paper_numbers
from ..plotting import _numpy, method_style
from .text import markdown_table

PAPER_NAME = {ours: paper for paper, ours in paper_numbers.REGISTRY_NAME.items()}
"""Our method name -> the paper's (only the methods the paper evaluated)."""

PAPER_PATHWAYS = ("NeuronMCT", "NeuronIntGrad")
"""The pathway gradients the paper evaluates (DGR, ours, is not among them)."""


# ------------------------------------------------------------------------------ rankings


def at_last(curve: Any) -> float:
    """A perturbation curve's mean change at its last fraction (LeRF: lower is better)."""
    return float(curve.mean_change[-1])


class Ranking(list):
    """Method names from best to worst that keep the ``scores`` they were ranked by, so a verdict
    given only the ranking can still tell a tie from a lead."""

    def __init__(self, names: Sequence[str], scores: Mapping[str, float]):
        super().__init__(names)
        self.scores = dict(scores)


def ranking(scores: Mapping[str, float], higher_is_better: bool = False) -> Ranking:
    """Method names from best to worst by ``scores``; ties keep the mapping's order."""
    order = sorted(scores, key=lambda name: -scores[name] if higher_is_better else scores[name])
    return Ranking(order, scores)


def tied_with(name: str, scores: Mapping[str, float], decimals: int = 3) -> list[str]:
    """The methods whose score equals ``name``'s when both are shown with ``decimals`` decimals
    (``name`` included), in the order of ``scores``."""
    shown = f"{scores[name]:.{decimals}f}"
    return [n for n, v in scores.items() if f"{v:.{decimals}f}" == shown]


def lerf_ranking(curves: Mapping[str, Any]) -> Ranking:
    """Methods by their LeRF change at the last fraction, smallest (best) first."""
    return ranking({name: at_last(curve) for name, curve in curves.items()})


def morf_ranking(curves: Mapping[str, Any]) -> Ranking:
    """Methods by their mean MoRF AOPC, largest (best) first."""
    return ranking({n: float(c.aopc.mean()) for n, c in curves.items()}, higher_is_better=True)


def rank_of(name: str, order: Sequence[str]) -> str:
    """``"3 of 11"``: where ``name`` stands in a ranking (best first)."""
    if name not in order:
        raise ValueError(f"{name!r} is not in the ranking {list(order)}; rank a method it holds.")
    return f"{list(order).index(name) + 1} of {len(order)}"


def best_of(names: Sequence[str], order: Sequence[str]) -> tuple[str, int]:
    """The best-ranked of ``names`` in ``order`` and its rank (1 = best)."""
    ranked = [(list(order).index(n) + 1, n) for n in names if n in order]
    if not ranked:
        raise ValueError(f"none of {list(names)} is in the ranking {list(order)}.")
    rank, name = min(ranked)
    return name, rank


# ------------------------------------------------------------------------ pixel perturbation


def curve_panel(ax, order: str, by_method: Mapping[str, Any], style: Mapping | None = None):
    """One LeRF or MoRF panel: each method's mean change against the % of pixels removed (LeRF
    from the first removal, so that it fits a log scale); ``style`` maps a name to line options
    (default: the registry's ``method_style``)."""
    first = 1 if order == "lerf" else 0
    for name, curve in by_method.items():
        ax.plot(
            100 * _numpy(curve.fractions)[first:],
            _numpy(curve.mean_change)[first:],
            marker=".",
            label=name,
            **(style[name] if style is not None else method_style(name)),
        )
    ax.set_xlabel("% of pixels removed")


def perturbation_figure(curves: Mapping[str, Mapping[str, Any]], title: str):
    """LeRF (log scale, from the first removal) and MoRF mean change per method, one legend
    beside both panels (off the data)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for ax, order in zip(axes, ("lerf", "morf"), strict=True):
        curve_panel(ax, order, curves[order])
        better = "lower" if order == "lerf" else "higher"
        ax.set_title(f"{ORDER_NAME[order]} ({better} is better)")
        ax.set_ylabel("mean absolute fractional change of the logit")
    axes[0].set_yscale("log")  # LeRF changes span orders of magnitude between methods
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside right center")
    fig.suptitle(title)
    return fig


ORDER_NAME = {"lerf": "LeRF", "morf": "MoRF"}


def paper_lerf_figure(datasets: Sequence[str]):
    """The paper's LeRF curves on each of ``datasets`` (keys of ``paper_numbers.LERF``), one
    panel each, with its method names and ours in brackets."""
    import matplotlib.pyplot as plt

    rows = len(datasets) // 2 + 1  # two panels a row, the legend in the cell after the last
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4.2 * rows), squeeze=False)
    cells = list(axes.flat)
    for ax, dataset in zip(cells, datasets, strict=False):
        for paper_name, values in paper_numbers.LERF[dataset].items():
            ours = paper_numbers.REGISTRY_NAME.get(paper_name)
            ax.plot(
                100 * np.array(paper_numbers.LERF_FRACTIONS),
                values,
                marker=".",
                label=paper_name if ours in (None, paper_name) else f"{paper_name} ({ours})",
                **method_style(ours or paper_name),
            )
        ax.set_title(f"paper: LeRF on {dataset} (lower is better)")
        ax.set_yscale("log")
        ax.set_xlabel("% of pixels removed")
        ax.set_ylabel("absolute fractional change of the output")
    handles, labels = cells[0].get_legend_handles_labels()
    for ax in cells[len(datasets) :]:
        ax.axis("off")
    cells[len(datasets)].legend(handles, labels, fontsize=9, loc="center")
    fig.tight_layout()
    return fig


def lerf_mean(curve: Any) -> float:
    """A LeRF curve's mean change over its removal fractions (0 left out): the whole range in
    one number, where the change at the last fraction reads one point."""
    return float(curve.mean_change[1:].mean())


def copied_row(dataset: str, paper_name: str) -> str | None:
    """The other dataset whose LeRF row in the official plotting code equals ``paper_name``'s
    row on ``dataset`` (probably a copy there), or ``None``."""
    row = paper_numbers.LERF[dataset].get(paper_name)
    others = (d for d in paper_numbers.LERF if d != dataset)
    return next((d for d in others if row and paper_numbers.LERF[d].get(paper_name) == row), None)


SHORT_LABEL = {"EfficientNet-Lite0": "Lite0"}
"""Shorter names for the LeRF table's headers, so that its seven columns fit the page."""

LERF_PAPER = ("ImageNet", "CIFAR-10")
"""The paper's datasets whose LeRF value at 10% the table shows beside ours."""


def lerf_table(results: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
    """Per method and model: our LeRF change at the last fraction (as the verdicts read it,
    three decimals) and its mean over all fractions (three significant figures); then the
    paper's change at 10%, marked † where the official row repeats another dataset's.
    ``results`` maps a model's label to its ``{"lerf": curves, ...}``."""
    labels = list(results)
    header = ["method"]
    for label in labels:
        short = SHORT_LABEL.get(label, label)
        header += [f"{short} @10%", f"{short} mean"]
    header += [f"paper {SHORT_LABEL.get(d, d)} @10%" for d in LERF_PAPER]
    rows, marked = [], []
    for name in names:
        row = [name]
        for label in labels:
            curve = results[label]["lerf"][name]
            row += [f"{at_last(curve):.3f}", f"{lerf_mean(curve):.3g}"]
        paper = PAPER_NAME.get(name)
        for dataset in LERF_PAPER:
            if paper is None:
                row.append("-")
                continue
            copy = copied_row(dataset, paper)
            row.append(f"{paper_numbers.LERF[dataset][paper][-1]:.3f}" + (" †" if copy else ""))
            if copy:
                marked.append(
                    f"† {paper}'s {dataset} row in the official plotting code equals its {copy} "
                    "row."
                )
        rows.append(row)
    return markdown_table(header, rows) + "".join(f"\n\n{m}" for m in dict.fromkeys(marked))


def morf_table(results: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
    """Per method: our MoRF AOPC on each model (in the model's logit units)."""
    labels = list(results)
    rows = [
        [name] + [f"{float(results[label]['morf'][name].aopc.mean()):.2f}" for label in labels]
        for name in names
    ]
    return markdown_table(["method"] + [f"{label} MoRF AOPC" for label in labels], rows)


def range_sentence(
    label: str, curves: Mapping[str, Any], paper_pathways: Sequence[str] = PAPER_PATHWAYS
) -> str:
    """The LeRF order by the mean change over the whole range, and where the paper's pathway
    gradients stand in it: the verdict above reads only the last fraction."""
    order = ranking({name: lerf_mean(curve) for name, curve in curves.items()})
    ranks = {n: order.index(n) + 1 for n in paper_pathways if n in order}
    where = listed([f"{n} {r}" for n, r in ranks.items()])
    return (
        f"Over the whole range (the mean change over every fraction removed), the {label} order "
        f"is {', '.join(order)}; the paper's pathway gradients rank {where} of {len(order)}."
    )


def grad_cam_in_paper(at: int = -1) -> str:
    """Grad-CAM's rank among the paper's methods on each of its LeRF datasets at one fraction
    (by default 10%), lowest change first."""
    parts = []
    for dataset, table in paper_numbers.LERF.items():
        if "GradCAM" in table:
            order = ranking({n: v[at] for n, v in table.items()})
            level = [
                n for n, v in table.items() if n != "GradCAM" and v[at] == table["GradCAM"][at]
            ]
            tied = f", tied with {listed(level)}" if level else ""
            parts.append(f"{rank_of('GradCAM', order)} on {dataset}{tied}")
    return listed(parts)


FEW_INPUTS = 10
"""Below this many images (or digits) a LeRF verdict says its ranks are tentative."""


def listed(names: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``. (Its home would be ``text``, but every chapter
    loads that module, so a change there makes the whole full edition older than the code.)"""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


NEAR_THIRD = 0.05
"""A paper pathway gradient within this share of the third-best LeRF change is too close to call
out of the best three."""


def lerf_verdict(
    label: str,
    order: Sequence[str],
    pathway_methods: Sequence[str],
    paper_pathways: Sequence[str] = PAPER_PATHWAYS,
    scores: Mapping[str, float] | None = None,
    n_inputs: int | None = None,
    unit: str = "images",
    random: str = "Random",
) -> str:
    """Our LeRF ranking on ``n_inputs`` ``unit`` (e.g. 2 images), where the best pathway
    gradient and the paper's two stand, and whether that agrees with the paper (where both are
    among the best, with Grad-CAM). ``scores`` (by default those a ``Ranking`` carries) are the
    LeRF changes: when the best pathway gradient's equals others' at the table's three decimals,
    its rank among them is only the sorting's order, and the sentence says so. A paper pathway
    gradient counts as among the best when it ranks in the best three or is level with the
    third; when more than three methods, some not pathway gradients, are level with the best,
    being among them does not single the pathway gradients out, and the sentence says that
    instead of agreeing with the paper. A method whose change is no smaller than ``random``'s is
    named (``no_better_than``). Fewer than ``FEW_INPUTS`` inputs: the ranks are called
    tentative."""
    if scores is None:
        scores = getattr(order, "scores", None)
    order = list(order)
    best_name, best_rank = best_of(pathway_methods, order)
    paper_ranks = {n: order.index(n) + 1 for n in paper_pathways if n in order}
    if not paper_ranks:
        raise ValueError(
            f"the ranking holds none of the paper's pathway gradients {paper_pathways}."
        )
    top = set(order[:3])
    level = [order[0]]
    if scores is not None and len(order) > 3:  # a tie with the third counts as among the best
        top |= set(tied_with(order[2], scores))
        level = [n for n in order if n in tied_with(order[0], scores)]
    leading = [n for n in paper_ranks if n in top]
    others = [n for n in level if n not in paper_ranks and n not in pathway_methods]
    also = [n for n in level if n not in paper_ranks]  # named beside them, DGR included
    both = "both" if len(paper_ranks) == 2 else "all"
    if not leading:
        none = "neither" if len(paper_ranks) == 2 else "none"
        agreement = f"Unlike the paper, {none} of them is among the best three here."
        third = scores[order[2]] if scores is not None and len(order) > 2 else None
        near = [
            n
            for n in paper_ranks
            if third is not None and scores[n] - third <= NEAR_THIRD * abs(third)
        ]
        if near:
            agreement += (
                f" But {listed([f'{n} ({scores[n]:.3g})' for n in near])} "
                f"{'lies' if len(near) == 1 else 'lie'} within {NEAR_THIRD:.0%} of the third "
                f"({order[2]}, {third:.3g}): a gap this small cannot confirm or contradict the "
                "paper."
            )
    elif len(level) > 3 and others and all(n in level for n in leading):
        agreement = (
            f"{listed(leading)} {'is' if len(leading) == 1 else 'are'} level with the best, "
            f"but so {'is' if len(also) == 1 else 'are'} {listed(also)}. At this precision "
            "the ranking cannot single out the pathway gradients the way the paper's results do."
        )
    elif len(leading) == len(paper_ranks):
        agreement = (
            "As in the paper, "
            + ("it is" if len(leading) == 1 else f"{both} are")
            + " among the best three at finding unimportant pixels."
        )
    else:
        agreement = (
            f"Only {listed(leading)} {'is' if len(leading) == 1 else 'are'} among the best "
            f"three here. In the paper {both} are among the best."
        )
    sentences = [
        f"**{label}.** LeRF ranking"
        + (f" on {n_inputs} {unit}" if n_inputs is not None else "")
        + f" (best first): {', '.join(order)}.",
        f"The best pathway gradient, {best_name}, ranks {best_rank} of {len(order)}.",
    ]
    if scores is not None:
        tied = [n for n in order if n in tied_with(best_name, scores)]
        if len(tied) > 1:
            sentences.append(
                f"But {len(tied)} methods ({', '.join(tied)}) share its LeRF change of "
                f"{scores[best_name]:.3f} at the table's precision, so its rank among them is "
                "not meaningful."
            )
    mine = "the paper's method" if len(paper_ranks) == 1 else "the paper's methods"
    sentences.append(
        f"{listed(list(paper_ranks))} ({mine}) "
        + ("ranks " if len(paper_ranks) == 1 else "rank ")
        + listed([str(r) for r in paper_ranks.values()])
        + f" of {len(order)} here."
    )
    sentences.append(agreement)
    if "GradCAM" in order:
        sentences.append(
            f"Grad-CAM ranks {rank_of('GradCAM', order)} (in the paper, at 10%: "
            f"{grad_cam_in_paper()})."
        )
    if scores is not None and (chance := no_better_than(random, scores)):
        sentences.append(chance)
    if n_inputs is not None and n_inputs < FEW_INPUTS:
        sentences.append(
            f"These ranks rest on {n_inputs} {unit} only, so one {unit.rstrip('s')} more or less "
            "could reorder them."
        )
    return " ".join(sentences)


def no_better_than(random: str, scores: Mapping[str, float], decimals: int = 3) -> str | None:
    """The LeRF sentence for the methods that change the output at least as much as removing
    pixels at random (``scores``: the change at the last fraction, lower is better; compared
    as the table shows them, with ``decimals`` decimals); ``None`` when every method does better
    or ``random`` is not scored."""
    if random not in scores:
        return None
    chance = round(scores[random], decimals)
    worse = [n for n, v in scores.items() if n != random and round(v, decimals) >= chance]
    if not worse:
        return None
    shown = listed([f"{n} ({scores[n]:.{decimals}f})" for n in worse])
    verb = "changes" if len(worse) == 1 else "change"
    return (
        f"At the last fraction, {shown} {verb} the output no less than removing pixels at "
        f"random does ({random}: {scores[random]:.{decimals}f})."
    )


def ties(scores: Mapping[str, float], decimals: int) -> list[list[str]]:
    """The groups of two or more methods whose scores are equal with ``decimals`` decimals (as a
    table shows them), each in the order of ``scores``."""
    groups: dict[str, list[str]] = {}
    for name, value in scores.items():
        groups.setdefault(f"{value:.{decimals}f}", []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def morf_verdict(label: str, order: Sequence[str], random: str = "Random") -> str:
    """Our MoRF ranking read against chance: which methods remove the output more slowly than a
    random order of removal."""
    below = list(order)[list(order).index(random) + 1 :]
    head = f"**{label}, MoRF.** AOPC ranking (best first): {', '.join(order)}. "
    scores = getattr(order, "scores", None)
    if scores is not None and (level := ties({n: scores[n] for n in order}, 2)):
        head += (
            "At the table's two decimals "
            + "; ".join(f"{listed(g)} share {scores[g[0]]:.2f}" for g in level)
            + ", so their order there is only the sorting's. "
        )
    close = ""
    if scores is not None:
        chance = scores[random]
        above = list(order)[: list(order).index(random)]
        near = [n for n in above if scores[n] - chance <= NEAR_RANDOM * abs(chance)]
        if near:
            shown = listed([f"{n} ({scores[n]:.2f})" for n in near])
            close = (
                f" {shown} {'lies' if len(near) == 1 else 'lie'} within {NEAR_RANDOM:.0%} of "
                f"{random} ({chance:.2f}): too close to call {'it' if len(near) == 1 else 'them'} "
                "better than chance."
            )
    if not below:
        return head + "Every method lowers the logit faster than a random order of removal." + close
    poorly = ", so on these inputs MoRF tells the methods apart poorly" if len(below) >= 2 else ""
    return (
        head + f"{random} ranks {rank_of(random, order)}: {listed(below)} "
        f"{'lowers' if len(below) == 1 else 'lower'} the logit more slowly than a random "
        f"order{poorly}." + close
    )


NEAR_RANDOM = 0.05
"""A MoRF AOPC within this share above Random's is too close to call better than chance."""


# ------------------------------------------------------------------------------ sensitivity-n


COINCIDE = 0.01
"""Two sensitivity-n curves closer than this at every subset size are drawn on top of each other;
the figure names them, so that a hidden method is not taken for a missing one."""


def coinciding(results: Mapping[str, Any], tolerance: float = COINCIDE) -> list[list[str]]:
    """The groups of methods whose mean curves lie within ``tolerance`` of one another at every
    subset size (a chain of close pairs forms one group), each in the order of ``results``."""
    means = {name: _numpy(r.mean) for name, r in results.items()}
    names = list(means)
    group = {name: i for i, name in enumerate(names)}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = np.isfinite(means[a]) & np.isfinite(means[b])
            if both.any() and np.abs(means[a][both] - means[b][both]).max() <= tolerance:
                old, new = group[b], group[a]
                group = {n: new if g == old else g for n, g in group.items()}
    found: dict[int, list[str]] = {}
    for name in names:
        found.setdefault(group[name], []).append(name)
    return [g for g in found.values() if len(g) > 1]


def chance_band(result: Any, n_subsets: int) -> np.ndarray:
    """Per subset size, two standard errors of a mean correlation around 0 for maps unrelated
    to the output: ``2 / sqrt((n_subsets - 1) k)`` over the ``k`` images with a finite
    correlation there (see ``chance_margin``)."""
    counts = np.maximum(_numpy(result.correlation.isfinite().sum(dim=0)), 1)
    return 2 / np.sqrt((n_subsets - 1) * counts)


def sensitivity_figure(results: Mapping[str, Any], title: str, n_subsets: int | None = None):
    """Mean Pearson correlation against the subset size n (log scale), one line per method; with
    ``n_subsets``, a grey band of what maps unrelated to the output score by chance (two
    standard errors of a mean around 0); the x-axis label names the curves that coincide."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, result in results.items():
        ax.plot(
            _numpy(result.ns),
            _numpy(result.mean),
            marker=".",
            label=method,
            **method_style(method),
        )
    if n_subsets is not None:
        reference = results.get("Random", next(iter(results.values())))
        band = chance_band(reference, n_subsets)
        ns = _numpy(reference.ns)
        ax.fill_between(ns, -band, band, color="grey", alpha=0.25, lw=0, label="chance (±2 s.e.)")
    ax.set_xscale("log")
    hidden = coinciding(results)
    note = (
        f"drawn on top of each other (within {COINCIDE} at every n): "
        + "; ".join("\N{NO-BREAK SPACE}=\N{NO-BREAK SPACE}".join(g) for g in hidden)
        if hidden
        else ""
    )
    ax.set_xlabel("\n".join(["subset size n (pixels)", *textwrap.wrap(note, 80)]))
    ax.set_ylabel("mean Pearson correlation")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    return fig


def mean_over_n(results: Mapping[str, Any]) -> dict[str, float]:
    """Each method's correlation averaged over images and subset sizes (NaN ignored)."""
    import torch

    return {name: float(torch.nanmean(result.mean)) for name, result in results.items()}


def sensitivity_table(
    scores: Mapping[str, Mapping[str, float]], paper: Mapping[str, float] | None = None
) -> str:
    """Per method, its mean correlation on each model (``scores``: model label -> method ->
    score) and, when ``paper`` holds a number for any of them, a "paper" column ("-" where it
    holds none). The paper did not measure sensitivity-n, so the chapter passes none and the
    table has no paper column."""
    labels = list(scores)
    names = list(next(iter(scores.values())))
    paper = {n: v for n, v in (paper or {}).items() if n in names and v is not None}
    header = ["method"] + [f"{label}, mean over n" for label in labels]
    header += ["paper"] if paper else []
    rows = []
    for n in names:
        row = [n] + [f"{scores[label][n]:.3f}" for label in labels]
        if paper:
            row.append(f"{paper[n]:.3f}" if n in paper else "-")
        rows.append(row)
    return markdown_table(header, rows)


def sensitivity_verdict(
    label: str,
    order: Sequence[str],
    multiplying: set[str],
    pathway_methods: Sequence[str],
    scores: Mapping[str, float] | None = None,
) -> str:
    """The ranking, whether the best three are exactly the methods that multiply by the input,
    and where the best pathway gradient stands; with ``scores``, which it is, its score, and
    the methods tied with it at three decimals."""
    top = list(order)[:3]
    reason = (
        "The three best all multiply by the input: they estimate a pixel's contribution relative "
        "to the removed value, which is what sensitivity-n rewards, while gradients, pathway "
        "gradients included, measure sensitivity."
        if set(top) == set(multiplying)
        else f"The three best are {', '.join(top)}."
    )
    name, rank = best_of(pathway_methods, order)
    where = f"The best pathway gradient ranks {rank} of {len(order)}."
    if scores is not None:
        ties = [n for n in tied_with(name, scores) if n != name]
        where = (
            f"The best pathway gradient is {name} ({scores[name]:.3f}, {rank} of {len(order)})"
            + (f", tied at three decimals with {', '.join(ties)}" if ties else "")
            + "."
        )
    return f"On {label} the ranking is {', '.join(order)}. {reason} {where}"


def chance_margin(results: Mapping[str, Any], n_subsets: int) -> float:
    """How far a method's mean correlation must lie from Random's to be told apart from it:
    twice the standard error of the difference of two such means when neither method's
    attributions relate to the output drops. A Pearson correlation over ``n_subsets``
    unrelated pairs has a standard deviation of about ``1 / sqrt(n_subsets - 1)``; a mean over
    ``k`` (image, n) correlations (the fewest any method has that are not NaN) divides it by
    ``sqrt(k)``; a difference of two multiplies it by ``sqrt(2)``. A method with no finite
    correlation at all (its maps constant on these inputs, e.g. Grad-CAM's ReLU leaving nothing)
    has no mean to compare and does not count."""
    if n_subsets < 2:
        raise ValueError("n_subsets must be at least 2 for a correlation; pass the chapter's.")
    counts = [int(r.correlation.isfinite().sum()) for r in results.values()]
    counts = [c for c in counts if c > 0]
    if not counts:
        raise ValueError("every correlation is NaN; run sensitivity-n on inputs that vary.")
    return 2 * math.sqrt(2 / ((n_subsets - 1) * min(counts)))


def separation_verdict(
    label: str, scores: Mapping[str, float], margin: float, what: str, random: str = "Random"
) -> str:
    """Whether any method's mean correlation lies more than ``margin`` (``chance_margin``) from
    ``random``'s, on ``what`` (e.g. "1 photo and 32 subsets per size"): the best such method
    and those within ``margin`` of it, or that these numbers cannot tell the methods apart.
    Methods whose score is NaN (no finite correlation: constant maps) are named apart."""
    chance = scores[random]
    others = {n: v for n, v in scores.items() if n != random and math.isfinite(v)}
    constant = [n for n, v in scores.items() if n != random and not math.isfinite(v)]
    if constant:
        note = (
            f" {', '.join(constant)} {'has' if len(constant) == 1 else 'have'} no correlation "
            "on these inputs (constant maps) and no score."
        )
        if not others:
            return f"On {label} no method but {random} has a score.{note}"
        return separation_verdict(label, others | {random: chance}, margin, what, random) + note
    above = sorted((n for n in others if others[n] > chance + margin), key=lambda n: -others[n])
    low, high = min(others.values()), max(others.values())
    span = f"every method's mean lies between {low:.3f} and {high:.3f}"
    if not above:
        below = [n for n in others if others[n] < chance - margin]
        end = (
            f"; {', '.join(below)} lie that far below it: with {what} no method's attributions "
            f"predict the drop of the output better than {random}'s"
            if below
            else f": with {what} the {label} result cannot tell the methods apart"
        )
        return (
            f"On {label} {span}, and none lies more than {margin:.3f} (about twice the spread "
            f"such means show by chance) above {random}'s {chance:.3f}{end}."
        )
    best = above[0]
    close = sorted(
        (n for n in others if n != best and others[best] - others[n] <= margin),
        key=lambda n: -others[n],
    )
    level = f", with {', '.join(close)} within {margin:.3f} of it" if close else ""
    one_mean = margin / math.sqrt(2)  # two standard errors of one mean, not of a difference
    off_zero = [n for n in others if abs(others[n]) > one_mean]
    where = (
        f"{random}'s {chance:.3f} lies within it"
        if abs(chance) <= one_mean
        else f"only {random}'s {chance:.3f} lies beyond it, a low draw of a map that is chance "
        "by construction"
    )
    zero = (
        f" Against 0, what an unrelated map scores on average, no method lies more than "
        f"{one_mean:.3f} (two standard errors of one mean) away, and {where}: the "
        f"{len(above)} method{'s' if len(above) != 1 else ''} above {random} "
        f"gain{'s' if len(above) == 1 else ''} on its draw, "
        "not on 0, so these numbers do not separate any method from chance."
        if not off_zero
        else ""
    )
    return (
        f"On {label} {span}; {len(above)} of {len(others)} methods lie more than {margin:.3f} "
        f"(about twice the spread such means show by chance) above {random}'s {chance:.3f}. The "
        f"best is {best} ({others[best]:.3f}){level}.{zero}"
    )
