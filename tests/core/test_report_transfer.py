"""pathlib_core.report.transfer: the GEN-CNP chapter's figures, tables and sentences, checked on
constructed numbers (which sentence is chosen, what a table's rows say, what a figure draws)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pathlib_core.report import transfer as R


def _history(total, kept=None):
    n = len(total)
    return {
        "total": list(total),
        "faithfulness": [0.5] * (n - 1) + [0.0421],
        "sparsity": [0.4] * n,
        "relevance": [-0.1] * n,
        "kept": kept or [0.9] * (n - 1) + [0.4412],
    }


# ------------------------------------------------------------------------------------ training


def test_training_figure_draws_every_term_and_the_kept_share():
    fig = R.training_figure(_history([3.0, 2.0, 1.5]))
    left, right = fig.axes
    assert [line.get_label() for line in left.lines] == list(R.TRAINING_TERMS)
    assert all(len(line.get_xdata()) == 3 for line in left.lines)
    assert left.get_title() == "loss and its terms (unweighted)"
    assert len(right.lines) == 1 and right.get_ylim() == (0, 1)
    assert list(right.lines[0].get_ydata()) == [0.9, 0.9, 0.4412]
    fig.canvas.draw()
    for ax in (left, right):  # whole epochs only, no 1.25 or 1.5
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_training_sentence_says_whether_training_levelled_off():
    levelled = R.training_sentence(_history([3.0, 1.0, 0.995, 0.99, 0.99, 0.99, 0.99]))
    assert levelled.startswith(
        "After 7 epochs the training digits' pathways keep 44.1% of the neurons (KL 0.042)"
    )
    assert "over the last 5 epochs the loss fell by 0.5% of" in levelled  # 0.01 of 2.01
    assert levelled.endswith("training has levelled off.")
    paused = R.training_sentence(_history([3.0, 2.0, 2.0, 2.0, 2.0, 1.99, 1.9]))
    assert "fell by 9.1%" in paused and "trains for 60 epochs" in paused  # not the last step's
    rose = R.training_sentence(_history([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1]))
    assert "rose by 5.3%" in rose and "went back up" in rose
    falling = R.training_sentence(_history([3.0, 2.0, 1.0]))
    assert "over the last 2 epochs the loss fell by 100.0%" in falling
    long = R.training_sentence(_history([3.0] * 58 + [2.0, 1.0]))
    assert "not trained to the end" in long
    assert "trains for 80 epochs" in R.training_sentence(_history([3, 2, 1]), full_epochs=80)
    one = R.training_sentence(_history([3.0]))
    assert one.startswith("After 1 epoch the") and "too few epochs to tell" in one


# ------------------------------------------------------------------------------------ sparsity


def _sparsity_inputs():
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    kept = torch.tensor([0.2, 0.3, 0.5, 0.7, 0.3, 0.3], dtype=torch.float64)
    by_site = {
        "relu1": torch.tensor([0.1, 0.1, 0.2, 0.2, 0.3, 0.3], dtype=torch.float64),
        "relu2": torch.tensor([0.9, 0.9, 0.8, 0.8, 0.7, 0.7], dtype=torch.float64),
    }
    return kept, by_site, classes


def test_sparsity_figure_has_a_box_per_class_and_a_class_by_site_image():
    kept, by_site, classes = _sparsity_inputs()
    fig = R.sparsity_figure(kept, by_site, classes, n_classes=3)
    boxes, heat, _colorbar = fig.axes
    assert boxes.get_title() == "per digit (6 test digits)"
    assert len(boxes.get_xticks()) == 3
    image = heat.images[0].get_array()
    assert image.shape == (3, 2)
    np.testing.assert_allclose(image[:, 0], [0.1, 0.2, 0.3])
    assert [t.get_text() for t in heat.get_xticklabels()] == ["relu1", "relu2"]


def test_sparsity_sentence_names_the_extreme_class_and_site():
    kept, by_site, classes = _sparsity_inputs()
    text = R.sparsity_sentence(kept, by_site, classes, n_classes=3)
    assert text.startswith("The test digits' pathways keep 38.3% of the neurons on average")
    assert "from 20.0% to 70.0%" in text
    assert "from 25.0% (digit 0) to 60.0% (digit 1)" in text
    assert text.endswith("By site, from 20.0% (relu1) to 80.0% (relu2).")


# -------------------------------------------------------------------------------- faithfulness


def _faith(drop, kept_fraction=0.25):
    return SimpleNamespace(
        kept_fraction=torch.full((4,), kept_fraction, dtype=torch.float64),
        prediction_kept=90.0,
        average_drop=drop,
        mean_decrease=1.234,
        mean_increase=0.5,
        increase_in_confidence=12.0,
    )


def test_faithfulness_table_averages_over_seeds():
    faith = {"GEN-CNP": [_faith(20.0)], "Random channels": [_faith(40.0), _faith(50.0)]}
    table = R.faithfulness_table(faith, {"GEN-CNP": 0.5, "Random channels": 0.25})
    lines = table.splitlines()
    assert len(lines) == 4 and "Average Drop" in lines[0]
    assert lines[2] == "| GEN-CNP | 0.250 | 0.500 | 90.0% | 20.0% | 1.23 | 0.50 | 12.0% |"
    assert lines[3].startswith("| Random channels | 0.250 | 0.250 | 90.0% | 45.0% |")


def test_faithfulness_verdict_picks_the_sentence_from_the_drops():
    best = R.faithfulness_verdict({"GEN-CNP": 10.0, "NeuronMCT": 12.0, "Random channels": 30.0})
    assert best.startswith("Lowest Average Drop: GEN-CNP (10.0%).") and "beat every" in best
    between = R.faithfulness_verdict({"GEN-CNP": 20.0, "NeuronMCT": 12.0, "Random channels": 30})
    assert between.startswith("Lowest Average Drop: NeuronMCT (12.0%).")
    assert "(20.0%) are beaten by NeuronMCT" in between and "random channels (30.0%)" in between
    worst = R.faithfulness_verdict({"GEN-CNP": 40.0, "NeuronMCT": 12.0, "Random channels": 30})
    assert worst.endswith("are no better than random channels of the same structure.")


# ----------------------------------------------------------------------------- class relevance


def test_class_iou_figure_has_one_titled_panel_per_kind():
    matrices = {"GEN-CNP": np.eye(3), "NeuronMCT": np.full((3, 3), 0.5)}
    fig = R.class_iou_figure(matrices)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["GEN-CNP", "NeuronMCT"]
    assert len(fig.axes) == 4  # and their colour bars
    np.testing.assert_array_equal(panels[0].images[0].get_array(), np.eye(3))


def test_relevance_table_and_verdict():
    within = {"GEN-CNP": 0.9, "NeuronMCT": 0.5}
    across = {"GEN-CNP": 0.7, "NeuronMCT": 0.45}
    lines = R.relevance_table(within, across).splitlines()
    assert lines[2] == "| GEN-CNP | 0.900 | 0.700 | +0.200 |"
    assert lines[3] == "| NeuronMCT | 0.500 | 0.450 | +0.050 |"
    met = R.relevance_verdict({"GEN-CNP": 0.2, "NeuronMCT": 0.05, "Random channels": -0.01})
    assert met.startswith("The generated pathways' gap between classes is +0.200 IoU")
    assert "random channels' -0.010" in met and "criterion is met" in met
    unmet = R.relevance_verdict({"GEN-CNP": 0.02, "NeuronMCT": 0.05, "Random channels": 0.0})
    assert unmet.endswith("not more class-specific than the references.")


# ------------------------------------------------------------------------------------ transfer

NAMES = ["GEN-CNP class pathway", "Random", "Random channels", "NeuronMCT class pathway"]


def _scores(ours=95.0, rand=80.0, mct=97.0, conf=(0.9, 0.5, 0.4, 0.95)):
    values = dict(zip(NAMES, zip((ours, rand, 70.0, mct), conf, strict=True), strict=True))
    scores = {name: {c: (acc, cf, 0.3) for c in range(3)} for name, (acc, cf) in values.items()}
    scores["model"] = {c: (99.0, 0.98, 1.0) for c in range(3)}
    return scores


def test_transfer_table_has_a_row_per_class_and_two_mean_rows():
    table = R.transfer_table(_scores(), NAMES, {0: 5, 1: 6, 2: 7})
    lines = table.splitlines()
    assert lines[0] == "| class | digits | kept share | model | " + " | ".join(NAMES) + " |"
    assert len(lines) == 2 + 3 + 2
    assert lines[3] == "| 1 | 6 | 0.300 | 99.0% | 95.0% | 80.0% | 70.0% | 97.0% |"
    assert lines[5].startswith("| mean |  | 0.300 | 99.0% | 95.0%")
    assert lines[6] == "| mean confidence |  |  | 0.980 | 0.900 | 0.500 | 0.400 | 0.950 |"


def test_transfer_figure_draws_a_bar_per_kind_and_class():
    fig = R.transfer_figure(_scores(), NAMES)
    top, bottom = fig.axes
    assert len(top.patches) == len(NAMES) * 3 and len(bottom.patches) == len(NAMES) * 3
    assert top.get_ylim() == (65.0, 101.0)  # cut 5 points below the lowest decade
    assert top.get_title() == "the other test digits of each class, through one pathway"
    labels = top.get_legend_handles_labels()[1]
    assert sorted(labels) == sorted(["whole model", *NAMES])
    with pytest.raises(ValueError, match="no colour"):
        R.transfer_figure(_scores(), [*NAMES[:1], "Mystery"])


def _means(scores):
    accuracy = {n: float(np.mean([v[0] for v in s.values()])) for n, s in scores.items()}
    confidence = {n: float(np.mean([v[1] for v in s.values()])) for n, s in scores.items()}
    return accuracy, confidence


def test_transfer_verdict_chooses_from_accuracy_and_confidence():
    holds = R.transfer_verdict(*_means(_scores()))
    assert holds.startswith("Through its class pathway a digit is classified correctly 95.0%")
    assert "Confidence separates them further" in holds  # 15 points above random
    assert "transfer claim" not in holds  # that verdict waits for the cross-class test
    assert "does better still (97.0%, probability 0.95). Whether what transfers" in holds
    close = R.transfer_verdict(*_means(_scores(ours=82.0, mct=50.0, conf=(0.55, 0.5, 0.4, 0.3))))
    assert "Accuracy hardly separates them" in close
    assert "The transferred NeuronMCT pathway reaches 50.0% (probability 0.30)." in close
    assert close.endswith("is the next section's question.")


def test_transfer_claim_needs_random_and_other_classes_beaten():
    accuracy, confidence = _means(_scores())  # class pathway 95.0%, 0.90; random 0.50
    specific = np.array([[95.0, 20.0], [30.0, 95.0]]), np.array([[0.9, 0.2], [0.3, 0.9]])
    strong = R.transfer_claim(accuracy, confidence, *specific, epochs=60)
    assert strong.startswith("The transfer claim holds on this model:")
    assert "(probability of the true class 0.90 against 0.50)" in strong
    assert "other classes (25.0%, probability 0.25, against 95.0%, 0.90)." in strong
    assert "epoch" not in strong  # trained as long as the full profile
    shared = np.array([[97.3, 96.0], [97.4, 97.3]]), np.array([[0.82, 0.78], [0.80, 0.82]])
    weak = R.transfer_claim(accuracy, confidence, *shared, epochs=3, across_iou=0.9333)
    assert weak.startswith("The transfer claim holds only weakly on this model:")
    assert "another class's pathway does almost as well (96.7%, probability 0.79, against " in weak
    assert (
        "97.3%, 0.82); the generated pathways of two different classes overlap with IoU 0.933"
        in weak
    )
    assert "nearly class-agnostic" in weak
    assert weak.endswith(
        "trained for 3 epochs, fewer than the `full` profile's 60, so this verdict may change "
        "with longer training."
    )
    better = np.array([[0.70, 0.80], [0.80, 0.70]])
    assert "does as well or better" in R.transfer_claim(accuracy, confidence, shared[0], better, 60)
    assert "IoU" not in R.transfer_claim(accuracy, confidence, *shared, epochs=60)
    near_random = _means(_scores(conf=(0.55, 0.5, 0.4, 0.3)))  # 0.05 above random
    fails = R.transfer_claim(*near_random, *specific, epochs=1, full_epochs=60)
    assert fails.startswith("The transfer claim does not hold on this model:")
    assert "trained for 1 epoch, fewer" in fails


# --------------------------------------------------------------------------------- cross-class


def test_diagonal_and_rest():
    matrix = np.array([[90.0, 10.0], [30.0, 70.0]])
    assert R.diagonal_and_rest(matrix) == (80.0, 20.0)
    with pytest.raises(ValueError, match="square"):
        R.diagonal_and_rest(np.ones((2, 3)))


def test_cross_class_figure_and_verdict():
    accuracy = np.array([[90.0, 10.0], [30.0, 70.0]])
    fig = R.cross_class_figure(accuracy, np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert len([ax for ax in fig.axes if ax.images]) == 2
    assert fig.axes[0].get_xlabel() == "class b of the digits"
    specific = R.cross_class_verdict(accuracy, np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert specific.startswith(
        "Through the pathway of the digits' own class: accuracy 80.0%, probability 0.85; "
        "through the pathway of another class: 20.0%, 0.15."
    )
    assert "are class-specific" in specific
    shared = R.cross_class_verdict(accuracy, np.array([[0.9, 0.85], [0.8, 0.8]]))
    assert "largely shared" in shared
    partly = R.cross_class_verdict(accuracy, np.array([[0.8, 0.5], [0.5, 0.8]]))
    assert "partly class-specific" in partly and "(25% of" in partly and "(62%)" in partly


# ----------------------------------------------------------------------------------- gradients


def test_gradient_figure_has_a_digit_and_its_maps_per_row():
    digits = [torch.zeros(1, 28, 28), torch.ones(1, 28, 28)]
    maps = [{name: torch.randn(1, 28, 28) for name in ("gradient", "class pathway")}] * 2
    fig = R.gradient_figure(digits, maps)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["digit", "gradient", "class pathway"]
    assert sum(bool(ax.images) for ax in fig.axes) == 6
    with pytest.raises(ValueError, match="one mapping of maps per digit"):
        R.gradient_figure(digits, maps[:1])


def test_similarity_sentence():
    text = R.similarity_sentence(
        {"class pathway": 0.81234, "gradient": 0.5, "own NeuronMCT": 0.25}, 900
    )
    assert "over all 900 non-voting digits" in text
    assert "the class pathway's 0.812, the whole model's 0.500, the own NeuronMCT" in text


def test_relevance_verdict_looks_class_by_class():
    gap = {"GEN-CNP": 0.2, "NeuronMCT": 0.05, "Random channels": -0.01}
    grouped = np.array([[0.9, 0.95, 0.2], [0.95, 1.0, 0.2], [0.2, 0.2, 0.9]])  # 0 and 1 alike
    assert R.overlapping_pairs(grouped) == (1, 3)
    text = R.relevance_verdict(gap, grouped)
    assert "criterion is met" in text and "for 1 of the 3 pairs of classes" in text
    apart = np.array([[0.9, 0.3, 0.2], [0.3, 1.0, 0.2], [0.2, 0.2, 0.9]])
    assert "Class by class" not in R.relevance_verdict(gap, apart)
    unmet = {"GEN-CNP": 0.02, "NeuronMCT": 0.05, "Random channels": 0.0}
    assert "Class by class" not in R.relevance_verdict(unmet, grouped)  # nothing to qualify


def test_cross_class_verdict_counts_classes_that_share_pathways():
    accuracy = np.full((4, 4), 5.0)
    np.fill_diagonal(accuracy, 95.0)
    accuracy[2, 3] = accuracy[3, 2] = 90.0  # classes 2 and 3 share
    confidence = np.full((4, 4), 0.05)
    np.fill_diagonal(confidence, 0.9)
    text = R.cross_class_verdict(accuracy, confidence)
    assert (
        "class-specific on average" in text
        and "for 2 of the 12 ordered pairs of different classes" in text
    )
    accuracy[2, 3] = accuracy[3, 2] = 5.0
    assert "pairs of classes" not in R.cross_class_verdict(accuracy, confidence)


def test_transfer_figure_cuts_the_accuracy_axis_only_above_a_low_bar():
    fig = R.transfer_figure(_scores(), NAMES)
    assert fig.axes[0].get_ylabel() == "accuracy (%, axis from 65)"
    low = _scores(rand=6.0)
    fig = R.transfer_figure(low, NAMES)
    assert fig.axes[0].get_ylim()[0] == 0 and fig.axes[0].get_ylabel() == "accuracy (%)"


def test_transfer_claim_names_the_untrained_neuronmct_class_pathway_when_it_does_better():
    accuracy, confidence = _means(_scores())  # NeuronMCT 97.0%, 0.95 against 95.0%, 0.90
    specific = np.array([[95.0, 20.0], [30.0, 95.0]]), np.array([[0.9, 0.2], [0.3, 0.9]])
    text = R.transfer_claim(accuracy, confidence, *specific, epochs=60)
    assert "the transferred NeuronMCT pathway, which is not trained, keeps them better" in text
    assert "(97.0%, probability 0.95)." in text
    accuracy, confidence = _means(_scores(conf=(0.9, 0.5, 0.4, 0.85)))
    assert "needs no generator" not in R.transfer_claim(accuracy, confidence, *specific, 60)


def test_paper_sentence_sets_our_faithfulness_beside_the_paper():
    drop = {"GEN-CNP": 23.7, "NeuronMCT": 0.0, "Random channels": 40.0}
    text = R.paper_sentence(94.9, drop)
    assert "keep the prediction of 94.9% of the digits (Average Drop 23.7%)" in text
    assert text.endswith("and NeuronMCT with as many active neurons does better (0.0%).")
    best = R.paper_sentence(99.0, {"GEN-CNP": 1.0, "NeuronMCT": 2.0, "Random channels": 9.0})
    assert best.endswith("no pathway of the same size beats them on Average Drop.")
