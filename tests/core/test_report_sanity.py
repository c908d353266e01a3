"""The sanity-checks chapter's figures, table and sentences, on made-up results."""

import pytest
import torch

from pathlib_core import paper_numbers
from pathlib_core.evaluation.sanity import SanityResult
from pathlib_core.report import sanity as report
from pathlib_core.report.sanity import Summary

STAGES = ["original", "fc2", "fc1", "conv1"]


def _result(firsts, keep_maps=False):
    """A cascade over :data:`STAGES` whose Spearman of |map| falls from 1 to ``first``, then
    halves."""
    scores = {
        name: {
            metric: torch.tensor([[1.0, 1.0], [v, v], [v / 2, v / 2], [v / 4, v / 4]])
            for metric in report.METRICS
        }
        for name, v in firsts.items()
    }
    maps = (
        {name: torch.rand(len(STAGES), 2, 6, 6) * 2 - 1 for name in firsts} if keep_maps else None
    )
    return SanityResult(STAGES, scores, maps)


def test_cascade_figure_has_a_panel_per_metric_and_a_line_per_method():
    fig = report.cascade_figure(_result({"Gradient": 0.4, "NeuronMCT": 0.3}), "toy")
    assert [ax.get_title() for ax in fig.axes] == [
        "Spearman of |map|",
        "SSIM",
        "Spearman (signed)",
        "HOG correlation",
    ]
    assert all(len(ax.get_lines()) == 3 for ax in fig.axes)  # two methods and the zero line
    assert fig.axes[0].get_lines()[1].get_linestyle() == "--"  # NeuronMCT: a pathway method
    assert fig._suptitle.get_text() == "toy"
    one = report.cascade_figure(_result({"Gradient": 0.4}), "one", metrics=["ssim"])
    assert [ax.get_title() for ax in one.axes] == ["SSIM"]


def test_cascade_maps_figure_is_a_method_by_stage_grid():
    fig = report.cascade_maps_figure(_result({"Gradient": 0.4, "DGR": 0.3}, keep_maps=True))
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 2 * len(STAGES)
    assert [ax.get_title() for ax in images[: len(STAGES)]] == STAGES
    assert [t.get_text() for t in images[len(STAGES)].texts] == ["DGR"]
    with pytest.raises(ValueError, match="keep_maps=True"):
        report.cascade_maps_figure(_result({"Gradient": 0.4}))


def test_paper_cascade_figure_shows_every_paper_curve():
    fig = report.paper_cascade_figure()
    assert [ax.get_title() for ax in fig.axes] == [
        "paper, ResNet-50: Spearman of |map|",
        "paper, ResNet-50: SSIM",
    ]
    assert len(fig.axes[0].get_lines()) == len(paper_numbers.SANITY["spearman_abs"])
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "GBP (GuidedBackprop)" in labels


def test_summarise_and_table():
    result = _result({"Gradient": 0.4, "GuidedBackprop": 0.9, "DGR": 0.5})
    shuffled = {
        name: {"spearman_abs": torch.tensor([0.1, float("nan"), 0.3])} for name in result.scores
    }
    summary = report.summarise(result, shuffled)
    assert summary["Gradient"] == pytest.approx((0.4, 0.1, 0.2))
    photo = _result({"Gradient": 0.6})
    lines = report.summary_table(summary, photo, memorised_enough=True).splitlines()
    assert len(lines) == 2 + 3
    paper_first = paper_numbers.SANITY["spearman_abs"]["Gradients"][1]
    assert lines[2].startswith(f"| Gradient | 0.400 | 0.100 | 0.600 | 0.150 | {paper_first:.3f}")
    assert lines[2].endswith("| 0.200 |") and lines[0].endswith("| MNIST shuffled labels |")
    assert lines[4].startswith("| DGR | 0.500 | 0.125 | - | - | - | - |")  # not in the paper
    void = report.summary_table(summary, photo, memorised_enough=False).splitlines()
    assert "shuffled" not in void[0] and void[0].endswith("| paper all random |")  # column out
    assert void[2].count("|") == lines[2].count("|") - 1
    named = report.summary_table(summary, photo, True, photo_label="ResNet-18").splitlines()[0]
    assert f"| ResNet-18 after {STAGES[1]} | ResNet-18 all random |" in named
    assert "| Lite0 all random |" in lines[0]


def test_memorised_sentence_says_when_the_test_is_void():
    assert "It has memorised them" in report.memorised_sentence(0.95, 30, 5e-4)
    void = report.memorised_sentence(0.31, 1, 5e-4)
    assert void.startswith("The shuffled-label model fits 31% of its shuffled training labels")
    assert "After 1 epoch at peak learning rate 0.0005 it has not memorised" in void
    assert "After 2 epochs at" in report.memorised_sentence(0.31, 2, 5e-4)
    assert "the summary leaves its column out" in void


def _summary(gbp, pathway, gradient=0.4, floor=0.1):
    return {
        "Gradient": Summary(gradient, floor, 0.2),
        "GuidedBackprop": Summary(gbp, 0.5, 0.7),
        "NeuronMCT": Summary(pathway, 0.3, 0.25),
    }


@pytest.mark.parametrize(
    ("gbp", "pathway", "words"),
    [
        (0.9, 0.45, ["it fails the test here too", "like the paper, they decorrelate"]),
        (0.5, 0.6, ["changes more than in the paper", "unlike the paper, they stay"]),
    ],
)
def test_agreement_sentence(gbp, pathway, words):
    text = report.agreement_sentence(_summary(gbp, pathway), ["NeuronMCT", "DGR"])
    assert all(w in text for w in words)
    paper = paper_numbers.SANITY["spearman_abs"]
    assert (
        f"the paper's pathway gradients keep NeuronMCT {pathway:.2f} (paper: "
        f"{paper['NeuronMCT'][1]:.2f}), against 0.40 for the plain gradient (paper: "
        f"{paper['Gradients'][1]:.2f})"
    ) in text
    assert f"map keeps Spearman of |map| {gbp:.2f} (paper, ResNet-50: " in text
    assert f"with every weight random it keeps 0.50 (paper: {paper['GBP'][-1]:.2f})" in text
    assert "exactly the gradient's" not in text and "Grad-CAM" not in text


def test_agreement_sentence_says_when_a_pathway_map_is_the_gradient_and_sets_dgr_apart():
    summary = _summary(0.94, 0.613, gradient=0.613) | {
        "NeuronIntGrad": Summary(0.6131, 0.2, 0.4),
        "DGR": Summary(0.70, 0.32, 0.45),
        "GradCAM": Summary(0.398, 0.224, 0.46),
    }
    text = report.agreement_sentence(summary, ["NeuronMCT", "NeuronIntGrad", "DGR"])
    assert "But NeuronMCT and NeuronIntGrad score exactly the gradient's 0.613" in text
    assert (
        "DGR (ours, not in the paper) keeps 0.70: ranked 2 of the 6 methods by similarity (the "
        "most similar: GuidedBackprop 0.94)." in text
    )
    cam = paper_numbers.SANITY["spearman_abs"]["GradCAM"]
    assert "Grad-CAM keeps 0.40 after the output layer and 0.22 with every weight random " in text
    assert f"(paper: {cam[1]:.2f} and {cam[-1]:.2f}): it decorrelates faster here" in text


def test_photo_sentence_reads_the_first_stage_against_the_paper_and_counts_its_images():
    result = _result({"Gradient": 0.46, "GuidedBackprop": 0.99, "NeuronMCT": 0.40})
    text = report.photo_sentence(result, "EfficientNet-Lite0", 3)
    assert text.startswith("**EfficientNet-Lite0** (3 images), after `fc2` is randomised.")
    assert "Guided Backprop keeps 0.99 (paper: " in text
    assert "Here the paper's pathway gradients keep NeuronMCT 0.40 (paper: " in text
    assert (
        "like the paper, they decorrelate about as fast as the gradient (within 0.15; the " in text
    )
    assert "largest difference is -0.06)." in text
    assert "means over 3 images" in text
    assert "means over" not in report.photo_sentence(result, "ResNet-50", 1000)


def test_floor_and_shuffled_sentences():
    low = {k: v._replace(all_random=0.3) for k, v in _summary(0.9, 0.4).items()}
    assert report.floor_sentence(low) is None  # every score at or below 0.3
    high = _summary(0.9, 0.4) | {"DeepLift": Summary(0.7, 0.39, 0.56)}
    floor = report.floor_sentence(high)
    assert floor.startswith("With every weight random, GuidedBackprop 0.50 and DeepLift 0.39 ")
    assert "DeepLift multiply by the input, which keeps the digit's shape in its map" in floor
    assert "|Spearman|" not in floor
    text = report.shuffled_sentence(_summary(0.9, 0.4), ["NeuronMCT", "DGR"])
    assert "(most similar first): GuidedBackprop 0.70, NeuronMCT 0.25, Gradient 0.20." in text
    assert "2 of 3 methods keep more here than with every weight random." in text
    every = {k: v._replace(all_random=0.0) for k, v in _summary(0.9, 0.4).items()}
    assert "no method passes this test clearly" in report.shuffled_sentence(every, ["NeuronMCT"])
