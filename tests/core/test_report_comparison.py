"""The comparison chapter's figures, tables and sentences, on constructed pathways and numbers."""

import numpy as np
import pytest
import torch

from pathlib_core import pruning
from pathlib_core.kinds import COMPARED
from pathlib_core.pathway import Pathway
from pathlib_core.report import comparison


def _pathway(*rows):
    """A pathway over two sites of 4 neurons each; ``rows`` are per-sample lists of 8 bits."""
    masks = torch.tensor(rows, dtype=torch.bool)
    return Pathway({"conv": masks[:, :4], "fc": masks[:, 4:]})


def _paths():
    """Every compared kind at sparsities 0.5 and 0.9: the two contribution kinds overlap,
    the others differ."""
    bits = {
        "NeuronMCT": [1, 1, 1, 1, 0, 0, 0, 0],
        "NeuronIntGrad": [1, 1, 1, 0, 1, 0, 0, 0],
        "DGR (init 1)": [0, 0, 0, 0, 1, 1, 1, 1],
        "DGR (init U)": [0, 0, 1, 0, 1, 1, 1, 0],
        "Greedy": [1, 1, 1, 1, 1, 1, 1, 0],
        "Random": [1, 0, 0, 0, 0, 0, 0, 1],
    }
    return {s: {k: _pathway(b, b) for k, b in bits.items()} for s in (0.5, 0.9)}


def test_sparsity_table_rows_are_the_removed_fractions():
    table = comparison.sparsity_table(_paths(), [0.5, 0.9], "Toy").splitlines()
    assert table[0] == "**Toy**: mean fraction of neurons actually removed."
    assert table[2] == "| requested | " + " | ".join(COMPARED) + " |"
    assert table[4] == "| 0.5 | 0.500 | 0.500 | 0.500 | 0.500 | 0.125 | 0.750 |"
    assert len(table) == 6


def test_iou_matrices_figure_and_the_agreeing_sentence():
    matrices = comparison.iou_matrices(_paths(), [0.5, 0.9])
    m = matrices[0.9]
    assert m.shape == (6, 6) and np.allclose(np.diag(m), 1)
    assert m[0, 1] == pytest.approx(3 / 5)  # MCT and IntGrad share 3 of 5
    assert m[0, 2] == 0
    fig = comparison.iou_figure(matrices, "Toy")
    heat = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heat] == ["sparsity 0.5", "sparsity 0.9"]
    assert len(heat[0].texts) == 36 and heat[0].texts[1].get_text() == "0.60"
    assert len(fig.axes) == 3  # and the colour bar
    assert fig._suptitle.get_text() == "Toy"
    text = comparison.iou_summary(matrices, "Toy")
    assert text.startswith("Toy, sparsity 0.9: NeuronMCT and NeuronIntGrad share 0.60")
    assert "agrees with the paper's pattern" in text and "largely the same neurons" in text


def test_iou_summary_says_when_the_pattern_fails_and_falls_back_to_the_middle_sparsity():
    m = np.full((6, 6), 0.3)
    m[0, 2] = 0.4  # a contribution/DGR pair closer than the contribution pair
    text = comparison.iou_summary({0.5: m, 0.8: m, 0.99: m}, "X")
    assert text.startswith("X, sparsity 0.8:")
    assert "does **not** agree" in text and "shares 0.40" in text
    m[4, 5] = 0.1  # Greedy and Random: named apart from the four compared
    text = comparison.iou_summary({0.5: m, 0.8: m, 0.99: m}, "X")
    assert "none of these four shares more than 0.30 with random removal." in text
    assert "Greedy is left out of the comparison (it shares 0.10 with random removal)" in text


def test_layerwise_figure_draws_every_other_kind_and_the_kept_fractions():
    fig = comparison.layerwise_figure(_paths()[0.9], "Toy, sparsity 0.9")
    left, right = fig.axes
    assert len(left.lines) == 5 and len(right.lines) == 6
    assert "NeuronIntGrad" not in [line.get_label() for line in left.lines]
    assert left.get_ylabel() == "Jaccard with NeuronIntGrad"
    assert right.get_yscale() == "log"
    mct = left.lines[0]
    assert list(mct.get_ydata()) == pytest.approx([3 / 4, 0.0])  # conv site, then fc
    (legend,) = fig.legends  # below the panels, naming the reference too
    assert "NeuronIntGrad" in [t.get_text() for t in legend.get_texts()]
    assert left.get_legend() is None


def test_dead_shares_figure_and_sentences():
    paths = _paths()
    # neurons 0 and 4 of each site are dead
    activations = {
        "conv": torch.tensor([[0.0, 1, 1, 1]] * 2),
        "fc": torch.tensor([[0.0, 1, 1, 1]] * 2),
    }
    shares = comparison.dead_shares(paths[0.9], activations)
    assert shares["NeuronMCT"] == pytest.approx(1 / 4)
    assert shares["DGR (init U)"] == pytest.approx(1 / 4)
    fig = comparison.dead_figure(paths, activations, [0.5, 0.9], "Toy")
    assert [ax.get_title() for ax in fig.axes] == [
        "sparsity 0.5",
        "sparsity 0.9",
        "per site, sparsity 0.9",
    ]
    assert len(fig.axes[0].patches) == 12 and len(fig.axes[-1].lines) == 6
    assert [t.get_text() for t in fig.legends[0].texts] == ["dead", "active"]  # off the bars
    assert fig.axes[-1].get_xticklabels()[0].get_text() == paths[0.9]["NeuronMCT"].sites[0]
    clean = {k: 0.0 for k in COMPARED} | {"DGR (init U)": 0.3, "Random": 0.2, "Greedy": 0.1}
    text = comparison.dead_summary({0.8: clean, 0.9: clean}, 0.4, "Toy")
    assert text.startswith("Toy: 60.0% of all neurons are dead")
    assert "DGR (init U) keeps 30.0% dead neurons, more than random removal (20.0%) and far" in text
    fewer = comparison.dead_summary({0.9: clean | {"Random": 0.5}}, 0.4, "Toy")
    assert "DGR (init U) keeps 30.0% dead neurons, fewer than random removal (50.0%)" in fewer
    alike = comparison.dead_summary({0.9: clean | {"Random": 0.28}}, 0.4, "Toy")
    assert "about as many as random removal (28.0%)" in alike
    assert "DGR (init 1) keeps none" in text
    assert "without: NeuronMCT, NeuronIntGrad, DGR (init 1)." in text and "almost none:" not in text
    # MNIST-like: a share of 0.4% is "almost none" (with its share), never "without"
    small = clean | {"DGR (init 1)": 0.004}
    text = comparison.dead_summary({0.9: small}, 0.4, "Toy")
    assert "; almost none: DGR (init 1) (0.4%); without: NeuronMCT, NeuronIntGrad." in text
    assert "DGR (init 1) keeps almost none" in text
    tiny = comparison.dead_summary({0.9: clean | {"DGR (init 1)": 0.00004}}, 0.4, "Toy")
    assert "almost none: DGR (init 1) (0.004%)" in tiny
    dirty = clean | {"NeuronMCT": 0.05}
    assert "does **not** show the paper's contrast" in comparison.dead_summary(
        {0.9: dirty}, 0.4, "Toy"
    )


def _preservation(kept, change):
    n = len(kept)
    return pruning.Preservation(
        target=torch.zeros(n, dtype=torch.long),
        p_original=torch.ones(n, dtype=torch.float64),
        p_pathway=torch.ones(n, dtype=torch.float64),
        relative_change=torch.tensor(change, dtype=torch.float64),
        prediction_kept=torch.tensor(kept),
    )


def test_preservation_figure_and_the_easy_objective_sentence():
    good = {
        0.5: (_preservation([True] * 10, [0.0] * 10), 0.5),
        0.9: (_preservation([True] * 10, [0.1] * 10), 0.9),
    }
    bad = {
        0.5: (_preservation([True] * 10, [0.0] * 10), 0.5),
        0.9: (_preservation([False] * 10, [0.9] * 10), 0.9),
    }
    table = {k: good if k in ("NeuronMCT", "DGR (init 1)") else bad for k in COMPARED}
    active = _preservation([True] * 10, [0.0] * 10)
    fig = comparison.preservation_figure(table, active, 0.4, "Toy")
    ax_a, ax_b = fig.axes
    assert len(ax_a.lines) == 7 and len(ax_b.lines) == 7  # six kinds and the active cross
    assert list(ax_a.lines[0].get_ydata()) == [1.0, 1.0]
    assert ax_b.get_yscale() == "symlog"
    m = np.eye(6)  # MCT and DGR (init 1) share nothing
    text = comparison.preservation_summary(table, {0.9: m}, "Toy")
    assert "NeuronMCT 100.0%" in text and "NeuronIntGrad 0.0%" in text
    assert "NeuronMCT and DGR (init 1) (Jaccard 0.00; median relative change of p(class) " in text
    assert "0.10 and 0.10)" in text and "both keep the predicted class for at least 90%" in text
    assert "for at least 90% of the inputs" in text and "illustration" not in text
    m[0, 2] = m[2, 0] = 0.7  # now they largely agree: nothing illustrates the argument
    assert "does not illustrate" in comparison.preservation_summary(table, {0.9: m}, "Toy")


def test_preservation_summary_counts_a_few_inputs():
    def on(kept):
        return {0.9: (_preservation(kept, [0.1] * len(kept)), 0.9)}

    m = np.eye(6)
    one = {k: on([k in ("NeuronMCT", "DGR (init 1)")]) for k in COMPARED}
    text = comparison.preservation_summary(one, {0.9: m}, "Lite0")
    assert "NeuronMCT 1 of 1, NeuronIntGrad 0 of 1" in text and "%" not in text
    assert "both keep the predicted class on the one input: NeuronMCT and DGR (init 1)" in text
    assert text.endswith("(with 1 input: an illustration of the argument, not a measurement).")
    four = {k: on([True, True, True, k != "DGR (init 1)"]) for k in COMPARED}
    text = comparison.preservation_summary(four, {0.9: m}, "Toy")
    assert "DGR (init 1) 3 of 4" in text and "keep the predicted class on all 4 inputs" in text
    assert "DGR (init 1) (Jaccard" not in text  # 3 of 4 is under 90%


def test_image_rows_and_the_decoding_sentence():
    inputs = torch.rand(2, 1, 4, 4)
    panels = torch.rand(3, 2, 1, 4, 4)
    fig = comparison.image_rows_figure(
        inputs, panels, ["input", "a", "b", "c"], lambda t: t[0].numpy(), 1.0
    )
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:5]] == ["input", "a", "b", "c", ""]
    assert np.allclose(fig.axes[5].images[0].get_array(), panels[0, 1, 0].numpy())
    recognised = torch.tensor([[True, True], [True, False]])
    sentence = comparison.recognised_sentence("Toy", recognised, ["a", "b"], "8 steps")
    assert sentence == (
        "Toy: decoded images (of 2 inputs) that the whole network assigns to the target class: "
        "a 2 of 2, b 1 of 2 (8 steps)."
    )
    many = torch.arange(20)[None].repeat(2, 1) < torch.tensor([[20], [5]])
    assert comparison.recognised_sentence("Toy", many, ["a", "b"]).endswith(
        "share of decoded images that the whole network assigns to the target class: "
        "a 100.0%, b 25.0%."
    )


def test_decoding_sentence_says_when_no_pathway_decodes():
    from pathlib_core.kinds import ACTIVE, WHOLE

    names = [WHOLE, ACTIVE, "NeuronMCT"]
    only_whole = torch.tensor([[True], [False], [False]])
    text = comparison.recognised_sentence("Lite0", only_whole, names, "48 ascent steps")
    assert "whole network 1 of 1, active 0 of 1, NeuronMCT 0 of 1 (48 ascent steps)." in text
    assert text.endswith(
        "No pathway's decoded image is recognised (only the whole network's is), not even the "
        "active sub-network's, which keeps every active neuron: this run cannot tell the kinds "
        "apart. Its ascent budget (48 ascent steps) may be too small for a pathway, and a "
        "pathway whose gradient is zero everywhere cannot be decoded at all, whatever the budget."
    )
    none = comparison.recognised_sentence("Lite0", torch.zeros(3, 2, dtype=torch.bool), names)
    assert "not even the whole network's: this run cannot tell the kinds apart" in none
    active_ok = torch.tensor([[True], [True], [False]])
    assert "budget" not in comparison.recognised_sentence("Lite0", active_ok, names)


def test_gradient_display_caps_and_greys():
    gradient = torch.zeros(3, 5, 5)
    gradient[0, 2, 2] = -4.0
    gradient[1, 1, 1] = 1.0
    shown = comparison.gradient_display()(gradient)
    assert shown.shape == (5, 5) and shown.max() <= 1 and shown[2, 2] == shown.max()
    grey = comparison.gradient_display(grey=True)(gradient)
    assert grey.shape == (5, 5, 3) and np.array_equal(grey[..., 0], shown)


def test_input_bounds_are_pixels_0_and_1_normalised():
    from pathlib_core import images

    assert comparison.input_bounds(images.LITE0) == pytest.approx((-1.0, 1.0))
    low, high = comparison.input_bounds(images.IMAGENET)
    assert low == pytest.approx(-0.485 / 0.229) and high == pytest.approx((1 - 0.406) / 0.225)
    x = images.IMAGENET.apply(torch.rand(2, 3, 4, 4, dtype=torch.float64))
    assert low <= float(x.min()) and float(x.max()) <= high


def test_limitation_notes_follow_the_model():
    relu6 = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU6())
    relu = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU())
    assert comparison.has_relu6(relu6) and not comparison.has_relu6(relu)
    assert "Lite uses ReLU6" in comparison.relu6_note(relu6, "Lite")
    assert "VGG-16 has no ReLU6 units" in comparison.relu6_note(relu, "VGG-16")
    bundled = comparison.setting_note("EfficientNet-Lite0", 1, True)
    assert "EfficientNet-Lite0 on 1 bundled photograph." in bundled and "handful" not in bundled
    assert "on 3 bundled photographs." in comparison.setting_note("Lite", 3, True)
    folder = comparison.setting_note("VGG-16", 1000, False)
    assert "VGG-16 on 1,000 images from an ImageNet-style folder" in folder
    assert (
        comparison.count(1, "digit") == "1 digit" and comparison.count(32, "digit") == "32 digits"
    )


def test_decoding_sentence_reads_contribution_against_pruning_pathways():
    kinds_ = ["NeuronMCT", "NeuronIntGrad", "DGR (init 1)", "DGR (init U)"]

    def sentence(*counts):
        recognised = torch.arange(8)[None].repeat(4, 1) < torch.tensor(counts)[:, None]
        return comparison.recognised_sentence("MNIST", recognised, kinds_)

    assert sentence(8, 7, 8, 3).endswith(
        " This run does not separate the two as the paper expects: DGR (init 1) 8 of 8 is "
        "recognised at least as often as a contribution pathway (the lowest, 7 of 8), while "
        "DGR (init U) 3 of 8 falls behind both."
    )
    assert "As the paper expects, every contribution pathway's" in sentence(8, 7, 6, 3)
    assert "Unlike the paper's expectation" in sentence(2, 3, 6, 4)
    assert "paper" not in comparison.recognised_sentence(
        "Toy", torch.ones(2, 3, dtype=torch.bool), ["NeuronMCT", "Random"]
    )
