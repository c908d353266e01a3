"""The input-specific pruning chapter's maps, figures, tables and verdicts, on made-up results."""

import math

import numpy as np
import pytest
import torch
import toy_models as toy

from pathlib_core.attribution import InputSpecificPruning
from pathlib_core.evaluation import method_maps
from pathlib_core.evaluation.perturbation import PerturbationCurve
from pathlib_core.evaluation.sanity import SanityResult
from pathlib_core.evaluation.sensitivity import SensitivityN
from pathlib_core.report import input_specific_pruning as report

PRUNED = method_maps.pruned_names([0.5, 0.9])
NAMES = ["Gradient", *PRUNED, "Random"]


def _result(ns, curve):
    """A SensitivityN whose mean over its two images is ``curve``."""
    curve = torch.tensor(curve, dtype=torch.float64)
    return SensitivityN(torch.tensor(ns), torch.stack([curve - 0.1, curve + 0.1]))


def _groups(curves, ns=(1, 5, 10, 50)):
    """Both tests of one model with the same curves (name -> mean correlation per size)."""
    return tuple({name: _result(list(ns), c) for name, c in curves.items()} for _ in range(2))


def test_pruned_names_and_styles_cover_every_map():
    assert PRUNED == ["PruneGrad 0.5", "PruneGrad 0.9"]
    style = report.styles(PRUNED)
    assert set(style) == {
        "Gradient",
        "IntegratedGradients",
        "NeuronIntGrad",
        "PrunePGD",
        "Random",
    } | set(PRUNED)
    # the sparser pruned gradient is the darker blue
    assert sum(style[PRUNED[1]]["color"][:3]) < sum(style[PRUNED[0]]["color"][:3])
    assert all(style[n]["ls"] == "--" for n in PRUNED)


def test_input_specific_pruning_functions_build_the_chapter_maps():
    model = toy.small_cnn()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    fns = method_maps.input_specific_pruning_functions(
        [0.5, 0.9], 0.9, epsilon=0.5, n_pgd_steps=3, ig_steps=4
    )
    assert list(fns) == ["Gradient", *PRUNED, "PrunePGD", "IntegratedGradients", "NeuronIntGrad"]
    pruned = fns["PruneGrad 0.9"](model, x, target)
    expected = InputSpecificPruning(model).attribute(x, target, sparsity=0.9, mode="gradient")
    torch.testing.assert_close(pruned, expected)
    delta = fns["PrunePGD"](model, x, target)
    assert delta.shape == x.shape
    assert float(delta.flatten(1).norm(dim=1).max()) <= 0.5 + 1e-9  # inside the budget


def test_small_and_large_average_the_two_ranges():
    # 100 pixels: sizes 1 (1%) and 10, 50 (>= 10%); size 5 is in neither range
    result = _result([1, 5, 10, 50], [0.2, 0.9, 0.4, 0.6])
    small, large = report.small_and_large(result, 100)
    assert small == pytest.approx(0.2)
    assert large == pytest.approx(0.5)
    rows = report.claim_rows(_groups({"Gradient": [0.2, 0.9, 0.4, 0.6]}), 100)
    assert rows["Gradient"] == pytest.approx((0.2, 0.5, 0.2, 0.5))


def test_claim_table_has_a_row_per_map_and_eight_numbers():
    claim = {"Gradient": (0.1, 0.2, 0.3, 0.4), "PruneGrad 0.9": (0.5, 0.6, 0.7, 0.8)}
    lines = report.claim_table(claim, claim).splitlines()
    assert len(lines) == 4
    assert lines[0].count("|") == 10
    assert lines[3].startswith("| PruneGrad 0.9 | 0.500 | 0.600")


def test_claim_table_explains_a_nan_under_the_table():
    claim = {"Gradient": (0.1, 0.2, 0.3, 0.4), "PruneGrad 0.9": (0.5, 0.6, math.nan, 0.8)}
    text = report.claim_table(claim, {k: (0.1,) * 4 for k in claim})
    table, note = text.split("\n\n")
    assert "| nan |" in table
    assert note.startswith("*nan* in MNIST patches <=1%: PruneGrad 0.9 sums to the same value")
    assert "Lite0" not in note
    every = {k: (0.1, 0.2, math.nan, 0.4) for k in claim}  # the logit drop itself is constant
    note = report.nan_note({"MNIST": claim, "Lite0": every})
    assert "*nan* in Lite0 patches <=1%: the logit drop is the same" in note
    assert report.nan_note({"MNIST": {"Gradient": (0.1,) * 4}}) == ""


def test_noise_level_is_the_largest_random_correlation_in_either_test():
    scattered = {"Random": _result([1, 2], [0.1, -0.3])}
    patches = {"Random": _result([1, 2], [float("nan"), 0.2])}
    assert report.noise_level((scattered, patches)) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("pruned_large", "noise", "outcome", "words"),
    [
        (0.8, 0.1, "supported", "as the 2019 paper claims"),
        (0.45, 0.01, "not supported", "Neither gain reaches 0.05"),  # a gain of 0.05 at most
        (0.6, 0.25, "inconclusive", "within the noise level (0.25"),
        (0.6, 0.01, "supported", "exceed the noise level (0.05"),  # 0.05 at least
        (0.1, 0.1, "not supported", "worse predictor"),
    ],
)
def test_verdict_chooses_the_outcome_from_the_numbers(pruned_large, noise, outcome, words):
    claim = {
        "Gradient": (0.3, 0.4, 0.3, 0.4),
        "PruneGrad 0.5": (0.3, 0.0, 0.3, 0.0),
        "PruneGrad 0.9": (0.2, pruned_large, 0.25, pruned_large),
    }
    result = report.verdict(claim, noise, "MNIST", PRUNED, 20, "digit")
    assert result.outcome == outcome
    assert words in result.text
    assert result.text.startswith("**MNIST.** The best pruned gradient (PruneGrad 0.9")
    assert "(nan:" not in result.text
    assert result.reason == (
        "differences within the noise level" if outcome == "inconclusive" else ""
    )


@pytest.mark.parametrize("pruned_large", [0.8, 0.6, 0.45, 0.1])
def test_one_image_is_always_inconclusive(pruned_large):
    claim = {
        "Gradient": (0.3, 0.4, 0.3, 0.4),
        "PruneGrad 0.9": (0.2, pruned_large, 0.2, pruned_large),
    }
    result = report.verdict(claim, 0.1, "Lite0", ["PruneGrad 0.9"], 1, "image")
    assert result.outcome == "inconclusive"
    assert result.reason.startswith("1 image")
    assert "1 image is too few" in result.text or "1 image would be too few" in result.text
    assert "as the 2019 paper claims" not in result.text


def test_verdict_points_to_the_nan_note_and_never_picks_a_nan_map():
    claim = {
        "Gradient": (math.nan, 0.4, 0.3, 0.4),
        "PruneGrad 0.5": (0.3, 0.9, 0.3, 0.9),
        "PruneGrad 0.9": (0.3, math.nan, 0.3, 2.0),
    }
    result = report.verdict(claim, 0.0, "Lite0", PRUNED, 4, "image")
    assert result.outcome == "supported"
    assert "(PruneGrad 0.5)" in result.text
    assert "(nan: see the note under the table)" in result.text


def test_sentences_carry_their_numbers():
    assert "Only 23% of the MNIST" in report.inactive_sentence(0.23, 0.4)
    assert "exceeds 0.77 on MNIST" in report.inactive_sentence(0.23, 0.4)
    assert "single image makes the Lite0 numbers" in report.noise_sentence(0.12, 0.5, n_images=1)
    assert report.noise_sentence(0.12, 0.5, n_images=4).endswith("either way.")
    claim = {
        "IntegratedGradients": (0, 0.91, 0, 0),
        "PruneGrad 0.5": (0, 0.3, 0, 0),
        "PruneGrad 0.9": (0, 0.6, 0, 0),
        "PrunePGD": (0, 0.55, 0, 0),
    }
    text = report.reference_sentence(claim, PRUNED, 2.0)
    assert "reaches 0.91; the best pruned gradient 0.60; PrunePGD (budget 2) 0.55." in text


def _said(outcome, reason=""):
    return report.Verdict(outcome, reason, "")


@pytest.mark.parametrize(
    ("mnist", "photo", "text"),
    [
        (_said("supported"), _said("supported"), "is supported on both models."),
        (
            _said("not supported"),
            _said("inconclusive", "1 image"),
            "is not supported on MNIST and inconclusive on Lite0 (1 image).",
        ),
        (
            _said("inconclusive", "1 image"),
            _said("inconclusive", "1 image"),
            "is inconclusive on both models (1 image).",
        ),
        (
            _said("supported"),
            _said("not supported"),
            "is supported on MNIST and not supported on Lite0.",
        ),
    ],
)
def test_claim_outcome(mnist, photo, text):
    assert report.claim_outcome(mnist, photo) == text


def test_groups_figure_has_two_panels_with_a_line_per_map():
    groups = _groups({"Gradient": [0.1, 0.2, 0.3, 0.4], "PruneGrad 0.9": [0.2, 0.3, 0.4, 0.5]})
    fig = report.groups_figure(groups, 100, "toy", report.styles(PRUNED))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["random pixel subsets", "square patches"]
    assert all(len(ax.get_lines()) == 3 for ax in axes)  # two maps and the zero line
    assert axes[0].get_xscale() == "log"
    np.testing.assert_allclose(axes[0].get_lines()[0].get_xdata(), [1, 5, 10, 50])
    assert fig._suptitle.get_text() == "toy"


def test_maps_figure_enlarges_digits_to_the_photo_size():
    digit = np.random.rand(4, 4)
    photo = np.random.rand(8, 8, 3)
    maps = {"Gradient": torch.randn(1, 1, 8, 8), "PrunePGD": torch.randn(1, 1, 8, 8)}
    rows = [(digit, {k: v[..., :4, :4] for k, v in maps.items()}), (photo, maps)]
    fig = report.maps_figure(rows, ["Gradient", "PrunePGD"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["input", "Gradient", "PrunePGD"]
    shapes = {ax.get_images()[0].get_array().shape[:2] for ax in fig.axes if ax.get_images()}
    assert shapes == {(8, 8)}
    with pytest.raises(ValueError, match="at least one"):
        report.maps_figure([], ["Gradient"])


def _cascade(after_output):
    """A cascade of three stages whose mean Spearman of |map| after the output layer is given."""
    scores = {
        name: {
            "spearman_abs": torch.tensor([[1.0, 1.0], [v, v], [v / 2, v / 2]]),
            "ssim": torch.tensor([[1.0, 1.0], [v, v], [0.0, 0.0]]),
        }
        for name, v in after_output.items()
    }
    return SanityResult(["original", "fc2", "conv1"], scores)


@pytest.mark.parametrize(
    ("pruned", "words"),
    [(0.7, "stay much closer"), (0.46, "about as much as the gradient"), (0.2, "change more")],
)
def test_sanity_sentence_follows_the_gap(pruned, words):
    cascade = _cascade({"Gradient": 0.4, "PruneGrad 0.9": pruned, "PrunePGD": 0.3})
    text = report.sanity_sentence(cascade, "PruneGrad 0.9", 0.9)
    assert words in text
    assert text.startswith("After the output layer is randomised, Spearman of |map| with the")
    assert "0.40 for the gradient" in text
    assert f"; with every layer random, 0.20, {pruned / 2:.2f} and 0.15." in text
    assert "NeuronIntGrad" not in text and "sanity-checks chapter" not in text


def test_sanity_sentence_names_the_2021_pathway_and_the_sparsities():
    same = _cascade({"Gradient": 0.4, "PruneGrad 0.9": 0.8, "PrunePGD": 0.8, "NeuronIntGrad": 0.8})
    text = report.sanity_sentence(same, "PruneGrad 0.9", 0.9, 0.7)
    assert "and so does the 2021 NeuronIntGrad pathway at the same sparsity (0.80 and 0.40)" in text
    assert "by this test the 2019 maps and the 2021 NeuronIntGrad pathway depend less" in text
    assert (
        "this chapter's sparsity, 0.9; the sanity-checks chapter runs its pathway methods at 0.7"
        in text
    )
    apart = _cascade(
        {"Gradient": 0.4, "PruneGrad 0.9": 0.8, "PrunePGD": 0.8, "NeuronIntGrad": 0.46}
    )
    text = report.sanity_sentence(apart, "PruneGrad 0.9", 0.9, 0.9)
    assert (
        "NeuronIntGrad pathway at the same sparsity (0.46 and 0.23) changes about as much" in text
    )
    assert "by this test the 2019 maps depend less" in text
    assert text.endswith("The sanity-checks chapter uses the same sparsity (0.9).")


def test_sanity_figure_draws_each_method_per_metric():
    cascade = _cascade({"Gradient": 0.4, "PruneGrad 0.9": 0.5})
    fig = report.sanity_figure(cascade, report.styles(PRUNED))
    assert [ax.get_title() for ax in fig.axes] == ["Spearman of |map|", "SSIM"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["original", "fc2", "conv1"]


def _curve(order, end):
    fractions = torch.tensor([0.0, 0.05, 0.1])
    change = torch.tensor([[0.0, end / 2, end], [0.0, end / 2, end]])
    output = torch.tensor([[2.0, 1.5, 1.0], [2.0, 1.0, 0.0]])
    return PerturbationCurve(fractions, order, output, change)


def _curves(ends):
    return {order: {n: _curve(order, e) for n, e in ends.items()} for order in ("lerf", "morf")}


def test_perturbation_figure_has_lerf_and_morf_per_model():
    curves = {"MNIST": _curves({"Gradient": 0.2}), "Lite0": _curves({"Gradient": 0.3})}
    fig = report.perturbation_figure(curves, report.styles(PRUNED))
    assert [ax.get_title() for ax in fig.axes] == [
        "MNIST, LERF (lower is better)",
        "MNIST, MORF (higher is better)",
        "Lite0, LERF (lower is better)",
        "Lite0, MORF (higher is better)",
    ]
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 2  # LeRF starts at the first removal
    assert len(fig.axes[1].get_lines()[0].get_xdata()) == 3


def test_summary_table_marks_maps_without_a_sanity_check():
    cascade = _cascade({"Gradient": 0.4})
    ends = {"Gradient": 0.2, "Random": 0.8}
    table = report.summary_table(["Gradient", "Random"], cascade, _curves(ends), _curves(ends))
    lines = table.splitlines()
    assert lines[2] == "| Gradient | 0.400 | 0.200 | 0.200 | 0.75 | 0.200 | 0.75 |"
    assert lines[3].startswith("| Random | - | - | 0.800 |")


def test_the_imagenet_classifier_is_named_where_it_ran():
    assert "of VGG-16's for these images" in report.inactive_sentence(0.23, 0.4, "VGG-16")
    assert "0.50 on VGG-16" in report.noise_sentence(0.12, 0.5, 1, "VGG-16")
    outcome = report.claim_outcome(_said("supported"), _said("not supported"), "VGG-16")
    assert outcome.endswith("not supported on VGG-16.")
    claim = {"Gradient": (0.1, 0.2, 0.3, 0.4)}
    header = report.claim_table(claim, claim, "VGG-16").splitlines()[0]
    assert "VGG-16 patches >=10%" in header and "Lite0" not in header


def test_photo_budget_scales_lite0s_epsilon():
    from pathlib_core import images

    assert report.photo_budget(25.0, images.LITE0, 224) == pytest.approx(25.0)
    imagenet = report.photo_budget(25.0, images.IMAGENET, 224)
    rms = math.sqrt(sum((0.5 / s) ** 2 for s in images.IMAGENET.std) / 3)
    assert imagenet == pytest.approx(25.0 * rms) and 2.1 < imagenet / 25.0 < 2.3
    assert report.photo_budget(25.0, images.LITE0, 448) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="positive"):
        report.photo_budget(25.0, images.Normalisation((0, 0, 0), (1, 0, 1)), 224)


def test_verdict_never_calls_the_gradients_own_map_the_best_pruned_one():
    claim = {
        "Gradient": (0.3, 0.83, 0.3, 0.82),
        "PruneGrad 0.5": (0.3, 0.83, 0.3, 0.82),  # only inactive neurons removed: the gradient
        "PruneGrad 0.9": (0.3, 0.832, 0.3, 0.818),
        "PruneGrad 0.99": (0.3, 0.71, 0.3, 0.70),
    }
    names = ["PruneGrad 0.5", "PruneGrad 0.9", "PruneGrad 0.99"]
    result = report.verdict(claim, 0.01, "MNIST", names, 20, "digit")
    assert result.text.startswith("**MNIST.** The best pruned gradient (PruneGrad 0.9)")
    assert "PruneGrad 0.5 +0.00 / +0.00 (the gradient's own map)" in result.text
    assert "PruneGrad 0.99 -0.12 / -0.12." in result.text


def test_sanity_sentence_names_its_sparsity_and_the_others():
    cascade = _cascade(
        {
            "Gradient": 0.6,
            "PruneGrad 0.5": 0.6,
            "PruneGrad 0.9": 0.83,
            "PruneGrad 0.99": 0.3,
            "PrunePGD": 0.5,
        }
    )
    text = report.sanity_sentence(cascade, "PruneGrad 0.9", 0.9)
    assert "The pruned maps at sparsity 0.9 stay much closer" in text and "probably" in text
    assert "The other sparsities, after the output layer and with every layer random (the " in text
    assert "gradient: 0.60 and 0.30): PruneGrad 0.5 0.60 and 0.30, about as close to them" in text
    assert "PruneGrad 0.99 0.30 and 0.15, further from them than the gradient." in text
    # near the gradient after the output layer, far above it with every layer random
    cascade.scores["PruneGrad 0.99"]["spearman_abs"] = torch.tensor(
        [[1.0, 1.0], [0.69, 0.69], [0.72, 0.72]]
    )
    text = report.sanity_sentence(cascade, "PruneGrad 0.9", 0.9)
    assert (
        "PruneGrad 0.99 0.69 and 0.72, about as close to them as the gradient after the output "
        "layer but closer to the trained model's maps than the gradient with every layer random."
    ) in text


def test_claims_sentence_sets_each_evaluation_against_the_2019_claim():
    cascade = _cascade({"Gradient": 0.6, "PruneGrad 0.9": 0.83, "NeuronIntGrad": 0.5})
    mnist = _curves({"Gradient": 0.4, "PruneGrad 0.9": 0.2, "PrunePGD": 0.7, "Random": 0.8})
    photo = _curves({"Gradient": 0.3, "PruneGrad 0.9": 0.5, "Random": 0.1})
    text = report.claims_sentence(cascade, mnist, photo, ["PruneGrad 0.9", "PrunePGD"], "VGG-16")
    assert "sanity check on MNIST, PruneGrad 0.9 0.83 against NeuronIntGrad 0.5, against" in text
    assert "LeRF on MNIST, PruneGrad 0.9 0.2 against Gradient 0.4, for the claim" in text
    assert "LeRF on VGG-16, PruneGrad 0.9 0.5 against Random 0.1, against the claim" in text
    assert "MoRF on VGG-16" in text and text.endswith("ROAR was not run for the 2019 maps.")
    close = _curves({"Gradient": 0.4, "PruneGrad 0.9": 0.39})
    assert "0.39 against Gradient 0.4, about even (within 5%)" in report.claims_sentence(
        cascade, close, close, ["PruneGrad 0.9"]
    )
    # two scores that 3 significant figures would show alike get a fourth
    hair = _curves({"Gradient": 10.46, "PruneGrad 0.9": 10.549})
    text = report.claims_sentence(cascade, hair, hair, ["PruneGrad 0.9"])
    assert "10.5 against Gradient 10.5," not in text
    assert "PruneGrad 0.9 10.55 against Gradient 10.46, about even (within 5%)" in text


def test_groups_figure_keeps_its_legend_off_the_data():
    curves = {name: [0.1, 0.2, 0.3, 0.4] for name in NAMES}
    fig = report.groups_figure(_groups(curves), 100, "toy", report.styles(PRUNED))
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
