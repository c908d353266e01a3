"""save_figure's files and provenance; scrubber's self-contained HTML."""

import json
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from pathlib_core import plotting
from pathlib_core.plotting import image_grid, save_figure, scrubber


def test_save_figure_writes_png_and_provenance_from_pathbook_context(tmp_path, monkeypatch):
    context = {
        "notebook": "notebooks/x.ipynb",
        "chapter": "x",
        "profile": "quick",
        "parameters": {"k": 2},
        "content_hash": "abc123",
        "figure_dir": str(tmp_path),
    }
    monkeypatch.setenv(plotting.CONTEXT_VARIABLE, json.dumps(context))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    saved = save_figure(fig, "demo", "A caption.")
    assert saved.png == tmp_path / "demo.png" and saved.png.read_bytes()[:4] == b"\x89PNG"
    record = json.loads(saved.provenance.read_text())
    assert record["notebook"] == "notebooks/x.ipynb" and record["parameters"] == {"k": 2}
    assert record["content_hash"] == "abc123" and record["caption"] == "A caption."
    assert record["packages"]["matplotlib"] == matplotlib.__version__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "demo.png"]


def test_save_figure_is_deterministic_and_rejects_bad_names(tmp_path):
    def draw():
        fig, ax = plt.subplots()
        ax.imshow(np.arange(16).reshape(4, 4))
        return fig

    first = save_figure(draw(), "same", folder=tmp_path / "1").png.read_bytes()
    second = save_figure(draw(), "same", folder=tmp_path / "2").png.read_bytes()
    assert first == second
    with pytest.raises(ValueError, match="file name"):
        save_figure(draw(), "../escape", folder=tmp_path)


def test_scrubber_is_self_contained():
    frames = [np.full((5, 5), i, dtype=float) for i in range(3)]
    html = scrubber(frames, ["a", "b", "c"], vmin=0, vmax=2).data
    assert "font-awesome" not in html and not re.search(r'(src|href)="https?://', html)
    assert html.count("data:image/png;base64") == 3
    with pytest.raises(ValueError, match="one label per frame"):
        scrubber(frames, ["a"])


def test_scrubber_follows_the_frames_aspect_and_format():
    import base64
    import io

    from PIL import Image

    fig = plt.figure(figsize=(6, 2), dpi=50)  # a matplotlib figure as a frame, 3:1
    fig.add_subplot().plot([0, 1])
    frames = [fig, np.zeros((100, 300, 3))]
    html = scrubber(frames, ["figure", "array"], size=6.0, frame_format="jpeg").data
    encoded = re.findall(r'data:image/jpeg;base64,([^"]+)"', html)
    assert len(encoded) == 2 and "data:image/png" not in html
    width, height = Image.open(io.BytesIO(base64.b64decode(encoded[0]))).size
    assert 2.5 < width / height < 3.0  # the 3:1 frame plus one line for its label
    with pytest.raises(ValueError, match="'png' or 'jpeg'"):
        scrubber(frames, ["a", "b"], frame_format="gif")


def test_image_grid_shapes():
    fig = image_grid(np.zeros((5, 4, 4)), titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="shape"):
        image_grid(np.zeros((4, 4)))
    shared = image_grid(np.random.rand(3, 4, 4), ncols=3, vmin=0, vmax=1, colorbar="value")
    assert len(shared.axes) == 4  # three panels and the colour bar
    assert all(im.get_clim() == (0, 1) for ax in shared.axes[:3] for im in ax.images)
    with pytest.raises(ValueError, match="vmin and vmax"):
        image_grid(np.zeros((2, 4, 4)), colorbar="value")


def test_saliency_to_display_keeps_the_signed_channel_extreme():
    maps = torch.zeros(2, 3, 2, 2)
    maps[0, :, 0, 0] = torch.tensor([0.5, -2.0, 1.0])  # the largest magnitude is negative
    maps[0, :, 1, 1] = torch.tensor([1.0, 0.2, 0.3])
    shown = plotting.saliency_to_display(maps)
    assert shown.shape == (2, 2, 2)
    assert shown[0, 0, 0] == 1.0 and shown[0, 1, 1] == 0.5  # |-2| / 2 and 1 / 2
    assert (shown[1] == 0).all()  # an all-zero map stays zero
    assert plotting.saliency_to_display(torch.ones(1, 4, 4)).shape == (1, 4, 4)
    with pytest.raises(ValueError, match="N, C, H, W"):
        plotting.saliency_to_display(torch.ones(4, 4))


def test_every_registered_method_has_its_own_colour_and_pathways_are_dashed():
    from pathlib_core import methods

    names = methods.names() + ["Random", "NeuronIntGrad*"]
    colours = [plotting.method_style(n)["color"] for n in names]
    assert len(set(colours)) == len(names)  # no two methods share a colour in any chapter
    assert {n for n in names if plotting.method_style(n)["ls"] == "--"} == set(
        methods.names("pathway")
    ) | {"NeuronIntGrad*"}
    unknown = plotting.method_style("MyMethod", pathway=True)
    assert unknown["ls"] == "--" and unknown["color"] == plotting.method_style("MyMethod")["color"]


def test_capped_display_divides_by_a_percentile_of_the_nonzero_magnitudes():
    maps = torch.randn(
        3, 1, 40, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    maps[1, 0, 4, 4] = 50.0  # one outlier that the plain display lets darken everything else
    maps[2] = 0.0
    maps[2, 0, :2, :2] = torch.tensor([[3.0, -1.0], [0.5, 0.25]])  # sparse, as at high sparsity
    for q in (99.0, 90.0):
        shown = plotting.saliency_to_display(maps, cap_percentile=q)
        for i in range(3):
            magnitude = maps[i, 0].abs().numpy()
            cap = np.percentile(magnitude[magnitude > 0], q)  # numpy's linear interpolation
            np.testing.assert_allclose(shown[i], np.minimum(magnitude / cap, 1.0), rtol=1e-12)
    plain = plotting.saliency_to_display(maps)
    capped = plotting.saliency_to_display(maps, cap_percentile=99.0)
    assert np.median(plain[1]) < 0.05 and np.median(capped[1]) > 0.2
    assert (capped[2][2:] == 0).all() and capped[2][0, 0] == 1.0  # zeros stay zero
    assert (plotting.saliency_to_display(torch.zeros(1, 1, 3, 3), cap_percentile=99.0) == 0).all()
    np.testing.assert_array_equal(plotting.saliency_to_display(maps, cap_percentile=100.0), plain)
    for bad in (0, 101, "99", True):
        with pytest.raises(ValueError, match="cap_percentile"):
            plotting.saliency_to_display(maps, cap_percentile=bad)
