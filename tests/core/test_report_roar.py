"""The ROAR chapter's figures, table and verdicts, on constructed results."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from pathlib_core import paper_numbers
from pathlib_core.evaluation.roar import RoarResult
from pathlib_core.report import roar as report

NAMES = ["GradCAM", "Gradient", "Random"]


def roar_results(seeds: int = 1, wobble: float = 0.0):
    """Three methods over fractions 0, 0.5, 1; seed ``s`` adds ``s * wobble`` after fraction 0."""
    roar = {"GradCAM": [0.9, 0.3, 0.1], "Gradient": [0.9, 0.8, 0.7], "Random": [0.9, 0.6, 0.5]}
    kar = {"GradCAM": [0.9, 0.8, 0.8], "Gradient": [0.9, 0.4, 0.3], "Random": [0.9, 0.5, 0.4]}

    def make(mode, table):
        accuracy = {}
        for name, row in table.items():
            rows = [[row[0]] + [v + s * wobble for v in row[1:]] for s in range(seeds)]
            accuracy[name] = torch.tensor(rows)
        return RoarResult(mode, [0.0, 0.5, 1.0], accuracy)

    return {"roar": make("roar", roar), "kar": make("kar", kar)}


def test_auc_table_has_ours_with_spread_the_papers_names_and_the_methods_not_run():
    results = roar_results(seeds=2, wobble=0.02)
    auc = report.mean_auc(results, NAMES)
    first = 0.5 * (0.9 + 0.3) / 2 + 0.5 * (0.3 + 0.1) / 2
    assert auc["roar"]["GradCAM"] == pytest.approx(first + 0.02 * 0.75 / 2)
    std = report.auc_std(results, NAMES)
    assert std["roar"]["GradCAM"] == pytest.approx(0.015 / 2**0.5, rel=1e-5)
    assert report.auc_std(roar_results(), NAMES) is None
    table = paper_numbers.ROAR["CIFAR-10"]
    expected = paper_numbers.roar_auc(
        paper_numbers.ROAR_FRACTIONS, (table["base"],) + table["GradCAM"]
    )
    assert report.paper_roar_auc("CIFAR-10", "GradCAM") == pytest.approx(expected)
    assert report.paper_roar_auc("CIFAR-10", "DeepLift") is None
    rows = report.roar_table(auc, std).splitlines()
    assert rows[0].startswith("| method | paper's name | ROAR AUC (ours) | KAR AUC (ours) |")
    grad_cam = f"{auc['roar']['GradCAM']:.3f} ± {std['roar']['GradCAM']:.3f}"
    assert rows[2].startswith(f"| GradCAM | GradCAM | {grad_cam} | ")
    assert rows[3].startswith("| Gradient | Gradients | ")
    assert rows[4].startswith("| Random | - | ") and rows[4].endswith("| - | - |")
    star = report.paper_roar_auc("Birdsnap", "NeuronIntGrad*")
    assert rows[5] == f"| (not run) | NeuronIntGrad* | - | - | 0.524 | {star:.3f} |"
    assert " ± " not in report.roar_table(auc)


def test_figures_draw_every_method_the_baseline_and_the_papers_curves():
    results = roar_results()
    fig = report.roar_figure(results, NAMES)
    roar_ax, kar_ax = fig.axes
    assert len(roar_ax.containers) == len(kar_ax.containers) == 3  # one errorbar per method
    assert roar_ax.get_title() == "ROAR on MNIST (lower is better)"
    (baseline,) = [line for line in roar_ax.lines if line.get_label() == "unmodified model"]
    assert baseline.get_ydata()[0] == pytest.approx(90.0)
    assert [t.get_text() for t in fig.legends[0].texts] == ["unmodified model", *NAMES]
    plt.close(fig)
    paper = report.paper_roar_figure()
    in_paper = sum(1 for k in paper_numbers.ROAR["CIFAR-10"] if k != "base")
    assert [len(ax.lines) for ax in paper.axes] == [in_paper, in_paper]
    labels = [t.get_text() for t in paper.legends[0].texts]
    assert "GBP (GuidedBackprop)" in labels and "GradCAM" in labels and "NeuronIntGrad*" in labels
    plt.close(paper)


def test_degradation_figure_rows_per_mode():
    image = torch.rand(1, 1, 6, 6)
    maps = {"a": torch.rand(1, 1, 6, 6), "Random": torch.rand(1, 1, 6, 6)}
    fig = report.degradation_figure(image, maps, 0.5, lambda x: x[0].numpy())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["input", "a\nROAR", "Random\nROAR", "input", "a\nKAR", "Random\nKAR"]
    plt.close(fig)


def test_tiers_cut_only_where_neighbours_differ_by_more_than_the_margin():
    scores = {"a": 0.840, "b": 0.837, "c": 0.853, "d": 0.858, "e": 0.838}
    assert report.tiers(scores, 0.006) == [["b", "e", "a"], ["c", "d"]]
    assert report.tiers(scores, 0.0) == [["b"], ["e"], ["a"], ["c"], ["d"]]
    assert report.tiers(scores, 0.02) == [["b", "e", "a", "c", "d"]]  # chained, 0.021 apart
    assert report.tiers({"x": 1.0, "y": 0.5}, 0.1, higher_is_better=True) == [["x"], ["y"]]


# the committed full run's ROAR AUCs, for the verdicts
FULL = {
    "Gradient": 0.856,
    "GradCAM": 0.853,
    "NeuronMCT": 0.840,
    "NeuronIntGrad": 0.837,
    "Random": 0.838,
    "SmoothGrad": 0.870,
}


def test_roar_verdict_groups_the_ranking_and_reads_random_apart_from_the_methods():
    text = report.roar_verdict(FULL, margin=0.006)
    assert text.startswith(
        "**ROAR ranking on MNIST** (best first; neighbours within 0.006, twice the seed spread, "
        "share a group): NeuronIntGrad, Random and NeuronMCT; then GradCAM and Gradient; then "
        "SmoothGrad."
    )
    assert "lowers the accuracy more than the best other method, GradCAM (0.853), by 0.016" in text
    assert "unlike in the paper, Grad-CAM (0.853) does not join them." in text
    assert "But Random (0.838) is level with NeuronIntGrad" in text
    assert "ROAR does not show that they find the more informative pixels" in text
    # Random clearly behind: the pathway gradient beats it too
    beaten = report.roar_verdict({**FULL, "Random": 0.9}, margin=0.006)
    assert (
        "NeuronIntGrad also lowers it more than random replacement does (Random: 0.900)" in beaten
    )
    assert "But Random" not in beaten
    # Grad-CAM level with the best pathway gradient: no "does not join them"
    close = report.roar_verdict({**FULL, "GradCAM": 0.842}, margin=0.006)
    assert "Among the methods, NeuronIntGrad (0.837) and GradCAM (0.842) are level." in close
    ahead = report.roar_verdict({**FULL, "GradCAM": 0.80}, margin=0.006)
    assert "Unlike in the paper, GradCAM (0.800) lowers the accuracy more than any pathway" in ahead
    one_seed = report.roar_verdict(FULL)
    assert (
        "(best first; one seed, so no margin for training noise): NeuronIntGrad; then" in one_seed
    )
    assert "NeuronIntGrad also lowers it more than random replacement" in one_seed
    with pytest.raises(ValueError, match="none of"):
        report.roar_verdict({"Gradient": 0.5, "Random": 0.4})


def test_roar_verdicts_rank_nothing_when_the_unmodified_model_learned_too_little():
    weak = report.roar_verdict(FULL, baseline=0.83)
    assert weak.startswith("**ROAR on MNIST.** No ranking: the unmodified model reaches only")
    assert "83.0% (below 90%)" in weak and "then" not in weak
    assert "No ranking" not in report.roar_verdict(FULL, baseline=0.83, dataset="CIFAR-10")
    auc = {"roar": FULL, "kar": FULL}
    text = report.chance_verdict(auc, ["Gradient"], 0.006, baseline=0.5)
    assert text.startswith("**Against chance.** Not compared either")
    assert report.baseline_accuracy(roar_results()) == pytest.approx(0.9)
    two = RoarResult("roar", [0.0, 0.5], {"a": torch.tensor([[0.8, 0.1], [0.6, 0.2]])})
    assert report.baseline_accuracy({"roar": two}) == pytest.approx(0.7)
    low = report.baseline_verdict(0.83, "MNIST", 400, 1, 8)
    assert low.startswith(
        "**Baseline.** Trained on the unmodified images (400 images, 1 epoch, 8 images a step), "
        "the CNN reaches 83.0% test accuracy on MNIST: the accuracy at fraction 0 of every curve."
    )
    assert "below the 90% this chapter asks before ranking" in low and "no ranking" in low
    high = report.baseline_verdict(0.975, "MNIST", 4000, 2, 32)
    assert "(4000 images, 2 epochs, 32 images a step)" in high
    assert high.endswith("above the 90% this chapter asks before ranking methods.")
    assert "above the 60%" in report.baseline_verdict(0.7, "CIFAR-10", 50000, 2, 32)


def test_chance_verdict_counts_better_level_and_worse_than_random():
    roar = {"a": 0.80, "b": 0.839, "c": 0.86, "d": 0.87, "Random": 0.838}
    kar = {"a": 0.9, "b": 0.85, "c": 0.841, "d": 0.7, "Random": 0.84}
    text = report.chance_verdict({"roar": roar, "kar": kar}, ["a", "b", "c", "d"], 0.006)
    assert text == (
        "**Against chance.** Under ROAR, 1 of 4 methods lowers the accuracy more than random "
        "replacement does by more than twice the seed spread (a), 1 is level with it (b) and 2 "
        "lower it less "
        "(c and d). Replacing the pixels the latter rank most important costs the retrained model "
        "less than replacing random pixels. Under KAR, 2 of 4 keep the accuracy higher than random "
        "pixels do by more than twice the seed spread (a and b); Random ranks 4 of 5 there."
    )
    exact = report.chance_verdict({"roar": roar, "kar": kar}, ["a", "b"], None)
    assert (
        "1 of 2 methods lowers the accuracy more than random replacement does (a) and 1 " in exact
    )
    assert "lowers it less (b)." in exact
    assert "seed spread" not in exact and "level" not in exact


def test_spread_verdict_says_what_the_plus_minus_is():
    assert "With one seed" in report.spread_verdict(FULL, None, 1)
    text = report.spread_verdict(FULL, 0.003, 3)
    assert text.startswith("The ROAR AUCs span 0.837 to 0.870.")
    assert "standard deviation of an AUC over the 3 seeds; the largest is 0.003" in text
    assert "under twice that (0.006)" in text
    assert report.seed_spread(roar_results(), NAMES, 1) is None
    assert report.seed_spread(roar_results(seeds=2, wobble=0.02), NAMES, 2) == pytest.approx(
        0.015 / 2**0.5, rel=1e-5
    )


def test_rise_verdict_names_the_curves_above_the_unmodified_model():
    accuracy = {
        "up": torch.tensor([[0.90, 0.96, 0.92], [0.90, 0.97, 0.93]]),
        "noisy": torch.tensor([[0.90, 0.99, 0.8], [0.90, 0.85, 0.8]]),  # mean 0.92, std 0.099
        "Random": torch.tensor([[0.90, 0.7, 0.5], [0.90, 0.7, 0.5]]),
    }
    result = RoarResult("roar", [0.0, 0.5, 0.9], accuracy)
    assert set(report.above_baseline(result, ["up", "noisy"], 0.9)) == {"up"}
    text = report.rise_verdict(result, ["up", "noisy"], 0.9)
    assert (
        "without the pixels that up (96.5% with 50% replaced) rank most important scores " in text
    )
    assert "higher than the unmodified model's 90.0%" in text
    assert text.endswith(
        "At 90% replaced, Random leaves 50.0%, while every method leaves at least 80.0% (noisy)."
    )
    assert "by more than twice the seed spread. A model" in text
    flat = report.rise_verdict(result, ["noisy"], 0.95)
    assert flat.startswith("**Above the baseline.** No ROAR curve rises above the unmodified")
    one = RoarResult(
        "roar", [0.0, 0.5], {"a": torch.tensor([[0.9, 0.95]]), "Random": torch.ones(1, 2)}
    )
    assert "rank most important scores higher than the unmodified model's 90.0%. A model" in (
        report.rise_verdict(one, ["a"], 0.9)
    )
