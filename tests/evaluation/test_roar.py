"""ROAR / KAR: exact pixel selection against a hand-computed argsort, a known answer on synthetic
data whose label lives in a few fixed pixels, the official AUC formula, the attribution cache, and
input checks. Training uses a seeded logistic regression on 10x10 images (milliseconds)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pathlib_core.evaluation import roar as roar_mod
from pathlib_core.evaluation.roar import RoarResult, cached_attributions, degrade, roar

SIDE = 10
INFORMATIVE = [(6, 6), (6, 7), (7, 6), (7, 7)]  # the 2x2 block that decides the class


pytestmark = pytest.mark.usefixtures("single_thread")


def train_logreg(images, labels, seed, steps=150):
    """A seeded logistic regression (full-batch Adam): fast, deterministic."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def synthetic(n, seed):
    """Noise images (N, 1, 10, 10); class 1 iff the informative block is bright (+2, else -2)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    images = torch.randn(n, 1, SIDE, SIDE, generator=gen)
    for r, c in INFORMATIVE:
        images[:, 0, r, c] += 4.0 * labels - 2.0
    return images, labels


def oracle_maps(n):
    maps = torch.zeros(n, 1, SIDE, SIDE)
    for r, c in INFORMATIVE:
        maps[:, 0, r, c] = 1.0
    return maps


def random_maps(n, seed):
    return torch.rand(n, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def data():
    return synthetic(400, seed=1), synthetic(300, seed=2)


def run(data, maps, fractions, mode, seeds=(0,)):
    (x, y), (tx, ty) = data
    train_maps = {name: make(len(x), 10) for name, make in maps.items()}
    test_maps = {name: make(len(tx), 20) for name, make in maps.items()}
    return roar(
        x,
        y,
        tx,
        ty,
        train_maps,
        test_maps,
        fractions=fractions,
        mode=mode,
        seeds=seeds,
        train=train_logreg,
    )


MAPS = {"Oracle": lambda n, seed: oracle_maps(n), "Random": random_maps}


# ---------------------------------------------------------------------------------------- degrade


@pytest.mark.parametrize("mode", ["roar", "kar"])
@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.9])
def test_degrade_replaces_exactly_the_ranked_pixels(mode, fraction):
    gen = torch.Generator().manual_seed(3)
    images = 1.0 + torch.rand(4, 3, 6, 7, generator=gen)  # never 0, so replaced pixels show
    attributions = torch.randn(4, 3, 6, 7, generator=gen)  # continuous: no ties
    before = (images.clone(), attributions.clone())
    out = degrade(images, attributions, fraction, mode=mode)
    count = round(fraction * 6 * 7)
    importance = attributions.abs().amax(dim=1).flatten(1)
    ranked = torch.argsort(importance, dim=1, descending=mode == "roar")  # roar: most important
    expected = torch.zeros_like(importance, dtype=torch.bool)
    expected.scatter_(1, ranked[:, :count], True)
    replaced = (out == 0).flatten(2)  # (B, C, H*W)
    assert torch.equal(replaced, expected.unsqueeze(1).expand_as(replaced))  # all channels
    assert torch.equal(out[~replaced.view_as(out)], images[~replaced.view_as(out)])
    assert torch.equal(images, before[0]) and torch.equal(attributions, before[1])


def test_degrade_edge_fractions_and_replacements():
    images, _ = synthetic(5, seed=0)
    maps = random_maps(5, seed=0)
    assert torch.equal(degrade(images, maps, 0.0, "roar"), images)
    assert torch.equal(degrade(images, maps, 0.0, "kar"), images)
    assert torch.equal(degrade(images, maps, 1.0, "roar"), torch.zeros_like(images))
    assert torch.equal(
        degrade(images, maps, 1.0, "kar", replacement=-0.5), torch.full_like(images, -0.5)
    )
    means = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    assert torch.equal(degrade(images, maps, 1.0, "roar", replacement="mean"), means)
    assert degrade(images, maps, 0.5, "roar") is not images


def test_degrade_three_dimensional_maps_equal_single_channel_maps():
    images, _ = synthetic(3, seed=0)
    maps = torch.randn(3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(degrade(images, maps, 0.3), degrade(images, maps.unsqueeze(1), 0.3))


# ------------------------------------------------------------------------------ known answers


def test_oracle_drives_roar_to_chance_while_random_does_not(data):
    result = run(data, MAPS, fractions=(0.1,), mode="roar")
    assert result.fractions == [0.0, 0.1]
    base = result.accuracy["Oracle"][0, 0]
    assert base > 0.95 and base == result.accuracy["Random"][0, 0]  # shared unmodified model
    assert abs(result.accuracy["Oracle"][0, 1] - 0.5) < 0.1  # the information is gone
    assert result.accuracy["Random"][0, 1] > 0.9  # 10 random pixels rarely cover the block


def test_kar_with_oracle_keeps_accuracy_high(data):
    result = run(data, MAPS, fractions=(0.9,), mode="kar")  # keeps only the top 10%
    assert result.mode == "kar"
    assert result.accuracy["Oracle"][0, 1] > 0.95
    assert result.accuracy["Random"][0, 1] < result.accuracy["Oracle"][0, 1] - 0.1
    assert result.auc("Oracle") > result.auc("Random")


def test_roar_is_deterministic_and_rows_follow_seeds(data):
    first = run(data, MAPS, fractions=(0.1, 0.5), mode="roar", seeds=(0, 1))
    second = run(data, MAPS, fractions=(0.1, 0.5), mode="roar", seeds=(0, 1))
    for method in MAPS:
        assert first.accuracy[method].shape == (2, 3)
        assert torch.equal(first.accuracy[method], second.accuracy[method])
        assert torch.equal(first.mean(method), first.accuracy[method].mean(dim=0))
        assert first.std(method).shape == (3,)


def test_auc_matches_the_official_trapezoid():
    fractions = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9]
    constant = torch.full((2, 6), 0.8, dtype=torch.float64)
    # CIFAR10 "Gradients" and "NeuronIntGrad*" rows of the official plots.roar_plot (the paper's
    # Fig. 6 data)
    gradients = torch.tensor([[84.36, 79.1, 81.1, 82.81, 82.26, 75.5]], dtype=torch.float64) / 100
    star = torch.tensor([[84.36, 75.09, 63.56, 54.6, 47.85, 37.27]], dtype=torch.float64) / 100
    result = RoarResult("roar", fractions, {"c": constant, "g": gradients, "s": star})
    assert torch.allclose(result.auc("c"), torch.full((2,), 0.8 * 0.9, dtype=torch.float64))
    assert round(float(result.auc("g")), 4) == 0.7287
    assert round(float(result.auc("s")), 4) == 0.5241
    assert torch.equal(result.std("c"), torch.zeros(6, dtype=torch.float64))
    assert torch.equal(result.std("g"), torch.zeros(6, dtype=torch.float64))  # one seed
    with pytest.raises(KeyError, match="use one of"):
        result.auc("missing")


# --------------------------------------------------------------------------------------- cache


def test_cached_attributions_computes_once_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    images, labels = synthetic(10, seed=0)
    calls = []

    def fn(x, y):
        calls.append(len(x))
        return x * (y.view(-1, 1, 1, 1) + 1.0)

    first = cached_attributions("Toy", fn, images, labels, key="v1", batch_size=4)
    assert calls == [4, 4, 2]
    assert torch.equal(first, images * (labels.view(-1, 1, 1, 1) + 1.0))
    assert [p.name.split("-")[0] for p in (tmp_path / "attributions").iterdir()] == ["Toy"]
    second = cached_attributions("Toy", fn, images, labels, key="v1", batch_size=4)
    assert calls == [4, 4, 2] and torch.equal(first, second)
    cached_attributions("Toy", fn, images, labels, key="v2", batch_size=4)
    assert len(calls) == 6  # another key recomputes
    cached_attributions("Toy", fn, images + 1, labels, key="v1", batch_size=4)
    assert len(calls) == 9  # other images recompute
    cached_attributions("Toy", fn, images, labels, key="v1", cache=False)
    assert len(calls) == 10 and len(list((tmp_path / "attributions").iterdir())) == 3


def test_corrupted_cache_file_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    images, labels = synthetic(6, seed=0)
    cached_attributions("Toy", lambda x, y: x, images, labels, key="k")
    (path,) = (tmp_path / "attributions").iterdir()
    path.write_bytes(b"not a tensor")
    with pytest.warns(UserWarning, match="recomputing"):
        again = cached_attributions("Toy", lambda x, y: x, images, labels, key="k")
    assert torch.equal(again, images)


def test_a_stopped_attribution_run_resumes_at_its_chunk(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    images, labels = synthetic(10, seed=0)
    calls = []

    def failing_at_the_third_chunk(x, y):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("stopped")
        return x * 2.0

    with pytest.raises(RuntimeError, match="stopped"):
        cached_attributions(
            "Toy", failing_at_the_third_chunk, images, labels, key="k", batch_size=4
        )
    assert calls == [4, 4, 2]
    maps = cached_attributions(
        "Toy", lambda x, y: calls.append(len(x)) or x * 2.0, images, labels, key="k", batch_size=4
    )
    assert calls == [4, 4, 2, 2]  # only the chunk that had failed
    assert torch.equal(maps, images * 2.0)
    assert list((tmp_path / "chunks").iterdir()) == []  # the whole file replaces the chunks


def test_retrainings_are_saved_with_a_cache_key(data, tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    (x, y), (tx, ty) = data
    trained = []

    def counted(images, labels, seed):
        trained.append(seed)
        return train_logreg(images, labels, seed, steps=30)

    maps = ({"Oracle": oracle_maps(len(x))}, {"Oracle": oracle_maps(len(tx))})
    plain = roar(x, y, tx, ty, *maps, fractions=(0.5, 0.9), seeds=(0,), train=counted)
    saved = roar(
        x,
        y,
        tx,
        ty,
        *maps,
        fractions=(0.5, 0.9),
        seeds=(0,),
        train=counted,
        cache_key="logreg 30 steps",
    )
    assert len(trained) == 6 and torch.equal(saved.accuracy["Oracle"], plain.accuracy["Oracle"])
    loaded = roar(
        x,
        y,
        tx,
        ty,
        *maps,
        fractions=(0.5, 0.9),
        seeds=(0, 1),
        train=counted,
        cache_key="logreg 30 steps",
    )
    assert trained[6:] == [1, 1, 1]  # only the new seed trains
    assert torch.equal(loaded.accuracy["Oracle"][0], plain.accuracy["Oracle"][0])
    roar(
        x,
        y,
        tx,
        ty,
        *maps,
        fractions=(0.5, 0.9),
        mode="kar",
        seeds=(0,),
        train=counted,
        cache_key="logreg 30 steps",
    )
    assert len(trained) == 11  # KAR degrades differently; its unmodified model is shared
    with pytest.raises(TypeError, match="cache_key"):
        roar(x, y, tx, ty, *maps, fractions=(0.5,), train=counted, cache_key=1)


def test_mnist_trainer_cache_key_names_its_settings(data):
    two = roar_mod.mnist_trainer(epochs=2)
    assert two.cache_key == roar_mod.mnist_trainer(epochs=2).cache_key
    assert two.cache_key != roar_mod.mnist_trainer().cache_key
    (x, y), (tx, ty) = data
    maps = ({"Oracle": oracle_maps(len(x))}, {"Oracle": oracle_maps(len(tx))})
    with pytest.raises(ValueError, match="train.cache_key"):  # before any training
        roar(
            x,
            y,
            tx,
            ty,
            *maps,
            fractions=(0.5,),
            train=two,
            cache_key=roar_mod.mnist_trainer().cache_key,
        )


# ---------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_with_a_helpful_message(data):
    (x, y), (tx, ty) = data
    maps = {"Oracle": oracle_maps(len(x))}
    test_maps = {"Oracle": oracle_maps(len(tx))}
    with pytest.raises(ValueError, match=r"missing test maps for \['Extra'\]"):
        roar(x, y, tx, ty, {**maps, "Extra": maps["Oracle"]}, test_maps, train=train_logreg)
    with pytest.raises(ValueError, match="one map per image"):
        roar(x, y, tx, ty, maps, {"Oracle": oracle_maps(5)}, train=train_logreg)
    with pytest.raises(ValueError, match="one map per image"):
        degrade(x, torch.zeros(len(x), 1, SIDE, SIDE + 1), 0.1)
    for bad in ((0.0, 0.5), (0.5, 1.5), (0.5, 0.3), ()):
        with pytest.raises(ValueError, match="fraction"):
            roar(x, y, tx, ty, maps, test_maps, fractions=bad, train=train_logreg)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        degrade(x, maps["Oracle"], 1.2)
    with pytest.raises(ValueError, match="mode must be one of"):
        degrade(x, maps["Oracle"], 0.1, mode="remove")
    with pytest.raises(TypeError, match="float tensor"):
        degrade(x, maps["Oracle"].long(), 0.1)
    with pytest.raises(ValueError, match="one entry per image"):
        roar(x, y[:-1], tx, ty, maps, test_maps, train=train_logreg)
    with pytest.raises(TypeError, match="nn.Module"):
        roar(x, y, tx, ty, maps, test_maps, fractions=(0.5,), train=lambda a, b, s: None)

    def must_not_train(*args):
        raise AssertionError("trained before checking the inputs")

    with pytest.raises(ValueError, match="reduce must be one of"):
        roar(x, y, tx, ty, maps, test_maps, reduce="median", train=must_not_train)
    with pytest.raises(ValueError, match="replacement must be one of"):
        roar(x, y, tx, ty, maps, test_maps, replacement="noise", train=must_not_train)
    with pytest.raises(ValueError, match="file-name-safe"):
        cached_attributions("a/b", lambda a, b: a, x, y, key="k", cache=False)


# -------------------------------------------------------------------------------- MNIST default


def test_default_trainer_turns_augmentation_off(monkeypatch):
    seen = {}

    def fake_train(images, labels, **kwargs):
        seen.update(kwargs)
        return train_logreg(images, labels, kwargs["seed"], steps=1)

    monkeypatch.setattr(roar_mod.models, "train_mnist_cnn", fake_train)
    images, labels = synthetic(20, seed=0)
    maps = {"Random": random_maps(20, seed=0)}
    roar(images, labels, images, labels, maps, maps, fractions=(0.5,), seeds=(3,))
    assert seen["rotate"] == seen["scale"] == seen["shift"] == 0
    assert seen["seed"] == 3 and seen["progress"] is False


def test_roar_runs_the_mnist_cnn_on_a_few_digits():
    from pathlib_core.data import mnist

    images, labels = mnist("train")
    test_images, test_labels = mnist("test")
    train_maps = {"Random": torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))}
    test_maps = {"Random": torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(1))}
    result = roar(
        images[:200],
        labels[:200],
        test_images[:100],
        test_labels[:100],
        train_maps,
        test_maps,
        fractions=(0.9,),
        train=roar_mod.mnist_trainer(epochs=1),
    )
    accuracy = result.accuracy["Random"]
    assert accuracy.shape == (1, 2) and bool(((accuracy >= 0) & (accuracy <= 1)).all())
