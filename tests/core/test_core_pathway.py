"""Pathway selection (against a sorting reference), the Pathway object, and restrict."""

import pytest
import torch
import toy_models as toy

from pathlib_core import pathway as pathway_module
from pathlib_core.contribution import neuron_contributions
from pathlib_core.pathway import (
    Pathway,
    kth_smallest,
    removed_count,
    restrict,
    select_pathway,
    whole_and_restricted,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _scores(shapes, seed=0, zeros=0.3, ties=False, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for i, shape in enumerate(shapes):
        value = torch.rand(shape, generator=generator, dtype=dtype)
        if ties:
            value = (value * 8).floor() / 8
        value[torch.rand(shape, generator=generator) < zeros] = 0
        out[f"site{i}"] = value
    return out


def _assert_masks_equal(pathway, scores, sparsity, scope):
    expected = toy.reference_masks(list(scores.values()), sparsity, scope)
    assert list(pathway.masks) == list(scores)
    for (name, got), want in zip(pathway.masks.items(), expected, strict=False):
        assert got.dtype == torch.bool and got.shape == want.shape
        assert torch.equal(got, want), name


@pytest.mark.parametrize("scope", ["global", "site"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("ties", [False, True])
def test_selection_matches_sorting_reference(scope, sparsity, ties):
    scores = _scores([(3, 4, 6, 6), (3, 40), (3, 7)], ties=ties)
    pathway = select_pathway(scores, sparsity, scope)
    _assert_masks_equal(pathway, scores, sparsity, scope)
    assert pathway.settings == {"sparsity": sparsity, "scope": scope}


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.97])
def test_selection_on_rows_long_enough_for_the_sampled_path(sparsity):
    scores = _scores([(4, 16, 40, 40), (4, 9000), (4, 300)], seed=3, zeros=0.5)
    _assert_masks_equal(select_pathway(scores, sparsity), scores, sparsity, "global")


def test_signed_contributions_rank_by_value_and_drop_zeros():
    scores = {"a": torch.tensor([[-3.0, -1.0, 0.0, 2.0, 5.0]], dtype=torch.float64)}
    masks = select_pathway(scores, 0.2).masks["a"]
    assert masks.tolist() == [[False, True, False, True, True]]
    assert select_pathway(scores, 0.0).masks["a"].all()


def test_kept_fraction_never_exceeds_one_minus_sparsity():
    scores = _scores([(5, 100)], zeros=0.6, ties=True)
    for sparsity in (0.1, 0.5, 0.8, 0.95):
        pathway = select_pathway(scores, sparsity)
        assert bool((pathway.sparsity >= sparsity - 1e-12).all())
        kept = pathway.masks["site0"]
        assert not bool((kept & (scores["site0"] == 0)).any())


def test_removed_count_is_robust_to_round_off():
    assert removed_count(0.9, 10) == 9
    assert removed_count(0.7, 10) == 7
    assert removed_count(0.95, 7) == 7
    assert 0.07 * 100 > 7  # float round-off: a plain ceil would remove 8
    assert removed_count(0.07, 100) == 7
    assert removed_count(0.0, 10) == 0
    assert removed_count(1e-9, 10) == 0


@pytest.mark.parametrize("k_fraction", [1e-6, 0.01, 0.5, 0.9, 0.999, 1.0])
def test_kth_smallest_matches_kthvalue(k_fraction):
    generator = torch.Generator().manual_seed(7)
    parts = [
        torch.randn(3, 20000, generator=generator),
        torch.randn(3, 11, generator=generator),
        torch.randn(3, 5000, generator=generator),
    ]
    flat = torch.cat(parts, 1)
    k = max(1, round(k_fraction * flat.shape[1]))
    assert torch.equal(kth_smallest(parts, k), flat.kthvalue(k, 1).values)


def test_kth_smallest_in_a_tie_mass_and_after_a_missed_bracket(monkeypatch):
    generator = torch.Generator().manual_seed(8)
    rows = torch.rand(4, 40000, generator=generator, dtype=torch.float64)
    rows[:, :30000] = 0.0  # 75% zeros: the 0.5 quantile sits in the tie mass
    rows[1, :] = torch.rand(40000, generator=generator, dtype=torch.float64)
    for k in (20000, 36000):
        assert torch.equal(kth_smallest([rows], k), rows.kthvalue(k, 1).values)
    monkeypatch.setattr(pathway_module, "_SIGMAS", 0.0)  # brackets of +-2 sample ranks often miss
    shuffled = rows[:, torch.randperm(40000, generator=generator)]
    for k in range(30001, 40000, 997):
        assert torch.equal(kth_smallest([shuffled], k), shuffled.kthvalue(k, 1).values)


def test_selection_leaves_global_random_state_alone():
    scores = _scores([(2, 30000)])
    state = torch.get_rng_state()
    select_pathway(scores, 0.9)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((0.9, "layer"), ValueError, "'global', 'site'"),
        ((1.0,), ValueError, r"\[0, 1\)"),
        ((90,), ValueError, "0.9"),
        ((-0.1,), ValueError, r"\[0, 1\)"),
        (("0.9",), TypeError, "number"),
    ],
)
def test_select_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        select_pathway(_scores([(2, 5)]), *args)


def test_select_rejects_bad_contributions():
    with pytest.raises(ValueError, match="non-empty"):
        select_pathway({}, 0.5)
    with pytest.raises(TypeError, match="float tensor"):
        select_pathway({"a": torch.ones(2, 3, dtype=torch.long)}, 0.5)
    with pytest.raises(ValueError, match="batch size"):
        select_pathway({"a": torch.ones(2, 3), "b": torch.ones(3, 3)}, 0.5)


def test_pathway_statistics_by_hand():
    masks = {
        "a": torch.tensor([[True, False, True, True], [False, False, False, False]]),
        "b": torch.tensor([[[True], [False]], [[True], [True]]]),
    }
    pathway = Pathway(masks, {"note": 1})
    assert len(pathway) == 2 and pathway.batch_size == 2 and pathway.n_neurons == 6
    assert pathway.sites == ["a", "b"]
    assert pathway.kept_count().tolist() == [4, 2]
    torch.testing.assert_close(pathway.sparsity, torch.tensor([2 / 6, 4 / 6], dtype=torch.float64))
    fractions = pathway.kept_fraction()
    assert fractions["a"].tolist() == [0.75, 0.0] and fractions["b"].tolist() == [0.5, 1.0]
    other = Pathway(
        {
            "a": torch.tensor([[True, True, False, True], [False] * 4]),
            "b": torch.tensor([[[False], [False]], [[True], [False]]]),
        }
    )
    # sample 0: intersection {a0, a3} = 2, union {a0, a1, a2, a3, b0} = 5; sample 1: 1 / 2
    torch.testing.assert_close(pathway.iou(other), torch.tensor([0.4, 0.5], dtype=torch.float64))
    by_site = pathway.iou(other, by_site=True)
    assert by_site["a"].tolist() == [0.5, 1.0]  # two empty masks agree
    assert by_site["b"].tolist() == [0.0, 0.5]
    assert pathway.iou(pathway).tolist() == [1.0, 1.0]
    # every pair: the diagonal is iou; sample 0 of pathway ({a0, a2, a3, b0}) against sample 1
    # of other ({b0}): 1 / 4; sample 1 of pathway ({b0, b1}) against sample 0 of other: 0 / 5
    pairs = pathway.pairwise_iou(other)
    assert pairs.shape == (2, 2) and pairs.dtype == torch.float64
    torch.testing.assert_close(pairs.diagonal(), pathway.iou(other))
    assert pairs[0, 1].item() == 0.25 and pairs[1, 0].item() == 0.0
    alone = pathway.pairwise_iou()
    assert torch.equal(alone, alone.T) and alone.diagonal().tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="same sites"):
        pathway.pairwise_iou(Pathway({"a": torch.ones(3, 4, dtype=torch.bool)}))


def test_pathway_indexing_and_device():
    pathway = select_pathway(_scores([(4, 3, 5), (4, 6)]), 0.5)
    first = pathway[0]
    assert first.batch_size == 1 and torch.equal(first.masks["site1"], pathway.masks["site1"][:1])
    assert pathway[1:3].batch_size == 2
    assert pathway[torch.tensor([3, 0])].masks["site0"].shape == (2, 3, 5)
    moved = pathway.to("cpu")
    assert moved.settings == pathway.settings
    assert "Pathway(2 sites" in repr(pathway)


def test_pathway_validates_masks():
    with pytest.raises(TypeError, match="bool"):
        Pathway({"a": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="batch size"):
        Pathway({"a": torch.ones(2, 3, dtype=torch.bool), "b": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="batch first"):
        Pathway({"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="non-empty"):
        Pathway({})
    with pytest.raises(TypeError, match="Pathway"):
        Pathway({"a": torch.ones(2, 2, dtype=torch.bool)}).iou("other")


@pytest.mark.parametrize(
    "factory,shape", [(lambda: toy.mlp([5, 8, 6, 3]), (4, 5)), (toy.small_cnn, (4, 1, 8, 8))]
)
def test_restrict_equals_the_hand_masked_network(factory, shape):
    model = factory()
    torch.manual_seed(2)
    x = torch.randn(*shape, dtype=torch.float64)
    pathway = select_pathway(neuron_contributions(model, x, 1), 0.6)
    with restrict(model, pathway):
        restricted = model(x)
    hand = toy.hand_forward(model, x, list(pathway.masks.values()))
    torch.testing.assert_close(restricted, hand, rtol=0, atol=0)
    torch.testing.assert_close(model(x), toy.hand_forward(model, x))  # hooks gone


def test_whole_and_restricted_are_the_two_forward_passes_without_grad():
    model = toy.small_cnn()
    torch.manual_seed(3)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    pathway = select_pathway(neuron_contributions(model, x, 1), 0.6)
    before = toy.model_state(model)
    whole, restricted = whole_and_restricted(model, x, pathway)
    toy.assert_same_state(before, toy.model_state(model))
    assert not whole.requires_grad and not restricted.requires_grad
    torch.testing.assert_close(whole, toy.hand_forward(model, x).detach(), rtol=0, atol=0)
    hand = toy.hand_forward(model, x, list(pathway.masks.values())).detach()
    torch.testing.assert_close(restricted, hand, rtol=0, atol=0)
    with pytest.raises(ValueError, match="training"):
        whole_and_restricted(model.train(), x, pathway)


def test_restrict_with_a_reused_module():
    model = toy.ReusedReLU()
    x = torch.randn(3, 4, dtype=torch.float64)
    pathway = select_pathway(neuron_contributions(model, x, 0), 0.5)
    masks = [m.double() for m in pathway.masks.values()]
    with restrict(model, pathway):
        torch.testing.assert_close(model(x), model.hand_forward(x, masks))


def test_restrict_rejects_another_batch_and_cleans_up():
    model = toy.small_cnn()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    pathway = select_pathway(neuron_contributions(model, x, 0), 0.5)
    with pytest.raises(ValueError, match=r"pathway\[indices\]"), restrict(model, pathway):
        model(x[:2])
    with restrict(model, pathway[:2]):
        model(x[:2])
    with pytest.raises(KeyError), restrict(model, pathway):
        raise KeyError("body")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_restrict_rejects_a_pathway_of_another_model():
    x = torch.randn(2, 5, dtype=torch.float64)
    pathway = select_pathway(neuron_contributions(toy.mlp([5, 8, 6, 3]), x, 0), 0.5)
    with pytest.raises(ValueError, match="another model"), restrict(toy.mlp([5, 8, 3]), pathway):
        pass

    class MaySkip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = toy.mlp([5, 8, 6, 3])
            self.skip = False

        def forward(self, x):
            net = self.inner
            hidden = net[1](net[0](x))
            hidden = net[2](hidden) if self.skip else net[3](net[2](hidden))
            return net[4](hidden)

    model = MaySkip().eval()
    pathway = select_pathway(neuron_contributions(model, x, 0), 0.5)
    model.skip = True
    with pytest.raises(ValueError, match="did not run.*inner.3"), restrict(model, pathway):
        model(x)
    masks = {"1": torch.ones(2, 8, dtype=torch.bool)}
    with pytest.raises(TypeError, match="Pathway"), restrict(toy.mlp([5, 8, 3]), masks):
        pass


def test_large_selection_never_sorts_or_kthvalues_all_neurons(monkeypatch):
    scores = _scores([(2, 64, 50, 50), (2, 40000)], seed=5, zeros=0.5)  # 200,000 neurons per sample
    largest = []
    for owner, name in [
        (torch.Tensor, "sort"),
        (torch.Tensor, "kthvalue"),
        (torch.Tensor, "topk"),
        (torch, "sort"),
        (torch, "kthvalue"),
        (torch, "topk"),
    ]:
        original = getattr(owner, name)

        def spy(*args, _original=original, **kwargs):
            largest.append(max(a.numel() for a in args if isinstance(a, torch.Tensor)))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
    pathway = select_pathway(scores, 0.9)
    monkeypatch.undo()
    _assert_masks_equal(pathway, scores, 0.9, "global")
    assert max(largest, default=0) < 40000


def test_pathway_cat_stacks_samples_and_checks_sites():
    a = Pathway({"s": torch.tensor([[True, False]]), "t": torch.tensor([[False, True, True]])})
    b = Pathway({"s": torch.tensor([[False, False]]), "t": torch.tensor([[True, True, True]])})
    both = Pathway.cat([a, b, a])
    assert both.batch_size == 3
    assert torch.equal(both.masks["t"][1], b.masks["t"][0])
    assert torch.equal(both[2].masks["s"], a.masks["s"])
    with pytest.raises(ValueError, match="same sites"):
        Pathway.cat([a, Pathway({"s": torch.tensor([[True, True]])})])
    with pytest.raises(TypeError):
        Pathway.cat([])
