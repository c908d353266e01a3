"""Pixel perturbation (LeRF / MoRF, AOPC) against known answers: a linear model whose output drop is
the sum of the removed contributions w * (x - r), and a model whose output encodes the removed set
bit by bit."""

import pytest
import torch
import toy_models as toy
from torch import nn

from pathlib_core.evaluation.maps import replacement_images
from pathlib_core.evaluation.perturbation import (
    PerturbationCurve,
    pixel_perturbation,
    random_attributions,
)

pytestmark = pytest.mark.usefixtures("single_thread")
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def linear(c=1, h=4, w=4, classes=3, seed=0, positive=False):
    """Flatten -> Linear, float64, eval mode; all weights and biases positive if asked."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, classes)).double().eval()
    if positive:
        with torch.no_grad():
            model[1].weight.abs_()
            model[1].bias.abs_()
    return model


def images(b=3, c=1, h=4, w=4, seed=1):
    """Positive float64 images."""
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)).double() + 0.1


def contributions(model, x, target, replacement="zero"):
    """w_target * (x - r): the exact effect of removing each input value of the linear model."""
    weight = model[1].weight[target].view(x.shape)
    return (weight * (x - replacement_images(x, replacement))).detach()


class RemovedPixels(nn.Module):
    """Logit 0: sum of 2**p over the removed pixels p (all channels 0), which encodes the removed
    set exactly in float64; logit 1: the number of removed values (pixels x channels)."""

    def forward(self, x):
        zero = x == 0
        removed = zero.all(dim=1).flatten(1).double()
        bits = 2.0 ** torch.arange(removed.shape[1], dtype=torch.float64)
        return torch.stack([removed @ bits, zero.flatten(1).sum(1).double()], dim=1)


def removed_sets(curve):
    """The removed pixel sets decoded from the RemovedPixels codes, per image and step."""
    codes = curve.output.long().tolist()
    return [[{p for p in range(64) if code >> p & 1} for code in row] for row in codes]


@pytest.mark.parametrize("order", ["lerf", "morf"])
def test_linear_model_output_is_f_minus_removed_contributions(order):
    model, x, target = linear(), images(), torch.tensor([0, 2, 1])
    attr = contributions(model, x, target)
    curve = pixel_perturbation(model, x, target, attr, FRACTIONS, order=order)
    base = model(x).gather(1, target.view(-1, 1)).squeeze(1).detach()
    ranked = attr.flatten(1).abs().sort(dim=1, descending=order == "morf")
    for k, fraction in enumerate(curve.fractions.tolist()):
        count = round(fraction * 16)
        removed = attr.flatten(1).gather(1, ranked.indices[:, :count]).sum(1)
        torch.testing.assert_close(curve.output[:, k], base - removed, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        curve.fractional_change, (curve.output - base[:, None]).abs() / base.abs()[:, None]
    )


def test_exact_map_is_optimal_for_positive_linear_model():
    model, x = linear(positive=True), images(b=4)
    target = torch.tensor([0, 1, 2, 0])
    exact = contributions(model, x, target)
    others = [random_attributions(x, seed=s) for s in range(5)]
    others += [x.clone(), model[1].weight[target].view(x.shape).detach()]
    best_morf = pixel_perturbation(model, x, target, exact, FRACTIONS, order="morf")
    best_lerf = pixel_perturbation(model, x, target, exact, FRACTIONS, order="lerf")
    for other in others:
        morf = pixel_perturbation(model, x, target, other, FRACTIONS, order="morf")
        lerf = pixel_perturbation(model, x, target, other, FRACTIONS, order="lerf")
        assert (best_morf.aopc >= morf.aopc - 1e-12).all()
        assert (best_morf.output <= morf.output + 1e-12).all()
        assert (best_lerf.fractional_change <= lerf.fractional_change + 1e-12).all()
        assert (best_lerf.mean_change <= lerf.mean_change + 1e-12).all()
    random = pixel_perturbation(model, x, target, others[0], FRACTIONS, order="morf")
    assert (best_morf.aopc > random.aopc).all()


@pytest.mark.parametrize("order", ["lerf", "morf"])
def test_removed_sets_are_nested_ordered_and_all_channels(order):
    x = images(b=2, c=3)
    attr = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(5)).double()
    model = RemovedPixels().eval()
    fractions = (0.05, 0.2, 0.3, 0.5, 0.9, 1.0)
    codes = pixel_perturbation(model, x, 0, attr, fractions, order=order)
    values = pixel_perturbation(model, x, 1, attr, fractions, order=order)
    importance = attr.abs().amax(dim=1).flatten(1)
    ranking = importance.argsort(dim=1, descending=order == "morf").tolist()
    for b, sets in enumerate(removed_sets(codes)):
        for k, removed in enumerate(sets):
            count = round(codes.fractions[k].item() * 16)
            assert removed == set(ranking[b][:count])
            assert values.output[b, k] == 3 * count
            assert k == 0 or removed >= sets[k - 1]


def test_fraction_zero_gives_zero_change_and_is_prepended_once():
    model, x = linear(), images()
    attr = random_attributions(x)
    curve = pixel_perturbation(model, x, None, attr, (0.01, 0.5))
    assert curve.fractions.tolist() == [0.0, 0.01, 0.5]
    # 0.01 * 16 pixels rounds to none: the change is zero up to float64 round-off (the unchanged
    # image can be evaluated in batches of another size)
    assert (curve.fractional_change[:, :2].abs() < 1e-12).all()
    assert isinstance(curve, PerturbationCurve) and curve.order == "lerf"
    again = pixel_perturbation(model, x, None, attr, (0.0, 0.01, 0.5))
    torch.testing.assert_close(again.output, curve.output, rtol=0, atol=0)


def test_aopc_and_mean_change_definitions():
    model, x = linear(), images()
    curve = pixel_perturbation(model, x, 1, random_attributions(x), FRACTIONS, order="morf")
    expected = torch.stack([curve.output[:, 0] - curve.output[:, k] for k in range(6)]).mean(0)
    torch.testing.assert_close(curve.aopc, expected)
    torch.testing.assert_close(curve.mean_change, curve.fractional_change.mean(0))
    assert curve.aopc.shape == (3,) and curve.mean_change.shape == (6,)


def test_target_none_is_predicted_class_and_probability_output():
    model, x = linear(classes=5), images(b=4)
    attr = random_attributions(x, seed=3)
    predicted = model(x).argmax(1)
    default = pixel_perturbation(model, x, None, attr, FRACTIONS)
    explicit = pixel_perturbation(model, x, predicted, attr, FRACTIONS)
    torch.testing.assert_close(default.output, explicit.output, rtol=0, atol=0)
    prob = pixel_perturbation(model, x, predicted, attr, FRACTIONS, output="probability")
    expected = torch.softmax(model(x), 1).gather(1, predicted.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(prob.output[:, 0], expected.detach())
    assert ((prob.output >= 0) & (prob.output <= 1)).all()


@pytest.mark.parametrize("order", ["lerf", "morf"])
def test_batch_equals_one_image_at_a_time(order):
    model, x = linear(c=2), images(b=3, c=2)
    target = torch.tensor([2, 0, 1])
    attr = random_attributions(x, seed=7)
    batched = pixel_perturbation(model, x, target, attr, FRACTIONS, order=order)
    for b in range(3):
        single = pixel_perturbation(
            model, x[b : b + 1], target[b : b + 1], attr[b : b + 1], FRACTIONS, order=order
        )
        torch.testing.assert_close(single.output[0], batched.output[b], rtol=0, atol=1e-12)


def test_batch_size_chunking_gives_identical_results():
    model, x = linear(c=2), images(b=3, c=2)
    attr = random_attributions(x, seed=2)
    results = [
        pixel_perturbation(model, x, 1, attr, FRACTIONS, batch_size=size).output
        for size in (1, 4, 7, 256)
    ]
    for result in results[1:]:
        torch.testing.assert_close(result, results[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "replacement",
    ["zero", "mean", "blur", 0.5, torch.tensor([0.2, -0.3]).view(1, 2, 1, 1).double()],
    ids=["zero", "mean", "blur", "number", "tensor"],
)
def test_replacements_match_linear_known_answer(replacement):
    model, x, target = linear(c=2), images(b=2, c=2), torch.tensor([1, 0])
    exact = contributions(model, x, target, replacement)
    curve = pixel_perturbation(model, x, target, exact, FRACTIONS, replacement=replacement)
    ranked = exact.abs().amax(dim=1).flatten(1).argsort(dim=1)
    per_pixel = exact.sum(dim=1).flatten(1)
    for k, fraction in enumerate(curve.fractions.tolist()):
        drop = per_pixel.gather(1, ranked[:, : round(fraction * 16)]).sum(1)
        torch.testing.assert_close(curve.output[:, 0] - curve.output[:, k], drop)


def test_random_attributions_are_seeded():
    x = images(b=2, c=3).float()
    a, b, c = random_attributions(x, 0), random_attributions(x, 0), random_attributions(x, 1)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="float tensor"):
        random_attributions(torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attributions": torch.zeros(3, 2, 4, 4)}, ValueError, "attributions have shape"),
        ({"attributions": torch.zeros(2, 4, 4)}, ValueError, r"pass one map per input"),
        ({"attributions": [[0.0]]}, TypeError, "attributions must be a tensor"),
        ({"fractions": (0.1, 1.5)}, ValueError, r"in \[0, 1\]"),
        ({"fractions": (10, 20)}, ValueError, "percentages"),
        ({"fractions": (0.5, 0.1)}, ValueError, "increase strictly"),
        ({"fractions": (0.0,)}, ValueError, "above 0"),
        ({"fractions": 0.1}, TypeError, "1-D sequence"),
        ({"order": "random"}, ValueError, "unknown order"),
        ({"output": "softmax"}, ValueError, "unknown output"),
        ({"reduce": "mean"}, ValueError, "reduce must be one of"),
        ({"replacement": "noise"}, ValueError, "replacement must be one of"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"target": 7}, ValueError, "out of range"),
        ({"inputs": torch.zeros(3, 16).double()}, ValueError, r"\(B, C, H, W\)"),
        ({"inputs": (torch.zeros(3, 1, 4, 4),)}, TypeError, "not a tuple"),
    ],
)
def test_bad_arguments_raise_helpful_errors(kwargs, error, message):
    model, x = linear(), images()
    arguments = {"model": model, "inputs": x, "target": 0, "attributions": x.clone()}
    with pytest.raises(error, match=message):
        pixel_perturbation(**{**arguments, **kwargs})


def test_training_mode_is_refused_and_model_is_untouched():
    model, x = linear(), images()
    model.train()
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        pixel_perturbation(model, x, 0, x.clone())
    model.eval()
    before = toy.model_state(model)
    for order in ("lerf", "morf"):
        pixel_perturbation(model, x, None, x.clone(), FRACTIONS, order=order, output="probability")
    toy.assert_same_state(before, toy.model_state(model))
    assert not model.training
