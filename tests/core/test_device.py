"""Devices: a CUDA device this machine cannot give fails at once with the fix, cache keys name a
device other than the CPU (and CPU keys keep their old value), every training accepts
``device="cpu"`` with the same weights as before, and figures record the device. No GPU is
needed: CUDA's availability is monkeypatched, and the ``meta`` device stands in for "another
device" where a mismatch must be refused."""

from __future__ import annotations

import contextlib
import json

import matplotlib.pyplot as plt
import pytest
import torch

from pathlib_core import cache, models, plotting
from pathlib_core import transfer as T
from pathlib_core.contribution import neuron_contributions
from pathlib_core.data import mnist
from pathlib_core.evaluation import roar, sanity
from pathlib_core.evaluation.perturbation import check_model_and_images

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = {"epochs": 1, "batch_size": 32, "progress": False}


def _cuda(monkeypatch, available: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist("train")
    return images[:64], labels[:64]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# ------------------------------------------------------------------------------ resolve_device


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_cuda_without_a_gpu_fails_at_once_naming_the_device_and_the_fix(monkeypatch, asked):
    _cuda(monkeypatch, available=False)
    with pytest.raises(ValueError) as error:
        models.resolve_device(asked)
    message = str(error.value)
    assert repr(str(asked)) in message and "no CUDA GPU is visible" in message
    assert "device='cpu'" in message and "'auto'" in message


def test_a_cuda_index_past_the_last_gpu_names_the_count(monkeypatch):
    _cuda(monkeypatch, available=True, count=2)
    assert models.resolve_device("cuda:1") == torch.device("cuda:1")
    assert models.resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"'cuda:2'.*only 2 CUDA device.*device='cpu'"):
        models.resolve_device("cuda:2")


def test_auto_is_the_cpu_without_cuda_and_the_gpu_with_it(monkeypatch):
    _cuda(monkeypatch, available=False)
    assert models.resolve_device("auto") == torch.device("cpu")
    _cuda(monkeypatch, available=True)
    assert models.resolve_device("auto") == torch.device("cuda")


def test_functions_that_build_a_model_check_the_device_before_any_work(monkeypatch, digits):
    _cuda(monkeypatch, available=False)
    for call in (
        lambda: models.train_mnist_cnn(*digits, **TINY, device="cuda"),
        lambda: models.mnist_cnn(device="cuda"),
        lambda: models.mnist_cnn_cache_path("cuda"),
        lambda: roar.mnist_trainer(device="cuda"),
    ):
        with pytest.raises(ValueError, match="no CUDA GPU is visible"):
            call()


# ----------------------------------------------------------------------------------- cache keys


def test_device_options_name_only_a_device_other_than_the_cpu():
    assert cache.device_options("cpu") == cache.device_options(None) == {}
    assert cache.device_options(torch.device("cpu")) == {}
    assert cache.device_options("cuda:1") == cache.device_options("cuda") == {"device": "cuda"}


def test_mnist_cache_path_keeps_its_cpu_key_and_has_another_for_cuda(monkeypatch):
    images, labels = mnist("train")
    old = cache.content_key(  # the key as it was computed before devices were keyed
        {
            "model": "mnist_cnn",
            "architecture": repr(models.ConvNetSimple()),
            "training": models.MNIST_TRAINING,
            "recipe": models._RECIPE_VERSION,
        },
        [("images", images), ("labels", labels)],
    )
    cpu = models.mnist_cnn_cache_path()
    assert cpu.name == f"mnist_cnn-{old[:16]}.pt" == models.mnist_cnn_cache_path("cpu").name
    _cuda(monkeypatch, available=True)
    gpu = models.mnist_cnn_cache_path("cuda")
    assert gpu != cpu and gpu.parent == cpu.parent
    assert models.mnist_cnn_cache_path("cuda:0") == gpu  # only the type counts


def test_roar_trainer_key_keeps_its_cpu_value_and_differs_on_cuda(monkeypatch):
    settings = {"rotate": 0.0, "scale": 0.0, "shift": 0.0, "progress": False, "epochs": 2}
    old = cache.content_key({"trainer": "mnist_trainer", **settings}, sources=("models.py",))
    assert roar.mnist_trainer(epochs=2).cache_key == old
    assert roar.mnist_trainer(epochs=2, device="cpu").cache_key == old
    _cuda(monkeypatch, available=True)
    assert roar.mnist_trainer(epochs=2, device="cuda").cache_key != old


def test_generator_cache_key_differs_by_device(digits):
    model = models.mnist_cnn(pretrained=False)
    tensors = (digits[0],)
    config = T.GeneratorTraining()
    cpu = T.training._cache_path(model, tensors, config, torch.device("cpu"))
    gpu = T.training._cache_path(model, tensors, config, torch.device("cuda"))
    assert cpu != gpu


def test_saved_weights_record_the_device(tmp_path):
    path = tmp_path / "w.pt"
    cache.save_state_dict(path, {"a": torch.ones(2)}, {"device": "cpu"})
    assert json.loads(path.with_suffix(".json").read_text())["device"] == "cpu"
    assert torch.equal(cache.load_state_dict(path)["a"], torch.ones(2))


# ------------------------------------------------------------------------------------ training


def test_training_on_the_cpu_gives_the_default_weights(digits):
    default = models.train_mnist_cnn(*digits, **TINY)
    on_cpu = models.train_mnist_cnn(*digits, **TINY, device="cpu")
    _same_weights(default, on_cpu)
    assert cache.model_device(on_cpu) == torch.device("cpu") and not on_cpu.training


def test_deterministic_on_cuda_only_warns_and_forks_that_devices_rng(monkeypatch):
    forked = []

    @contextlib.contextmanager
    def fake_fork_rng(devices):
        forked.append(list(devices))
        yield

    monkeypatch.setattr(torch.random, "fork_rng", fake_fork_rng)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    with models.deterministic(None, "cuda:0"):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    with models.deterministic(None):
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert forked == [[torch.device("cuda:0")], []]
    assert (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    ) == before


def test_roar_trainer_accepts_the_cpu(digits):
    images, labels = digits
    on_cpu = roar.mnist_trainer(device="cpu", epochs=1)(images, labels, 0)
    default = roar.mnist_trainer(epochs=1)(images, labels, 0)
    _same_weights(on_cpu, default)


def test_sanity_retraining_accepts_the_cpu(digits):
    """The shuffled-label model of the sanity chapter is a ``train_mnist_cnn`` run."""
    images, labels = digits
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    settings = {**TINY, "seed": 1, "lr": 5e-4, "rotate": 0.0, "scale": 0.0, "shift": 0.0}
    on_cpu = models.train_mnist_cnn(images, shuffled, device="cpu", **settings)
    _same_weights(on_cpu, models.train_mnist_cnn(images, shuffled, **settings))


def test_generator_training_accepts_the_models_device_and_refuses_another(monkeypatch, digits):
    model = models.mnist_cnn(pretrained=False)
    config = T.GeneratorTraining(epochs=1, batch_size=32)
    options = {"cache": False, "progress": False}
    on_cpu = T.train_generator(model, digits[0], config, device="cpu", **options)
    _same_weights(on_cpu, T.train_generator(model, digits[0], config, **options))
    _cuda(monkeypatch, available=True)
    with pytest.raises(ValueError, match=r"'cuda'.*model is on cpu.*model\.to"):
        T.train_generator(model, digits[0], config, device="cuda", **options)


# ------------------------------------------------------------------------- inputs and models


def test_inputs_on_another_device_than_the_model_are_refused_clearly(digits):
    model = models.mnist_cnn(pretrained=False).to("meta")
    with pytest.raises(ValueError, match=r"inputs are on cpu but the model on meta.*inputs\.to"):
        neuron_contributions(model, digits[0][:2], target=0)


def test_evaluations_move_the_images_to_the_models_device(digits):
    model = models.mnist_cnn(pretrained=False).to("meta")
    _, images = check_model_and_images(model, digits[0][:2])
    assert images.device.type == "meta"


def test_data_randomisation_refuses_models_on_two_devices(digits):
    model = models.mnist_cnn(pretrained=False)
    other = models.mnist_cnn(pretrained=False).to("meta")
    with pytest.raises(ValueError, match=r"on cpu but random_label_model on meta"):
        sanity.data_randomisation(model, other, digits[0][:2], None, {"g": lambda m, x, t: x})


# ----------------------------------------------------------------------------------- provenance


def _record(tmp_path, monkeypatch, parameters):
    context = {"parameters": parameters, "figure_dir": str(tmp_path)}
    monkeypatch.setenv(plotting.CONTEXT_VARIABLE, json.dumps(context))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    return json.loads(plotting.save_figure(fig, "f", show=False).provenance.read_text())


def test_provenance_records_the_cpu_without_asking_cuda(tmp_path, monkeypatch):
    def no_cuda(*_):
        raise AssertionError("CUDA was queried for a CPU chapter")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_cuda)
    assert _record(tmp_path, monkeypatch, {"device": "cpu"})["device"] == {"type": "cpu"}
    assert _record(tmp_path, monkeypatch, {})["device"] == {"type": "cpu"}
    _cuda(monkeypatch, available=False)
    assert _record(tmp_path, monkeypatch, {"device": "auto"})["device"] == {"type": "cpu"}


def test_provenance_records_the_gpu_name_for_cuda(tmp_path, monkeypatch):
    _cuda(monkeypatch, available=True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 80GB")
    record = _record(tmp_path, monkeypatch, {"device": "cuda:0"})
    assert record["device"] == {"type": "cuda", "name": "Fake GPU 80GB"}
    assert "device cuda (Fake GPU 80GB)" in plotting.provenance_note(record)
