"""Finding the neurons: sites in forward order, one per call, named and validated."""

import pytest
import torch
import torchvision
import toy_models as toy
from torch import nn

from pathlib_core.sites import NotPiecewiseLinearWarning, find_sites, site_hooks, site_modules

pytestmark = pytest.mark.usefixtures("single_thread")


def test_sequential_sites_in_forward_order_with_shapes():
    model = toy.small_cnn()
    sites = find_sites(model, torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    assert [s.name for s in sites] == ["1", "3", "7"]
    assert [s.shape for s in sites] == [(4, 8, 8), (6, 8, 8), (12,)]
    assert [s.numel for s in sites] == [256, 384, 12]
    assert {s.module_type for s in sites} == {"ReLU"}


def test_reused_module_gives_one_site_per_call():
    sites = find_sites(toy.ReusedReLU(), torch.zeros(1, 4, dtype=torch.float64))
    assert [(s.name, s.module_name, s.call) for s in sites] == [
        ("relu", "relu", 0),
        ("relu#1", "relu", 1),
    ]
    assert [s.shape for s in sites] == [(6,), (5,)]


def test_forward_order_differs_from_registration_order():
    class Backwards(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.ReLU()
            self.early = nn.ReLU()

        def forward(self, x):
            return self.late(self.early(x) - 1)

    model = Backwards().eval()
    assert [s.name for s in find_sites(model)] == ["late", "early"]  # static: registration order
    assert [s.name for s in find_sites(model, torch.zeros(1, 3))] == ["early", "late"]


def test_resnet18_has_17_sites_with_inplace_reused_relu():
    model = torchvision.models.resnet18(weights=None).eval()
    sites = find_sites(model, torch.zeros(1, 3, 32, 32))
    names = [s.name for s in sites]
    assert len(sites) == 17
    assert names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu#1"]
    assert names[-1] == "layer4.1.relu#1"


def test_relu6_sites_of_efficientnet_lite0():
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    sites = find_sites(model, torch.zeros(1, 3, 64, 64))
    assert sites and {s.module_type for s in sites} == {"ReLU6"}
    assert sites[0].name == "bn1.act"


def test_model_without_relu_asks_for_sites():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.warns(NotPiecewiseLinearWarning), pytest.raises(ValueError, match="sites="):
        site_modules(model)


def test_smooth_nonlinearity_warns():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.GELU(), nn.Linear(3, 2))
    with pytest.warns(NotPiecewiseLinearWarning, match="GELU"):
        site_modules(model)


def test_explicit_sites_by_name_and_by_module():
    model = toy.small_cnn()
    assert list(site_modules(model, ["3", "1"])) == ["1", "3"]
    assert list(site_modules(model, [model[6]])) == ["6"]


def test_unknown_site_name_lists_close_matches():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match="layer1.0.relu"):
        site_modules(model, ["layer1.0.rel"])


def test_site_name_with_call_suffix_is_rejected_with_fix():
    with pytest.raises(ValueError, match="pass 'relu'"):
        site_modules(toy.ReusedReLU(), ["relu#1"])


def test_foreign_module_and_bad_specs_are_rejected():
    model = toy.small_cnn()
    with pytest.raises(ValueError, match="not a submodule"):
        site_modules(model, [nn.ReLU()])
    with pytest.raises(TypeError):
        site_modules(model, "1")
    with pytest.raises(ValueError):
        site_modules(model, [])


def test_find_sites_refuses_training_mode():
    model = toy.small_cnn().train()
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        find_sites(model, torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    assert model.training


def test_site_hooks_are_removed_when_the_body_raises():
    model = toy.small_cnn()
    modules = site_modules(model)
    with (
        pytest.raises(RuntimeError, match="inside"),
        site_hooks(model, lambda name, out: None, modules),
    ):
        raise RuntimeError("inside")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_site_hooks_count_calls_per_forward():
    model = toy.ReusedReLU()
    seen = []
    with site_hooks(model, lambda name, out: seen.append(name), site_modules(model)) as calls:
        model(torch.zeros(1, 4, dtype=torch.float64))
        model(torch.zeros(1, 4, dtype=torch.float64))
        assert calls == ["relu", "relu#1"]
    assert seen == ["relu", "relu#1", "relu", "relu#1"]


def test_site_returning_non_tensor_is_a_type_error():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            return self.pair(x)[0]

    with pytest.raises(TypeError, match="one tensor"):
        find_sites(Net().eval(), torch.zeros(1, 2), sites=["pair"])
