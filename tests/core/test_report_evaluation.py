"""Curves, rankings, tables and verdicts of the evaluation chapters, on constructed results."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from pathlib_core import paper_numbers
from pathlib_core.report import evaluation as report


def curve(last: float, aopc: float = 0.0):
    fractions = torch.tensor([0.0, 0.05, 0.1])
    return SimpleNamespace(
        fractions=fractions,
        mean_change=torch.tensor([0.0, last / 2, last]),
        aopc=torch.tensor([aopc, aopc]),
    )


def test_rankings_and_ranks():
    lerf = {"Gradient": curve(0.5), "NeuronMCT": curve(0.1), "Random": curve(0.9)}
    assert report.lerf_ranking(lerf) == ["NeuronMCT", "Gradient", "Random"]
    morf = {"Gradient": curve(0, 2.0), "NeuronMCT": curve(0, 1.0), "Random": curve(0, 3.0)}
    assert report.morf_ranking(morf) == ["Random", "Gradient", "NeuronMCT"]
    assert report.ranking({"a": 1.0, "b": 1.0, "c": 0.5}) == ["c", "a", "b"]  # ties: input order
    assert report.rank_of("b", ["a", "b", "c"]) == "2 of 3"
    assert report.best_of(["c", "b"], ["a", "b", "c"]) == ("b", 2)
    with pytest.raises(ValueError, match="not in the ranking"):
        report.rank_of("z", ["a"])
    with pytest.raises(ValueError, match="none of"):
        report.best_of(["z"], ["a"])


def test_lerf_verdict_agrees_or_disagrees_with_the_paper():
    pathways = ["NeuronMCT", "NeuronIntGrad", "DGR"]
    agree = report.lerf_verdict(
        "MNIST", ["DGR", "GradCAM", "NeuronMCT", "Gradient", "NeuronIntGrad", "Random"], pathways
    )
    assert agree.startswith("**MNIST.** LeRF ranking (best first): DGR, GradCAM, NeuronMCT")
    assert "The best pathway gradient, DGR, ranks 1 of 6." in agree
    # the ranks are ours, not the paper's; one of the two outside the best three: no agreement
    assert "NeuronMCT and NeuronIntGrad (the paper's methods) rank 3 and 5 of 6 here." in agree
    assert "Only NeuronMCT is among the best three here. In the paper both are among" in agree
    assert "As in the paper" not in agree
    assert agree.endswith(
        " Grad-CAM ranks 2 of 6 (in the paper, at 10%: 2 of 8 on CIFAR-10, 4 of 8 on Birdsnap "
        "and 1 of 8 on ImageNet, tied with NeuronIntGrad*)."
    )
    both = report.lerf_verdict(
        "MNIST", ["NeuronIntGrad", "GradCAM", "NeuronMCT", "Gradient", "Random"], pathways
    )
    assert "As in the paper, both are among the best three at finding unimportant" in both
    disagree = report.lerf_verdict(
        "Lite0", ["Gradient", "Random", "GradCAM", "NeuronIntGrad", "NeuronMCT"], pathways
    )
    assert "Unlike the paper, neither of them is among the best three here." in disagree
    assert "rank 5 and 4 of 5 here" in disagree and "ranks 4 of 5." in disagree
    one = report.lerf_verdict(
        "A", ["NeuronMCT", "Gradient"], pathways, paper_pathways=["NeuronMCT"]
    )
    assert "NeuronMCT (the paper's method) ranks 1 of 2 here." in one
    assert "As in the paper, it is among the best three" in one


def test_lerf_verdict_names_its_sample_and_warns_when_it_is_small():
    order = ["GuidedBackprop", "NeuronIntGrad", "DGR", "GradCAM", "NeuronMCT", "Random"]
    few = report.lerf_verdict("Lite0", order, ["NeuronMCT", "NeuronIntGrad"], n_inputs=2)
    assert few.startswith("**Lite0.** LeRF ranking on 2 images (best first): GuidedBackprop")
    assert few.endswith(
        "These ranks rest on 2 images only, so one image more or less could reorder them."
    )
    many = report.lerf_verdict("MNIST", order, ["NeuronMCT"], n_inputs=64, unit="digits")
    assert "LeRF ranking on 64 digits (best first)" in many and "rest on" not in many
    assert "rest on" not in report.lerf_verdict("A", order, ["NeuronMCT"])


def test_lerf_verdict_says_when_the_best_pathway_gradient_ties():
    pathways = ["NeuronMCT", "NeuronIntGrad", "DGR"]
    # MNIST-like: six methods show 0.003 at the table's three decimals
    tied = {
        "NeuronIntGrad": 0.0026,
        "IntegratedGradients": 0.0027,
        "DeepLift": 0.0028,
        "NeuronMCT": 0.0029,
        "InputXGradient": 0.0031,
        "DGR": 0.0034,
        "Gradient": 0.005,
        "GradCAM": 0.034,
        "Random": 0.109,
    }
    text = report.lerf_verdict("MNIST", report.ranking(tied), pathways)
    assert "NeuronIntGrad, ranks 1 of 9. But 6 methods (NeuronIntGrad, IntegratedGradients" in text
    assert "share its LeRF change of 0.003 at the table's precision" in text
    assert "so its rank among them is not meaningful. NeuronMCT and NeuronIntGrad" in text
    # a six-way tie at the top does not single out the paper's methods: no agreement claimed
    assert (
        "NeuronMCT and NeuronIntGrad are level with the best, but so are IntegratedGradients, "
        "DeepLift, InputXGradient and DGR. At this precision"
    ) in text
    assert "cannot single out the pathway gradients" in text and "As in the paper" not in text
    # explicit scores work with a plain list too
    plain = report.lerf_verdict("MNIST", list(report.ranking(tied)), pathways, scores=tied)
    assert plain == text
    # no tie at three decimals: the sentence is the plain one
    apart = tied | {"IntegratedGradients": 0.0036, "DeepLift": 0.0041, "NeuronMCT": 0.0044}
    apart |= {"InputXGradient": 0.0046, "DGR": 0.0048}
    clean = report.lerf_verdict("MNIST", report.ranking(apart), pathways)
    assert "NeuronIntGrad, ranks 1 of 9. NeuronMCT and" in clean and "share" not in clean
    assert "As in the paper, both are among the best three" in clean
    assert report.tied_with("a", {"a": 0.0031, "b": 0.0034, "c": 0.0036}) == ["a", "b"]
    # a paper pathway gradient ranked 4th but level with the 3rd counts as among the best
    level = {"DGR": 0.01, "Gradient": 0.02, "GradCAM": 0.0301, "NeuronMCT": 0.0304, "Random": 0.1}
    assert "As in the paper, it is among" in report.lerf_verdict(
        "A", report.ranking(level), pathways, paper_pathways=["NeuronMCT"]
    )
    level["NeuronMCT"] = 0.031
    assert "Unlike the paper" in report.lerf_verdict(
        "A", report.ranking(level), pathways, paper_pathways=["NeuronMCT"]
    )


def test_morf_verdict_reads_the_ranking_against_chance():
    assert "Every method lowers the logit faster" in report.morf_verdict("A", ["x", "Random"])
    one = report.morf_verdict("A", ["x", "Random", "y"])
    assert "Random ranks 2 of 3: y lowers the logit more slowly" in one and "poorly" not in one
    two = report.morf_verdict("A", ["Random", "x", "y"])
    assert "x and y lower the logit" in two and "tells the methods apart poorly." in two


def test_lerf_and_morf_tables_have_ours_the_mean_and_the_papers_numbers():
    curves = {"lerf": {"GradCAM": curve(0.25), "NeuronIntGrad": curve(0.5)}}
    curves["morf"] = {"GradCAM": curve(0, 1.5), "NeuronIntGrad": curve(0, 0.25)}
    results = {"MNIST": curves}
    table = report.lerf_table(results, ["GradCAM", "NeuronIntGrad"]).splitlines()
    assert table[0] == (
        "| method | MNIST @10% | MNIST mean | paper ImageNet @10% | paper CIFAR-10 @10% |"
    )
    imagenet = paper_numbers.LERF["ImageNet"]["GradCAM"][-1]
    cifar = paper_numbers.LERF["CIFAR-10"]["GradCAM"][-1]
    # the mean over the fractions removed leaves fraction 0 out: (0.125 + 0.25) / 2
    assert table[2] == f"| GradCAM | 0.250 | 0.188 | {imagenet:.3f} | {cifar:.3f} |"
    # the official ImageNet row of NeuronIntGrad repeats its Birdsnap row: marked, and said
    assert table[3].startswith("| NeuronIntGrad | 0.500 | 0.375 | 0.166 † | ")
    assert (
        table[-1]
        == "† NeuronIntGrad's ImageNet row in the official plotting code equals its Birdsnap row."
    )
    assert report.copied_row("CIFAR-10", "GradCAM") is None
    morf = report.morf_table(results, ["GradCAM", "NeuronIntGrad"]).splitlines()
    assert morf[0] == "| method | MNIST MoRF AOPC |" and morf[2] == "| GradCAM | 1.50 |"


def test_range_sentence_orders_by_the_mean_over_every_fraction():
    # Gradient is lowest at the last fraction, NeuronMCT over the whole range
    lerf = {"Gradient": curve(0.1), "NeuronMCT": curve(0.12), "NeuronIntGrad": curve(0.3)}
    lerf["NeuronMCT"].mean_change = torch.tensor([0.0, 0.01, 0.12])
    assert report.lerf_ranking(lerf) == ["Gradient", "NeuronMCT", "NeuronIntGrad"]
    assert report.range_sentence("MNIST", lerf) == (
        "Over the whole range (the mean change over every fraction removed), the MNIST order is "
        "NeuronMCT, Gradient, NeuronIntGrad; the paper's pathway gradients rank NeuronMCT 1 and "
        "NeuronIntGrad 3 of 3."
    )


def test_perturbation_figures_ours_beside_one_legend_and_the_papers_apart():
    curves = {
        order: {"Gradient": curve(0.5, 1), "Random": curve(0.9, 2)} for order in ("lerf", "morf")
    }
    fig = report.perturbation_figure(curves, "toy")
    lerf, morf = fig.axes
    assert lerf.get_title() == "LeRF (lower is better)" and lerf.get_yscale() == "log"
    assert morf.get_title() == "MoRF (higher is better)"
    assert len(lerf.lines) == len(morf.lines) == 2
    assert len(lerf.lines[0].get_xdata()) == 2  # LeRF starts at the first removal
    assert len(morf.lines[0].get_xdata()) == 3
    assert [t.get_text() for t in fig.legends[0].texts] == ["Gradient", "Random"]
    assert morf.get_legend() is None and fig._suptitle.get_text() == "toy"
    plt.close(fig)
    paper = report.paper_lerf_figure(["CIFAR-10", "ImageNet"])
    cifar, imagenet, legend_cell, _ = paper.axes  # two a row, the legend after the last
    assert len(cifar.lines) == len(paper_numbers.LERF["CIFAR-10"])
    assert cifar.get_title() == "paper: LeRF on CIFAR-10 (lower is better)"
    assert not legend_cell.lines and not legend_cell.axison
    labels = [t.get_text() for t in legend_cell.get_legend().texts]
    assert "InputMCT (InputXGradient)" in labels and "GradCAM" in labels
    plt.close(paper)


def test_morf_verdict_calls_a_method_just_above_random_too_close():
    scores = {"NeuronMCT": 2.36, "InputXGradient": 2.26, "Random": 2.23, "Gradient": 2.0}
    text = report.morf_verdict("Lite0", report.ranking(scores, higher_is_better=True))
    assert "InputXGradient (2.26) lies within 5% of Random (2.23): too close to call it" in text
    assert "NeuronMCT (2.36)" not in text  # 5.8% above
    far = report.morf_verdict("Lite0", report.ranking(scores | {"InputXGradient": 2.5}, True))
    assert "too close" not in far


def sens(values):
    return SimpleNamespace(ns=torch.tensor([1, 10, 100]), mean=torch.tensor(values))


def test_sensitivity_figure_table_and_verdicts():
    results = {"Gradient": sens([0.1, 0.2, float("nan")]), "Random": sens([0.0, 0.0, 0.0])}
    fig = report.sensitivity_figure(results, "toy")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_title() == "toy"
    assert len(ax.lines) == 3  # two methods and the zero line
    plt.close(fig)
    scores = report.mean_over_n(results)
    assert scores["Gradient"] == pytest.approx(0.15) and scores["Random"] == 0.0
    table = report.sensitivity_table({"MNIST": scores, "Lite0": scores}).splitlines()
    assert table[0] == "| method | MNIST, mean over n | Lite0, mean over n |"  # no paper column
    assert table[2] == "| Gradient | 0.150 | 0.150 |"
    assert report.sensitivity_table({"MNIST": scores}, {"Gradient": None}).splitlines()[0] == (
        "| method | MNIST, mean over n |"
    )
    with_paper = report.sensitivity_table({"MNIST": scores}, {"Random": 0.25}).splitlines()
    assert with_paper[0] == "| method | MNIST, mean over n | paper |"
    assert with_paper[2:] == ["| Gradient | 0.150 | - |", "| Random | 0.000 | 0.250 |"]
    multiplying = {"InputXGradient", "IntegratedGradients", "DeepLift"}
    yes = report.sensitivity_verdict(
        "MNIST",
        ["DeepLift", "InputXGradient", "IntegratedGradients", "NeuronMCT", "Random"],
        multiplying,
        ["NeuronMCT"],
    )
    assert "The three best all multiply by the input" in yes
    assert yes.endswith("The best pathway gradient ranks 4 of 5.")
    no = report.sensitivity_verdict(
        "MNIST", ["NeuronMCT", "DeepLift", "Gradient"], multiplying, ["NeuronMCT"]
    )
    assert "The three best are NeuronMCT, DeepLift, Gradient." in no and "ranks 1 of 3" in no


def test_chance_margin_shrinks_with_subsets_and_correlations():
    def result(rows):
        return SimpleNamespace(correlation=torch.tensor(rows))

    # one image, 4 sizes, 32 subsets: 2 * sqrt(2 / (31 * 4))
    one = {"a": result([[0.1, 0.2, 0.0, 0.3]]), "Random": result([[0.0] * 4])}
    assert report.chance_margin(one, 32) == pytest.approx(0.254, abs=1e-3)
    # NaN cells do not count; the fewest finite cells of any method decide
    nan = {"a": result([[0.1, float("nan"), 0.0, 0.3]]), "Random": result([[0.0] * 4])}
    assert report.chance_margin(nan, 32) == pytest.approx(2 * (2 / 93) ** 0.5)
    many = {"a": result([[0.1] * 10] * 20), "Random": result([[0.0] * 10] * 20)}
    assert report.chance_margin(many, 50) < 0.03
    with pytest.raises(ValueError, match="at least 2"):
        report.chance_margin(one, 1)
    # a method whose maps are constant (every correlation NaN) does not count; all NaN raises
    constant = one | {"GradCAM": result([[float("nan")] * 4])}
    assert report.chance_margin(constant, 32) == report.chance_margin(one, 32)
    with pytest.raises(ValueError, match="every correlation is NaN"):
        report.chance_margin({"GradCAM": result([[float("nan")] * 4])}, 32)


def test_separation_verdict_names_the_best_only_when_clearly_above_random():
    # Lite0-like numbers: the best 0.124 is within a margin of 0.25 of Random's -0.002
    lite0 = {"InputXGradient": 0.124, "DeepLift": -0.013, "DGR": -0.029, "Random": -0.002}
    flat = report.separation_verdict("Lite0", lite0, 0.254, "1 photo(s) and 32 subsets")
    assert "between -0.029 and 0.124, and none lies more than 0.254" in flat
    assert "above Random's -0.002" in flat and "InputXGradient" not in flat
    assert flat.endswith(
        "with 1 photo(s) and 32 subsets the Lite0 result cannot tell the methods apart."
    )
    # the same numbers with a small margin: the best is named, with those level with it
    clear = report.separation_verdict("Lite0", lite0 | {"DGR": 0.11}, 0.03, "x")
    assert "2 of 3 methods lie more than 0.030" in clear
    assert clear.endswith("The best is InputXGradient (0.124), with DGR within 0.030 of it.")
    alone = report.separation_verdict("MNIST", {"a": 0.9, "b": 0.6, "Random": 0.0}, 0.03, "x")
    assert alone.endswith("The best is a (0.900).")
    below = report.separation_verdict("A", {"a": -0.5, "b": 0.01, "Random": 0.0}, 0.1, "x")
    assert "a lie that far below it" in below and "better than Random's." in below
    nan = float("nan")
    noted = report.separation_verdict("R", {"a": 0.9, "c": nan, "Random": 0.0}, 0.03, "x")
    assert noted.startswith("On R every method's mean lies between 0.900 and 0.900;")
    assert noted.endswith(
        "The best is a (0.900). c has no correlation on these inputs (constant maps) and no score."
    )
    none = report.separation_verdict("R", {"c": nan, "d": nan, "Random": 0.0}, 0.03, "x")
    assert none == (
        "On R no method but Random has a score. c, d have no correlation on these "
        "inputs (constant maps) and no score."
    )


def test_lerf_verdict_agrees_when_only_pathway_gradients_share_the_best():
    pathways = ["NeuronMCT", "NeuronIntGrad", "DGR"]
    scores = {"NeuronMCT": 0.0031, "NeuronIntGrad": 0.0032, "DGR": 0.0033, "Gradient": 0.0034}
    scores |= {"GradCAM": 0.02, "Random": 0.1}
    text = report.lerf_verdict("A", report.ranking(scores), pathways)
    assert "4 methods (NeuronMCT, NeuronIntGrad, DGR, Gradient) share" in text
    assert "level with the best, but so are DGR and Gradient." in text
    scores["Gradient"] = 0.005  # now only pathway gradients share the best value
    text = report.lerf_verdict("A", report.ranking(scores), pathways)
    assert "As in the paper, both are among the best three" in text and "level" not in text


def test_separation_verdict_lists_every_method_level_with_the_best_and_tests_zero():
    lite0 = {
        "IntegratedGradients": 0.049,
        "GradCAM": 0.028,
        "NeuronMCT": 0.010,
        "DeepLift": -0.013,
        "Random": -0.055,
    }
    text = report.separation_verdict("Lite0", lite0, 0.071, "4 images and 50 subsets per size")
    assert "with GradCAM, NeuronMCT, DeepLift within 0.071 of it." in text
    assert "no method lies more than 0.050 (two standard errors of one mean) away" in text
    assert "only Random's -0.055 lies beyond it" in text
    assert "the 2 methods above Random gain on its draw, not on 0" in text
    inside = report.separation_verdict("Lite0", lite0 | {"Random": -0.04}, 0.071, "x")
    assert "Random's -0.040 lies within it: the 1 method above Random gains on its draw" in inside
    clear = report.separation_verdict("MNIST", {"a": 0.9, "b": 0.6, "Random": 0.0}, 0.03, "x")
    assert "Against 0" not in clear


def test_sensitivity_verdict_names_the_best_pathway_gradient_and_its_ties():
    scores = {
        "DeepLift": 0.899,
        "DGR": 0.701,
        "NeuronMCT": 0.677,
        "NeuronIntGrad": 0.677,
        "GuidedBackprop": 0.674,
    }
    order = sorted(scores, key=lambda n: -scores[n])
    text = report.sensitivity_verdict(
        "MNIST", order, {"DeepLift"}, ["DGR", "NeuronMCT", "NeuronIntGrad"], scores
    )
    assert text.endswith("The best pathway gradient is DGR (0.701, 2 of 5).")
    contribution = report.sensitivity_verdict(
        "MNIST", order, {"DeepLift"}, ["NeuronMCT", "NeuronIntGrad"], scores
    )
    assert contribution.endswith("(0.677, 3 of 5), tied at three decimals with NeuronIntGrad.")


def test_lerf_verdict_says_when_a_paper_method_is_a_hair_from_the_best_three():
    scores = {
        "IntegratedGradients": 0.150,
        "GradCAM": 0.155,
        "InputXGradient": 0.162,
        "NeuronMCT": 0.164,
        "NeuronIntGrad": 0.175,
        "Gradient": 0.272,
    }
    order = sorted(scores, key=scores.get)
    text = report.lerf_verdict("Lite0", order, ["NeuronMCT", "NeuronIntGrad"], scores=scores)
    assert "Unlike the paper, neither of them is among the best three here." in text
    assert "But NeuronMCT (0.164) lies within 5% of the third (InputXGradient, 0.162)" in text
    far = dict(scores, NeuronMCT=0.2)
    order = sorted(far, key=far.get)
    text = report.lerf_verdict("Lite0", order, ["NeuronMCT", "NeuronIntGrad"], scores=far)
    assert "within 5%" not in text


def test_lerf_names_the_methods_no_better_than_random_at_the_tables_precision():
    scores = {"Gradient": 0.2724, "GradCAM": 0.094, "SmoothGrad": 0.2705, "Random": 0.2711}
    sentence = report.no_better_than("Random", scores)
    # 0.2705 shows as 0.271 (level with Random's 0.271): no better either; 0.094 is better
    assert sentence == (
        "At the last fraction, Gradient (0.272) and SmoothGrad (0.271) change the output no less "
        "than removing pixels at random does (Random: 0.271)."
    )
    assert report.no_better_than("Random", {"GradCAM": 0.09, "Random": 0.27}) is None
    assert report.no_better_than("Random", {"GradCAM": 0.09}) is None
    order = report.ranking(scores | {"NeuronMCT": 0.1})
    verdict = report.lerf_verdict("Lite0", order, ["NeuronMCT"], ["NeuronMCT"])
    assert "Gradient (0.272) and SmoothGrad (0.271) change the output no less" in verdict
    assert "no less than" not in report.lerf_verdict("A", list(order), ["NeuronMCT"])  # no scores


def test_morf_verdict_marks_the_ties_its_table_shows():
    scores = {"DeepLift": 11.834, "IntegratedGradients": 11.82, "NeuronMCT": 11.341}
    scores |= {"NeuronIntGrad": 11.338, "Random": 4.18}
    assert report.ties(scores, 2) == [["NeuronMCT", "NeuronIntGrad"]]
    assert report.ties(scores, 1) == [
        ["DeepLift", "IntegratedGradients"],
        ["NeuronMCT", "NeuronIntGrad"],
    ]
    verdict = report.morf_verdict("MNIST", report.ranking(scores, higher_is_better=True))
    assert (
        "At the table's two decimals NeuronMCT and NeuronIntGrad share 11.34, so their" in verdict
    )
    assert "share" not in report.morf_verdict("MNIST", list(scores))  # no scores, no ties


def test_sensitivity_figure_names_the_curves_it_draws_on_top_of_each_other_and_shades_chance():
    def result(values, finite=4):
        correlation = torch.full((4, 3), float("nan"))
        correlation[:finite] = torch.tensor(values)
        return SimpleNamespace(
            ns=torch.tensor([1, 10, 100]), mean=torch.tensor(values), correlation=correlation
        )

    results = {
        "IntegratedGradients": result([0.93, 0.92, 0.74]),
        "DeepLift": result([0.925, 0.918, 0.735]),
        "InputXGradient": result([0.92, 0.91, 0.728]),  # within 0.01 of DeepLift, not of IG
        "NeuronMCT": result([0.69, 0.70, 0.56]),
        "Random": result([0.0, 0.01, -0.01], finite=2),
    }
    assert report.coinciding(results) == [["IntegratedGradients", "DeepLift", "InputXGradient"]]
    fig = report.sensitivity_figure(results, "toy", n_subsets=51)
    (ax,) = fig.axes
    label = ax.get_xlabel().replace("\N{NO-BREAK SPACE}", " ")  # a group is never broken
    assert "IntegratedGradients = DeepLift = InputXGradient" in label
    assert "NeuronMCT" not in ax.get_xlabel()
    # the band: 2 / sqrt(50 * 2) = 0.2 around 0, over Random's two finite images
    (band,) = ax.collections
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.2)
    plt.close(fig)
    alone = report.sensitivity_figure({"Random": results["Random"]}, "toy")
    assert alone.axes[0].get_xlabel() == "subset size n (pixels)" and not alone.axes[0].collections
    plt.close(alone)
