"""DeepLift on models that call one activation module several times per forward pass
(torchvision ResNet's ``self.relu``): the registry gives each call its own unit in a private copy,
so the maps equal those of the same network built with one module per call."""

import pytest
import torch
import toy_models as toy
from torch import nn

from pathlib_core import methods

pytestmark = pytest.mark.usefixtures("single_thread")


class _Block(nn.Module):
    """conv -> ReLU -> conv, plus the input, -> ReLU -> classifier: a ResNet basic block whose
    two activations are one module (``reused=True``, in place as torchvision's) or two."""

    def __init__(self, reused: bool, six: bool = False):
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 4))
        unit = nn.ReLU6 if six else nn.ReLU
        self.relu = unit(inplace=True)
        self.relu2 = self.relu if reused else unit(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        return self.head(self.relu2(self.conv2(out) + x))


def _pair(six: bool = False):
    reused, separate = _Block(True, six).double().eval(), _Block(False, six).double().eval()
    separate.load_state_dict(reused.state_dict())
    return reused, separate


def _inputs():
    return torch.randn(3, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("six", [False, True])
def test_deeplift_with_a_reused_relu_equals_separate_relus(six):
    reused, separate = _pair(six)
    x, target = _inputs(), torch.tensor([0, 1, 3])
    before = toy.model_state(reused)
    expected = methods.attribute("DeepLift", separate, x, target)
    got = methods.attribute("DeepLift", reused, x, target)
    assert torch.allclose(got, expected, atol=1e-10)
    assert not torch.allclose(got, methods.attribute("Gradient", reused, x, target) * x)
    toy.assert_same_state(before, toy.model_state(reused))  # the user's model is not changed
    assert reused.relu is reused.relu2 and reused.relu.inplace


def test_unit_per_call_is_used_in_call_order_and_reset_every_pass():
    reused, _ = _pair()
    x = _inputs()
    compatible = methods.captum_compatible(reused, x)
    assert compatible is not reused
    stand_in = compatible.relu
    assert compatible.relu2 is stand_in and not isinstance(stand_in, nn.ReLU)
    assert [type(u) for u in stand_in.units] == [nn.ReLU, nn.ReLU]
    seen = []
    for i, unit in enumerate(stand_in.units):
        unit.register_forward_hook(lambda *_, i=i: seen.append(i))
    stand_in.calls = 1  # as after a pass stopped half-way: the next pass starts afresh
    with torch.no_grad():
        first = compatible(x)
        assert torch.equal(compatible(x), first)
        assert torch.allclose(first, reused(x))
    assert seen == [0, 1, 0, 1]
    # a model without reused units (and nothing else to change) is returned as it is
    _, separate = _pair()
    separate.relu.inplace = separate.relu2.inplace = False
    assert methods.captum_compatible(separate, x) is separate


def test_deeplift_runs_on_torchvision_resnet18():
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = toy.model_state(model)
    maps = methods.attribute("DeepLift", model, x, torch.tensor([0, 5]))
    assert maps.shape == x.shape and torch.isfinite(maps).all() and maps.abs().sum() > 0
    toy.assert_same_state(before, toy.model_state(model))
