"""GEN-CNP (the pathlib_core.transfer package): the generator, its training (model untouched,
seeded, cached), the generated, class and transferred pathways, and the metrics against direct
computations, on the real MNIST CNN and digits."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from pathlib_core import data, models, pruning
from pathlib_core import transfer as T
from pathlib_core.attribution import restricted_input_gradient
from pathlib_core.pathway import Pathway, restrict

TINY = T.GeneratorTraining(epochs=1, batch_size=64, seed=3)  # 4 steps on 256 digits


@pytest.fixture(scope="module")
def model():
    return models.mnist_cnn(progress=False)


@pytest.fixture(scope="module")
def digits():
    return data.mnist("train"), data.mnist("test")


@pytest.fixture(scope="module")
def generator(model, digits):
    """A generator trained briefly (about 100 steps) on 1,600 training digits."""
    (x, _), _ = digits
    config = T.GeneratorTraining(epochs=2, batch_size=32)
    return T.train_generator(model, x[:1600], config, cache=False, progress=False)


def _weights(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


def _all_hooks(model):
    return [
        (name, kind)
        for name, module in model.named_modules()
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
        if getattr(module, kind)
    ]


# ------------------------------------------------------------------------------------ shapes


def test_generator_logits_and_generated_masks_have_the_right_shapes(model, digits):
    _, (xt, _) = digits
    channels = {"relu1": 32, "relu2": 32, "relu3": 64, "relu4": 64, "relu5": 256}
    gen = T.PathwayGenerator(channels, "relu2", "relu4", hidden=16)
    acts = pruning.site_activations(model, xt[:5])
    logits = gen(acts)
    assert list(logits) == list(channels)
    assert {name: tuple(v.shape) for name, v in logits.items()} == {
        name: (5, c) for name, c in channels.items()
    }
    # the heads start at +2: every channel kept
    assert all(bool((v > 0).all()) for v in logits.values())
    pathway = T.generate_pathway(gen, model, xt[:5])
    assert pathway.settings["method"] == "GEN-CNP"
    for name, mask in pathway.masks.items():
        assert mask.dtype == torch.bool
        assert mask.shape == acts[name].shape
    assert torch.equal(pathway.sparsity, torch.zeros(5, dtype=torch.float64))


def test_straight_through_is_hard_forward_and_sigmoid_backward():
    logits = torch.tensor([[-3.0, -0.1, 0.0, 0.2, 4.0]], requires_grad=True)
    out = T.straight_through(logits)
    assert torch.equal(out.detach(), torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]))
    (grad,) = torch.autograd.grad(out.sum(), logits)
    p = torch.sigmoid(logits.detach())
    torch.testing.assert_close(grad, p * (1 - p))
    with pytest.raises(TypeError, match="float"):
        T.straight_through(torch.tensor([1, 2]))


# -------------------------------------------------------------------------- the frozen model


def test_training_leaves_the_model_unchanged(model, digits):
    (x, _), _ = digits
    before = _weights(model)
    gen = T.train_generator(model, x[:256], TINY, cache=False, progress=False)
    _assert_same(before, _weights(model))
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert _all_hooks(model) == []
    assert not gen.training and gen.config == TINY
    assert set(gen.history) == set(T.HISTORY_TERMS)
    assert all(len(v) == 1 and math.isfinite(v[0]) for v in gen.history.values())
    assert gen.sites == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    assert (gen.shallow, gen.deep) == ("relu2", "relu4")  # the documented defaults


def test_training_that_raises_leaves_no_hooks(model, digits, monkeypatch):
    (x, _), _ = digits
    before = _weights(model)
    calls = []
    original = model.fc2.forward

    def fails_in_the_restricted_pass(inputs):
        calls.append(1)
        if len(calls) == 3:  # discovery, whole model on batch 1, restricted model on batch 1
            raise RuntimeError("boom")
        return original(inputs)

    model.fc2.forward = fails_in_the_restricted_pass
    try:
        with pytest.raises(RuntimeError, match="boom"):
            T.train_generator(model, x[:256], TINY, cache=False, progress=False)
    finally:
        del model.fc2.forward
    assert len(calls) == 3
    assert _all_hooks(model) == []
    _assert_same(before, _weights(model))
    assert all(p.grad is None for p in model.parameters())

    def fails_in_the_loss(logits):
        raise RuntimeError("loss")

    monkeypatch.setattr(T.training, "straight_through", fails_in_the_loss)
    with pytest.raises(RuntimeError, match="loss"):
        T.train_generator(model, x[:256], TINY, cache=False, progress=False)
    assert _all_hooks(model) == []


def test_a_model_in_train_mode_is_refused(model, digits):
    (x, _), _ = digits
    training = copy.deepcopy(model).train()
    with pytest.raises(ValueError, match=r"eval\(\)"):
        T.train_generator(training, x[:64], TINY, cache=False, progress=False)
    assert training.training  # the library never changes the mode


def test_training_is_seeded(model, digits):
    (x, _), _ = digits
    a = T.train_generator(model, x[:256], TINY, cache=False, progress=False)
    b = T.train_generator(model, x[:256], TINY, cache=False, progress=False)
    _assert_same(_weights(a), _weights(b))
    assert a.history == b.history
    c = T.train_generator(
        model,
        x[:256],
        T.GeneratorTraining(epochs=1, batch_size=64, seed=4),
        cache=False,
        progress=False,
    )
    assert not torch.equal(a.heads[0].weight, c.heads[0].weight)


def test_the_cache_is_used_on_the_second_call(model, digits, tmp_path, monkeypatch):
    (x, _), _ = digits
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))  # the model is loaded already
    first = T.train_generator(model, x[:256], TINY, progress=False)
    files = sorted(p.name for p in tmp_path.glob("pathway_generator-*"))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".pt")

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the generator is cached")

    monkeypatch.setattr(T.training, "_train", no_training)
    second = T.train_generator(model, x[:256], TINY, progress=False)
    _assert_same(_weights(first), _weights(second))
    assert second.history == first.history
    assert not second.training and second.config == TINY
    # another config (or other images) is another cache entry
    with pytest.raises(AssertionError, match="cached"):
        T.train_generator(model, x[:128], TINY, progress=False)


def test_bad_configurations_name_the_fix(model, digits):
    (x, _), _ = digits
    with pytest.raises(ValueError, match="positive int"):
        T.GeneratorTraining(epochs=0)
    with pytest.raises(ValueError, match="non-negative"):
        T.GeneratorTraining(sparsity_weight=-1.0)
    with pytest.raises(ValueError, match="relu4"):  # lists the sites to choose from
        T.train_generator(
            model, x[:8], T.GeneratorTraining(deep="conv4"), cache=False, progress=False
        )
    with pytest.raises(TypeError, match="GeneratorTraining"):
        T.train_generator(model, x[:8], {"epochs": 1}, cache=False, progress=False)
    with pytest.raises(ValueError, match="shallow"):
        T.PathwayGenerator({"a": 3}, "b", "a")
    gen = T.PathwayGenerator({"relu2": 32, "relu4": 64}, "relu2", "relu4")
    with pytest.raises(TypeError, match="mapping"):
        gen(torch.zeros(2, 32))
    with pytest.raises(ValueError, match="relu4"):
        gen({"relu2": torch.zeros(2, 32, 4, 4)})
    with pytest.raises(ValueError, match="another model"):
        gen({"relu2": torch.zeros(2, 16, 4, 4), "relu4": torch.zeros(2, 64)})


# ------------------------------------------------------------------- the trained generator


def test_generated_pathways_are_sparse_faithful_and_per_instance(generator, model, digits):
    _, (xt, _) = digits
    x = xt[:200]
    pathway = T.generate_pathway(generator, model, x)
    result = T.faithfulness(model, x, pathway)
    kept = result.kept_fraction
    assert float(kept.mean()) < 0.7  # clearly less than the whole network
    assert float(kept.std()) > 0.0  # each instance decides its own sparsity
    assert result.prediction_kept >= 85.0
    for mask in pathway.masks.values():  # one decision per channel, broadcast over positions
        rows = mask.flatten(2) if mask.dim() > 2 else mask.unsqueeze(2)
        assert torch.equal(rows.all(dim=2), rows.any(dim=2))
    assert generator.history["kept"][-1] < generator.history["kept"][0] <= 1.0
    # every pathway tool works on it
    grads = restricted_input_gradient(model, x[:4], torch.tensor([0, 1, 2, 3]), pathway[:4])
    assert grads[0].shape == x[:4].shape and bool(grads[0].abs().sum() > 0)
    assert torch.equal(pathway.iou(pathway), torch.ones(200, dtype=torch.float64))


def test_class_pathways_transfer_better_than_random_pathways(generator, model, digits):
    """The acceptance test: a class pathway built from j=10 generated pathways of a class,
    applied to the other test digits of that class, keeps more of them correct than random
    pathways of the same sparsity (mean of two seeds)."""
    _, (xt, yt) = digits
    gains = []
    for c in (0, 5, 7, 9):
        members = (yt == c).nonzero().flatten()
        own = T.generate_pathway(generator, model, xt[members[:10]])
        votes = T.class_pathway(own)
        assert votes.batch_size == 1
        others, labels = xt[members[10:]], yt[members[10:]]
        result = T.transfer_accuracy(model, others, labels, votes)
        assert result.kept_fraction < 0.8
        sparsity = float(votes.sparsity[0])
        random_accuracy = 0.0
        for seed in range(2):
            random = pruning.random_pathway(model, others, sparsity, seed=seed)
            with torch.no_grad(), restrict(model, random):
                correct = model(others).argmax(dim=1) == labels
            random_accuracy += 100.0 * float(correct.double().mean()) / 2
        assert result.accuracy > random_accuracy, (c, result, random_accuracy)
        gains.append(result.accuracy - random_accuracy)
    assert sum(gains) / len(gains) > 2.0, gains


# ------------------------------------------------------------------------------------ metrics


def test_class_relevance_equals_the_loop_over_pairs(generator, model, digits):
    _, (xt, yt) = digits
    generated = T.generate_pathway(generator, model, xt[:9])
    torch.manual_seed(0)
    random = Pathway({name: torch.rand(m.shape) < 0.4 for name, m in generated.masks.items()})
    classes = yt[:9].tolist()
    for pathway in (generated, random):
        result = T.class_relevance(pathway, classes)
        within, across, per_class = [], [], {}
        for i, j in itertools.combinations(range(9), 2):
            iou = float(pathway[i].iou(pathway[j]))
            if classes[i] == classes[j]:
                within.append(iou)
                per_class.setdefault(classes[i], []).append(iou)
            else:
                across.append(iou)
        assert result.within == pytest.approx(sum(within) / len(within), abs=1e-12)
        assert result.across == pytest.approx(sum(across) / len(across), abs=1e-12)
        assert result.per_class == pytest.approx({c: sum(v) / len(v) for c, v in per_class.items()})
    single = T.class_relevance(random[:2], [0, 1])
    assert math.isnan(single.within) and single.per_class == {}
    with pytest.raises(ValueError, match="one per sample"):
        T.class_relevance(random, [0, 1])


def test_faithfulness_of_the_whole_network_and_of_a_pathway(generator, model, digits):
    _, (xt, _) = digits
    x = xt[:20]
    acts = pruning.site_activations(model, x)
    whole = Pathway({name: torch.ones_like(a, dtype=torch.bool) for name, a in acts.items()})
    result = T.faithfulness(model, x, whole)
    assert result.average_drop == 0.0 and result.increase_in_confidence == 0.0
    assert result.mean_increase == 0.0 and result.mean_decrease == 0.0
    assert result.prediction_kept == 100.0
    assert torch.equal(result.confidence_change, torch.zeros(20, dtype=torch.float64))
    assert torch.equal(result.kept_fraction, torch.ones(20, dtype=torch.float64))
    # a generated pathway, against the definition written out
    pathway = T.generate_pathway(generator, model, x)
    result = T.faithfulness(model, x, pathway, target=3)
    with torch.no_grad():
        p = torch.softmax(model(x).double(), dim=1)[:, 3]
        with restrict(model, pathway):
            q = torch.softmax(model(x).double(), dim=1)[:, 3]
            predicted = model(x).argmax(dim=1)
    assert result.average_drop == pytest.approx(100 * float(((p - q).clamp(min=0) / p).mean()))
    assert result.increase_in_confidence == pytest.approx(100 * float((q > p).double().mean()))
    rises = [max(0.0, float(b - a)) for a, b in zip(p, q, strict=False)]
    falls = [max(0.0, float(a - b)) for a, b in zip(p, q, strict=False)]
    assert result.mean_increase == pytest.approx(100 * sum(rises) / 20)
    assert result.mean_decrease == pytest.approx(100 * sum(falls) / 20)
    assert result.prediction_kept == pytest.approx(100 * float((predicted == 3).double().mean()))
    torch.testing.assert_close(result.confidence_change, q - p)
    with pytest.raises(ValueError, match="expand"):
        T.faithfulness(model, xt[:5], pathway)


def test_class_pathway_votes_and_expand_repeats():
    a = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]], dtype=torch.bool)
    b = torch.tensor([[[1, 0], [0, 0]], [[1, 0], [0, 1]], [[0, 0], [0, 1]]], dtype=torch.bool)
    b = b.unsqueeze(1)  # (3, 1, 2, 2)
    pathway = Pathway({"a": a, "b": b}, {"method": "GEN-CNP"})
    half = T.class_pathway(pathway)  # kept by at least 2 of 3
    assert torch.equal(half.masks["a"], torch.tensor([[True, True, False, False]]))
    assert torch.equal(half.masks["b"], torch.tensor([[[[True, False], [False, True]]]]))
    every = T.class_pathway(pathway, min_share=1.0)
    assert torch.equal(every.masks["a"], torch.tensor([[True, False, False, False]]))
    assert not bool(every.masks["b"].any())
    anyone = T.class_pathway(pathway, min_share=1 / 3)
    assert torch.equal(anyone.masks["a"], torch.tensor([[True, True, True, True]]))
    assert half.settings["method"] == "GEN-CNP" and half.settings["votes"] == 3
    repeated = T.expand(half, 4)
    assert repeated.batch_size == 4
    assert all(torch.equal(repeated.masks["a"][i : i + 1], half.masks["a"]) for i in range(4))


def test_bad_arguments_name_the_fix(model, digits):
    _, (xt, yt) = digits
    pathway = Pathway({"a": torch.ones(3, 4, dtype=torch.bool)})
    for share in (0, 0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            T.class_pathway(pathway, min_share=share)
    with pytest.raises(ValueError, match="class_pathway"):
        T.expand(pathway, 2)
    with pytest.raises(ValueError, match="positive int"):
        T.expand(pathway[0], 0)
    with pytest.raises(TypeError, match="Pathway"):
        T.class_pathway({"a": torch.ones(3, 4, dtype=torch.bool)})
    acts = pruning.site_activations(model, xt[:3])
    three = Pathway({name: torch.ones_like(a, dtype=torch.bool) for name, a in acts.items()})
    with pytest.raises(ValueError, match="one per input"):
        T.transfer_accuracy(model, xt[:4], yt[:4], three)
    with pytest.raises(TypeError, match="PathwayGenerator"):
        T.generate_pathway(model, model, xt[:3])


def test_transfer_accuracy_of_the_whole_network_is_the_model_accuracy(model, digits):
    _, (xt, yt) = digits
    acts = pruning.site_activations(model, xt[:1])
    whole = Pathway({name: torch.ones_like(a, dtype=torch.bool) for name, a in acts.items()})
    result = T.transfer_accuracy(model, xt[:100], yt[:100], whole)
    expected = 100.0 * models.accuracy(model, xt[:100], yt[:100])
    assert result.accuracy == pytest.approx(expected) == pytest.approx(result.model_accuracy)
    assert result.confidence == pytest.approx(result.model_confidence)
    assert result.kept_fraction == 1.0


def test_transfer_accuracy_with_one_pathway_per_input(generator, model, digits):
    """Each input's own pathway is applied as it is, against restrict written out."""
    _, (xt, yt) = digits
    x, y = xt[:50], yt[:50]
    own = T.generate_pathway(generator, model, x)
    result = T.transfer_accuracy(model, x, y, own)
    with torch.no_grad(), restrict(model, own):
        logits = model(x).double()
    expected = 100.0 * float((logits.argmax(dim=1) == y).double().mean())
    assert result.accuracy == pytest.approx(expected)
    confidence = float(torch.softmax(logits, dim=1)[torch.arange(50), y].mean())
    assert result.confidence == pytest.approx(confidence)
    assert result.kept_fraction == pytest.approx(float(1 - own.sparsity.mean()))


def test_pairwise_iou_is_symmetric_with_a_unit_diagonal(generator, model, digits):
    _, (xt, _) = digits
    pathway = T.generate_pathway(generator, model, xt[:6])
    iou = pathway.pairwise_iou()
    assert iou.shape == (6, 6) and iou.dtype == torch.float64
    assert torch.equal(iou, iou.T) and torch.equal(
        iou.diagonal(), torch.ones(6, dtype=torch.float64)
    )
    assert float(iou[1, 4]) == pytest.approx(float(pathway[1].iou(pathway[4])), abs=1e-12)
