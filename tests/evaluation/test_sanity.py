"""Sanity checks (Adebayo et al., 2018): the similarity metrics against SciPy and known answers, the
randomisation stages, and cascading / data randomisation on tiny float64 models."""

import numpy as np
import pytest
import torch
import toy_models as toy
from scipy import stats
from torch import nn

from pathlib_core.evaluation import sanity
from pathlib_core.evaluation.maps import normalise, pixel_map

pytestmark = pytest.mark.usefixtures("single_thread")

CELLS = (2, 2)  # HOG cells for the toy models' 8x8 inputs


def gradient(model, inputs, target):
    """The plain input gradient of the target logit."""
    x = inputs.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    return grad


def the_input(model, inputs, target):
    """Ignores the model: the map is the input itself (must fail the sanity check)."""
    return inputs.clone()


def random_maps(seed, shape=(3, 2, 12, 12)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def images(seed=1, batch=4):
    return random_maps(seed, (batch, 1, 8, 8))


def run(model, methods=None, **options):
    options.setdefault("pixels_per_cell", CELLS)
    methods = methods or {"gradient": gradient}
    return sanity.cascading_randomisation(model, images(), None, methods, **options)


# ---------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("metric", ["spearman", "spearman_abs", "ssim", "hog"])
def test_similarity_of_a_map_with_itself_is_one(metric):
    maps = random_maps(0)
    scores = sanity.similarities(maps, maps.clone(), [metric], pixels_per_cell=(4, 4))
    assert scores[metric].shape == (3,)
    assert torch.allclose(scores[metric], torch.ones(3, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("absolute", [False, True])
def test_spearman_matches_scipy_with_ties(absolute):
    a = torch.round(random_maps(0) * 2) / 2  # few distinct values: many ties
    b = torch.round(random_maps(1) * 2) / 2
    ours = sanity.spearman(a, b, absolute=absolute)
    prepared = [normalise(pixel_map(m, "signed_max_abs")).flatten(1).numpy() for m in (a, b)]
    if absolute:
        prepared = [np.abs(p) for p in prepared]
    expected = [stats.spearmanr(x, y).statistic for x, y in zip(*prepared, strict=False)]
    assert len(np.unique(prepared[0][0])) < prepared[0].shape[1] // 4  # ties are really there
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-12)
    assert not np.allclose(expected, 1.0)


def test_constant_map_scores_zero_for_correlations():
    maps = random_maps(0)
    flat = maps.clone()
    flat[1] = 0.0
    scores = sanity.similarities(maps, flat, ["spearman", "spearman_abs", "hog"], (4, 4))
    for metric, values in scores.items():
        assert values[1] == 0.0, metric
        assert values[0] == pytest.approx(1.0), metric


def test_similarity_drops_for_different_maps():
    scores = sanity.similarities(random_maps(0), random_maps(1), pixels_per_cell=(4, 4))
    for metric, values in scores.items():
        assert bool((values < 0.6).all()), (metric, values)


def test_hog_cell_too_large_names_the_fix():
    maps = random_maps(0)
    with pytest.raises(ValueError, match=r"pixels_per_cell=\(4, 4\) or smaller"):
        sanity.hog_correlation(maps, maps, pixels_per_cell=(16, 16))
    with pytest.raises(ValueError, match="pixels_per_cell"):
        run(toy.small_cnn(), pixels_per_cell=(16, 16))


def test_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match="unknown metric 'pearson'.*'spearman'"):
        sanity.similarities(random_maps(0), random_maps(0), ["pearson"])
    with pytest.raises(ValueError, match="unknown metric"):
        run(toy.small_cnn(), metrics=("spearman", "pearson"))


def test_maps_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="same inputs"):
        sanity.ssim(random_maps(0), random_maps(0, (3, 2, 10, 12)))


# ---------------------------------------------------------------------------- stages


class Block(nn.Module):
    """A non-container module with children: one unit, like a torchvision Bottleneck."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return x + self.bn(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3)
        self.layers = nn.Sequential(Block(), nn.ReLU(), nn.ModuleList([Block(), Block()]))
        self.head = nn.ModuleDict({"pool": nn.AdaptiveAvgPool2d(1), "fc": nn.Linear(2, 3)})


def test_cascading_stages_of_small_cnn():
    assert sanity.cascading_stages(toy.small_cnn()) == [
        ("8", ["8"]),
        ("6", ["6"]),
        ("2", ["2"]),
        ("0", ["0"]),
    ]


def test_cascading_stages_expand_containers_and_keep_blocks():
    names = [name for name, _ in sanity.cascading_stages(Net())]
    assert names == ["head.fc", "layers.2.1", "layers.2.0", "layers.0", "stem"]


def test_randomise_redraws_parameters_and_keeps_running_statistics():
    block = Block()
    block.bn.running_mean.fill_(3.0)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    sanity.randomise_(block, torch.Generator().manual_seed(0), std=0.1)
    for name, value in block.named_parameters():
        assert not torch.equal(value, before[name]), name
    assert torch.equal(block.bn.running_mean, before["bn.running_mean"])
    again = Block()
    sanity.randomise_(again, torch.Generator().manual_seed(0), std=0.1)
    assert all(
        torch.equal(p, q) for p, q in zip(block.parameters(), again.parameters(), strict=False)
    )
    big = sanity.randomise_(nn.Linear(400, 400), torch.Generator().manual_seed(0), std=0.1)
    assert big.weight.std().item() == pytest.approx(0.1, rel=0.02)


# ------------------------------------------------------------------------ cascading randomisation


def test_gradient_changes_when_the_model_is_randomised():
    result = run(toy.small_cnn(), keep_maps=True)
    assert result.stages == ["original", "8", "6", "2", "0"]
    scores = result.scores["gradient"]["spearman"]
    assert scores.shape == (5, 4)
    assert torch.allclose(scores[0], torch.ones(4, dtype=torch.float64), atol=1e-12)
    assert bool((result.mean("gradient", "spearman")[1:] < 0.5).all()), scores
    assert result.maps["gradient"].shape == (5, 4, 8, 8)


def test_a_method_ignoring_the_model_stays_similar_at_every_stage():
    result = run(toy.small_cnn(), {"input": the_input, "gradient": gradient})
    for metric, values in result.scores["input"].items():
        assert torch.allclose(values, torch.ones_like(values), atol=1e-12), metric
    assert result.mean("gradient", "ssim")[-1] < 0.5


def test_target_is_the_original_prediction_at_every_stage():
    model, seen = toy.small_cnn(), []

    def recording(model, inputs, target):
        seen.append(target.clone())
        return gradient(model, inputs, target)

    sanity.cascading_randomisation(model, images(), None, {"g": recording}, pixels_per_cell=CELLS)
    assert len(seen) == 5
    predicted = model(images()).argmax(dim=1)
    assert all(torch.equal(t, predicted) for t in seen)


def test_batch_size_gives_the_same_scores():
    model, sizes = toy.small_cnn(), []

    def recording(model, inputs, target):
        sizes.append(len(inputs))
        return gradient(model, inputs, target)

    whole = run(model)
    chunked = run(model, {"gradient": recording}, batch_size=3)
    assert set(sizes) == {3, 1}
    for metric, values in whole.scores["gradient"].items():
        assert torch.allclose(values, chunked.scores["gradient"][metric], atol=1e-12), metric


def test_deterministic_for_a_seed():
    first, second, other = run(toy.small_cnn()), run(toy.small_cnn()), run(toy.small_cnn(), seed=1)
    for metric, values in first.scores["gradient"].items():
        assert torch.equal(values, second.scores["gradient"][metric]), metric
    spearman = [result.scores["gradient"]["spearman"] for result in (first, other)]
    assert not torch.equal(*spearman)


def test_explicit_stages():
    result = run(toy.small_cnn(), stages=["8", ("convs", ["2", "0"])])
    assert result.stages == ["original", "8", "convs"]
    with pytest.raises(ValueError, match="named_modules"):
        run(toy.small_cnn(), stages=["9"])
    with pytest.raises(ValueError, match="no parameters"):
        run(toy.small_cnn(), stages=["1"])


def with_hook_and_grad(model):
    model.register_forward_hook(lambda module, args, output: None)
    model[0].weight.requires_grad_(False)
    model[6].weight.grad = torch.ones_like(model[6].weight)
    return model


def backward_gradient(model, inputs, target):
    """Accumulates parameter gradients as ``.backward()`` does (a careless method)."""
    x = inputs.clone().requires_grad_(True)
    model(x).gather(1, target.view(-1, 1)).sum().backward()
    return x.grad


def test_user_model_is_unchanged():
    model = with_hook_and_grad(toy.small_cnn())
    before = toy.model_state(model)
    run(model, {"b": backward_gradient})
    toy.assert_same_state(before, toy.model_state(model))


def test_user_model_is_unchanged_when_a_method_raises():
    model, calls = with_hook_and_grad(toy.small_cnn()), []

    def breaks_later(model, inputs, target):
        calls.append(1)
        with torch.no_grad():
            model[6].weight.add_(1.0)
        if len(calls) == 2:
            raise RuntimeError("method failed")
        return gradient(model, inputs, target)

    before = toy.model_state(model)
    with pytest.raises(RuntimeError, match="method failed"):
        run(model, {"b": breaks_later})
    toy.assert_same_state(before, toy.model_state(model))


def test_model_in_training_mode_is_refused():
    model = toy.small_cnn().train()
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        run(model)
    assert model.training


def test_bad_method_output_and_arguments_are_refused():
    with pytest.raises(ValueError, match="one map per input"):
        run(toy.small_cnn(), {"bad": lambda m, x, t: x[:1]})
    with pytest.raises(TypeError, match="float tensor"):
        run(toy.small_cnn(), {"bad": lambda m, x, t: x.tolist()})
    with pytest.raises(TypeError, match="mapping"):
        run(toy.small_cnn(), [gradient])
    with pytest.raises(ValueError, match="std"):
        run(toy.small_cnn(), std=0.0)


def test_mean_ignores_nan():
    scores = torch.tensor([[1.0, 1.0], [float("nan"), 0.5]], dtype=torch.float64)
    result = sanity.SanityResult(["original", "fc"], {"m": {"spearman": scores}})
    assert result.mean("m", "spearman").tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="unknown metric"):
        result.mean("m", "ssim")


# ---------------------------------------------------------------------------- data randomisation


def test_data_randomisation():
    model, other = toy.small_cnn(seed=0), toy.small_cnn(seed=1)
    before = toy.model_state(model)
    methods = {"gradient": backward_gradient, "input": the_input}
    same = sanity.data_randomisation(
        model, toy.small_cnn(seed=0), images(), None, methods, pixels_per_cell=CELLS
    )
    different = sanity.data_randomisation(
        model, other, images(), None, methods, pixels_per_cell=CELLS
    )
    for metric in sanity.METRICS:
        assert same["gradient"][metric].shape == (4,)
        assert torch.allclose(same["gradient"][metric], torch.ones(4, dtype=torch.float64))
        assert torch.allclose(different["input"][metric], torch.ones(4, dtype=torch.float64))
    assert different["gradient"]["spearman"].mean() < 0.5
    toy.assert_same_state(before, toy.model_state(model))
    with pytest.raises(ValueError, match=r"eval\(\)"):
        sanity.data_randomisation(
            model, other.train(), images(), None, methods, pixels_per_cell=CELLS
        )


# --------------------------------------------------------------------------- saved maps (resume)


def test_cache_key_saves_every_stage_and_a_stopped_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model = toy.small_cnn(seed=0)
    calls = []

    def counted(model, inputs, target):
        calls.append(len(inputs))
        return gradient(model, inputs, target)

    plain = run(model, {"gradient": gradient}, batch_size=3)
    assert not (tmp_path / "chunks").exists()  # no cache_key: nothing is written
    first = run(model, {"gradient": counted}, batch_size=3, cache_key="gradient v1")
    n_stages = len(first.stages)
    assert calls == [3, 1] * n_stages
    for metric in sanity.METRICS:
        torch.testing.assert_close(
            first.scores["gradient"][metric], plain.scores["gradient"][metric], rtol=0, atol=0
        )
    folders = sorted((tmp_path / "chunks").iterdir())
    assert len(folders) == n_stages  # one per stage: its weights differ

    calls.clear()
    again = run(model, {"gradient": counted}, batch_size=3, cache_key="gradient v1")
    assert calls == []
    (folders[-1] / "3-4.pt").unlink()  # as if the run had stopped in a stage's last chunk
    resumed = run(model, {"gradient": counted}, batch_size=3, cache_key="gradient v1")
    assert calls == [1]
    for result in (again, resumed):
        torch.testing.assert_close(
            result.scores["gradient"]["spearman"],
            first.scores["gradient"]["spearman"],
            rtol=0,
            atol=0,
        )
    run(model, {"gradient": counted}, batch_size=3, cache_key="gradient v2")
    assert len(calls) == 1 + 2 * n_stages  # another key computes everything again
    with pytest.raises(TypeError, match="cache_key"):
        run(model, {"gradient": gradient}, cache_key=3)


def test_data_randomisation_with_a_cache_key_loads_the_same_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model, other = toy.small_cnn(seed=0), toy.small_cnn(seed=1)
    calls = []

    def counted(model, inputs, target):
        calls.append(len(inputs))
        return gradient(model, inputs, target)

    plain = sanity.data_randomisation(
        model, other, images(), None, {"gradient": gradient}, pixels_per_cell=CELLS
    )
    args = (model, other, images(), None, {"gradient": counted})
    saved = sanity.data_randomisation(*args, pixels_per_cell=CELLS, cache_key="k")
    assert calls == [4, 4]  # the trained and the shuffled model's maps
    loaded = sanity.data_randomisation(*args, pixels_per_cell=CELLS, cache_key="k")
    assert calls == [4, 4]  # both loaded
    assert len(list((tmp_path / "chunks").iterdir())) == 2
    for result in (saved, loaded):
        torch.testing.assert_close(
            result["gradient"]["ssim"], plain["gradient"]["ssim"], rtol=0, atol=0
        )
