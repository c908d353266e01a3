"""The explorer: its views agree with the library computed independently, its controls redraw
the figure headlessly, the models are left untouched, and bad input fails clearly."""

import importlib.util

import numpy as np
import pytest
import torch
import toy_models as toy

from pathlib_core import PathwayGradient, explorer, methods, plotting, pruning
from pathlib_core.explorer import Explorer, State, digit_subjects

FAST = methods.common_options(ig_steps=4, smoothgrad_samples=2, dgr_steps=5)


@pytest.fixture
def tool(mnist_model):
    return Explorer(digit_subjects(3, model=mnist_model), options=FAST)


def _mask_fractions(pathway):
    """Each site's kept fraction counted from the boolean masks (not from kept_fraction)."""
    return {name: float(mask[0].double().mean()) for name, mask in pathway.masks.items()}


def _display(maps):
    return plotting.saliency_to_display(maps.detach(), cap_percentile=plotting.CAP_PERCENTILE)[0]


def _second_class(tool, image):
    return tool.top_classes(image, k=2)[1][0]


@pytest.mark.parametrize("contribution", ["taylor", "integrated"])
def test_pathway_gradient_view_equals_pathway_gradient(tool, mnist_model, contribution):
    image = list(tool.subjects)[1]
    x, target = tool.subjects[image].inputs, _second_class(tool, image)  # not the predicted class
    for sparsity in (0.0, 0.7, 0.95):
        view = tool.compute(
            tool.state(image, explorer.PATHWAY_GRADIENT, sparsity, target, contribution)
        )
        maps, pathway = PathwayGradient(mnist_model).attribute(
            x, target, sparsity=sparsity, contribution=contribution, return_pathway=True
        )
        assert view.kept == pytest.approx(_mask_fractions(pathway), rel=1e-12)
        assert view.kept_overall == pytest.approx(float(1 - pathway.sparsity[0]), abs=1e-12)
        assert view.kept_overall <= 1 - sparsity + 1e-12
        np.testing.assert_allclose(view.saliency, _display(maps), atol=1e-6)
        assert view.state.target == target
        assert view.state.label == explorer.PAPER_NAMES[contribution]


def test_dgr_and_baseline_views_equal_the_registry(tool, mnist_model):
    image = list(tool.subjects)[0]
    x = tool.subjects[image].inputs
    target = torch.tensor([tool.top_classes(image, 1)[0][0]])
    dgr = tool.compute(tool.state(image, "DGR", 0.8))
    expected = methods.attribute("DGR", mnist_model, x, target, sparsity=0.8, n_steps=5)
    np.testing.assert_allclose(dgr.saliency, _display(expected), atol=1e-6)
    pathway = pruning.learned_pathway(mnist_model, x, 0.8, n_steps=5, progress=False)
    assert dgr.kept == pytest.approx(_mask_fractions(pathway), rel=1e-12)
    for name in ("Gradient", "GradCAM"):
        view = tool.compute(tool.state(image, name, sparsity=0.5, contribution="integrated"))
        np.testing.assert_allclose(
            view.saliency, _display(methods.attribute(name, mnist_model, x, target)), atol=1e-6
        )
        assert view.kept is None and view.kept_overall is None
        assert view.state.sparsity == 0.0 and view.state.contribution == "taylor"  # ignored


def test_sweep_and_cache(tool):
    image = list(tool.subjects)[0]
    views = tool.sweep(image, [0.0, 0.5, 0.9], "NeuronIntGrad")
    assert [v.state.contribution for v in views] == ["integrated"] * 3
    assert [v.kept_overall for v in views] == sorted((v.kept_overall for v in views), reverse=True)
    assert views[0].kept_overall == 1.0
    again = tool.compute(State(image, explorer.PATHWAY_GRADIENT, 0.9, None, "integrated"))
    assert again is views[2]  # the same settings come back from the cache
    with pytest.raises(ValueError, match="NeuronMCT"):
        tool.sweep(image, [0.5], "NeuronMTC")
    with pytest.raises(ValueError, match="Gradient has no pathway"):
        tool.sweep(image, [0.5], "Gradient")
    with pytest.raises(TypeError):
        tool.options["DGR"]["n_steps"] = 1000  # would leave cached DGR views stale
    with pytest.raises(ValueError):
        again.probabilities[0] = 1.0  # shared by every view of the image


def _frames(html):
    import base64
    import io
    import re

    from PIL import Image

    found = re.findall(r'"data:image/(png|jpeg);base64,([^"]*)"', html)
    return [
        Image.open(io.BytesIO(base64.b64decode(re.sub(r"\\\n|\s", "", data)))) for _, data in found
    ]


def test_slider_plays_the_drawn_views_in_palette_frames(tool):
    image = list(tool.subjects)[0]
    sparsities = [0.0, 0.5, 0.9]
    views = tool.sweep(image, sparsities, "NeuronMCT")
    html = explorer.slider(views, sparsities, "a title", photo=False).data
    frames = _frames(html)
    assert len(frames) == 3 and all(f.format == "PNG" and f.mode == "P" for f in frames)
    assert 'src="http' not in html  # plays offline
    plain = plotting.scrubber(  # the same player without the palette
        [explorer.draw(v, size=(7.2, 2.8)) for v in views],
        [f"sparsity {s:g}" for s in sparsities],
        title="a title",
        size=7.2,
    )
    for frame, reference in zip(frames, _frames(plain.data), strict=True):
        played, drawn = (np.asarray(f.convert("RGB"), float) for f in (frame, reference))
        assert played.shape == drawn.shape
        assert np.abs(played - drawn).mean() < 1  # faithful up to the palette
    first, last = (np.asarray(frames[i].convert("L"), float) for i in (0, 2))
    assert np.abs(first - last).mean() > 1  # and the sparsities differ


def _snapshot(widget):
    shown, saliency, kept = widget.figure.axes
    return {
        "png": widget.picture.value,
        "map": np.array(saliency.images[0].get_array()),
        "bars": [p.get_height() for p in kept.patches],
        "titles": shown.get_title() + saliency.get_title(),
    }


def _changed(before, after, *keys):
    return all(
        not np.array_equal(before[k], after[k]) if k == "map" else before[k] != after[k]
        for k in keys
    )


def test_widget_controls_redraw_the_figure(tool):
    pytest.importorskip("ipywidgets")
    image = list(tool.subjects)[0]
    ui = tool.widget(image=image, sparsity=0.9)
    first = _snapshot(ui)
    assert ui.error is None and first["png"][:4] == b"\x89PNG"
    assert first["bars"] == pytest.approx(list(tool.compute(ui.current_state()).kept.values()))

    ui.contribution.value = "integrated"
    second = _snapshot(ui)
    assert ui.error is None and _changed(first, second, "png", "map", "bars")
    assert "NeuronIntGrad" in second["titles"]

    ui.sparsity.value = 0.5
    third = _snapshot(ui)
    assert _changed(second, third, "png", "map", "bars")
    assert third["bars"] == pytest.approx(
        list(tool.compute(tool.state(image, sparsity=0.5, contribution="integrated")).kept.values())
    )

    other = _second_class(tool, image)
    ui.target.value = other
    fourth = _snapshot(ui)
    assert _changed(third, fourth, "png", "map") and f"target '{other}'" in fourth["titles"]

    ui.method.value = "Gradient"
    fifth = _snapshot(ui)
    assert ui.sparsity.disabled and ui.contribution.disabled and fifth["bars"] == []
    assert "no pathway" in ui.figure.axes[2].texts[0].get_text()

    ui.image.value = list(tool.subjects)[2]
    sixth = _snapshot(ui)
    predicted = tool.top_classes(ui.image.value, 1)[0][0]
    assert ui.target.value == predicted and len(ui.target.options) == 10
    assert _changed(fifth, sixth, "png", "map")

    ui.image.value, ui.method.value = image, explorer.PATHWAY_GRADIENT
    ui.contribution.value, ui.sparsity.value = "taylor", 0.9
    assert not ui.sparsity.disabled and not ui.contribution.disabled
    assert ui.error is None and _snapshot(ui)["png"] == first["png"]  # back where it started


def test_a_failed_redraw_shows_the_error_and_no_stale_picture(tool, monkeypatch):
    pytest.importorskip("ipywidgets")
    ui = tool.widget()
    assert ui.picture.value

    def fail(state):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tool, "compute", fail)
    ui.sparsity.value = 0.5
    assert ui.error == "RuntimeError: out of memory" and "out of memory" in ui.status.value
    assert ui.picture.value == b""


def test_photo_targets_are_the_top_five_imagenet_classes():
    pytest.importorskip("ipywidgets")
    tool = Explorer(explorer.photo_subjects(["chelsea"]), methods=[explorer.PATHWAY_GRADIENT])
    ui = tool.widget(sparsity=0.95)
    labels = [label for label, _ in ui.target.options]
    assert len(labels) == 5 and "cat" in labels[0] and ui.target.value == ui.target.options[0][1]
    before = _snapshot(ui)
    ui.target.value = ui.target.options[1][1]
    assert ui.error is None and _changed(before, _snapshot(ui), "png", "map", "bars")
    assert len(before["bars"]) == len(tool.compute(ui.current_state()).kept) > 12


def test_the_models_are_left_untouched(mnist_model):
    mnist_model.relu2.register_forward_hook(lambda module, args, output: None)
    before = toy.model_state(mnist_model)
    tool = Explorer(digit_subjects(2, model=mnist_model), options=FAST)
    for image in tool.subjects:
        for method in tool.methods:
            tool.compute(tool.state(image, method, 0.8, contribution="integrated"))
    if importlib.util.find_spec("ipywidgets"):
        ui = tool.widget(method="DGR")
        ui.sparsity.value = 0.6
        ui.method.value = "GuidedBackprop"
    toy.assert_same_state(before, toy.model_state(mnist_model))


def test_bad_input_fails_clearly(tool, mnist_model):
    image = list(tool.subjects)[0]
    with pytest.raises(ValueError, match="unknown image 'cat'; choose one of 'test digit"):
        tool.state("cat")
    with pytest.raises(ValueError, match="did you mean 0.9"):
        tool.state(image, sparsity=90)
    with pytest.raises(ValueError, match=r"use an int in \[0, 9\]"):
        tool.state(image, target=10)
    with pytest.raises(ValueError, match="unknown contribution kind 'mct'"):
        tool.state(image, contribution="mct")
    with pytest.raises(ValueError, match="unknown method 'SmoothGrad'"):
        tool.state(image, method="SmoothGrad")  # registered, but not offered by this explorer
    with pytest.raises(TypeError, match="takes a State"):
        tool.compute({"image": image})
    with pytest.raises(ValueError, match="unknown method"):
        Explorer(list(tool.subjects.values()), methods=["Saliency"])
    with pytest.raises(TypeError, match="digit_subjects"):
        Explorer([])
    subject = tool.subjects[image]
    for inputs, classes in ((subject.inputs[0], subject.classes), (subject.inputs, ("a", "b"))):
        with pytest.raises(ValueError, match=r"batch of one \(images\[i : i \+ 1\]"):
            Explorer([explorer.Subject("x", mnist_model, inputs, subject.picture, classes)])
    mnist_model.train()
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        Explorer([subject])
    assert all(m.training for m in mnist_model.modules())  # the mode is reported, not changed


def test_live_explorer_only_outside_pathbook(monkeypatch):
    monkeypatch.setenv(plotting.CONTEXT_VARIABLE, "{}")
    assert not explorer.live_allowed()
    monkeypatch.delenv(plotting.CONTEXT_VARIABLE)
    assert explorer.live_allowed()


def test_drawn_view_names_the_overall_share_in_its_title_not_over_the_bars(tool):
    image = list(tool.subjects)[0]
    (view,) = tool.sweep(image, [0.5], "NeuronMCT")
    kept = explorer.draw(view).axes[2]
    assert kept.get_legend() is None
    assert "(dashed: all sites, " in kept.get_title() and "kept)" in kept.get_title()
    assert len(kept.get_xticks()) <= 14
