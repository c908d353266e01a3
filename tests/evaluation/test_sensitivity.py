"""Sensitivity-n against known answers: on a linear model the map w * (x - r) is exactly the output
drop of every subset (correlation 1), and a random map is uncorrelated with it (near 0)."""

import math

import pytest
import torch
import toy_models as toy
from torch import nn

from pathlib_core.evaluation.maps import replacement_images
from pathlib_core.evaluation.perturbation import random_attributions
from pathlib_core.evaluation.sensitivity import SensitivityN, patch_sensitivity, sensitivity_n

pytestmark = pytest.mark.usefixtures("single_thread")
NS = (1, 3, 8, 20)  # of 5 x 5 = 25 pixels


def linear(c=2, h=5, w=5, classes=4, seed=0):
    """Flatten -> Linear, float64, eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, classes)).double().eval()


def images(b=3, c=2, h=5, w=5, seed=1):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)).double()


def exact_map(model, x, target, replacement="zero"):
    """w_target * (x - r): the exact output drop of removing each input value."""
    weight = model[1].weight[target].view(x.shape)
    return (weight * (x - replacement_images(x, replacement))).detach()


@pytest.mark.parametrize(
    "replacement",
    ["zero", "mean", "blur", -0.5, torch.tensor([0.1, 0.7]).view(1, 2, 1, 1).double()],
    ids=["zero", "mean", "blur", "number", "tensor"],
)
def test_exact_map_of_linear_model_has_correlation_one(replacement):
    model, x, target = linear(), images(), torch.tensor([0, 3, 1])
    attr = exact_map(model, x, target, replacement)
    result = sensitivity_n(model, x, target, attr, NS, n_subsets=30, replacement=replacement)
    assert isinstance(result, SensitivityN) and result.ns.tolist() == list(NS)
    assert result.correlation.shape == (3, len(NS))
    torch.testing.assert_close(
        result.correlation, torch.ones(3, len(NS)).double(), rtol=0, atol=1e-9
    )


def test_random_map_is_uncorrelated():
    model, x = linear(), images(b=4)
    attr = random_attributions(x, seed=11)
    result = sensitivity_n(model, x, None, attr, NS, n_subsets=200)
    assert (result.mean.abs() < 0.2).all(), result.mean
    exact = sensitivity_n(model, x, None, exact_map(model, x, model(x).argmax(1)), NS)
    assert (exact.mean > 0.999).all()


def test_constant_sums_or_drops_give_nan_and_mean_ignores_nan():
    model, x = linear(), images()
    attr = exact_map(model, x, torch.tensor([0, 0, 0]))
    full = sensitivity_n(model, x, 0, attr, (3, 25), n_subsets=10)
    assert not full.correlation[:, 0].isnan().any()
    assert full.correlation[:, 1].isnan().all()  # n = H * W: every subset is the whole image
    ignored = attr.clone()
    ignored[1] = 0.0
    partly = sensitivity_n(model, x, 0, ignored, (3,), n_subsets=10)
    assert partly.correlation[1].isnan().all() and not partly.correlation[0].isnan().any()
    torch.testing.assert_close(partly.mean, partly.correlation[[0, 2]].mean(0))


def test_batch_equals_one_image_at_a_time():
    model, x, target = linear(), images(), torch.tensor([2, 0, 1])
    attr = random_attributions(x, seed=4)
    batched = sensitivity_n(model, x, target, attr, NS, n_subsets=20)
    for b in range(3):
        single = sensitivity_n(
            model, x[b : b + 1], target[b : b + 1], attr[b : b + 1], NS, n_subsets=20
        )
        torch.testing.assert_close(
            single.correlation[0], batched.correlation[b], rtol=0, atol=1e-12
        )


def test_batch_size_chunking_gives_identical_results():
    model, x = linear(), images()
    attr = random_attributions(x, seed=5)
    results = [
        sensitivity_n(model, x, 1, attr, NS, n_subsets=20, batch_size=size).correlation
        for size in (1, 7, 64, 1000)
    ]
    for result in results[1:]:
        torch.testing.assert_close(result, results[0], rtol=0, atol=1e-12)


def test_seeded_and_independent_of_other_ns():
    model, x = linear(), images()
    attr = random_attributions(x, seed=6)
    first = sensitivity_n(model, x, 1, attr, NS, n_subsets=20, seed=3).correlation
    again = sensitivity_n(model, x, 1, attr, NS, n_subsets=20, seed=3).correlation
    other = sensitivity_n(model, x, 1, attr, NS, n_subsets=20, seed=4).correlation
    alone = sensitivity_n(model, x, 1, attr, (8,), n_subsets=20, seed=3).correlation
    assert torch.equal(first, again) and not torch.equal(first, other)
    torch.testing.assert_close(alone[:, 0], first[:, 2], rtol=0, atol=0)


def test_default_ns_are_powers_of_two_up_to_80_percent():
    model, x = linear(h=6, w=6), images(h=6, w=6)
    result = sensitivity_n(model, x, 0, random_attributions(x), n_subsets=5)
    assert result.ns.tolist() == [1, 2, 4, 8, 16]  # 0.8 * 36 = 28.8
    assert result.correlation.shape == (3, 5) and result.mean.shape == (5,)


def test_probability_output_is_the_softmax_of_the_target():
    model, x = linear(), images(b=2)
    attr = random_attributions(x, seed=8)
    prob = sensitivity_n(model, x, None, attr, NS, n_subsets=15, output="probability")
    softmaxed = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    predicted = model(x).argmax(1)
    logit = sensitivity_n(softmaxed, x, predicted, attr, NS, n_subsets=15, output="logit")
    torch.testing.assert_close(prob.correlation, logit.correlation, rtol=0, atol=1e-12)
    assert torch.isfinite(prob.correlation).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attributions": torch.zeros(3, 3, 5, 5)}, ValueError, "attributions have shape"),
        ({"ns": (0, 3)}, ValueError, r"in \[1, 25\]"),
        ({"ns": (26,)}, ValueError, r"in \[1, 25\]"),
        ({"ns": ()}, ValueError, "non-empty"),
        ({"ns": (1.5,)}, TypeError, "int subset sizes"),
        ({"n_subsets": 1}, ValueError, "at least 2"),
        ({"n_subsets": 0}, ValueError, "n_subsets must be a positive int"),
        ({"output": "loss"}, ValueError, "unknown output"),
        ({"reduce": "median"}, ValueError, "reduce must be one of"),
        ({"replacement": "noise"}, ValueError, "replacement must be one of"),
        ({"seed": 1.0}, TypeError, "seed must be an int"),
        ({"inputs": torch.zeros(3, 50).double()}, ValueError, r"\(B, C, H, W\)"),
    ],
)
def test_bad_arguments_raise_helpful_errors(kwargs, error, message):
    model, x = linear(), images()
    arguments = {"model": model, "inputs": x, "target": 0, "attributions": x.clone()}
    with pytest.raises(error, match=message):
        sensitivity_n(**{**arguments, **kwargs})


def test_training_mode_is_refused_and_model_is_untouched():
    model, x = linear(), images()
    model.train()
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        sensitivity_n(model, x, 0, x.clone(), NS)
    model.eval()
    before = toy.model_state(model)
    result = sensitivity_n(model, x, None, x.clone(), NS, n_subsets=10, output="probability")
    toy.assert_same_state(before, toy.model_state(model))
    assert not model.training and not math.isnan(float(result.mean.sum()))


def test_patches_are_seeded_squares_and_an_exact_map_adds_up_over_them():
    from pathlib_core.evaluation.sensitivity import random_patches

    masks = random_patches(torch.tensor([1, 3]), 7, 5, 6, seed=4).view(2, 7, 5, 6)
    for j in range(7):
        rows, cols = masks[1, j].nonzero(as_tuple=True)
        assert len(rows) == 9 and rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
    assert (masks[0].flatten(1).sum(dim=1) == 1).all()
    assert torch.equal(
        masks, random_patches(torch.tensor([1, 3]), 7, 5, 6, seed=4).view(2, 7, 5, 6)
    )
    model, x, target = linear(), images(), torch.tensor([0, 3, 1])
    result = patch_sensitivity(
        model, x, target, exact_map(model, x, target), sides=(1, 2, 4), n_patches=20
    )
    assert result.ns.tolist() == [1, 4, 16]
    torch.testing.assert_close(result.correlation, torch.ones(3, 3).double(), rtol=0, atol=1e-9)
    shuffled = random_attributions(x, seed=0)
    noisy = patch_sensitivity(model, x, target, shuffled, sides=(2,), n_patches=40)
    assert noisy.correlation.abs().max() < 0.9


@pytest.mark.parametrize(
    "sides,match",
    [((0,), "sides must be"), ((6,), r"\[1, 5\]"), ("ab", "sides must be a sequence")],
)
def test_bad_patch_sides_name_the_fix(sides, match):
    model, x = linear(), images()
    with pytest.raises((ValueError, TypeError), match=match):
        patch_sensitivity(model, x, 0, x, sides=sides, n_patches=5)


def test_a_mapping_of_maps_equals_one_call_per_map_with_one_set_of_removal_passes(monkeypatch):
    from pathlib_core.evaluation import sensitivity

    model, x, target = linear(), images(), torch.tensor([2, 0, 1])
    maps = {"exact": exact_map(model, x, target), "random": random_attributions(x, seed=4)}
    calls = []
    original = sensitivity.removal_outputs
    monkeypatch.setattr(
        sensitivity, "removal_outputs", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    together = sensitivity_n(model, x, target, maps, NS, n_subsets=20)
    patches = patch_sensitivity(model, x, target, maps, sides=(1, 2), n_patches=10)
    assert len(calls) == 2 and list(together) == list(patches) == ["exact", "random"]
    for name, m in maps.items():
        alone = sensitivity_n(model, x, target, m, NS, n_subsets=20)
        assert torch.equal(together[name].correlation, alone.correlation)
        assert torch.equal(together[name].ns, alone.ns)
        alone = patch_sensitivity(model, x, target, m, sides=(1, 2), n_patches=10)
        assert torch.equal(patches[name].correlation, alone.correlation)
    with pytest.raises(ValueError, match="empty mapping"):
        sensitivity_n(model, x, target, {}, NS)
