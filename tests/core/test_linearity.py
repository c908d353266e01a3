"""Local linearity: the exact radius against an independent computation (autograd Jacobians of the
hand-written masked network) and against bisection along directions; the profile against the
hand-masked network."""

import math

import pytest
import torch
import toy_models as toy
from torch import nn

from pathlib_core import linearity, neuron_contributions, select_pathway
from pathlib_core.pruning import random_pathway

pytestmark = pytest.mark.usefixtures("single_thread")


def _relu6_mlp(seed=0):
    """Weights large enough that some ReLU6 pre-activations pass 6 (both kinks matter)."""
    torch.manual_seed(seed)
    model = (
        nn.Sequential(nn.Linear(5, 16), nn.ReLU6(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
        .double()
        .eval()
    )
    with torch.no_grad():
        model[0].weight.mul_(4.0)
        model[2].weight.mul_(3.0)
    return model


def _constraints(model, x, masks, winners=None):
    """Every constraint of the restricted Sequential at ``x`` (one sample), written out: kept
    pre-activations (distance to 0, and to 6 for ReLU6) and pooling margins against the winners
    chosen at the base point. Returns (values, kinds, winners)."""
    values, kinds, chosen = [], [], []
    relu_index = pool_index = 0
    h = x
    for layer in model:
        if isinstance(layer, (nn.ReLU, nn.ReLU6)):
            keep = masks[relu_index].reshape(-1) if masks is not None else None
            z = h.reshape(-1).clone()  # before an in-place unit overwrites h
            z = z[keep] if keep is not None else z
            values.append(z)
            kinds.append("relu6" if isinstance(layer, nn.ReLU6) else "relu")
            h = layer(h)
            if masks is not None:
                h = h * masks[relu_index].to(h.dtype)
            relu_index += 1
            continue
        if isinstance(layer, nn.MaxPool2d):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            n, c, hh, ww = h.shape
            win = h.reshape(n, c, hh // k, k, ww // k, k).permute(0, 1, 2, 4, 3, 5)
            win = win.reshape(n, c, hh // k, ww // k, k * k)
            best = win.argmax(-1, keepdim=True) if winners is None else winners[pool_index]
            chosen.append(best)
            values.append((win.gather(-1, best) - win).reshape(-1))
            kinds.append("pool")
            pool_index += 1
        h = layer(h)
    return values, kinds, chosen


def _hand_radius(model, x, masks=None):
    """min over constraints of distance / ||grad||, Jacobians by torch.autograd.functional."""
    values, kinds, winners = _constraints(model, x, masks)
    radius = math.inf
    for i, kind in enumerate(kinds):

        def f(inp, i=i):
            return _constraints(model, inp, masks, winners)[0][i]

        jac = torch.autograd.functional.jacobian(f, x).reshape(values[i].numel(), -1)
        norm = jac.norm(dim=1)
        v = values[i].detach()
        dist = torch.minimum(v.abs(), (v - 6).abs()) if kind == "relu6" else v.abs()
        ratio = torch.where(norm > 0, dist / norm, math.inf)
        if ratio.numel():
            radius = min(radius, ratio.min().item())
    return radius


def _pattern(model, x, masks=None):
    """The activation pattern of the restricted network: kept neurons' states and pool winners."""
    with torch.no_grad():
        values, kinds, winners = _constraints(model, x, masks)
    states = []
    for v, kind in zip(values, kinds, strict=False):
        if kind == "relu":
            states.append((v > 0).long())
        elif kind == "relu6":
            states.append((v > 0).long() + (v >= 6).long())
    return torch.cat(states + [w.reshape(-1) for w in winners])


def _first_change(model, x, masks, direction, t_max, scan=400):
    """The first t in (0, t_max] where the pattern differs from the pattern at x (bisection)."""
    base = _pattern(model, x, masks)
    ts = torch.linspace(0, t_max, scan + 1, dtype=torch.float64)[1:]
    lo = 0.0
    for t in ts.tolist():
        if not torch.equal(_pattern(model, x + t * direction, masks), base):
            hi = t
            break
        lo = t
    else:
        return math.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if torch.equal(_pattern(model, x + mid * direction, masks), base):
            lo = mid
        else:
            hi = mid
    return hi


def _cases():
    cnn = toy.small_cnn(seed=2)
    x_cnn = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mlp = _relu6_mlp(seed=3)
    x_mlp = 3 * torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return {"cnn": (cnn, x_cnn), "relu6 mlp": (mlp, x_mlp), "bn cnn": (_bn_cnn(), x_cnn)}


def _bn_cnn():
    """In-place units, batch norm with (non-trivial) running statistics and average pooling: the
    frozen-pattern pass must zero the right biases and keep in-place outputs consistent."""
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU6(inplace=True),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    ).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 4.0)
        model[1].bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("case", ["cnn", "relu6 mlp", "bn cnn"])
@pytest.mark.parametrize("sparsity", [None, 0.3, 0.7])
def test_exact_radius_matches_autograd_jacobians(case, sparsity):
    model, x = _cases()[case]
    pathway = None if sparsity is None else select_pathway(neuron_contributions(model, x), sparsity)
    result = linearity.linear_radius(model, x, pathway, chunk=7)
    for b in range(x.shape[0]):
        masks = None if pathway is None else [m[b : b + 1] for m in pathway.masks.values()]
        expected = _hand_radius(model, x[b : b + 1], masks)
        assert result.radius[b].item() == pytest.approx(expected, rel=1e-9)
    assert torch.equal(
        result.radius, torch.stack(list(result.by_constraint.values()), 1).min(1).values
    )
    assert (result.neuron_radius >= result.radius).all()


@pytest.mark.parametrize("case", ["cnn", "relu6 mlp"])
def test_radius_agrees_with_bisection_along_directions(case):
    model, x = _cases()[case]
    pathway = select_pathway(neuron_contributions(model, x), 0.5)
    result = linearity.linear_radius(model, x, pathway)
    generator = torch.Generator().manual_seed(9)
    for b in range(x.shape[0]):
        xb = x[b : b + 1]
        masks = [m[b : b + 1] for m in pathway.masks.values()]
        r = result.radius[b].item()
        assert 0 < r < math.inf
        # random directions never leave the region before r
        for _ in range(5):
            d = torch.randn(xb.shape, dtype=torch.float64, generator=generator)
            d /= d.norm()
            assert _first_change(model, xb, masks, d, 20 * r) >= r * (1 - 1e-9)
        # the direction towards the nearest constraint leaves it exactly at r
        d = _direction_to_nearest(model, xb, masks)
        assert _first_change(model, xb, masks, d, 3 * r) == pytest.approx(r, rel=1e-6)


def _direction_to_nearest(model, x, masks):
    values, kinds, winners = _constraints(model, x, masks)
    best = (math.inf, None)
    for i, kind in enumerate(kinds):

        def f(inp, i=i):
            return _constraints(model, inp, masks, winners)[0][i]

        jac = torch.autograd.functional.jacobian(f, x).reshape(values[i].numel(), -1)
        v = values[i].detach()
        for j in range(v.numel()):
            norm = jac[j].norm()
            if norm == 0:
                continue
            targets = [0.0] if kind != "relu6" else [0.0, 6.0]
            for kink in targets:
                dist = abs(v[j].item() - kink)
                if dist / norm < best[0]:
                    sign = -1.0 if v[j].item() > kink else 1.0
                    best = (dist / norm, sign * jac[j] / norm)
    return best[1].reshape(x.shape)


def test_first_order_prediction_is_exact_inside_the_radius_only():
    model, x = _cases()["cnn"]
    pathway = select_pathway(neuron_contributions(model, x), 0.5)
    result = linearity.linear_radius(model, x, pathway)
    r = result.radius.unsqueeze(1).unsqueeze(2).unsqueeze(3)
    inside = linearity.linearity_profile(model, x, pathway, radii=[1e-3], n_directions=4)
    assert inside.relative_error.max() < 1e-9
    assert inside.roundoff.shape == (2, 1) and (inside.roundoff < 1e-9).all()
    for b in range(x.shape[0]):  # the gradient norm of the hand-masked network
        xb = x[b : b + 1].clone().requires_grad_(True)
        masks = [m[b : b + 1] for m in pathway.masks.values()]
        label = toy.hand_forward(model, xb.detach()).argmax(1)
        (grad,) = torch.autograd.grad(toy.hand_forward(model, xb, masks)[0, label].sum(), xb)
        torch.testing.assert_close(inside.gradient_norm[b], grad.norm(), rtol=1e-10, atol=0)
    in32 = linearity.linearity_profile(model.float(), x.float(), pathway, radii=[1e-3])
    model.double()
    assert (in32.roundoff > 1e3 * inside.roundoff).all()
    assert (in32.relative_error.max(dim=2).values < 100 * in32.roundoff).all()
    for b in range(x.shape[0]):
        masks = [m[b : b + 1] for m in pathway.masks.values()]
        xb = x[b : b + 1]
        d = _direction_to_nearest(model, xb, masks)
        rb = result.radius[b].item()
        error_in = _first_order_error(model, xb, masks, 0.99 * rb * d)
        error_out = _first_order_error(model, xb, masks, 30 * rb * d)
        assert error_in < 1e-10
        assert error_out > 1e-6
    assert r.numel() == 2


def _first_order_error(model, x, masks, delta):
    x = x.clone().requires_grad_(True)
    target = toy.hand_forward(model, x.detach()).argmax(1)
    y = toy.hand_forward(model, x, masks).gather(1, target.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(y, x)
    with torch.no_grad():
        moved = toy.hand_forward(model, x + delta, masks).gather(1, target.view(-1, 1)).sum()
    change = moved - y.detach()
    return (abs(change - (grad * delta).sum()) / (grad.norm() * delta.norm())).item()


def test_profile_matches_the_hand_masked_network():
    model, x = _cases()["cnn"]
    pathway = random_pathway(model, x, 0.4, seed=1)
    profile = linearity.linearity_profile(
        model, x, pathway, radii=[0.05, 2.0], n_directions=3, seed=2
    )
    assert profile.relative_error.shape == (2, 2, 4) and profile.flipped.shape == (2, 2, 4)
    assert profile.directions == ["random"] * 3 + ["gradient"]
    # recompute the gradient-direction entries by hand
    for b in range(2):
        masks = [m[b : b + 1] for m in pathway.masks.values()]
        xb = x[b : b + 1].clone().requires_grad_(True)
        target = toy.hand_forward(model, xb.detach()).argmax(1)
        y = toy.hand_forward(model, xb, masks).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(y, xb)
        for i, r in enumerate([0.05, 2.0]):
            delta = r * grad / grad.norm()
            expected = _first_order_error(model, x[b : b + 1], masks, delta)
            assert profile.relative_error[b, i, -1].item() == pytest.approx(
                expected, rel=1e-6, abs=1e-12
            )
            before = _pattern(model, x[b : b + 1], masks)
            after = _pattern(model, x[b : b + 1] + delta, masks)
            relu_states = before.numel() - sum(
                w.numel() for w in _constraints(model, x[b : b + 1], masks)[2]
            )
            flipped = (before[:relu_states] != after[:relu_states]).double().sum() / relu_states
            assert profile.flipped[b, i, -1].item() == pytest.approx(flipped.item())


def test_profile_in_chunks_equals_one_pass():
    model, x = _cases()["cnn"]
    pathway = random_pathway(model, x, 0.4, seed=1)
    settings = dict(radii=[0.05, 2.0], n_directions=3, seed=2)
    whole = linearity.linearity_profile(model, x, pathway, **settings)
    for size in (1, 3):  # chunks that split one input's directions across passes
        chunked = linearity.linearity_profile(model, x, pathway, batch_size=size, **settings)
        # equal up to round-off (errors near 1e-14 are round-off, and depend on the batch)
        assert torch.allclose(chunked.relative_error, whole.relative_error, rtol=1e-9, atol=1e-12)
        assert torch.equal(chunked.flipped, whole.flipped)
    with pytest.raises(ValueError, match="batch_size"):
        linearity.linearity_profile(model, x, pathway, batch_size=0, **settings)


def test_relu6_case_has_units_beyond_both_kinks():
    model, x = _cases()["relu6 mlp"]
    with torch.no_grad():
        z = model[0](x)
    assert (z > 6).any() and ((z > 0) & (z < 6)).any() and (z < 0).any()


def test_ties_in_max_pooling_put_the_input_on_a_kink():
    """A constant image gives equal values in every pooling window: the restricted network is not
    affine in any ball (radius 0), although no neuron is at its kink."""
    model = toy.small_cnn(seed=2)
    x = torch.full((1, 1, 8, 8), 0.7, dtype=torch.float64)
    result = linearity.linear_radius(model, x)
    assert result.radius.item() == 0.0 == _hand_radius(model, x)
    assert result.kinds[result.binding[0]] == "pool"
    assert result.neuron_radius.item() > 0


def test_the_whole_network_is_the_default_and_pathways_remove_constraints():
    model, x = _cases()["relu6 mlp"]
    full = linearity.linear_radius(model, x)
    everything = select_pathway(neuron_contributions(model, x), 0.0)
    assert torch.equal(full.radius, linearity.linear_radius(model, x, everything).radius)
    assert set(full.kinds.values()) == {"relu", "relu6"}


@pytest.mark.parametrize(
    "model, match",
    [
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.ReLU(), nn.Linear(4, 2)), "GELU"),
        (
            lambda: nn.Sequential(
                nn.Conv2d(1, 2, 3),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
                nn.Flatten(),
                nn.Linear(2 * 3 * 3, 2),
            ),
            "overlapping",
        ),
    ],
)
def test_unsupported_models_are_refused_with_a_pointer(model, match):
    torch.manual_seed(0)  # weights made here, not at collection: the same in every test order
    model = model().double().eval()
    x = (
        torch.randn(2, 4, dtype=torch.float64)
        if isinstance(model[0], nn.Linear)
        else torch.randn(2, 1, 8, 8, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match=match):
        linearity.linear_radius(model, x)
    profile = linearity.linearity_profile(model, x, radii=[0.1], n_directions=2)
    assert torch.isfinite(profile.relative_error).all()


def test_a_pathway_over_some_relus_only_is_refused():
    model, x = _cases()["relu6 mlp"]
    partial = select_pathway(neuron_contributions(model, x, sites=["1"]), 0.5)
    with pytest.raises(ValueError, match="sites=None"):
        linearity.linear_radius(model, x, partial)


def test_bad_radii_are_refused():
    model, x = _cases()["relu6 mlp"]
    with pytest.raises(ValueError, match="radii"):
        linearity.linearity_profile(model, x, radii=[0.0, 1.0])


class _FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.relu, self.b = nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4)
        self.c = nn.Linear(4, 2)

    def forward(self, x):
        return self.c(torch.relu(self.b(self.relu(self.a(x)))))


def test_a_hidden_functional_relu_is_refused_and_hooks_are_removed():
    torch.manual_seed(0)
    model = _FunctionalRelu().double().eval()
    before = toy.model_state(model)
    with pytest.raises(ValueError, match="'relu' outside"):
        linearity.linear_radius(model, torch.randn(2, 3, dtype=torch.float64))
    toy.assert_same_state(before, toy.model_state(model))


def test_inputs_are_never_written_even_with_an_in_place_first_relu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    model = model.double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    kept = x.clone()
    one = linearity.linear_radius(model, x, chunk=1)
    assert torch.equal(x, kept)
    assert torch.allclose(one.radius, linearity.linear_radius(model, x, chunk=4).radius)


def test_a_pathway_of_other_inputs_is_refused():
    model, x = _cases()["cnn"]
    pathway = select_pathway(neuron_contributions(model, x), 0.5)
    with pytest.raises(ValueError, match="belongs to its batch"):
        linearity.linear_radius(model, x[:1], pathway)


def test_pooling_given_as_tuples_is_accepted_and_batch_statistics_refused():
    torch.manual_seed(0)
    pool = (
        nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((2, 2), (2, 2)),
            nn.Flatten(),
            nn.Linear(2 * 4 * 4, 2),
        )
        .double()
        .eval()
    )
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    assert linearity.linear_radius(pool, x).radius.item() == pytest.approx(_hand_radius(pool, x))
    batch_stats = (
        nn.Sequential(
            nn.Linear(3, 4),
            nn.BatchNorm1d(4, track_running_stats=False),
            nn.ReLU(),
            nn.Linear(4, 2),
        )
        .double()
        .eval()
    )
    with pytest.raises(ValueError, match="running statistics"):
        linearity.linear_radius(batch_stats, torch.randn(2, 3, dtype=torch.float64))
