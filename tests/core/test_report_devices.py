"""Report figures accept results whose tensors live on a GPU: NumPy cannot read such a tensor,
so every helper must copy it to the CPU first. Without a GPU here, `Elsewhere` stands in for
one: a tensor that refuses NumPy until `.cpu()` is called, as a CUDA tensor does."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from pathlib_core.evaluation.sanity import SanityResult
from pathlib_core.report import comparison, sanity, transfer
from pathlib_core.report import evaluation as report
from pathlib_core.report import input_specific_pruning as isp

REFUSAL = "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first."


class Elsewhere(torch.Tensor):
    def numpy(self, *args, **kwargs):
        raise TypeError(REFUSAL)

    def __array__(self, *args, **kwargs):
        raise TypeError(REFUSAL)

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


def away(values) -> Elsewhere:
    return torch.as_tensor(values, dtype=torch.float32).as_subclass(Elsewhere)


def test_the_stand_in_refuses_numpy_like_a_gpu_tensor():
    with pytest.raises(TypeError, match="cuda"):
        away([1.0, 2.0])[1:].numpy()
    assert away([1.0, 2.0]).detach().cpu().numpy().tolist() == [1.0, 2.0]


def test_evaluation_figures_read_device_results():
    curve = SimpleNamespace(fractions=away([0.0, 0.1, 0.2]), mean_change=away([0.0, 0.3, 0.5]))
    curves = {order: {"Gradient": curve, "Random": curve} for order in ("lerf", "morf")}
    plt.close(report.perturbation_figure(curves, "on a GPU"))
    result = SimpleNamespace(ns=away([1, 10, 100]), mean=away([0.1, 0.2, 0.3]))
    plt.close(report.sensitivity_figure({"Gradient": result, "Random": result}, "on a GPU"))
    style = {"Gradient": {}, "Random": {}}
    groups = ({"Gradient": result, "Random": result},) * 2
    plt.close(isp.groups_figure(groups, 784, "on a GPU", style))


def test_sanity_transfer_and_comparison_figures_read_device_results(monkeypatch):
    scores = {"Gradient": {m: away([[1.0, 1.0], [0.5, 0.4]]) for m in sanity.METRICS}}
    cascade = SanityResult(["original", "fc"], scores, {"Gradient": away(torch.rand(2, 2, 6, 6))})
    plt.close(sanity.cascade_figure(cascade, "on a GPU"))
    plt.close(sanity.cascade_maps_figure(cascade))
    plt.close(isp.sanity_figure(cascade, {"Gradient": {}}))
    classes = torch.tensor([0, 1, 0, 1])
    kept = away([0.2, 0.3, 0.25, 0.35])
    plt.close(transfer.sparsity_figure(kept, {"relu1": away([0.2, 0.3, 0.1, 0.4])}, classes, 2))
    monkeypatch.setattr(comparison.pruning, "dead_fraction", lambda path, acts: away([0.25, 0.5]))
    shares = comparison.dead_shares({"NeuronMCT": None}, {}, kinds=["NeuronMCT"])
    assert shares == {"NeuronMCT": pytest.approx(0.375)}
