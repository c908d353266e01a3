"""The ROAR chapter's figures, table and verdicts: what the retrained models see, their accuracy
curves beside the paper's, and the rankings read against Random, against the unmodified model and
against the paper.

A margin (twice the largest standard deviation of an AUC over seeds) decides when two AUCs
differ: within it they are *level*, and a ranking only counts the differences beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import paper_numbers
from ..plotting import _numpy, method_style
from .evaluation import PAPER_NAME, PAPER_PATHWAYS, listed, rank_of, ranking
from .text import markdown_table

PAPER_DATASETS = ("CIFAR-10", "Birdsnap")
"""The datasets of the paper's ROAR curves (no KAR, no Random curve)."""

BASELINE_NEEDED = {"MNIST": 0.9, "CIFAR-10": 0.6}
"""The test accuracy the model trained on unmodified images must reach before the ROAR and KAR
verdicts rank the methods. Below it the retrained models learn too little: how much accuracy a
degraded training set costs them says more about training noise than about the maps. MNIST: a
digit CNN that has learned its task is far above 90%; CIFAR-10: the paper's ResNet-8 reached
84.4% unmodified, and a model under 60% has barely started."""


# ---------------------------------------------------------------------------------- figures


def degradation_figure(
    image: Any, maps: Mapping[str, Any], fraction: float, to_display: Any, size: float = 1.35
):
    """One image with ``fraction`` of its pixels replaced by each method's ranking: a row per
    mode, ROAR (the most important replaced) and KAR (the least), the input first."""
    from ..evaluation import roar
    from ..plotting import image_grid

    images, titles = [], []
    for mode in roar.MODES:
        images.append(to_display(image[0]))
        titles.append("input")
        for name, m in maps.items():
            degraded = roar.degrade(image, m, fraction, mode=mode)
            images.append(to_display(degraded[0]))
            titles.append(f"{name}\n{mode.upper()}")
    per_row = -(-(len(maps) + 1) // 2)  # each mode on two rows, so that the titles stay legible
    return image_grid(np.stack(images), titles=titles, ncols=per_row, size=size, vmin=0, vmax=1)


def roar_figure(results: Mapping[str, Any], names: Sequence[str], dataset: str = "MNIST"):
    """Our ROAR and KAR test accuracy (mean, and standard deviation over seeds as error bars)
    against the % of pixels replaced, one legend for both panels, and the unmodified model's
    accuracy as a dotted line."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7.5, 8.0), sharex=True)  # stacked: legible on a page
    for ax, mode in zip(axes, ("roar", "kar"), strict=True):
        result = results[mode]
        xs = 100 * np.array(result.fractions)
        for name in names:
            mean, std = _numpy(result.mean(name)), _numpy(result.std(name))
            ax.errorbar(
                xs, 100 * mean, yerr=100 * std, marker="o", capsize=3, label=name,
                **method_style(name),
            )  # fmt: skip
        base = 100 * baseline_accuracy(results)
        ax.axhline(base, color="0.4", ls=":", lw=1, label="unmodified model")
        ax.set_title(
            f"{mode.upper()} on {dataset} ({'lower' if mode == 'roar' else 'higher'} is better)"
        )
        ax.set_ylabel("test accuracy (%) of the retrained model")
    axes[1].set_xlabel("% of pixels replaced")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def paper_roar_figure():
    """The paper's ROAR curves, one panel per dataset, with its method names."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PAPER_DATASETS), 1, figsize=(7.5, 8.0), sharex=True)
    for ax, dataset in zip(axes, PAPER_DATASETS, strict=True):
        table = paper_numbers.ROAR[dataset]
        for paper_name, values in table.items():
            if paper_name == "base":
                continue
            ours = paper_numbers.REGISTRY_NAME.get(paper_name)
            ax.plot(
                100 * np.array(paper_numbers.ROAR_FRACTIONS),
                (table["base"],) + values,
                marker="o",
                ls="--" if ours is None else "-",
                color=method_style(ours or paper_name)["color"],
                label=paper_name if ours in (None, paper_name) else f"{paper_name} ({ours})",
            )
        ax.set_title(f"paper: ROAR on {dataset} (lower is better)")
        ax.set_ylabel("test accuracy (%) of the retrained model")
    axes[-1].set_xlabel("% of pixels replaced")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ the numbers


def mean_auc(results: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{mode: {method: AUC averaged over seeds}}`` for each mode in ``results``."""
    return {mode: {n: float(r.auc(n).mean()) for n in names} for mode, r in results.items()}


def auc_std(results: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, float]] | None:
    """``{mode: {method: standard deviation of its AUC over seeds}}``; ``None`` with one seed."""
    if next(iter(results.values())).accuracy[names[0]].shape[0] < 2:
        return None
    return {mode: {n: float(r.auc(n).std()) for n in names} for mode, r in results.items()}


def seed_spread(results: Mapping[str, Any], names: Sequence[str], n_seeds: int) -> float | None:
    """The largest standard deviation of a ROAR AUC across seeds (``None`` with one seed)."""
    if n_seeds < 2:
        return None
    return max(float(results["roar"].auc(n).std()) for n in names)


def baseline_accuracy(results: Mapping[str, Any]) -> float:
    """The test accuracy of the model trained on unmodified images (fraction 0 of every curve,
    the same for every method and mode), averaged over seeds."""
    result = next(iter(results.values()))
    return float(result.accuracy[result.methods[0]][:, 0].mean())


def paper_roar_auc(dataset: str, paper_name: str) -> float | None:
    """The AUC of the paper's ROAR curve of the method it calls ``paper_name`` on ``dataset``
    (``None`` if it has none): accuracy in [0, 1] over 0, 10, 30, 50, 70, 90% replaced."""
    table = paper_numbers.ROAR[dataset]
    if paper_name not in table:
        return None
    return paper_numbers.roar_auc(
        paper_numbers.ROAR_FRACTIONS, (table["base"],) + table[paper_name]
    )


def roar_table(
    auc: Mapping[str, Mapping[str, float]], std: Mapping[str, Mapping[str, float]] | None = None
) -> str:
    """Per method: its name in the paper, our ROAR and KAR AUC (± the standard deviation over
    seeds, given ``std``) and the paper's ROAR AUC per dataset; then the paper's methods that
    were not run here."""

    def ours(mode: str, name: str) -> str:
        shown = f"{auc[mode][name]:.3f}"
        return shown if std is None else f"{shown} ± {std[mode][name]:.3f}"

    def paper(paper_name: str | None) -> list[str]:
        values = [
            None if paper_name is None else paper_roar_auc(d, paper_name) for d in PAPER_DATASETS
        ]
        return ["-" if v is None else f"{v:.3f}" for v in values]

    header = ["method", "paper's name", "ROAR AUC (ours)", "KAR AUC (ours)"]
    header += [f"paper ROAR AUC, {d}" for d in PAPER_DATASETS]
    rows = []
    for name in auc["roar"]:
        paper_name = PAPER_NAME.get(name)
        rows.append(
            [name, paper_name or "-", ours("roar", name), ours("kar", name)] + paper(paper_name)
        )
    not_run = [
        n
        for n in paper_numbers.ROAR[PAPER_DATASETS[0]]
        if n != "base" and n not in PAPER_NAME.values()
    ]
    for paper_name in not_run:
        rows.append(["(not run)", paper_name, "-", "-"] + paper(paper_name))
    return markdown_table(header, rows)


def tiers(
    scores: Mapping[str, float], margin: float, higher_is_better: bool = False
) -> list[list[str]]:
    """The methods from best to worst, cut into groups wherever two neighbours differ by more
    than ``margin``: within a group, no method is separated from the next."""
    order = ranking(scores, higher_is_better)
    groups = [[order[0]]]
    for previous, name in zip(order, order[1:], strict=False):
        if abs(scores[name] - scores[previous]) > margin:
            groups.append([])
        groups[-1].append(name)
    return groups


def above_baseline(
    result: Any, names: Sequence[str], baseline: float
) -> dict[str, tuple[float, float]]:
    """The methods whose mean accuracy, at some fraction after 0, exceeds ``baseline`` by more
    than twice that point's standard deviation over seeds: ``{name: (accuracy, fraction)}`` at
    the highest such point."""
    risen = {}
    for name in names:
        mean, std = _numpy(result.mean(name))[1:], _numpy(result.std(name))[1:]
        over = mean - 2 * std > baseline
        if over.any():
            best = int(np.argmax(np.where(over, mean, -np.inf)))
            risen[name] = (float(mean[best]), float(result.fractions[best + 1]))
    return risen


# ---------------------------------------------------------------------------------- verdicts


def baseline_verdict(
    accuracy: float, dataset: str, n_train: int, epochs: int, batch_size: int
) -> str:
    """The unmodified model's test ``accuracy`` on ``dataset`` (a key of ``BASELINE_NEEDED``),
    trained on ``n_train`` images for ``epochs`` epochs of ``batch_size`` images a step, and
    whether it is high enough for the verdicts below to rank the methods."""
    setting = (
        f"{n_train} images, {epochs} epoch{'' if epochs == 1 else 's'}, {batch_size} images a step"
    )
    needed = BASELINE_NEEDED[dataset]
    head = (
        f"**Baseline.** Trained on the unmodified images ({setting}), the CNN reaches "
        f"{accuracy:.1%} test accuracy on {dataset}: the accuracy at fraction 0 of every curve."
    )
    if accuracy >= needed:
        return head + f" That is above the {needed:.0%} this chapter asks before ranking methods."
    return (
        head + f" That is below the {needed:.0%} this chapter asks before ranking methods. "
        "Models trained this way learn too little for the accuracy they lose or keep to rank "
        "the maps, so the table lists the AUCs but no ranking is read from them."
    )


def _too_weak(baseline: float | None, dataset: str) -> bool:
    return baseline is not None and baseline < BASELINE_NEEDED[dataset]


def _margin_words(margin: float | None) -> str:
    return (
        "one seed, so no margin for training noise"
        if margin is None
        else f"neighbours within {margin:.3f}, twice the seed spread, share a group"
    )


def roar_verdict(
    scores: Mapping[str, float],
    margin: float | None = None,
    baseline: float | None = None,
    dataset: str = "MNIST",
    paper_pathways: Sequence[str] = PAPER_PATHWAYS,
    random: str = "Random",
) -> str:
    """Our ROAR ranking (the AUCs in ``scores``) in groups that ``margin`` cannot separate, read
    against the paper's finding that Grad-CAM and the pathway gradients lead, and against
    ``random``: a pathway gradient that only matches random replacement does not show that it
    finds the informative pixels. With a ``baseline`` accuracy below ``BASELINE_NEEDED``, that
    the retrained models learn too little to rank the methods instead."""
    paper = (
        f"In the paper ({listed(PAPER_DATASETS)}, with no Random curve), Grad-CAM and the pathway "
        "gradients lower the accuracy most, close to each other."
    )
    if _too_weak(baseline, dataset):
        return (
            f"**ROAR on {dataset}.** No ranking: the unmodified model reaches only "
            f"{baseline:.1%} (below {BASELINE_NEEDED[dataset]:.0%}), so the retrained models "
            f"learn too little to rank the methods. {paper}"
        )
    pathways = [n for n in paper_pathways if n in scores]
    if not pathways:
        raise ValueError(f"none of {list(paper_pathways)} is in the scores {list(scores)}.")
    room = 0.0 if margin is None else margin
    groups = tiers(scores, room)
    shown = "; then ".join(listed(group) for group in groups)
    best = min(pathways, key=scores.get)
    others = [n for n in scores if n not in paper_pathways and n != random]
    sentences = [
        f"**ROAR ranking on {dataset}** (best first; {_margin_words(margin)}): {shown}.",
        paper,
    ]
    if others:
        rival = min(others, key=scores.get)
        gap = round(scores[rival], 3) - round(scores[best], 3)  # as the table shows them
        pair = f"{best} ({scores[best]:.3f}) and {rival} ({scores[rival]:.3f})"
        if gap > room:
            grad_cam = scores.get("GradCAM")
            apart = grad_cam is not None and grad_cam - scores[best] > room
            sentences.append(
                f"Among the methods the pathway gradients lead here too: {best} "
                f"({scores[best]:.3f}) lowers the accuracy more than the best other method, "
                f"{rival} ({scores[rival]:.3f}), by {gap:.3f}"
                + (
                    f"; unlike in the paper, Grad-CAM ({grad_cam:.3f}) does not join them."
                    if apart
                    else "."
                )
            )
        elif gap >= -room:
            sentences.append(f"Among the methods, {pair} are level.")
        else:
            sentences.append(
                f"Unlike in the paper, {rival} ({scores[rival]:.3f}) lowers the accuracy more "
                f"than any pathway gradient (the best, {best}: {scores[best]:.3f})."
            )
    if random in scores:
        lead = scores[random] - scores[best]
        if lead > room:
            sentences.append(
                f"{best} also lowers it more than random replacement does ({random}: "
                f"{scores[random]:.3f})."
            )
        else:
            relation = "is level with" if lead >= -room else "lowers the accuracy more than"
            sentences.append(
                f"But {random} ({scores[random]:.3f}) {relation} {best}: replacing the pixels the "
                "pathway gradients rank first costs the retrained model no more accuracy than "
                "replacing random pixels, so here ROAR does not show that they find the more "
                "informative pixels."
            )
    return " ".join(s for s in sentences if s)


def spread_verdict(roar_auc: Mapping[str, float], spread: float | None, n_seeds: int) -> str:
    """How far apart the ROAR AUCs are, and how much of it training noise could explain."""
    values = list(roar_auc.values())
    noise = (
        "With one seed the training noise is not measured, so differences this small may be "
        "noise; the full profile retrains with three seeds."
        if spread is None
        else f"The ± in the table is the standard deviation of an AUC over the {n_seeds} seeds; "
        f"the largest is {spread:.3f}, so differences under twice that ({2 * spread:.3f}) are "
        "within training noise."
    )
    return f"The ROAR AUCs span {min(values):.3f} to {max(values):.3f}. {noise}"


def chance_verdict(
    auc: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    margin: float | None,
    baseline: float | None = None,
    dataset: str = "MNIST",
    random: str = "Random",
) -> str:
    """How the methods stand against random replacement: under ROAR, how many lower the accuracy
    more than it, how many are level with it and how many lower it less (beyond ``margin``,
    twice the seed spread; ``None`` with one seed); under KAR, how many keep more, and Random's
    rank. With a ``baseline`` below ``BASELINE_NEEDED``, that this comparison is not made."""
    if _too_weak(baseline, dataset):
        return (
            "**Against chance.** Not compared either: whether a method beats random replacement "
            "is a ranking too, and these retrained models learn too little for one."
        )
    room = 0.0 if margin is None else margin
    by = "" if margin is None else " by more than twice the seed spread"
    roar, chance = auc["roar"], auc["roar"][random]
    better = [n for n in names if roar[n] < chance - room]
    worse = [n for n in names if roar[n] > chance + room]
    level = [n for n in names if n not in better and n not in worse]
    n = len(names)

    def some(group: Sequence[str]) -> str:
        return f" ({listed(group)})" if 0 < len(group) < n else ""

    def count(group: Sequence[str], one: str, many: str) -> str:
        return f"{len(group)} {one if len(group) == 1 else many}"

    parts = [
        f"{len(better)} of {n} methods lower{'s' if len(better) == 1 else ''} the accuracy more "
        f"than random replacement does{by}{some(better)}"
    ]
    if level:
        parts.append(f"{count(level, 'is', 'are')} level with it{some(level)}")
    if worse:
        parts.append(f"{count(worse, 'lowers', 'lower')} it less{some(worse)}")
    roar_text = listed(parts) + "."
    if worse:
        roar_text += (
            " Replacing the pixels the latter rank most important costs the retrained model less "
            "than replacing random pixels."
            if len(worse) < n
            else " Replacing the pixels any of them ranks most important costs the retrained "
            "model less than replacing random pixels."
        )
    kar = auc["kar"]
    kept = [m for m in names if kar[m] > kar[random] + room]
    kar_rank = rank_of(
        random, ranking({m: kar[m] for m in [*names, random]}, higher_is_better=True)
    )
    return (
        f"**Against chance.** Under ROAR, {roar_text} Under KAR, {len(kept)} of {n} "
        f"keep{'s' if len(kept) == 1 else ''} the accuracy higher than random pixels do{by}"
        f"{some(kept)}; {random} ranks {kar_rank} there."
    )


def rise_verdict(result: Any, names: Sequence[str], baseline: float, random: str = "Random") -> str:
    """Which ROAR curves rise above the unmodified model's accuracy, and how low ``random``'s
    falls by the last fraction against the lowest method: a model that gains accuracy when the
    most important pixels are replaced reads something other than what was removed."""
    risen = above_baseline(result, names, baseline)
    seeds = next(iter(result.accuracy.values())).shape[0]
    by = " by more than twice the seed spread" if seeds > 1 else ""
    last = float(result.fractions[-1])
    end = {n: float(_numpy(result.mean(n))[-1]) for n in [*names, random]}
    lowest = min(names, key=end.get)
    fall = (
        f"At {last:.0%} replaced, {random} leaves {end[random]:.1%}, while every method leaves at "
        f"least {end[lowest]:.1%} ({lowest})."
    )
    if not risen:
        return (
            f"**Above the baseline.** No ROAR curve rises above the unmodified model's "
            f"{baseline:.1%}{by}. {fall}"
        )
    ordered = sorted(risen, key=lambda n: -risen[n][0])
    shown = listed([f"{n} ({risen[n][0]:.1%} with {risen[n][1]:.0%} replaced)" for n in ordered])
    verb = "scores" if len(ordered) == 1 else "score"
    return (
        f"**Above the baseline.** Under ROAR, the models retrained without the pixels that "
        f"{shown} rank most important {verb} higher than the unmodified model's {baseline:.1%}"
        f"{by}. A model that classifies better with much of its input "
        "replaced than with all of it reads something the replacement itself adds: a sign that "
        f"the replaced region carries the class (see *Reading the results* below). {fall}"
    )
