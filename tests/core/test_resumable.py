"""Resumable gate learning equals one call on the whole batch, survives a stop, and shares each
sample's saved gates with any later call on that sample."""

import pytest
import torch
import toy_models as toy

from pathlib_core import pruning, resumable
from pathlib_core.cache import content_key

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    return tmp_path


def _setup(batch=5):
    model = toy.small_cnn(seed=2)
    torch.manual_seed(3)
    return model, torch.randn(batch, 1, 8, 8, dtype=torch.float64)


@pytest.mark.parametrize("init", ["ones", "uniform"])
def test_chunks_equal_one_batch(cache, init):
    model, x = _setup()
    whole = pruning.learned_gates(model, x, init=init, n_steps=15, seed=4, progress=False)
    chunked = resumable.learned_gates_in_chunks(
        model, x, 2, init=init, n_steps=15, seed=4, progress=False
    )
    assert list(chunked) == list(whole)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-12, atol=1e-14)
    assert torch.equal(chunked.targets, whole.targets)
    assert chunked.settings.keys() == whole.settings.keys()
    for key, value in whole.settings.items():
        assert (
            torch.equal(chunked.settings[key], value)
            if torch.is_tensor(value)
            else chunked.settings[key] == value
        )
    assert len(list((cache / "chunks").rglob("*.pt"))) == 5  # one file a sample


def test_a_stopped_run_computes_only_the_missing_samples(cache, monkeypatch):
    model, x = _setup()
    first = resumable.learned_gates_in_chunks(model, x, 2, n_steps=10, progress=False)
    calls = toy.count_gate_learning(monkeypatch)
    again = resumable.learned_gates_in_chunks(model, x, 2, n_steps=10, progress=False)
    assert calls == []  # everything was saved
    (folder,) = (cache / "chunks").iterdir()
    files = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    files[1].unlink()  # as if the run had stopped before this sample was saved
    files[3].write_bytes(b"half a file")  # and this one were unreadable
    with pytest.warns(UserWarning, match="could not be read"):
        resumed = resumable.learned_gates_in_chunks(model, x, 2, n_steps=10, progress=False)
    assert calls == [2]  # the two missing samples, learned together
    for name in first:
        assert torch.equal(again[name], first[name])
        torch.testing.assert_close(resumed[name], first[name], rtol=1e-12, atol=1e-14)


def test_saved_gates_serve_other_batches_of_the_same_samples(cache, monkeypatch):
    model, x = _setup()
    whole = resumable.learned_gates_in_chunks(model, x, 5, n_steps=10, progress=False)
    calls = toy.count_gate_learning(monkeypatch)
    order = torch.tensor([3, 1, 4])
    part = resumable.learned_gates_in_chunks(
        model, x[order], 2, n_steps=10, lr=0.01, seed=0, progress=False
    )  # the defaults, spelt out
    assert calls == []
    for name in whole:
        assert torch.equal(part[name], whole[name][order])
    assert torch.equal(part.targets, whole.targets[order])
    assert torch.equal(part.settings["kept_prediction"], whole.settings["kept_prediction"][order])
    extended = resumable.learned_gates_in_chunks(
        model, torch.cat([x, x[:2] + 1]), 4, n_steps=10, progress=False
    )
    assert calls == [2]  # only the two new samples
    for name in whole:
        assert torch.equal(extended[name][:5], whole[name])


def test_bad_arguments_name_the_fix(cache):
    model, x = _setup()
    with pytest.raises(ValueError, match="chunk_size"):
        resumable.learned_gates_in_chunks(model, x, 0, n_steps=2)
    with pytest.raises(TypeError, match="one tensor"):
        resumable.learned_gates_in_chunks(model, (x,), 2, n_steps=2)
    with pytest.raises(ValueError, match="at least one sample"):
        resumable.learned_gates_in_chunks(model, x[:0], 2, n_steps=2)
    with pytest.raises(TypeError, match="settings are those of pruning.learned_gates"):
        resumable.learned_gates_in_chunks(model, x, 2, step=2)
    assert not (cache / "chunks").exists()


def test_cached_result_and_discard(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"value": torch.arange(3), "note": "x"}

    key = content_key({"a": 1}, [("t", torch.ones(2))], ("pathway.py",))
    assert key != content_key({"a": 2}, [("t", torch.ones(2))], ("pathway.py",))
    assert key != content_key({"a": 1}, [("t", torch.zeros(2))], ("pathway.py",))
    assert key != content_key({"a": 1}, [("t", torch.ones(2))], ())
    first = resumable.cached_result("thing", key, compute)
    second = resumable.cached_result("thing", key, compute)
    assert calls == [1] and torch.equal(second["value"], first["value"]) and second["note"] == "x"
    resumable.cached_result("thing", key, compute, cache=False)
    assert len(calls) == 2
    resumable.discard("thing", key)
    resumable.discard("thing", key)  # nothing left: no error
    resumable.cached_result("thing", key, compute)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="file-name-safe"):
        resumable.cached_result("a/b", key, compute)


def test_sites_given_as_modules_key_the_gates_by_site(cache):
    model, x = _setup()
    first, second = [name for name, m in model.named_modules() if isinstance(m, torch.nn.ReLU)][:2]
    named = dict(model.named_modules())
    a = resumable.learned_gates_in_chunks(
        model, x, 5, n_steps=4, sites=[named[first]], progress=False
    )
    b = resumable.learned_gates_in_chunks(
        model, x, 5, n_steps=4, sites=[named[second]], progress=False
    )
    assert list(a) == [first] and list(b) == [second]
    by_name = resumable.learned_gates_in_chunks(
        model, x, 5, n_steps=4, sites=[second], progress=False
    )
    assert torch.equal(by_name[second], b[second])


def test_a_model_in_train_mode_is_refused_even_when_its_gates_are_saved(cache):
    model, x = _setup()
    resumable.learned_gates_in_chunks(model, x, 5, n_steps=3, progress=False)
    model.train()
    with pytest.raises(ValueError, match="eval"):
        resumable.learned_gates_in_chunks(model, x, 5, n_steps=3, progress=False)
