"""Chunked, resumable gate learning equals one call on the whole batch and survives a stop."""

import pytest
import torch

from pathlib_core import pruning, resumable

try:
    from . import toy_models as toy
except ImportError:
    import toy_models as toy

single_thread = toy.single_thread


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
    whole = pruning.learned_gates(model, x, init=init, steps=15, seed=4, progress=False)
    chunked = resumable.learned_gates_in_chunks(model, x, 2, init=init, steps=15, seed=4,
                                                progress=False)
    assert list(chunked) == list(whole)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-12, atol=1e-14)
    assert torch.equal(chunked.targets, whole.targets)
    assert chunked.settings.keys() == whole.settings.keys()
    for key, value in whole.settings.items():
        assert torch.equal(chunked.settings[key], value) if torch.is_tensor(value) \
            else chunked.settings[key] == value
    assert len(list((cache / "chunks").rglob("*.pt"))) == 3  # 2 + 2 + 1 samples


def test_a_stopped_run_resumes_at_the_first_missing_chunk(cache, monkeypatch):
    model, x = _setup()
    first = resumable.learned_gates_in_chunks(model, x, 2, steps=10, progress=False)
    calls = []
    original = pruning.learned_gates
    monkeypatch.setattr(pruning, "learned_gates",
                        lambda m, inputs, **k: calls.append(len(inputs)) or original(m, inputs, **k))
    again = resumable.learned_gates_in_chunks(model, x, 2, steps=10, progress=False)
    assert calls == []  # everything was saved
    (folder,) = (cache / "chunks").iterdir()
    (folder / "2-4.pt").unlink()  # as if the run had stopped during the second chunk
    (folder / "4-5.pt").write_bytes(b"half a file")  # and the last one were unreadable
    with pytest.warns(UserWarning, match="could not be read"):
        resumed = resumable.learned_gates_in_chunks(model, x, 2, steps=10, progress=False)
    assert calls == [2, 1]
    for name in first:
        assert torch.equal(again[name], first[name])
        torch.testing.assert_close(resumed[name], first[name], rtol=0, atol=0)


def test_other_settings_weights_or_inputs_do_not_reuse_chunks(cache):
    model, x = _setup()
    resumable.learned_gates_in_chunks(model, x, 5, steps=5, progress=False)
    resumable.learned_gates_in_chunks(model, x, 5, steps=6, progress=False)
    resumable.learned_gates_in_chunks(model, x + 1, 5, steps=5, progress=False)
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    resumable.learned_gates_in_chunks(model, x, 5, steps=5, progress=False)
    assert len(list((cache / "chunks").iterdir())) == 4


def test_bad_arguments_name_the_fix(cache):
    model, x = _setup()
    with pytest.raises(ValueError, match="chunk_size"):
        resumable.learned_gates_in_chunks(model, x, 0, steps=2)
    with pytest.raises(TypeError, match="one tensor"):
        resumable.learned_gates_in_chunks(model, (x,), 2, steps=2)
    assert not (cache / "chunks").exists()


def test_cached_result_and_discard(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"value": torch.arange(3), "note": "x"}

    key = resumable.content_key({"a": 1}, [("t", torch.ones(2))], ("pathway.py",))
    assert key != resumable.content_key({"a": 2}, [("t", torch.ones(2))], ("pathway.py",))
    assert key != resumable.content_key({"a": 1}, [("t", torch.zeros(2))], ("pathway.py",))
    assert key != resumable.content_key({"a": 1}, [("t", torch.ones(2))], ())
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


def test_fingerprint_keeps_the_key_of_saved_chunks():
    """Chunks saved by earlier versions must still be found: the key of a fixed model, input and
    options is the digest the first version of this module computed."""
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.arange(6.0).view(2, 3))
        model.bias.copy_(torch.tensor([0.5, -1.0]))
    x = torch.linspace(-1, 1, 6).view(2, 3)
    options = {"steps": 3, "init": "ones", "function": "learned_gates"}
    assert resumable.fingerprint(model, x, options, ()) == (
        "6fdb2b6fc8df5a96e2b65b98e4443cc0ed9fc624eb8d5c8696f513b5044b0efb")
