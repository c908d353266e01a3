"""The set of maps the evaluation chapters compare: registry methods plus Random."""

from __future__ import annotations

import pytest
import torch
from toy_models import small_cnn

from pathlib_core import methods
from pathlib_core.evaluation import method_maps
from pathlib_core.evaluation.perturbation import random_attributions

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return small_cnn(seed=0), torch.randn(6, 1, 8, 8, dtype=torch.float64)


def test_maps_of_named_methods_then_random(batch):
    model, x = batch
    maps = method_maps.method_maps(model, x, names=["Gradient", "NeuronMCT"], random_seed=3)
    assert list(maps) == ["Gradient", "NeuronMCT", method_maps.RANDOM]
    target = model(x).argmax(dim=1)  # the default target: the predicted class
    assert torch.equal(maps["Gradient"], methods.attribute("Gradient", model, x, target))
    assert torch.equal(maps["Random"], random_attributions(x, seed=3))
    assert not any(m.requires_grad for m in maps.values())


def test_options_batches_and_no_random(batch):
    model, x = batch
    target = torch.arange(6) % 5
    options = {"NeuronMCT": {"sparsity": 0.5}}
    whole = method_maps.method_maps(model, x, target, ["NeuronMCT"], options, random_seed=None)
    chunked = method_maps.method_maps(
        model, x, target, ["NeuronMCT"], options, random_seed=None, batch_size=4
    )
    assert list(whole) == ["NeuronMCT"]
    torch.testing.assert_close(whole["NeuronMCT"], chunked["NeuronMCT"])
    direct = methods.attribute("NeuronMCT", model, x, target, sparsity=0.5)
    torch.testing.assert_close(whole["NeuronMCT"], direct)
    default = methods.attribute("NeuronMCT", model, x, target)
    assert not torch.allclose(whole["NeuronMCT"], default)
    with pytest.raises(ValueError, match="batch_size"):
        method_maps.method_maps(model, x, target, ["Gradient"], batch_size=0)


def test_own_functions_and_their_errors(batch):
    model, x = batch
    maps = method_maps.method_maps(model, x, functions={"ones": lambda m, i, t: torch.ones_like(i)})
    assert list(maps) == ["ones", "Random"] and bool((maps["ones"] == 1).all())
    with pytest.raises(ValueError, match="not both"):
        method_maps.method_maps(model, x, names=["Gradient"], functions={"a": lambda m, i, t: i})
    with pytest.raises(ValueError, match="Random"):
        method_maps.method_maps(model, x, functions={"Random": lambda m, i, t: i})
    with pytest.raises(TypeError, match="callables"):
        method_maps.method_maps(model, x, functions={"a": 3})


def test_timed_maps_time_a_saving_method_afresh(batch, monkeypatch, tmp_path):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model, x = batch
    target = model(x).argmax(dim=1)
    options = {"DGR": {"n_steps": 3, "gate_chunk": 3}}
    fresh_calls = []
    original = methods.attribute

    def spy(name, model, inputs, target, **opts):
        fresh_calls.append((name, len(inputs), opts["gate_chunk"]))
        return original(name, model, inputs, target, **opts)

    monkeypatch.setattr(method_maps.methods, "attribute", spy)
    maps, seconds = method_maps.timed_method_maps(model, x, target, ["Gradient", "DGR"], options)
    assert list(maps) == list(seconds) == ["Gradient", "DGR"]
    assert all(s > 0 for s in seconds.values())
    assert fresh_calls == [("DGR", 1, None)]  # Gradient saves nothing: timed once
    assert maps["DGR"].shape == x.shape


def test_cached_maps_are_loaded_not_recomputed(batch, monkeypatch, tmp_path):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model, x = batch
    labels = torch.arange(6) % 5
    calls = []

    def counting(names, options):
        def fn(model, inputs, target):
            calls.append(len(inputs))
            return inputs * 2

        return {name: fn for name in names}

    monkeypatch.setattr(method_maps, "functions", counting)
    kwargs = dict(split="test", model_name="toy", batch_size=4)
    first = method_maps.cached_method_maps(model, x, labels, ["Twice"], **kwargs)
    assert calls == [4, 2] and torch.equal(first["Twice"], x * 2)
    again = method_maps.cached_method_maps(model, x, labels, ["Twice"], **kwargs)
    assert calls == [4, 2] and torch.equal(again["Twice"], first["Twice"])
    assert list(again) == ["Twice", "Random"]


def test_fingerprint_follows_the_weights_and_options_key_the_options(batch):
    model, _ = batch
    key = method_maps.maps_fingerprint(model)
    assert len(key) == 16 and key == method_maps.maps_fingerprint(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert method_maps.maps_fingerprint(model) != key
    a = methods.common_options(sparsity=0.7)
    assert method_maps.options_key(a) == method_maps.options_key(
        methods.common_options(sparsity=0.7)
    )
    assert method_maps.options_key(a) != method_maps.options_key(methods.common_options())


def test_functions_builds_registry_methods_with_options():
    fns = method_maps.functions(["IntegratedGradients"], {"IntegratedGradients": {"n_steps": 4}})
    assert list(fns) == ["IntegratedGradients"] and callable(fns["IntegratedGradients"])
    assert list(method_maps.functions()) == methods.names()
    with pytest.raises(TypeError, match="no option"):
        method_maps.functions(["Gradient"], {"Gradient": {"n_steps": 4}})
