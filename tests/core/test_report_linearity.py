"""The local-linearity chapter's tables, figures and sentences, on constructed results."""

import numpy as np
import pytest
import torch

from pathlib_core.linearity import LinearityProfile, LinearRadius
from pathlib_core.pathway import Pathway
from pathlib_core.report import linearity as report

KINDS = ["NeuronMCT", "DGR (init 1)", "Random"]


def _radius(conv, fc, pool):
    """Radii of 4 inputs whose constraints are a conv site, an fc site and a pooling layer."""
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    by = {"conv": t(conv), "pool": t(pool), "fc": t(fc)}
    radius = torch.stack(list(by.values()), 1).min(1).values
    return LinearRadius(radius, by, {"conv": "relu", "pool": "pool", "fc": "relu"})


def _keep(fraction):
    kept = int(round(8 * (1 - fraction)))
    return Pathway({"a": torch.arange(8).repeat(4, 1) < kept})


def _setup(mct=1.0, whole=0.5, rnd=0.2, dgr=2.0):
    radii = {
        ("whole network", 0.0): _radius([whole] * 4, [3.0] * 4, [0.0, 0.0, 1.0, 1.0]),
        ("active", 0.0): _radius([0.7] * 4, [3.0] * 4, [1.0] * 4),
    }
    paths = {"whole network": {0.0: None}, "active": {0.0: _keep(0.25)}}
    for kind, value in (("NeuronMCT", mct), ("DGR (init 1)", dgr), ("Random", rnd)):
        paths[kind] = {}
        for s in (0.5, 0.75):
            radii[kind, s] = _radius([9.0] * 4, [value * (1 + s)] * 4, [0.1, 5.0, 5.0, 5.0])
            paths[kind][s] = _keep(s)
    return radii, paths


def test_radius_tables_with_and_without_pooling():
    radii, paths = _setup()
    rows = report.radius_table(radii, paths).splitlines()
    assert rows[0].startswith("**Exact radius, all constraints**")
    assert rows[2].startswith("| pathway | sparsity | actually removed | median radius |")
    assert (
        rows[4] == "| whole network | 0.0 | 0.000 | 0 | 2 of 4 | conv |"
    )  # a tie: conv comes first
    assert rows[6] == "| NeuronMCT | 0.5 | 0.500 | 1.5 | 0 of 4 | fc |"  # pool 0.1 binds once
    assert len(rows) == 4 + len(radii)
    neurons = report.radius_table(radii, paths, neurons_only=True).splitlines()
    assert neurons[0].startswith("**Exact radius, neuron kinks only**")
    assert neurons[4] == "| whole network | 0.0 | 0.000 | 0.5 | 0 of 4 | conv |"
    assert neurons[5] == "| active | 0.0 | 0.250 | 0.7 | 0 of 4 | conv |"


def test_the_binding_constraint_breaks_ties_by_forward_order():
    tied = _radius([1.0, 1.0, 5.0, 5.0], [5.0, 5.0, 2.0, 2.0], [9.0] * 4)  # conv twice, fc twice
    radii, paths = {("NeuronMCT", 0.5): tied}, {"NeuronMCT": {0.5: _keep(0.5)}}
    for neurons_only in (False, True):
        row = report.radius_table(radii, paths, neurons_only).splitlines()[-1]
        assert row.endswith("| conv |")


def test_radius_figure_lines_and_crosses():
    radii, paths = _setup()
    fig = report.radius_figure(radii, paths, KINDS, [0.5, 0.75], "Toy")
    left, right = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["all constraints", "neuron kinks only"]
    assert [line.get_label() for line in right.lines] == [*KINDS, "whole network", "active"]
    assert list(right.lines[0].get_xdata()) == [0.5, 0.75]
    assert list(right.lines[0].get_ydata()) == pytest.approx([1.5, 1.75])
    assert left.lines[3].get_ydata()[0] == pytest.approx(1e-12)  # radius 0 drawn at the floor
    assert left.get_yscale() == "log"


def test_radius_summary_chooses_its_verdict_from_the_numbers():
    radii, _ = _setup(mct=1.0, whole=0.5, rnd=0.2, dgr=2.0)
    text = report.radius_summary(radii, 0.5)
    assert "larger than the whole network's for 4 of 4 digits" in text  # counts, 4 digits
    assert "larger than the pruning objective's for 0 of 4 digits" in text
    assert "radius 0 for 2 of 4 digits" in text
    # beats random but not DGR: removing unimportant neurons, not the contribution criterion
    assert "than the whole network and than a random pathway of the same sparsity" in text
    assert "by either criterion, not from the contribution criterion in particular" in text
    assert "sparsity itself" not in text
    assert "once in 16" in text and "first look" in text  # 4 digits decide nothing
    radii, _ = _setup(mct=1.0, whole=0.5, rnd=2.0, dgr=2.0)  # random does as well: sparsity
    text = report.radius_summary(radii, 0.5)
    assert "**not** consistently linear on a larger ball than a random pathway" in text
    assert "the gain comes with sparsity itself" in text
    radii, _ = _setup(mct=1.0, whole=5.0, rnd=2.0, dgr=0.1)
    text = report.radius_summary(radii, 0.5)
    assert "or than the whole network: the paper's argument is not borne out" in text
    assert "does exceed the pruning objective's" in text
    radii, _ = _setup(mct=1.0, whole=0.5, rnd=0.2, dgr=0.1)
    text = report.radius_summary(radii, 0.5)
    assert "as the paper's argument predicts" in text and "**not**" not in text


def test_radius_summary_uses_percentages_for_many_digits():
    n = report.FEW
    one = lambda v: LinearRadius(  # noqa: E731
        torch.full((n,), v, dtype=torch.float64),
        {"fc": torch.full((n,), v, dtype=torch.float64)},
        {"fc": "relu"},
    )
    radii = {
        ("whole network", 0.0): one(0.5),
        ("NeuronMCT", 0.5): one(1.0),
        ("Random", 0.5): one(0.2),
        ("DGR (init 1)", 0.5): one(2.0),
    }
    text = report.radius_summary(radii, 0.5)
    assert "larger than the whole network's for 100% of the digits" in text
    assert "radius 0 for 0% of the digits" in text and "first look" not in text


def test_probe_table_and_summary():
    fractions = [0.5, 0.99, 2.0, 10.0]
    errors = np.array([[1e-15, 2e-15, 3e-15, 1e-3], [np.nan] * 4])
    flips = np.array([[0, 0, 0, 0.1], [0, 0, 0, 0]])
    table = report.probe_table(fractions, errors, flips).splitlines()
    assert table[0] == "| distance / radius | 0.5 | 0.99 | 2 | 10 |"
    assert table[2] == "| largest relative error | 1.0e-15 | 2.0e-15 | 3.0e-15 | 1.0e-03 |"
    assert table[3].endswith("| 0.0e+00 | 1.0e-01 |")
    text = report.probe_summary(fractions, errors, flips, roundoff=1e-15)
    assert "largest error is 2.0e-15" in text and "No kept neuron changes state" in text
    assert "At twice the radius" in text and "Further out, errors" in text
    flips[0, 1] = 0.01
    errors[0, 2:] = 1e-9
    text = report.probe_summary(fractions, errors, flips, roundoff=1e-15)
    assert "contradicts the proposition" in text and "At twice" not in text


def _profile(error, norm, flipped):
    """2 inputs, 3 radii, 2 random directions and the gradient."""
    shape = (2, 3, 3)
    return LinearityProfile(
        radii=torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64),
        directions=["random", "random", "gradient"],
        relative_error=torch.full(shape, error, dtype=torch.float64),
        flipped=torch.full(shape, flipped, dtype=torch.float64),
        roundoff=torch.full((2, 3), 1e-16, dtype=torch.float64),
        gradient_norm=torch.full((2,), norm, dtype=torch.float64),
    )


def test_profile_figure_and_summary():
    profiles = {
        "whole network": _profile(1e-2, 5.0, 0.01),
        "NeuronMCT": _profile(1e-3, 2.0, 0.001),
        "Random": _profile(1e-5, 0.1, 0.0),
    }
    fig = report.profile_figure(profiles, [0.1, 1.0, 10.0], "Toy", marker=1.0)
    ax_e, ax_f = fig.axes
    assert len(ax_e.lines) == 7 and len(ax_f.lines) == 7  # two per kind and the marker
    assert ax_e.lines[0].get_label() == "whole network, random"
    assert ax_e.get_xscale() == "log" and fig._suptitle.get_text() == "Toy"
    text = report.profile_summary(profiles, [0.1, 1.0, 10.0], "Toy", 1.2).split("\n\n")
    assert text[0].startswith("Toy, at r = 1 along random directions")
    assert text[0].endswith("Most linear: Random.")
    assert "NeuronMCT 2 (0.1% flipped)" in text[1]
    assert "It is also the one that responds least" in text[2] and "20 times below" in text[2]
    profiles["Random"] = _profile(1e-2, 3.0, 0.0)
    assert len(report.profile_summary(profiles, [0.1, 1.0, 10.0], "Toy", 1.0).split("\n\n")) == 2


def test_median_and_share():
    assert report.median([3, 1, 2]) == 2.0
    assert report.share(0.000123) == "0.012%"


def test_model_note_says_what_can_be_analysed():
    from torch import nn

    conv = nn.Conv2d(3, 4, 3)
    plain = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    ok, text = report.model_note(plain, "VGG-like", 150528)
    assert ok and "piecewise linear as the proposition requires" in text and "150,528" in text
    overlapping = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Flatten())
    ok, text = report.model_note(overlapping, "ResNet-like", 150528)
    assert ok and "cannot compute its exact radius ('" in text and "overlapping" in text
    smooth = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(4, 4, 1), nn.SiLU())
    ok, text = report.model_note(smooth, "B0", 150528)
    assert ok and "not piecewise linear (SiLU)" in text
    ok, text = report.model_note(nn.Sequential(conv, nn.GELU()), "ViT", 150528)
    assert not ok and "has no ReLU or ReLU6 modules" in text and "skipped" in text


def test_relu6_note_follows_the_model():
    from torch import nn

    assert "Lite has ReLU6 units" in report.relu6_note(nn.Sequential(nn.ReLU6()), "Lite")
    assert "VGG-16 has no ReLU6" in report.relu6_note(nn.Sequential(nn.ReLU()), "VGG-16")


def test_radius_summary_calls_an_even_split_even_and_sweeps_the_sparsities():
    radii, _ = _setup(mct=1.0, whole=0.5, rnd=0.2, dgr=2.0)
    text = report.radius_summary(radii, 0.5)
    assert (
        "the pruning objective's pathway, which removes neurons by a different criterion, " in text
    )
    assert "is linear on the larger ball" in text  # 0 of 4: clearly smaller
    assert "NeuronMCT's median radius is the larger at no sparsity and DGR (init 1)'s at " in text
    assert "0.5, 0.75 (by 2 times)" in text
    radii["DGR (init 1)", 0.5] = _radius([9.0] * 4, [0.5, 0.5, 4.0, 4.0], [0.1, 5.0, 5.0, 5.0])
    even = report.radius_summary(radii, 0.5)  # NeuronMCT (1.5) wins on 2 of the 4 digits
    assert "it is about even at this sparsity" in even and "larger ball" in even
    assert "larger at sparsity 0.5 and DGR (init 1)'s at 0.75" in even


def test_probe_summary_does_not_call_a_large_error_round_off():
    fractions = [0.5, 0.99, 2.0]
    errors = np.array([[1e-12, 2e-12, 3e-12]])
    text = report.probe_summary(fractions, errors, np.zeros((1, 3)), roundoff=1e-15)
    assert "**more than ten times the test's own round-off** (about 1.0e-15)" in text
    assert "of the order of the round-off" not in text


def test_profile_figure_leaves_out_zero_flips():
    n_radii, n_inputs, n_dirs = 3, 2, 3
    profile = LinearityProfile(
        torch.tensor([0.01, 0.1, 1.0]),
        ["random", "random", "gradient"],
        torch.full((n_inputs, n_radii, n_dirs), 1e-3, dtype=torch.float64),
        torch.zeros(n_inputs, n_radii, n_dirs).index_fill_(1, torch.tensor([2]), 0.5),
        torch.full((n_inputs, n_radii), 1e-9, dtype=torch.float64),
        torch.ones(n_inputs),
    )
    fig = report.profile_figure({"NeuronMCT": profile}, [0.01, 0.1, 1.0], "toy")
    flips = fig.axes[1].lines[0].get_ydata()
    assert np.isnan(flips[:2]).all() and flips[2] == pytest.approx(0.5)
    assert fig.legends and not fig.axes[0].get_legend()  # the legend is off the data


def test_the_sweep_gives_the_whole_range_of_factors_and_calls_close_radii_level():
    radii, _ = _setup(mct=1.0, whole=0.5, rnd=0.2, dgr=2.0)
    for s, dgr in ((0.5, 2.97), (0.75, 1.1), (0.95, 2.33), (0.98, 6.51)):
        radii["DGR (init 1)", s] = _radius([dgr] * 4, [dgr] * 4, [dgr] * 4)
        radii["NeuronMCT", s] = _radius([1.0] * 4, [1.0] * 4, [1.0] * 4)
    text = report.radius_summary(radii, 0.5)
    assert (
        "NeuronMCT's median radius is the larger at no sparsity and DGR (init 1)'s at 0.5, 0.95, "
        "0.98 (by 2.3 to 6.5 times); the two are within 1.5 times of each other at 0.75."
    ) in text
