"""InputSpecificPruning (Khakzar et al. 2019): PruneGrad is the pathway gradient; PrunePGD is the
closed form epsilon * g / ||g|| inside the pathway's exact linear radius, and stays in its
budget."""

import pytest
import torch
import toy_models as toy
from captum.attr import NoiseTunnel

from pathlib_core import linearity
from pathlib_core.attribution import (
    InputSpecificPruning,
    PathwayGradient,
    restricted_input_gradient,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _cnn_and_inputs():
    torch.manual_seed(3)
    return toy.small_cnn(), torch.randn(6, 1, 8, 8, dtype=torch.float64)


def _target_logit(model, x, target, pathway):
    from pathlib_core.pathway import restrict

    with torch.no_grad(), restrict(model, pathway):
        return model(x).gather(1, target.view(-1, 1)).squeeze(1)


def test_prune_grad_is_the_pathway_gradient():
    model, x = _cnn_and_inputs()
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    pruned = InputSpecificPruning(model).attribute(x, target, sparsity=0.6, mode="gradient")
    expected = PathwayGradient(model).attribute(x, target, sparsity=0.6)
    torch.testing.assert_close(pruned, expected, rtol=0, atol=0)


def test_inside_the_linear_radius_pgd_is_the_scaled_pruned_gradient():
    model, x = _cnn_and_inputs()
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    _, pathway = PathwayGradient(model).attribute(x, target, sparsity=0.6, return_pathway=True)
    radius = linearity.linear_radius(model, x, pathway).radius
    keep = radius > 0  # a tie in a pooling window gives radius 0: no ball to test there
    assert int(keep.sum()) >= 3
    x, target, radius = x[keep], target[keep], radius[keep]
    _, pathway = PathwayGradient(model).attribute(x, target, sparsity=0.6, return_pathway=True)
    epsilon = 0.5 * float(radius.min())
    delta = InputSpecificPruning(model).attribute(
        x, target, sparsity=0.6, epsilon=epsilon, n_pgd_steps=10
    )
    gradient = restricted_input_gradient(model, x, target, pathway)[0]
    unit = gradient / gradient.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(delta, epsilon * unit, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_pgd_stays_in_budget_and_moves_the_logit_the_asked_way(direction):
    model, x = _cnn_and_inputs()
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    delta, pathway = InputSpecificPruning(model).attribute(
        x,
        target,
        sparsity=0.6,
        epsilon=3.0,
        n_pgd_steps=15,
        direction=direction,
        return_pathway=True,
    )
    assert (delta.flatten(1).norm(dim=1) <= 3.0 * (1 + 1e-9)).all()
    change = _target_logit(model, x + delta, target, pathway) - _target_logit(
        model, x, target, pathway
    )
    assert ((change > 0) if direction == "increase" else (change < 0)).all()
    # at least as good as one linear step of the full budget along the pruned gradient
    gradient = restricted_input_gradient(model, x, target, pathway)[0]
    sign = 1.0 if direction == "increase" else -1.0
    one_step = sign * 3.0 * gradient / gradient.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    linear = _target_logit(model, x + one_step, target, pathway)
    reached = _target_logit(model, x + delta, target, pathway)
    assert (sign * (reached - linear) >= -1e-9).all()


def test_batched_equals_one_sample_at_a_time_and_noise_tunnel_wraps_it():
    model, x = _cnn_and_inputs()
    method = InputSpecificPruning(model)
    together = method.attribute(x, 1, sparsity=0.5, epsilon=2.0, n_pgd_steps=5)
    alone = torch.cat(
        [
            method.attribute(x[i : i + 1], 1, sparsity=0.5, epsilon=2.0, n_pgd_steps=5)
            for i in range(len(x))
        ]
    )
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-12)
    smoothed = NoiseTunnel(method).attribute(
        x, nt_type="smoothgrad", nt_samples=3, stdevs=0.1, target=1, sparsity=0.5, n_pgd_steps=3
    )
    assert smoothed.shape == x.shape and torch.isfinite(smoothed).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "pgd"}, "mode"),
        ({"direction": "up"}, "direction"),
        ({"epsilon": 0}, "epsilon must be a positive"),
        ({"step_size": -1.0}, "step_size must be a positive"),
        ({"n_pgd_steps": 0}, "n_pgd_steps must be a positive"),
        ({"sparsity": 1.0}, "sparsity"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, match):
    model, x = _cnn_and_inputs()
    with pytest.raises(ValueError, match=match):
        InputSpecificPruning(model).attribute(x, 0, **kwargs)
