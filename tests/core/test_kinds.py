"""The kinds of pathway built side by side (``pathlib_core.kinds``) are the library's own
pathways, read off once per sparsity, and their boolean storage gives them back unchanged."""

import pytest
import torch
import toy_models as toy

from pathlib_core import kinds, neuron_contributions, pruning, select_pathway
from pathlib_core.attribution import restricted_input_gradient

pytestmark = pytest.mark.usefixtures("single_thread")

OPTIONS = {"n_steps": 20, "step_size": 0.1, "seed": 3}


def _setup(batch=3, seed=1):
    model = toy.small_cnn(seed=seed)
    torch.manual_seed(seed + 10)
    return model, torch.randn(batch, 1, 8, 8, dtype=torch.float64)


def _same(a, b):
    return a.sites == b.sites and all(torch.equal(a.masks[n], b.masks[n]) for n in a.sites)


def test_boolean_pathways_give_back_masks_and_settings():
    model, x = _setup()
    taylor = neuron_contributions(model, x)
    made = {"a": select_pathway(taylor, 0.5), "b": pruning.random_pathway(model, x, 0.7)}
    held = kinds.BooleanPathways(made)
    assert list(held) == ["a", "b"] and len(held) == 2
    for key, pathway in made.items():
        back = held[key]
        assert back is not pathway and _same(back, pathway)
        assert back.settings == pathway.settings
        assert torch.equal(back.sparsity, pathway.sparsity)
    with pytest.raises(KeyError):
        held["c"]
    with pytest.raises(TypeError, match="holds Pathways"):
        kinds.BooleanPathways({"a": None})


def test_by_kind_is_the_library_pathways_with_the_references_once():
    model, x = _setup()
    wanted = [0.5, 0.8]
    paths = kinds.by_kind(model, x, [kinds.WHOLE, kinds.ACTIVE, *kinds.COMPARED], wanted, **OPTIONS)
    assert list(paths) == [kinds.WHOLE, kinds.ACTIVE, *kinds.COMPARED]
    assert paths[kinds.WHOLE] == {0.0: None}
    assert _same(paths[kinds.ACTIVE][0.0], pruning.active_pathway(model, x))
    taylor = neuron_contributions(model, x)
    integrated = neuron_contributions(model, x, method="integrated")
    gates_u = pruning.learned_gates(model, x, init="uniform", n_steps=20, seed=3, progress=False)
    greedy = pruning.greedy_pathways(model, x, wanted, step_size=0.1, progress=False)
    for s in wanted:
        assert _same(paths["NeuronMCT"][s], select_pathway(taylor, s))
        assert _same(paths["NeuronIntGrad"][s], select_pathway(integrated, s))
        assert _same(paths["DGR (init U)"][s], select_pathway(gates_u, s))
        assert _same(paths["Greedy"][s], greedy[s])
        assert _same(paths["Random"][s], pruning.random_pathway(model, x, s, seed=3))
        assert paths["DGR (init 1)"][s].settings["init"] == "ones"
    # the two initialisations learn different gates
    assert not _same(paths["DGR (init 1)"][0.8], paths["DGR (init U)"][0.8])


def test_builder_refuses_unknown_kinds_and_unrun_greedy_sparsities():
    model, x = _setup()
    with pytest.raises(ValueError, match="unknown kinds"):
        kinds.KindBuilder(model, x, ["NeuronMCT", "Saliency"])
    builder = kinds.KindBuilder(model, x, ["Greedy", "NeuronMCT"], [0.5], step_size=0.1)
    assert list(builder.at(0.5)) == ["Greedy", "NeuronMCT"]
    with pytest.raises(ValueError, match="pass every sparsity"):
        builder.at(0.5)  # a greedy pathway is handed over once
    assert builder.kept_prediction == {}


def test_compare_keeps_what_is_asked_and_measures_preservation_as_it_goes():
    model, x = _setup()
    result = kinds.compare(model, x, [0.3, 0.6, 0.9], keep=[0.6], sweep=[0.3, 0.9], **OPTIONS)
    assert list(result.pathways) == [0.6]
    assert isinstance(result.pathways[0.6], kinds.BooleanPathways)
    assert list(result.pathways[0.6]) == list(kinds.COMPARED)
    assert list(result.preservation) == list(kinds.COMPARED)
    taylor = neuron_contributions(model, x)
    for s in (0.3, 0.9):
        measured, removed = result.preservation["NeuronMCT"][s]
        expected = pruning.output_preservation(model, x, select_pathway(taylor, s))
        assert torch.equal(measured.relative_change, expected.relative_change)
        assert removed == pytest.approx(float(select_pathway(taylor, s).sparsity.mean()))
    assert 0.6 not in result.preservation["Random"]
    assert torch.equal(result.targets, taylor.targets)
    assert result.whole.sparsity.eq(0).all()  # the whole network as a pathway keeps everything
    active = pruning.output_preservation(model, x, pruning.active_pathway(model, x))
    assert torch.equal(result.active_preservation.p_pathway, active.p_pathway)
    assert set(result.kept_prediction) == {"DGR (init 1)", "DGR (init U)"}
    both = result.at(0.6)
    assert list(both)[:2] == [kinds.WHOLE, kinds.ACTIVE] and len(both) == 8
    with pytest.raises(ValueError, match="among the sparsities"):
        kinds.compare(model, x, [0.3], keep=[0.5], **OPTIONS)


def test_compare_with_saved_gate_chunks_gives_the_same_pathways(tmp_path, monkeypatch):
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path))
    model, x = _setup()
    whole = kinds.compare(model, x, [0.7], keep=[0.7], **OPTIONS)
    chunked = kinds.compare(model, x, [0.7], keep=[0.7], gate_chunk=2, **OPTIONS)
    for kind in kinds.COMPARED:
        assert _same(whole.pathways[0.7][kind], chunked.pathways[0.7][kind])
    assert any(tmp_path.rglob("*.pt"))  # the gates were saved per input


def test_decode_and_gradients_run_every_kind_of_one_batch():
    model, x = _setup()
    taylor = neuron_contributions(model, x)
    through = {"all": select_pathway(taylor, 0.0), "mct": select_pathway(taylor, 0.7)}
    decoded, recognised = kinds.decode_kinds(
        model, x, taylor.targets, through, bounds=(-1.0, 1.0), n_steps=5
    )
    assert decoded.shape == (2, *x.shape) and recognised.shape == (2, 3)
    assert decoded.min() >= -1 and decoded.max() <= 1
    with torch.no_grad():
        again = model(decoded.flatten(0, 1)).argmax(1).view(2, 3) == taylor.targets
    assert torch.equal(recognised, again)
    maps = kinds.gradients(model, x, taylor.targets, through)
    assert list(maps) == ["all", "mct"]
    plain = x.clone().requires_grad_(True)
    model(plain).gather(1, taylor.targets[:, None]).sum().backward()
    assert torch.allclose(maps["all"], plain.grad)
    expected = restricted_input_gradient(model, x, taylor.targets, through["mct"])[0]
    assert torch.equal(maps["mct"], expected)
    assert not torch.equal(maps["mct"], maps["all"])


def test_every_kind_has_one_colour():
    assert set(kinds.COLOURS) == set(kinds.KINDS)
    assert len(set(kinds.COLOURS.values())) == len(kinds.KINDS)
