"""Map grids, concentration, the sparsity sweep's table and the ReLU6 sentences, on constructed
maps and numbers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from pathlib_core import methods, plotting
from pathlib_core.report import maps as report


def test_methods_table_lists_the_registry():
    lines = report.methods_table().splitlines()
    assert lines[0] == "| method | name in the paper | family | what it computes |"
    assert len(lines) == 2 + len(methods.names())
    assert lines[2].startswith("| Gradient | Gradients | baseline |")
    assert "| DGR | (not in the paper) | pathway |" in report.methods_table(["DGR"])


def test_half_mass_share_of_spread_and_peaked_maps():
    even = torch.ones(2, 1, 4, 4)
    assert report.half_mass_share(even) == pytest.approx(8 / 16)  # 7 pixels hold < half, +1
    peaked = torch.zeros(1, 3, 4, 4)
    peaked[0, 1, 2, 2] = -5.0  # the magnitude counts, whatever the channel and sign
    assert report.half_mass_share(peaked) == pytest.approx(1 / 16)
    assert report.half_mass_share(torch.cat([even[:1], peaked[:, 1:2]])) == pytest.approx(4.5 / 16)


def test_summary_and_sparsity_tables():
    seconds = {"digit": {"Gradient": 0.002}, "photo": {"Gradient": 0.25}}
    maps = {
        "digit": {"Gradient": torch.ones(1, 1, 4, 4)},
        "photo": {"Gradient": torch.ones(1, 3, 4, 4)},
    }
    lines = report.maps_summary_table(seconds, maps).splitlines()
    assert lines[0] == (
        "| method | paper name | ms per digit | ms per photo | half-mass pixel share, digits | "
        "half-mass pixel share, photos |"
    )
    assert lines[2] == "| Gradient | Gradients | 2 | 250 | 0.500 | 0.500 |"
    table = report.sparsity_table({"NeuronMCT": [1.0, 0.456]}, [0.0, 0.9]).splitlines()
    assert table == ["| sparsity | 0.0 | 0.9 |", "|---|---|---|", "| NeuronMCT | 1.00 | 0.46 |"]


def test_sparsity_verdict_branches():
    changed = report.sparsity_verdict("NeuronMCT", 0.99, 0.31, [0.2, 0.1, 0.05])
    assert "At sparsity 0.99 the NeuronMCT map keeps a rank correlation of 0.31" in changed
    assert "changes the map substantially" in changed
    assert "lies in 20.0%, 10.0%, 5.0% of the pixels" in changed
    assert changed.endswith("concentrates on fewer pixels as sparsity grows.")
    small = report.sparsity_verdict("NeuronMCT", 0.99, 0.07, [0.217, 0.0051, 0.00002])
    assert "lies in 21.7%, 0.51%, 0.0020% of the pixels" in small  # not "0.5%, 0.0%"
    kept = report.sparsity_verdict("NeuronMCT", 0.9, 0.8, [0.1, 0.2])
    assert "reshapes the map only partly" in kept and kept.endswith("does not concentrate.")


def test_saturation_figure_and_verdict():
    per_site = [(f"site{i}", i / 30, 0.1) for i in range(30)]
    fig = report.saturation_figure(per_site)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and len(ax.get_xticks()) == 15  # every second of 30 sites
    assert ax.get_xticklabels()[1].get_text() == "site2"
    plt.close(fig)
    over = report.saturation_verdict("chelsea", 1000, 200, 0.35, 0.0512)
    assert "200 of the 1,000 neurons of the NeuronMCT pathway (20.0%) are saturated" in over
    assert "carry 35.0% of the" in over and "network 5.12% of the units" in over
    assert over.endswith("contribution ranking over-selects them.")
    assert "does not over-select" in report.saturation_verdict("x", 100, 1, 0.0, 0.5)
    with pytest.raises(ValueError, match="keeps no neuron"):
        report.saturation_verdict("x", 0, 0, 0.0, 0.1)


def test_sweep_scrubber_has_one_frame_per_sparsity(monkeypatch):
    sweep = {"A": [torch.rand(1, 3, 6, 6) for _ in range(3)], "B": [torch.rand(1, 3, 6, 6)] * 3}
    html = report.sweep_scrubber(sweep, [0.0, 0.5, 0.9]).data
    assert html.count("data:image/png;base64") == 3
    seen = {}
    monkeypatch.setattr(
        report, "scrubber", lambda frames, labels, **kw: seen.update(f=frames, l=labels)
    )
    report.sweep_scrubber(sweep, [0.0, 0.5, 0.9])
    assert seen["l"][2] == "sparsity 0.9: A (left), B (right)"
    assert seen["f"][0].shape == (6, 12)  # the criteria side by side


def test_map_grid_rows_titles_and_mixed_sizes():
    digit, photo = np.zeros((4, 4)), np.zeros((8, 8, 3))
    rows = [[torch.rand(1, 1, 4, 4)] * 2, [torch.rand(1, 3, 8, 8)] * 2]
    fig = plotting.map_grid([digit, photo], rows, ["input", "a", "b"], size=1.0)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes] == ["input", "a", "b", "", "", ""]
    assert all(ax.images[0].get_array().shape[:2] == (8, 8) for ax in fig.axes)  # digits enlarged
    plt.close(fig)
    rgb = plotting.map_rgb(torch.rand(1, 3, 5, 5))
    assert rgb.shape == (5, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(ValueError, match="one row of maps per picture"):
        plotting.map_grid([digit], rows)
    with pytest.raises(ValueError, match="as many maps"):
        plotting.map_grid([digit, digit], [[torch.rand(1, 1, 4, 4)], []])


def test_relu6_units_and_the_sentence_for_a_model_without_them():
    six = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU6(), torch.nn.ReLU6())
    assert report.relu6_units(six) == 2
    assert report.relu6_units(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU())) == 0
    sentence = report.no_relu6_sentence("ResNet-18")
    assert sentence.startswith("ResNet-18 has no ReLU6 units")
    assert "efficientnet_lite0" in sentence


def test_share_text_keeps_two_significant_digits():
    assert [report.share_text(v) for v in (0.217, 0.057, 0.0051, 0.00002, 0.0, 0.0000997)] == [
        "21.7%",
        "5.7%",
        "0.51%",
        "0.0020%",
        "0%",
        "0.010%",
    ]


def test_digits_phrase_says_which_classes_were_drawn():
    assert report.digits_phrase(range(10)) == "one test digit per class"
    assert report.digits_phrase([0, 1, 2, 3]) == "4 test digits, one each of classes 0 to 3"
    assert report.digits_phrase([0]) == "one test digit of class 0"
    assert report.digits_phrase([0, 1]) == "2 test digits, one each of classes 0, 1"
    twelve = report.digits_phrase([*range(10), 0, 1])
    assert twelve == "12 test digits, 1 to 2 of each of classes 0 to 9"
    with pytest.raises(ValueError, match="no digits"):
        report.digits_phrase([])
