"""pathlib_core.transfer.analysis: the transfer chapter's pathways of equal size, its random
controls, the class IoU matrix and gradients through pathways, against hand computations on
constructed masks and a small seeded CNN."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import toy_models as toy

from pathlib_core import pruning
from pathlib_core.attribution import restricted_input_gradient
from pathlib_core.pathway import Pathway
from pathlib_core.transfer import analysis as A


def _pathway(*rows_per_site):
    """A pathway from lists of 0/1 rows per site (site ``s0``, ``s1``, ...)."""
    return Pathway(
        {f"s{i}": torch.tensor(rows, dtype=torch.bool) for i, rows in enumerate(rows_per_site)}
    )


@pytest.fixture(scope="module")
def cnn():
    model = toy.small_cnn(seed=1)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    return model, x


def test_active_kept_counts_only_active_neurons_and_broadcasts_one_pathway():
    active = _pathway([[1, 1, 0], [0, 1, 1]], [[1, 0], [1, 1]])
    pathway = _pathway([[1, 0, 1], [1, 1, 1]], [[1, 1], [0, 1]])
    # sample 0: s0 {0}, s1 {0} -> 2; sample 1: s0 {1, 2}, s1 {1} -> 3
    assert A.active_kept(pathway, active, torch.arange(2)).tolist() == [2, 3]
    assert A.active_kept(pathway[1], active, [1, 0]).tolist() == [3, 2]
    one = _pathway([[0, 0, 1]], [[1, 1]])
    assert A.active_kept(one, active, torch.arange(2)).tolist() == [1, 3]
    with pytest.raises(ValueError, match="same sites"):
        A.active_kept(_pathway([[1, 1, 1]]), active, [0])
    with pytest.raises(TypeError, match="needs a Pathway"):
        A.active_kept({"s0": None}, active, [0])


def test_top_k_pathway_keeps_each_inputs_highest_scores_and_never_a_zero():
    scores = {
        "a": torch.tensor([[0.9, 0.1, 0.5], [0.0, 0.0, 0.2]], dtype=torch.float64),
        "b": torch.tensor([[0.3, 0.7], [0.6, 0.0]], dtype=torch.float64),
    }
    pathway = A.top_k_pathway(scores, [3, 4])
    assert pathway.masks["a"].tolist() == [[True, False, True], [False, False, True]]
    assert pathway.masks["b"].tolist() == [[False, True], [True, False]]
    # the second input has only two non-zero scores: asking for four keeps two
    assert pathway.kept_count().tolist() == [3, 2]
    assert A.top_k_pathway(scores, torch.tensor([0, 1])).kept_count().tolist() == [0, 1]
    with pytest.raises(ValueError, match="one per input"):
        A.top_k_pathway(scores, [1])


def test_active_scores_are_seeded_uniform_scores_on_the_active_neurons():
    active = _pathway([[1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    rows = torch.tensor([0, 1])
    scores = A.active_scores(active, rows, seed=4)["s0"]
    assert scores.dtype == torch.float64 and scores.shape == (2, 4)
    on = active.masks["s0"][rows]
    assert bool((scores[~on] == 0).all())
    assert bool((scores[on] > 0).all()) and bool((scores[on] <= 1).all())
    assert torch.equal(scores, A.active_scores(active, rows, seed=4)["s0"])
    assert not torch.equal(scores, A.active_scores(active, rows, seed=5)["s0"])
    # with top_k_pathway: a random pathway among the active neurons only
    chosen = A.top_k_pathway({"s0": scores}, [2, 2]).masks["s0"]
    assert bool((chosen & ~on).sum() == 0) and chosen.sum(dim=1).tolist() == [2, 2]


def test_shuffled_channels_keep_each_sites_channel_count_and_whole_channels():
    channels = torch.tensor([[1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    conv = channels.view(2, 6, 1, 1).expand(2, 6, 3, 3)
    dense = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    pathway = Pathway({"conv": conv, "dense": dense})
    moved = [A.shuffled_channels(pathway, seed) for seed in range(6)]
    for shuffled in moved:
        assert shuffled.sites == pathway.sites
        assert torch.equal(shuffled.kept_fraction()["conv"], pathway.kept_fraction()["conv"])
        assert torch.equal(shuffled.kept_fraction()["dense"], pathway.kept_fraction()["dense"])
        mask = shuffled.masks["conv"]
        # a channel is kept at all its positions or at none
        assert torch.equal(mask, mask[:, :, :1, :1].expand_as(mask))
    assert torch.equal(A.shuffled_channels(pathway, 3).masks["conv"], moved[3].masks["conv"])
    assert any(not torch.equal(m.masks["conv"], conv) for m in moved)


def test_mean_field_averages_one_field():
    results = [SimpleNamespace(x=1.0), SimpleNamespace(x=4.0)]
    assert A.mean_field(results, "x") == 2.5
    with pytest.raises(ValueError, match="at least one"):
        A.mean_field([], "x")


def test_class_iou_matrix_is_the_mean_iou_over_pairs_of_two_samples():
    rng = torch.Generator().manual_seed(0)
    pathway = Pathway({"s": torch.rand(7, 12, generator=rng) > 0.5})
    classes = torch.tensor([0, 0, 1, 1, 1, 2, 0])
    matrix = A.class_iou_matrix(pathway, classes, n_classes=4)
    assert matrix.shape == (4, 4)
    for a in range(3):
        for b in range(3):
            pairs = [
                float(pathway[i].iou(pathway[k]))
                for i in range(7)
                for k in range(7)
                if i != k and classes[i] == a and classes[k] == b
            ]
            if pairs:
                assert matrix[a, b] == pytest.approx(np.mean(pairs))
            else:  # class 2 has one sample: no pair within it
                assert math.isnan(matrix[a, b])
    assert np.isnan(matrix[3]).all()  # no sample of class 3
    np.testing.assert_allclose(matrix, matrix.T)
    with pytest.raises(ValueError, match="one class per sample"):
        A.class_iou_matrix(pathway, [0, 1])


def test_transferred_contribution_pathway_weighs_every_sample_equally():
    # sample 0 is 100 times larger; unnormalised, it would choose alone
    contributions = {
        "s": torch.tensor(
            [[100.0, 0.0, 50.0, 50.0], [0.0, 1.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]],
            dtype=torch.float64,
        )
    }
    one = A.transferred_contribution_pathway(contributions, [0, 1], sparsity=0.75)
    assert one.batch_size == 1
    # normalised means: [0.25, 0.5, 0.125, 0.125] -> neuron 1 is the top one
    assert one.masks["s"].tolist() == [[False, True, False, False]]
    two = A.transferred_contribution_pathway(contributions, torch.tensor([0, 1]), 0.5)
    assert two.masks["s"].tolist() == [[True, True, False, False]]


def test_gradients_through_are_pathway_gradients_and_broadcast_a_class_pathway(cnn):
    model, x = cnn
    y = model(x).argmax(dim=1)
    active = pruning.active_pathway(model, x)
    one = active[2]
    maps = A.gradients_through(model, x, y, {"own": active, "class": one})
    assert list(maps) == ["own", "class"]
    whole = torch.autograd.grad(model(x.requires_grad_()).gather(1, y[:, None]).sum(), x)[0]
    x.requires_grad_(False)
    # the active pathway removes only zero outputs: the gradient is the model's own
    torch.testing.assert_close(maps["own"], whole)
    expanded = Pathway({n: m.expand(6, *m.shape[1:]) for n, m in one.masks.items()})
    torch.testing.assert_close(maps["class"], restricted_input_gradient(model, x, y, expanded)[0])
    assert not torch.allclose(maps["class"], maps["own"])


def test_cosine_to_compares_every_map_with_the_reference():
    ref = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    maps = {"ref": ref, "same": 3 * ref, "opposite": -ref, "orthogonal": ref.flip(1)}
    cos = A.cosine_to(maps, "ref")
    assert list(cos) == ["same", "opposite", "orthogonal"]
    torch.testing.assert_close(cos["same"], torch.ones(2))
    torch.testing.assert_close(cos["opposite"], -torch.ones(2))
    torch.testing.assert_close(cos["orthogonal"], torch.zeros(2))
    with pytest.raises(ValueError, match="not one of the maps"):
        A.cosine_to(maps, "missing")
