"""Neuron contributions against independent computations on hand-written float64 networks."""

import pytest
import torch
import toy_models as toy
from torch import nn

from pathlib_core.contribution import neuron_contributions, trapezoid_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(shape, seed=1):
    torch.manual_seed(seed)
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize(
    "factory,shape", [(lambda: toy.mlp([5, 7, 6, 4]), (6, 5)), (toy.small_cnn, (6, 1, 8, 8))]
)
def test_taylor_matches_autograd_on_the_hand_written_network(factory, shape, absolute):
    model = factory()
    x = _inputs(shape)
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    contributions = neuron_contributions(model, x, target, absolute=absolute)
    expected = toy.hand_taylor(model, x, target, absolute=absolute)
    assert list(contributions) == [str(i) for i in toy.relu_positions(model)]
    for got, want in zip(contributions.values(), expected, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert contributions.settings == {"method": "taylor", "absolute": absolute}
    assert torch.equal(contributions.targets, target)


def test_closed_form_two_layer_contributions():
    # y = w2 . relu(W1 x + b1): d y / d h_i = w2_i, so the contribution of hidden unit i is |h_i
    # w2_i|
    model = toy.mlp([3, 4, 1])
    x = _inputs((2, 3))
    hidden = torch.relu(model[0](x))
    (scores,) = neuron_contributions(model, x, 0).values()
    torch.testing.assert_close(scores, (hidden * model[2].weight[0]).abs(), rtol=0, atol=1e-15)


def test_target_none_is_the_predicted_class():
    model = toy.small_cnn()
    x = _inputs((4, 1, 8, 8))
    predicted = model(x).argmax(1)
    automatic = neuron_contributions(model, x)
    explicit = neuron_contributions(model, x, predicted)
    assert torch.equal(automatic.targets, predicted)
    for a, b in zip(automatic.values(), explicit.values(), strict=False):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["taylor", "integrated"])
def test_batched_equals_one_sample_at_a_time(method):
    model = toy.small_cnn()
    x = _inputs((8, 1, 8, 8))
    target = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    batched = neuron_contributions(model, x, target, method=method, n_steps=4)
    for i in range(8):
        single = neuron_contributions(model, x[i : i + 1], int(target[i]), method=method, n_steps=4)
        for name in batched:
            torch.testing.assert_close(
                batched[name][i : i + 1], single[name], rtol=1e-10, atol=1e-13
            )


def test_integrated_in_sample_chunks_equals_one_batch(monkeypatch):
    from pathlib_core import contribution

    model = toy.small_cnn()
    x = _inputs((5, 1, 8, 8))
    target = torch.tensor([0, 1, 2, 3, 4])
    whole = neuron_contributions(model, x, target, method="integrated", n_steps=4)
    monkeypatch.setattr(contribution, "_CHUNK_VALUES", 2 * 64 * 5)  # two samples per chunk
    chunked = neuron_contributions(model, x, target, method="integrated", n_steps=4)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-10, atol=1e-13)


def test_integrated_matches_explicit_loops():
    model = toy.mlp([4, 6, 5, 3], seed=3)
    x = _inputs((3, 4), seed=4)
    target = torch.tensor([2, 0, 1])
    contributions = neuron_contributions(model, x, target, method="integrated", n_steps=7)
    for got, want in zip(
        contributions.values(), toy.hand_integrated(model, x, target, n_steps=7), strict=False
    ):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)
    assert contributions.settings == {"method": "integrated", "absolute": True, "n_steps": 7}


def test_integrated_equals_taylor_when_the_logit_is_linear_in_the_site():
    # after the only ReLU the network is linear, so the gradient does not depend on alpha
    model = toy.mlp([3, 5, 2])
    x = _inputs((4, 3))
    integrated = neuron_contributions(model, x, 1, method="integrated", n_steps=3)
    taylor = neuron_contributions(model, x, 1)
    torch.testing.assert_close(integrated["1"], taylor["1"], rtol=1e-12, atol=1e-15)


def test_integrated_converges_to_the_layer_integral():
    model = toy.mlp([4, 16, 16, 3], seed=5)
    x = _inputs((2, 4), seed=6)
    signed = {
        n: neuron_contributions(model, x, 0, method="integrated", n_steps=n, absolute=False)["1"]
        for n in (4, 32, 2048)
    }
    exact = signed[2048]
    errors = [float((signed[n] - exact).abs().max()) for n in (4, 32)]
    assert errors[1] < errors[0]
    # completeness: the site's contributions sum to y(a) - y(0 at that site)
    with torch.no_grad():
        h = model[1](model[0](x))
        removed = model[4](model[3](model[2](torch.zeros_like(h))))
        full = model(x)
    torch.testing.assert_close(exact.sum(1), (full - removed)[:, 0], rtol=0, atol=2e-3)


def test_trapezoid_weights():
    alphas, weights = trapezoid_weights(4)
    torch.testing.assert_close(alphas, torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64))
    torch.testing.assert_close(
        weights, torch.tensor([0.125, 0.25, 0.25, 0.25, 0.125], dtype=torch.float64)
    )


def test_reused_relu_contributions_per_call():
    model = toy.ReusedReLU()
    x = _inputs((3, 4))
    contributions = neuron_contributions(model, x, 2)
    h1 = torch.relu(model.fc1(x))
    h2 = torch.relu(model.fc2(h1))
    g1, g2 = torch.autograd.grad(model.fc3(h2)[:, 2].sum(), [h1, h2])
    torch.testing.assert_close(contributions["relu"], (h1 * g1).abs().detach())
    torch.testing.assert_close(contributions["relu#1"], (h2 * g2).abs().detach())


def test_site_edited_in_place_afterwards_is_still_exact():
    model = toy.EditsSiteInPlace()
    x = _inputs((3, 4))
    (scores,) = neuron_contributions(model, x, 1).values()
    a = torch.relu(model.fc1(x))
    torch.testing.assert_close(scores, (a * model.fc2.weight[1]).abs().detach())


def test_saturated_relu6_keeps_a_nonzero_taylor_score():
    # The score is |a * dy/da| with a the ReLU6 *output*: a saturated unit (a = 6) scores
    # 6 |dy/da|, not 0 (only d a / d z vanishes there); see the module docstring of contribution.
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU6(), nn.Linear(2, 1)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[0.5, -2.0]]))
    x = torch.tensor([[9.0, 1.0]], dtype=torch.float64)  # unit 0 saturated, unit 1 linear
    (scores,) = neuron_contributions(model, x, 0).values()
    torch.testing.assert_close(scores, torch.tensor([[3.0, 2.0]], dtype=torch.float64))
    integrated = neuron_contributions(model, x, 0, method="integrated", n_steps=5)
    torch.testing.assert_close(integrated["1"], scores)


def test_frozen_parameters_still_give_contributions():
    model = toy.mlp([3, 4, 2]).requires_grad_(False)
    x = _inputs((2, 3))
    (scores,) = neuron_contributions(model, x, 0).values()
    hidden = torch.relu(model[0](x))
    torch.testing.assert_close(scores, (hidden * model[2].weight[0]).abs())


def test_works_under_no_grad():
    model = toy.small_cnn()
    x = _inputs((2, 1, 8, 8))
    with torch.no_grad():
        inside = neuron_contributions(model, x, 1)
    outside = neuron_contributions(model, x, 1)
    for a, b in zip(inside.values(), outside.values(), strict=False):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"target": 5}, ValueError, r"\[0, 4\]"),
        ({"target": [0, 1, 2]}, ValueError, "one class index per sample"),
        ({"target": torch.tensor([0.0, 1.0])}, TypeError, "long"),
        ({"method": "gradcam"}, ValueError, "taylor"),
        ({"n_steps": 0}, ValueError, "n_steps"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, error, match):
    model = toy.small_cnn()
    x = _inputs((2, 1, 8, 8))
    kwargs = {"target": 0, **kwargs}
    method = kwargs.pop("method", "integrated" if "n_steps" in kwargs else "taylor")
    with pytest.raises(error, match=match):
        neuron_contributions(model, x, method=method, **kwargs)


def test_bad_inputs_name_the_fix():
    model = toy.small_cnn()
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        neuron_contributions(model, torch.zeros(2, 1, 8, 8, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        neuron_contributions(model, torch.zeros(1, 8, 8, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        neuron_contributions(
            toy.small_cnn().train(), torch.zeros(2, 1, 8, 8, dtype=torch.float64), 0
        )


def test_non_finite_logits_are_reported():
    model = toy.mlp([3, 4, 2])
    x = torch.tensor([[1.0, 2.0, 3.0], [float("nan"), 0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        neuron_contributions(model, x, 0)


class _SkipAcrossSites(nn.Module):
    """A skip connection from the first site to after the second: the second site's expanded
    output meets the first site's unexpanded one (added, or with ``concat`` concatenated)."""

    def __init__(self, concat: bool = False):
        super().__init__()
        torch.manual_seed(7)
        self.concat = concat
        self.conv0, self.relu0 = nn.Conv2d(1, 3, 3, padding=1), nn.ReLU()
        self.conv1, self.relu1 = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()
        self.head = nn.Linear((6 if concat else 3) * 6 * 6, 4)

    def forward(self, x):
        h = self.relu0(self.conv0(x))
        g = self.relu1(self.conv1(h))
        return self.head((torch.cat([g, h], dim=1) if self.concat else g + h).flatten(1))


def _integrated_without_expansion(monkeypatch, model, x, target):
    from pathlib_core import contribution

    original = contribution._scaled_pass
    monkeypatch.setattr(
        contribution, "_scaled_pass", lambda *args, expand: original(*args, expand=False)
    )
    try:
        return neuron_contributions(model, x, target, method="integrated", n_steps=3)
    finally:
        monkeypatch.setattr(contribution, "_scaled_pass", original)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", ["cnn", "skip", "concat"])
def test_integrated_runs_the_layers_before_a_site_once_with_the_same_result(
    monkeypatch, kind, batch
):
    if kind == "cnn":
        model, side = toy.small_cnn(), 8
    else:
        model, side = _SkipAcrossSites(concat=kind == "concat").double().eval(), 6
    x = _inputs((batch, 1, side, side), seed=2)
    target = torch.arange(batch) % 4
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    seen = []
    handle = first.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        expanded = neuron_contributions(model, x, target, method="integrated", n_steps=3)
    finally:
        handle.remove()
    repeated = _integrated_without_expansion(monkeypatch, model, x, target)
    for name in repeated:
        torch.testing.assert_close(expanded[name], repeated[name], rtol=1e-12, atol=1e-14)
    # the first layer runs on the B inputs (or, past an added skip connection, on one sample at
    # a time, where the single row broadcasts); only a concatenation across the site forces
    # the repeated inputs, for the second site
    assert seen.count(4 * batch) == (1 if kind == "concat" else 0)
    if kind == "skip" and batch > 1:
        assert seen.count(1) == batch


def test_integrated_expansion_on_resnet18(monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).double().eval()
    for batch in (1, 2):
        x = _inputs((batch, 3, 32, 32), seed=batch)
        target = torch.arange(batch)
        expanded = neuron_contributions(model, x, target, method="integrated", n_steps=3)
        repeated = _integrated_without_expansion(monkeypatch, model, x, target)
        for name in repeated:
            torch.testing.assert_close(expanded[name], repeated[name], rtol=1e-9, atol=1e-12)
