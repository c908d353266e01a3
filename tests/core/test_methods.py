"""The method registry: every method runs and returns input-shaped maps; the ReLU6 handling of
Guided Backprop and DeepLift is checked against the same network built with nn.ReLU where no unit
saturates (same answer) and where some do (the saturated units block the signal); Captum's own
results are reproduced where the registry only wraps them."""

import pytest
import torch
import toy_models as toy
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam, Saliency
from torch import nn

from pathlib_core import methods


def _cnn6(scale: float, inplace: bool = False, six: bool = True):
    """A small conv net with ReLU6 units (or ReLU ones); ``scale`` sets how many saturate."""
    torch.manual_seed(1)
    unit = (lambda: nn.ReLU6(inplace=inplace)) if six else (lambda: nn.ReLU(inplace=inplace))
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        unit(),
        nn.Conv2d(4, 4, 3, padding=1),
        unit(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).double()
    with torch.no_grad():
        model[0].weight.mul_(scale)
    return model.eval()


def _inputs():
    return torch.randn(3, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))


def _saturated(model, x):
    with torch.no_grad():
        return bool((model[0](x) > 6).any())


FAST = {
    "IntegratedGradients": {"n_steps": 8},
    "SmoothGrad": {"nt_samples": 4},
    "DGR": {"n_steps": 20},
}


@pytest.mark.parametrize("name", methods.names())
def test_every_method_gives_finite_input_shaped_maps_and_leaves_the_model(name):
    model, x = _cnn6(1.0, inplace=True), _inputs()
    target = torch.tensor([0, 1, 2])
    before = toy.model_state(model)
    maps = methods.attribute(name, model, x, target, **FAST.get(name, {}))
    assert maps.shape == x.shape and torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    toy.assert_same_state(before, toy.model_state(model))
    assert all(type(m) is nn.ReLU6 and m.inplace for m in (model[1], model[3]))


@pytest.mark.parametrize("name", ["GuidedBackprop", "DeepLift"])
def test_relu6_rules_equal_relu_rules_where_nothing_saturates(name):
    x = _inputs()
    six, plain = _cnn6(1.0), _cnn6(1.0, six=False)
    assert not _saturated(six, x)
    target = torch.tensor([2, 0, 1])
    ours = methods.attribute(name, six, x, target)
    reference = methods.attribute(name, plain, x, target)
    assert torch.allclose(ours, reference, atol=1e-12)


def test_guided_backprop_blocks_saturated_relu6_units():
    x = _inputs()
    six, plain = _cnn6(40.0), _cnn6(40.0, six=False)
    assert _saturated(six, x)
    target = torch.tensor([2, 0, 1])
    ours = methods.attribute("GuidedBackprop", six, x, target)
    # by hand: the guided rule on ReLU6 (pass positive gradients where 0 < z < 6)
    leaf = x.clone().requires_grad_(True)
    z1 = six[0](leaf)
    h1 = z1.clamp(0, 6)
    z2 = six[2](h1)
    h2 = z2.clamp(0, 6)
    out = six[6](six[5](six[4](h2)))
    g = torch.nn.functional.one_hot(target, 3).double()
    g = torch.autograd.grad(out, h2, g)[0]
    g = (g * ((z2 > 0) & (z2 < 6))).clamp_min(0)
    g = torch.autograd.grad(z2, h1, g)[0]
    g = (g * ((z1 > 0) & (z1 < 6))).clamp_min(0)
    expected = torch.autograd.grad(z1, leaf, g)[0]
    assert torch.allclose(ours, expected, atol=1e-12)
    plain_gbp = GuidedBackprop(plain).attribute(x.clone().requires_grad_(True), target=target)
    assert not torch.allclose(ours, plain_gbp)


def test_gradient_and_gradcam_are_captums_and_sparsity_zero_is_the_gradient():
    model = toy.small_cnn(seed=3)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([0, 1, 2, 3])
    gradient = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=False)
    assert torch.equal(methods.attribute("Gradient", model, x, target), gradient)
    pathway = methods.attribute("NeuronMCT", model, x, target, sparsity=0.0)
    assert torch.allclose(pathway, gradient, atol=1e-12)
    cam = LayerGradCam(model, model[4]).attribute(
        x.clone().requires_grad_(True), target=target, relu_attributions=True
    )
    cam = LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    assert torch.allclose(methods.attribute("GradCAM", model, x, target), cam)
    named = methods.attribute("GradCAM", model, x, target, layer="3")
    assert not torch.allclose(named, cam)


def test_registry_errors_name_the_fix_and_paper_names_are_kept():
    with pytest.raises(ValueError, match="registered"):
        methods.get("Occlusion")
    with pytest.raises(TypeError, match="options are"):
        methods.get("Gradient", sparsity=0.5)
    with pytest.raises(ValueError, match="already registered"):
        methods.register(methods.METHODS["Gradient"])
    assert methods.METHODS["GuidedBackprop"].paper_name == "GBP"
    assert set(methods.names("pathway")) == {"NeuronMCT", "NeuronIntGrad", "DGR"}


def test_smoothgrad_is_deterministic_and_does_not_touch_the_global_rng():
    model, x = _cnn6(1.0), _inputs()
    target = torch.tensor([0, 1, 2])
    torch.manual_seed(7)
    state = torch.get_rng_state()
    one = methods.attribute("SmoothGrad", model, x, target, nt_samples=4)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(one, methods.attribute("SmoothGrad", model, x, target, nt_samples=4))


def test_attribute_all_in_chunks_equals_one_call_per_method():
    model, x = _cnn6(1.0), _inputs()
    target = torch.tensor([0, 1, 2])
    names = ["Gradient", "GradCAM", "NeuronMCT"]
    whole = methods.attribute_all(model, x, target, names=names)
    chunked = methods.attribute_all(
        model, x, target, names=names, batch_size=2, options={"NeuronMCT": {"sparsity": 0.5}}
    )
    assert list(whole) == names
    assert torch.allclose(whole["Gradient"], chunked["Gradient"])
    assert torch.allclose(whole["GradCAM"], chunked["GradCAM"])
    single = methods.attribute("NeuronMCT", model, x[2:], target[2:], sparsity=0.5)
    assert torch.allclose(chunked["NeuronMCT"][2:], single)


def test_gradcam_skips_a_global_pooling_output():
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
        .double()
        .eval()
    )
    x, target = _inputs(), torch.tensor([0, 1, 2])
    default = methods.attribute("GradCAM", model, x, target)
    assert torch.allclose(default, methods.attribute("GradCAM", model, x, target, layer="1"))
    assert not torch.allclose(default[:, :, :1, :1].expand_as(default), default)  # not constant


def test_gradcam_on_a_resnet_takes_the_last_spatial_block():
    # DeepLift on the same reused-ReLU ResNet: tests/core/test_methods_resnet.py
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # layer4: 2 x 2
    before = toy.model_state(model)
    cam = methods.attribute("GradCAM", model, x, torch.tensor([0]))
    toy.assert_same_state(before, toy.model_state(model))
    reference = methods.attribute("GradCAM", model, x, torch.tensor([0]), layer="layer4")
    assert torch.allclose(cam, reference)


def test_common_options_are_accepted_by_every_method_they_name():
    options = methods.common_options(
        sparsity=0.7, ig_steps=4, smoothgrad_samples=3, dgr_steps=5, seed=2
    )
    assert set(options) <= set(methods.names())
    for name, chosen in options.items():
        methods.get(name, **chosen)  # raises on an option the method does not have
    assert options["NeuronMCT"]["sparsity"] == options["DGR"]["sparsity"] == 0.7
    assert options["SmoothGrad"] == {"nt_samples": 3, "seed": 2}
    assert options["DGR"]["gate_chunk"] is None
    assert methods.common_options(dgr_gate_chunk=8)["DGR"]["gate_chunk"] == 8


@pytest.mark.parametrize(
    "option, match",
    [
        ({"sparsity": 1.5}, "sparsity"),
        ({"gate_chunk": 0}, "gate_chunk"),
        ({"gate_chunk": 2.5}, "gate_chunk"),
        ({"n_steps": 0}, "n_steps"),
        ({"init": "zeros"}, "init"),
    ],
)
def test_dgr_checks_its_options_when_built(option, match):
    """A bad DGR option is refused by ``get``, before any model or input is seen."""
    with pytest.raises(ValueError, match=match):
        methods.get("DGR", **option)


def test_dgr_with_saved_gates_equals_dgr_and_learns_each_input_once(tmp_path, monkeypatch):
    """``gate_chunk`` routes DGR through the per-input gate store: the same map as learning the
    gates in the call, and a later call on some of the same inputs learns nothing."""
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model, x = _cnn6(1.0), _inputs()
    target = torch.tensor([0, 2, 1])
    plain = methods.attribute("DGR", model, x, target, n_steps=8, sparsity=0.8)
    calls = toy.count_gate_learning(monkeypatch)
    saved = methods.attribute("DGR", model, x, target, n_steps=8, sparsity=0.8, gate_chunk=2)
    assert calls == [2, 1]
    torch.testing.assert_close(saved, plain, rtol=1e-10, atol=1e-12)
    again = methods.attribute(
        "DGR", model, x[1:], target[1:], n_steps=8, sparsity=0.9, gate_chunk=2
    )  # another sparsity binarises the same gates
    assert calls == [2, 1]
    reference = methods.attribute("DGR", model, x[1:], target[1:], n_steps=8, sparsity=0.9)
    torch.testing.assert_close(again, reference, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="sparsity"):
        methods.attribute("DGR", model, x, target, n_steps=8, sparsity=1.5, gate_chunk=2)
