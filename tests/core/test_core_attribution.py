"""PathwayGradient against hand-written masked networks, a closed form, and Captum."""

import pytest
import torch
import torchvision
import toy_models as toy
from captum.attr import NoiseTunnel, Saliency
from torch import nn

from pathlib_core.attribution import PathwayGradient
from pathlib_core.contribution import neuron_contributions
from pathlib_core.pathway import Pathway

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(shape, seed=1, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.randn(*shape, dtype=dtype)


def test_closed_form_two_layer_network():
    # y = w2 . relu(W1 x + b1): contributions c_i = |h_i w2_i|; keep the top 2 of 5 hidden
    # units (sparsity 0.6); the pathway gradient is W1^T (w2 * mask * 1[z > 0]).
    model = toy.mlp([3, 5, 1], seed=11)
    x = _inputs((1, 3), seed=12)
    W1, b1, w2 = model[0].weight, model[0].bias, model[2].weight[0]
    z = W1 @ x[0] + b1
    scores = (torch.relu(z) * w2).abs()
    mask = torch.zeros(5, dtype=torch.float64)
    mask[scores.argsort(descending=True)[:2]] = 1.0
    mask *= (scores > 0).double()
    expected = W1.T @ (w2 * mask * (z > 0).double())
    attribution, pathway = PathwayGradient(model).attribute(x, 0, sparsity=0.6, return_pathway=True)
    torch.testing.assert_close(attribution[0], expected.detach(), rtol=1e-12, atol=1e-15)
    assert pathway.masks["1"][0].double().tolist() == mask.tolist()


@pytest.mark.parametrize("scope", ["global", "site"])
@pytest.mark.parametrize("method", ["taylor", "integrated"])
@pytest.mark.parametrize(
    "factory,shape", [(lambda: toy.mlp([6, 10, 8, 4]), (5, 6)), (toy.small_cnn, (5, 1, 8, 8))]
)
def test_matches_autograd_through_the_hand_masked_network(factory, shape, method, scope):
    model = factory()
    x = _inputs(shape)
    target = torch.tensor([0, 1, 2, 3, 1])
    attribution, pathway = PathwayGradient(model).attribute(
        x, target, sparsity=0.7, contribution=method, scope=scope, n_steps=4, return_pathway=True
    )
    # the pathway itself, independently: reference contributions and sorting selection
    if method == "taylor":
        scores = toy.hand_taylor(model, x, target)
    else:
        scores = toy.hand_integrated(model, x, target, n_steps=4)
    expected_masks = toy.reference_masks(scores, 0.7, scope)
    for got, want in zip(pathway.masks.values(), expected_masks, strict=False):
        assert torch.equal(got, want)
    expected = toy.hand_pathway_gradient(model, x, target, expected_masks)
    torch.testing.assert_close(attribution, expected, rtol=1e-12, atol=1e-14)
    assert attribution.shape == x.shape
    assert pathway.settings["method"] == method and pathway.settings["sparsity"] == 0.7


def test_batched_equals_one_sample_at_a_time():
    model = toy.small_cnn()
    x = _inputs((8, 1, 8, 8))
    target = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    explainer = PathwayGradient(model)
    batched, pathway = explainer.attribute(x, target, sparsity=0.8, return_pathway=True)
    for i in range(8):
        single, alone = explainer.attribute(
            x[i : i + 1], int(target[i]), sparsity=0.8, return_pathway=True
        )
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-12, atol=1e-14)
        for name in alone.masks:
            assert torch.equal(pathway.masks[name][i : i + 1], alone.masks[name])


def test_target_none_explains_the_predicted_class():
    model = toy.small_cnn()
    x = _inputs((4, 1, 8, 8))
    explainer = PathwayGradient(model)
    torch.testing.assert_close(explainer.attribute(x), explainer.attribute(x, model(x).argmax(1)))


def _saliency_equality(model, x, target, atol):
    plain = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=False)
    ours = PathwayGradient(model).attribute(x, target, sparsity=0.0)
    assert ours.shape == x.shape and bool(torch.isfinite(ours).all())
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=atol)


def test_sparsity_zero_is_the_plain_gradient_on_toy_models():
    for model, shape in [(toy.mlp([6, 10, 8, 4]), (3, 6)), (toy.small_cnn(), (3, 1, 8, 8))]:
        _saliency_equality(model, _inputs(shape), [0, 1, 2], atol=1e-13)


@pytest.mark.parametrize("name", ["vgg11", "resnet18", "tf_efficientnet_lite0"])
def test_real_architectures(name):
    torch.manual_seed(0)
    if name == "tf_efficientnet_lite0":
        timm = pytest.importorskip("timm")
        model, size = timm.create_model(name, pretrained=False).eval(), 64
    else:
        model, size = getattr(torchvision.models, name)(weights=None).eval(), 32
    x = _inputs((2, 3, size, size), dtype=torch.float32)
    _saliency_equality(model, x, [3, 7], atol=1e-6)
    attribution, pathway = PathwayGradient(model).attribute(
        x, [3, 7], sparsity=0.9, return_pathway=True
    )
    assert attribution.shape == x.shape and bool(torch.isfinite(attribution).all())
    assert bool((pathway.sparsity >= 0.9).all())
    if name == "resnet18":
        assert len(pathway.sites) == 17


def test_noise_tunnel_smoothgrad():
    model = toy.small_cnn()
    x = _inputs((3, 1, 8, 8))
    explainer = PathwayGradient(model)
    tunnel = NoiseTunnel(explainer)
    target = [0, 2, 4]
    no_noise = tunnel.attribute(
        x, nt_type="smoothgrad", nt_samples=4, stdevs=0.0, target=target, sparsity=0.8
    )
    torch.testing.assert_close(
        no_noise, explainer.attribute(x, target, sparsity=0.8), rtol=1e-12, atol=1e-14
    )
    torch.manual_seed(3)
    noisy = tunnel.attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=5,
        nt_samples_batch_size=2,
        stdevs=0.1,
        target=target,
        sparsity=0.8,
    )
    torch.manual_seed(3)
    again = tunnel.attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=5,
        nt_samples_batch_size=2,
        stdevs=0.1,
        target=target,
        sparsity=0.8,
    )
    assert noisy.shape == x.shape and torch.equal(noisy, again)
    assert not torch.allclose(noisy, no_noise)


def test_multiply_by_inputs_and_captum_flag():
    model = toy.small_cnn()
    x = _inputs((2, 1, 8, 8))
    plain = PathwayGradient(model).attribute(x, 1)
    torch.testing.assert_close(
        PathwayGradient(model).attribute(x, 1, multiply_by_inputs=True), plain * x
    )
    explainer = PathwayGradient(model, multiply_by_inputs=True)
    assert explainer.multiplies_by_inputs and not PathwayGradient(model).multiplies_by_inputs
    torch.testing.assert_close(explainer.attribute(x, 1), plain * x)


def test_tuple_inputs():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 6), nn.Linear(2, 6)
            self.relu, self.out = nn.ReLU(), nn.Linear(6, 4)

        def forward(self, x, y):
            return self.out(self.relu(self.a(x) + self.b(y)))

    torch.manual_seed(0)
    model = TwoInputs().double().eval()
    x, y = _inputs((3, 3)), _inputs((3, 2), seed=2)
    attribution = PathwayGradient(model).attribute((x, y), 1, sparsity=0.0)
    plain = Saliency(model).attribute(
        (x.clone().requires_grad_(True), y.clone().requires_grad_(True)), target=1, abs=False
    )
    assert isinstance(attribution, tuple) and len(attribution) == 2
    for ours, theirs in zip(attribution, plain, strict=False):
        torch.testing.assert_close(ours, theirs)


def test_explicit_sites():
    model = toy.small_cnn()
    x = _inputs((2, 1, 8, 8))
    explainer = PathwayGradient(model, sites=["3"])
    attribution, pathway = explainer.attribute(x, 0, sparsity=0.5, return_pathway=True)
    assert pathway.sites == ["3"]
    scores = toy.hand_taylor(model, x, torch.tensor([0, 0]))
    masks = toy.reference_masks([scores[1]], 0.5)
    all_masks = [
        torch.ones_like(scores[0], dtype=torch.bool),
        masks[0],
        torch.ones_like(scores[2], dtype=torch.bool),
    ]
    torch.testing.assert_close(
        attribution, toy.hand_pathway_gradient(model, x, torch.tensor([0, 0]), all_masks)
    )


def test_saturated_relu6_passes_no_gradient_but_stays_in_the_pathway():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU6(), nn.Linear(2, 1)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[0.5, -2.0]]))
    x = torch.tensor([[9.0, 1.0]], dtype=torch.float64)
    attribution, pathway = PathwayGradient(model).attribute(x, 0, sparsity=0.5, return_pathway=True)
    assert pathway.masks["1"].tolist() == [[True, False]]  # score 3 (saturated) beats score 2
    assert attribution.tolist() == [[0.0, 0.0]]  # a saturated unit is locally constant


def test_inputs_are_not_touched():
    model = toy.small_cnn()
    x = _inputs((2, 1, 8, 8))
    copy = x.clone()
    PathwayGradient(model).attribute(x, 0)
    assert torch.equal(x, copy) and x.grad is None and not x.requires_grad
    leaf = x.clone().requires_grad_(True)
    PathwayGradient(model).attribute(leaf, 0)
    assert leaf.grad is None and leaf.requires_grad


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"sparsity": 1.0}, ValueError, r"\[0, 1\)"),
        ({"sparsity": 90}, ValueError, "0.9"),
        ({"sparsity": -0.5}, ValueError, r"\[0, 1\)"),
        ({"contribution": "gradcam"}, ValueError, "'taylor', 'integrated'"),
        ({"scope": "layer"}, ValueError, "'global', 'site'"),
        ({"target": 9}, ValueError, r"\[0, 4\]"),
        ({"target": [0, 1, 2]}, ValueError, "one class index per sample"),
        ({"target": (0, 1)}, TypeError, "tuple targets"),
        ({"sparsity": []}, ValueError, "empty list"),
        ({"sparsity": [0.5, 1.0]}, ValueError, r"\[0, 1\)"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, error, match):
    model = toy.small_cnn()
    kwargs = {"target": 0, **kwargs}
    with pytest.raises(error, match=match):
        PathwayGradient(model).attribute(_inputs((2, 1, 8, 8)), **kwargs)


def test_bad_models_and_inputs_name_the_fix():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        PathwayGradient(lambda x: x)
    with pytest.raises(ValueError, match="sites="):
        PathwayGradient(nn.Sequential(nn.Linear(2, 2)))
    model = toy.small_cnn()
    explainer = PathwayGradient(model)
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        explainer.attribute(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        explainer.attribute(_inputs((1, 8, 8)), 0)
    model.train()
    with pytest.raises(ValueError, match=r"call model\.eval\(\)"):
        explainer.attribute(_inputs((2, 1, 8, 8)), 0)
    assert all(m.training for m in model.modules())


def test_return_pathway_is_a_pathway():
    model = toy.small_cnn()
    _, pathway = PathwayGradient(model).attribute(_inputs((3, 1, 8, 8)), 0, return_pathway=True)
    assert isinstance(pathway, Pathway) and pathway.batch_size == 3
    contributions = neuron_contributions(model, _inputs((3, 1, 8, 8)), 0)
    assert list(contributions) == pathway.sites


@pytest.mark.parametrize("contribution", ["taylor", "integrated"])
def test_a_list_of_sparsities_equals_one_call_per_sparsity(contribution):
    model = toy.small_cnn()
    x = _inputs((3, 1, 8, 8))
    target = torch.tensor([0, 1, 2])
    explainer = PathwayGradient(model)
    sparsities = [0.0, 0.5, 0.9]
    maps, pathways = explainer.attribute(
        x, target, sparsity=sparsities, contribution=contribution, return_pathway=True
    )
    assert len(maps) == len(pathways) == 3
    for s, got, pathway in zip(sparsities, maps, pathways, strict=False):
        alone, alone_pathway = explainer.attribute(
            x, target, sparsity=s, contribution=contribution, return_pathway=True
        )
        assert torch.equal(got, alone)
        assert all(torch.equal(pathway.masks[n], alone_pathway.masks[n]) for n in pathway.sites)
    assert not torch.equal(maps[0], maps[2])
