"""Figures for the book: grids of images, figures saved with provenance, static sliders, one
colour per method across all chapters, and `say` for a chapter's generated prose.

`save_figure` writes a PNG and a JSON provenance record (notebook, parameters, content hash,
device, package versions, date). Under `pathbook build` the notebook's kernel receives that
context in the `PATHBOOK_CONTEXT` environment variable; in a plain Jupyter session figures go to
`./figures/` (or `$PATHLIB_CORE_FIGURES`) with whatever context is known.
"""

from __future__ import annotations

import contextlib
import html
import importlib.metadata
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .cache import atomic_write

CONTEXT_VARIABLE = "PATHBOOK_CONTEXT"
FIGURE_DIR_VARIABLE = "PATHLIB_CORE_FIGURES"
_VERSIONED = ("torch", "torchvision", "captum", "timm", "numpy", "matplotlib")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _context() -> dict[str, Any]:
    raw = os.environ.get(CONTEXT_VARIABLE)
    return json.loads(raw) if raw else {}


def _versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def _device_record(context: dict[str, Any]) -> dict[str, str]:
    """The device the chapter computed on, from its ``device`` parameter (absent: the CPU, every
    function's default): ``{"type": "cpu"}``, or for CUDA ``{"type": "cuda", "name": GPU}``.
    A figure made on a GPU can differ in its last bits from the CPU's, so a reader must be able
    to tell. CUDA is queried only for a CUDA device; an unusable value is recorded as given."""
    import torch

    requested = context.get("parameters", {}).get("device", "cpu")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        return {"type": str(requested)}
    record = {"type": device.type}
    if device.type == "cuda" and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, AssertionError, ValueError):
            record["name"] = torch.cuda.get_device_name(device)
    return record


def _numpy(values: Any) -> np.ndarray:
    """An array of ``values``; a tensor is detached and copied to the CPU first (NumPy cannot
    read a GPU tensor)."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
    return np.asarray(values)


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def provenance_note(record: dict[str, Any]) -> str:
    """The line shown under a figure in the book, as HTML."""
    params = ", ".join(f"{k}={v!r}" for k, v in record.get("parameters", {}).items())
    made_by = record.get("notebook", "an interactive session")
    parts = [f"made by {made_by}"]
    if record.get("profile"):
        parts.append(f"profile {record['profile']}" + (f" ({params})" if params else ""))
    if record.get("content_hash"):
        parts.append(f"content hash {record['content_hash']}")
    device = record.get("device")
    if device:
        parts.append(
            f"device {device['type']}" + (f" ({device['name']})" if "name" in device else "")
        )
    parts.append(", ".join(f"{k} {v}" for k, v in record["packages"].items()))
    parts.append(record["date"])
    caption = (
        f"<b>Figure {html.escape(record['figure'])}.</b> {html.escape(record['caption'])} "
        if record.get("caption")
        else f"<b>Figure {html.escape(record['figure'])}.</b> "
    )
    return (
        f'<p class="pathbook-provenance" style="font-size:0.85em;color:#444">{caption}'
        f'<span style="color:#777">({html.escape("; ".join(parts))})</span></p>'
    )


@dataclass(frozen=True)
class SavedFigure:
    """Where `save_figure` wrote a figure, and its provenance record.

    It displays as nothing: `save_figure` has already shown the figure, so a call at the end of a
    cell does not print the paths as well.
    """

    png: Path
    provenance: Path
    record: dict[str, Any]

    def _ipython_display_(self) -> None:
        pass


# One colour per method in every chapter: the pathway methods in blue, cyan and red, as in the
# chapters that compare pathways; "NeuronIntGrad*" is a variant that only the paper's plots show.
METHOD_COLOURS = {
    "Gradient": "tab:olive",
    "InputXGradient": "tab:pink",
    "IntegratedGradients": "tab:green",
    "SmoothGrad": "goldenrod",
    "GuidedBackprop": "tab:brown",
    "GradCAM": "indigo",
    "DeepLift": "salmon",
    "NeuronMCT": "tab:blue",
    "NeuronIntGrad": "tab:cyan",
    "NeuronIntGrad*": "darkslategray",
    "DGR": "tab:red",
    "Random": "black",
    "GEN-CNP": "darkorange",
}
_SPARE_COLOURS = ("tab:purple", "tab:orange", "tab:gray", "darkkhaki", "teal", "crimson")


def method_style(name: str, pathway: bool | None = None) -> dict[str, str]:
    """``color`` and ``ls`` for plotting ``name``: its fixed colour (a spare one, chosen from the
    name, for a method the palette does not know), dashed for pathway methods. ``pathway``
    overrides the family lookup (names are looked up in ``pathlib_core.methods``)."""
    colour = METHOD_COLOURS.get(name)
    if colour is None:
        colour = _SPARE_COLOURS[sum(name.encode()) % len(_SPARE_COLOURS)]
    if pathway is None:
        from . import methods

        pathway = name in methods.names("pathway") or name.startswith("Neuron")
    return {"color": colour, "ls": "--" if pathway else "-"}


def say(text: str) -> None:
    """Show ``text`` (Markdown) as the chapter's prose: numbers the notebook computed, in words."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def save_figure(
    fig: Any,
    name: str,
    caption: str | None = None,
    *,
    dpi: int = 150,
    folder: str | os.PathLike | None = None,
    show: bool = True,
) -> SavedFigure:
    """Save `fig` as `NAME.png` with `NAME.json` (its provenance) and show both in the notebook.

    The folder is `folder`, else the one pathbook assigns to this chapter, else
    `$PATHLIB_CORE_FIGURES`, else `./figures`. Both files are written atomically.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"figure name {name!r} must be letters, digits, '_' or '-' "
            "(it becomes a file name), e.g. 'digit_grid'."
        )
    context = _context()
    target = Path(
        folder or context.get("figure_dir") or os.environ.get(FIGURE_DIR_VARIABLE) or "figures"
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    png = buffer.getvalue()
    record = {
        "figure": name,
        "caption": caption or "",
        "notebook": context.get("notebook"),
        "chapter": context.get("chapter"),
        "profile": context.get("profile"),
        "parameters": context.get("parameters", {}),
        "content_hash": context.get("content_hash"),
        "device": _device_record(context),
        "packages": _versions(),
        "date": datetime.now(timezone.utc).date().isoformat(),
    }
    saved = SavedFigure(target / f"{name}.png", target / f"{name}.json", record)
    _write_atomic(saved.png, png)
    _write_atomic(saved.provenance, json.dumps(record, indent=1).encode())
    if show and _in_notebook():
        import matplotlib.pyplot as plt
        from IPython.display import HTML, Image, display

        plt.close(fig)
        display(Image(data=png), HTML(provenance_note(record)))
    return saved


def image_grid(
    images: Any,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    size: float = 1.2,
    suptitle: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: str | None = None,
):
    """A grid of images (N, H, W) or (N, H, W, 3) as one matplotlib figure, axes off.

    Without `vmin`/`vmax` each panel is scaled on its own; give them to share one colour scale,
    and `colorbar` (its label) to draw that scale beside the grid.
    """
    import matplotlib.pyplot as plt

    images = _numpy(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 3); got shape {images.shape}.")
    n = len(images)
    nrows = max(1, -(-n // ncols))
    if colorbar is not None and (vmin is None or vmax is None):
        raise ValueError("a colorbar needs a shared scale: pass vmin and vmax too.")
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            shown = ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if colorbar is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label=colorbar)
    return fig


def saliency_to_display(maps: Any, cap_percentile: float | None = None) -> np.ndarray:
    """Attributions ``(N, C, H, W)`` (or ``(N, H, W)``) as ``(N, H, W)`` images in [0, 1], the
    official display (book/definitions.md, "The pathway gradient"): per pixel the channel value of
    largest magnitude, sign kept, then ``|.|`` divided by each map's maximum (an all-zero map stays
    zero).

    With ``cap_percentile`` (e.g. :data:`CAP_PERCENTILE`) each map is divided instead by that
    percentile of its non-zero magnitudes and capped at 1, as SmoothGrad's figures cap at the 99th
    percentile (Smilkov et al., 2017). Counting only non-zero pixels keeps the rule meaningful for
    a sparse pathway's map, where most pixels are exactly zero; a few very large pixels then no
    longer leave the rest of the map black."""
    import torch

    if cap_percentile is not None and (
        isinstance(cap_percentile, bool)
        or not isinstance(cap_percentile, (int, float))
        or not 0.0 < float(cap_percentile) <= 100.0
    ):
        raise ValueError(
            f"cap_percentile must be None (the official display) or a number in "
            f"(0, 100], got {cap_percentile!r}; e.g. {CAP_PERCENTILE}."
        )
    tensor = torch.as_tensor(maps).detach().cpu().double()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 4:
        raise ValueError(f"maps must be (N, C, H, W) or (N, H, W); got {tuple(tensor.shape)}.")
    largest, smallest = tensor.max(dim=1).values, tensor.min(dim=1).values
    signed = torch.where(largest.abs() >= smallest.abs(), largest, smallest)
    magnitude = signed.abs().flatten(1)
    if cap_percentile is None:
        peak = magnitude.max(dim=1).values
    else:
        peak = torch.tensor(
            [
                float(np.percentile(row[row > 0].numpy(), float(cap_percentile)))
                if bool((row > 0).any())
                else 0.0
                for row in magnitude
            ],
            dtype=magnitude.dtype,
        )
    shown = (magnitude / peak.clamp_min(1e-300).unsqueeze(1)).clamp_max(1.0)
    return shown.view(signed.shape).numpy()


CAP_PERCENTILE = 99.0
"""The percentile of a map's non-zero magnitudes at which the book's figures cap their colour
scale (:func:`saliency_to_display`; SmoothGrad's display)."""


def map_rgb(maps: Any, cap_percentile: float | None = CAP_PERCENTILE) -> np.ndarray:
    """The first map of ``maps`` (``(N, C, H, W)``) as an ``(H, W, 3)`` picture in the inferno
    colours, as the book shows maps: :func:`saliency_to_display` capped at ``cap_percentile``."""
    import matplotlib.pyplot as plt

    return plt.cm.inferno(saliency_to_display(maps, cap_percentile=cap_percentile)[0])[..., :3]


def map_grid(
    pictures: Sequence[Any],
    maps: Sequence[Sequence[Any]],
    titles: Sequence[str] = (),
    size: float = 1.2,
):
    """A grid with one row per input: the input's picture (``(H, W)`` grey or ``(H, W, 3)``),
    then its maps (each ``(1, C, H, W)``, drawn by :func:`map_rgb`). ``titles`` name the panels
    row by row; panels past the end stay untitled (give one row's titles to head the columns).
    Rows of smaller pictures are enlarged by a whole factor to the largest, so digits and photos
    can share a grid."""
    import matplotlib.pyplot as plt

    if len(pictures) == 0 or len(pictures) != len(maps):
        raise ValueError(
            f"need one row of maps per picture and at least one picture; got {len(pictures)} "
            f"pictures and {len(maps)} rows of maps."
        )
    ncols = 1 + len(maps[0])
    if any(1 + len(row) != ncols for row in maps):
        raise ValueError("every row must hold as many maps; pad a shorter row or split the grid.")
    images = []
    for picture, row in zip(pictures, maps, strict=True):
        picture = _numpy(picture)
        images.append(picture if picture.ndim == 3 else plt.cm.gray(picture)[..., :3])
        images.extend(map_rgb(m) for m in row)
    largest = max(im.shape[0] for im in images)
    images = [
        np.kron(im, np.ones((largest // im.shape[0], largest // im.shape[0], 1)))
        if im.shape[0] < largest
        else im
        for im in images
    ]
    titles = list(titles)[: len(images)] + [""] * max(0, len(images) - len(titles))
    return image_grid(np.stack(images), titles=titles, ncols=ncols, size=size)


# matplotlib's JavaScript player draws its buttons with Font Awesome 4.4 from a CDN; the book
# must work offline, so the icons become plain characters and the stylesheet link goes.
_BUTTON_TEXT = {
    "fa fa-minus": "&minus;",
    "fa fa-fast-backward": "&laquo;",
    "fa fa-step-backward": "&lsaquo;",
    "fa fa-play fa-flip-horizontal": "&#x25C0;",
    "fa fa-pause": "||",
    "fa fa-play": "&#x25B6;",
    "fa fa-step-forward": "&rsaquo;",
    "fa fa-fast-forward": "&raquo;",
    "fa fa-plus": "+",
}


def _offline_jshtml(text: str) -> str:
    text = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", text)
    for css_class, glyph in _BUTTON_TEXT.items():
        text = text.replace(f'<i class="{css_class}"></i>', glyph)
    if re.search(r'(src|href)="https?://', text):
        raise RuntimeError(
            "matplotlib's player links an outside resource this code does not "
            "know how to replace; update _offline_jshtml."
        )
    return text


def _as_array(frame: Any) -> np.ndarray:
    if hasattr(frame, "canvas"):  # a matplotlib figure: rasterise it
        frame.canvas.draw()
        return np.asarray(frame.canvas.buffer_rgba())[..., :3]
    return _numpy(frame)


def scrubber(
    frames: Sequence[Any],
    labels: Sequence[str],
    *,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    size: float = 3.0,
    interval: int = 600,
    frame_format: str = "png",
):
    """A self-contained JavaScript slider over precomputed frames, for the static book.

    `frames` are images (H, W) / (H, W, 3) or matplotlib figures; `labels` name each frame.
    The player is `size` inches wide, the frames fill it at the first frame's aspect, with a line
    for the label above. `frame_format` "jpeg" makes photographs several times smaller than "png".
    Returns an `IPython.display.HTML` (matplotlib's `to_jshtml`, without outside requests).
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    if len(frames) == 0 or len(frames) != len(labels):
        raise ValueError(
            f"need one label per frame and at least one frame; got {len(frames)} "
            f"frames and {len(labels)} labels."
        )
    if frame_format not in ("png", "jpeg"):
        raise ValueError(f"frame_format must be 'png' or 'jpeg', got {frame_format!r}.")
    arrays = [_as_array(f) for f in frames]
    height, width = arrays[0].shape[:2]
    picture, heading_room = size * height / width, 0.3  # inches
    fig = plt.figure(figsize=(size, picture + heading_room))
    ax = fig.add_axes((0.0, 0.0, 1.0, picture / (picture + heading_room)))
    ax.axis("off")
    shown = ax.imshow(arrays[0], cmap=cmap, vmin=vmin, vmax=vmax)
    heading = ax.set_title(f"{title + ': ' if title else ''}{labels[0]}", fontsize=9)

    def draw(i: int):
        shown.set_data(arrays[i])
        heading.set_text(f"{title + ': ' if title else ''}{labels[i]}")
        return shown, heading

    player = animation.FuncAnimation(fig, draw, frames=len(arrays), interval=interval, blit=False)
    with plt.rc_context({"animation.embed_limit": 64, "animation.frame_format": frame_format}):
        text = player.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(_offline_jshtml(text))
