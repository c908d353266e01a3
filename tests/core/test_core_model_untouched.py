"""The user's model and inputs are left exactly as they were, after success and after every
error."""

import pytest
import torch
import torchvision
import toy_models as toy
from torch import nn

from pathlib_core import linearity, pruning
from pathlib_core.attribution import InputSpecificPruning, PathwayGradient
from pathlib_core.contribution import neuron_contributions
from pathlib_core.pathway import restrict, select_pathway
from pathlib_core.sites import find_sites

pytestmark = pytest.mark.usefixtures("single_thread")


def _user_hook(module, args, output):
    return None


def _models():
    resnet = torchvision.models.resnet18(weights=None).eval()  # in-place, reused ReLUs + BatchNorm
    resnet.fc.requires_grad_(False)  # partly frozen
    resnet.layer2.register_forward_hook(_user_hook)  # the user's own hook stays
    resnet.conv1.weight.grad = torch.ones_like(resnet.conv1.weight)  # and so does a stale .grad
    cnn = toy.small_cnn()
    return {
        "resnet18": (resnet, torch.randn(2, 3, 32, 32)),
        "cnn": (cnn, torch.randn(2, 1, 8, 8).double()),
    }


def _calls(model, x):
    """Successful calls and calls that fail in every way we validate."""
    pathway = select_pathway(neuron_contributions(model, x, 0), 0.5)

    def run_restricted():
        with restrict(model, pathway):
            model(x)

    def restricted_wrong_batch():
        with restrict(model, pathway):
            model(x[:1])

    def restricted_body_raises():
        with restrict(model, pathway):
            raise KeyError("body")

    return {
        "attribute": (lambda: PathwayGradient(model).attribute(x, 1, sparsity=0.8), None),
        "integrated": (
            lambda: PathwayGradient(model).attribute(
                x, [0, 1], contribution="integrated", n_steps=2
            ),
            None,
        ),
        "contributions": (lambda: neuron_contributions(model, x, 0), None),
        "find_sites": (lambda: find_sites(model, x), None),
        "restrict": (run_restricted, None),
        "learned": (
            lambda: pruning.learned_pathway(model, x, 0.5, n_steps=2, progress=False),
            None,
        ),
        "learned uniform": (
            lambda: pruning.learned_pathway(
                model, x, 0.5, init="uniform", n_steps=2, progress=False
            ),
            None,
        ),
        "greedy": (
            lambda: pruning.greedy_pathway(model, x, 0.5, step_size=0.25, progress=False),
            None,
        ),
        "random": (lambda: pruning.random_pathway(model, x, 0.5), None),
        "active": (lambda: pruning.active_pathway(model, x), None),
        "preservation": (lambda: pruning.output_preservation(model, x, pathway), None),
        "decode": (
            lambda: pruning.decode_pathway(
                model, pathway, 0, like=x, bounds=(-1, 1), n_steps=2, progress=False
            ),
            None,
        ),
        "decode wrong size": (
            lambda: pruning.decode_pathway(
                model,
                pathway,
                0,
                like=x.repeat_interleave(2, -1).repeat_interleave(2, -2),
                bounds=(-1, 1),
                n_steps=2,
                progress=False,
            ),
            ValueError,
        ),
        "profile": (
            lambda: linearity.linearity_profile(model, x, pathway, radii=[0.1], n_directions=1),
            None,
        ),
        "input-specific pruning": (
            lambda: InputSpecificPruning(model).attribute(x, 0, sparsity=0.5, n_pgd_steps=2),
            None,
        ),
        "bad target": (lambda: PathwayGradient(model).attribute(x, 10**6), ValueError),
        "bad sparsity": (lambda: PathwayGradient(model).attribute(x, 0, sparsity=1.5), ValueError),
        "bad method": (
            lambda: PathwayGradient(model).attribute(x, 0, contribution="x"),
            ValueError,
        ),
        "integer inputs": (lambda: PathwayGradient(model).attribute(x.long(), 0), TypeError),
        "missing batch dim": (lambda: PathwayGradient(model).attribute(x[0], 0), ValueError),
        "wrong batch": (restricted_wrong_batch, ValueError),
        "body raises": (restricted_body_raises, KeyError),
    }


@pytest.mark.parametrize("model_name", ["resnet18", "cnn"])
def test_model_and_inputs_untouched(model_name):
    model, x = _models()[model_name]
    x_before = x.clone()
    before = toy.model_state(model)
    for name, (call, error) in _calls(model, x).items():
        if error is None:
            call()
        else:
            with pytest.raises(error):
                call()
        toy.assert_same_state(before, toy.model_state(model))
        assert torch.equal(x, x_before) and x.grad is None and not x.requires_grad, name


def test_cleanup_when_a_module_raises_in_forward():
    model = toy.raising_mlp()
    x = torch.randn(3, 4, dtype=torch.float64)
    pathway = select_pathway(neuron_contributions(model, x, 0), 0.5)
    before = toy.model_state(model)
    model[2].armed = True
    for call in (
        lambda: PathwayGradient(model).attribute(x, 0),
        lambda: neuron_contributions(model, x, 0, method="integrated"),
        lambda: find_sites(model, x),
    ):
        with pytest.raises(RuntimeError, match="boom"):
            call()
        toy.assert_same_state(before, toy.model_state(model))
    with pytest.raises(RuntimeError, match="boom"), restrict(model, pathway):
        model(x)
    toy.assert_same_state(before, toy.model_state(model))


def test_training_mode_is_refused_and_kept():
    model = toy.small_cnn().train()
    model[0].eval()
    modes = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        PathwayGradient(model).attribute(torch.randn(2, 1, 8, 8, dtype=torch.float64), 0)
    assert modes == {name: m.training for name, m in model.named_modules()}


def test_leaf_inputs_keep_their_flags_and_grad():
    model = toy.small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    x.grad = torch.full_like(x, 7.0)
    PathwayGradient(model).attribute(x, 0)
    neuron_contributions(model, x, 0)
    assert x.requires_grad and torch.equal(x.grad, torch.full_like(x, 7.0))


def test_requires_grad_false_everywhere_is_kept():
    model = (
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        .double()
        .eval()
        .requires_grad_(False)
    )
    before = toy.model_state(model)
    PathwayGradient(model).attribute(torch.randn(2, 3, dtype=torch.float64), 0)
    toy.assert_same_state(before, toy.model_state(model))
