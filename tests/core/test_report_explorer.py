"""The explorer chapter's sweep grid, kept-by-site figure, table and sentences, on made-up views."""

import numpy as np
import torch
from torch import nn

from pathlib_core.explorer import State, Subject, View
from pathlib_core.report import explorer as report

SPARSITIES = [0.0, 0.5, 0.9]
SITES = ["relu1", "relu2", "relu3"]


def _subject(name, colour):
    picture = np.random.rand(6, 6, 3) if colour else np.random.rand(6, 6)
    return Subject(name, nn.Identity(), torch.zeros(1, 3, 6, 6), picture, ("cat", "dog", "cup"))


def _views(subject, label, kept=None):
    """One view per sparsity; site i keeps ``kept[i] * (1 - s)`` of its neurons."""
    kept = kept or [0.5, 0.2, 0.05]
    return [
        View(
            State(subject.name, "DGR" if label == "DGR" else "PathwayGradient", s),
            subject,
            np.random.rand(6, 6),
            {site: k * (1 - s) for site, k in zip(SITES, kept, strict=True)},
            0.3 * (1 - s),
            1,
            np.array([0.1, 0.7, 0.2]),
        )
        for s in SPARSITIES
    ]


class _Tool:
    """The two things the report reads from an Explorer: its subjects and top classes."""

    def __init__(self, subjects):
        self.subjects = {s.name: s for s in subjects}

    def top_classes(self, name, k=5):
        return [(1, 0.7)]


def test_inputs_sentence_names_each_prediction():
    tool = _Tool([_subject("chelsea", True), _subject("digit 3", False)])
    assert report.inputs_sentence(tool) == (
        "Inputs: chelsea (predicted *dog*, p = 0.70); digit 3 (predicted *dog*, p = 0.70)."
    )


def test_sweep_grid_has_the_input_then_a_map_per_sparsity():
    photo, digit = _subject("chelsea", True), _subject("digit 3", False)
    tool = _Tool([photo, digit])
    sweeps = {
        ("chelsea", "NeuronMCT"): _views(photo, "NeuronMCT"),
        ("digit 3", "NeuronMCT"): _views(digit, "NeuronMCT"),
        ("digit 3", "DGR"): _views(digit, "DGR"),
    }
    fig = report.sweep_grid(tool, sweeps, ["digit 3"], ["NeuronMCT", "DGR"], SPARSITIES, 1.0)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles == ["digit 3\nNeuronMCT", "s = 0.0", "s = 0.5", "s = 0.9"] + [
        "digit 3\nDGR",
        "s = 0.0",
        "s = 0.5",
        "s = 0.9",
    ]
    # a grey digit is drawn as RGB like the maps
    assert fig.axes[0].get_images()[0].get_array().shape == (6, 6, 3)


def test_kept_by_site_figure_draws_one_line_per_sparsity():
    digit = _subject("digit 3", False)
    sweeps = {("digit 3", "NeuronMCT"): _views(digit, "NeuronMCT")}
    fig = report.kept_by_site_figure(sweeps, [("digit 3", "NeuronMCT")])
    (ax,) = fig.axes
    assert ax.get_title() == "digit 3: NeuronMCT"
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["s = 0", "s = 0.5", "s = 0.9"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.25, 0.1, 0.025])
    assert [t.get_text() for t in ax.get_xticklabels()] == SITES


def test_kept_table_rows_and_percentages():
    digit = _subject("digit 3", False)
    sweeps = {("digit 3", "DGR"): _views(digit, "DGR")}
    lines = report.kept_table(sweeps, SPARSITIES).splitlines()
    assert lines[0] == "| input | method | s = 0.0 | s = 0.5 | s = 0.9 |"
    assert lines[2] == "| digit 3 | DGR | 30.00% | 15.00% | 3.00% |"


def test_spread_sentence_uses_the_view_nearest_0_9():
    digit = _subject("digit 3", False)
    uneven = report.spread_sentence(_views(digit, "NeuronMCT"), "digit 3", "NeuronMCT")
    assert uneven.startswith("On digit 3 at sparsity 0.9, NeuronMCT keeps 0.50% of `relu3`")
    assert "5.0% of `relu1`" in uneven
    assert uneven.endswith("far from evenly over the depth.")
    even = report.spread_sentence(_views(digit, "NeuronMCT", [0.2, 0.25, 0.3]), "d", "NeuronMCT")
    assert even.endswith("the sites keep similar shares.")


def test_unchanged_sentence_finds_the_gap_and_the_repeated_pathways():
    digit = _subject("digit 3", False)
    sparsities = [0.0, 0.3, 0.5, 0.7, 0.9]
    views = [
        View(State("digit 3", "DGR", s), digit, np.zeros((6, 6)), {"relu1": k}, k, 1, np.ones(3))
        for s, k in zip(sparsities, [1.0, 0.2, 0.2, 0.2, 0.095], strict=True)
    ]
    tight = [
        View(
            State("digit 3", "PathwayGradient", s),
            digit,
            np.zeros((6, 6)),
            {"r": 1 - s},
            1 - s,
            1,
            np.ones(3),
        )
        for s in sparsities
    ]
    text = report.unchanged_sentence({("digit 3", "DGR"): views}, sparsities)
    assert "in 3 of the 4 steps above sparsity 0" in text  # all but s = 0.9 (9.5% of a 10% bound)
    assert "digit 3, DGR keeps 20.00% at s = 0.3 (bound 70%)" in text
    assert "In 1 of the 1 sweeps" in text and "keeps 20.00% from s = 0.3 to 0.7." in text
    none = report.unchanged_sentence({("d", "NeuronMCT"): tight}, sparsities)
    assert "in 0 of the 4 steps" in none and none.endswith("changes the pathway.")
