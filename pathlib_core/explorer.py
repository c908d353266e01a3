"""The explorer: one input's attribution map and its pathway's kept fraction per site, for a
chosen method, sparsity, target class and contribution kind: the pathway gradient of Khakzar et
al. 2021 through the input's own pathway (book/definitions.md), next to the pruning objective's
pathway (DGR) and baseline methods.

Computing and drawing are plain code, usable without widgets: ``Explorer.compute(state)`` gives a
``View`` (cached per state, and the neuron contributions per input, target and kind, so that a
sparsity sweep costs one selection and one gradient per step), ``draw(view)`` a matplotlib figure
that the static book turns into ``plotting.scrubber`` frames. ``Explorer.widget()`` wires
ipywidgets controls to them for a live Jupyter session (ipywidgets is imported only there).
"""

from __future__ import annotations

import base64
import functools
import io
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import data, models, plotting
from . import methods as registry
from ._validation import check_choice, check_eval_mode, check_module, check_sparsity
from .attribution import restricted_input_gradient
from .cache import model_device
from .contribution import neuron_contributions
from .pathway import Pathway, select_pathway
from .pruning import learned_gates

PATHWAY_GRADIENT = "PathwayGradient"
"""The paper's method; its contribution kind picks the selection criterion (book/definitions.md,
"Neuron contributions")."""
PAPER_NAMES = {"taylor": "NeuronMCT", "integrated": "NeuronIntGrad"}
"""The paper's name of the pathway gradient with each contribution kind."""
PATHWAY_METHODS = (PATHWAY_GRADIENT, "DGR")
"""Methods that select a pathway (DGR: the pruning objective's, ``pruning.learned_gates``)."""
DEFAULT_METHODS = (
    PATHWAY_GRADIENT,
    "DGR",
    "Gradient",
    "InputXGradient",
    "IntegratedGradients",
    "GuidedBackprop",
    "GradCAM",
)
DEFAULT_OPTIONS = registry.common_options(ig_steps=32, smoothgrad_samples=16, dgr_steps=100)
"""Options of the registry's methods in the explorer: fewer steps than the paper's, to stay live."""


@dataclass(frozen=True, eq=False)
class Subject:
    """One input to explore: its ``model`` (eval mode), ``inputs`` (a batch of one), ``picture``
    (H, W) or (H, W, 3) in [0, 1] to draw beside the map, and the model's ``classes`` by name."""

    name: str
    model: nn.Module
    inputs: Tensor
    picture: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class State:
    """What the controls select. ``target=None`` explains the predicted class; ``sparsity`` is
    the fraction of neurons removed (pathway methods); ``contribution`` is ``"taylor"`` or
    ``"integrated"`` (the pathway gradient only)."""

    image: str
    method: str = PATHWAY_GRADIENT
    sparsity: float = 0.9
    target: int | None = None
    contribution: str = "taylor"

    @property
    def label(self) -> str:
        """The method's name in the book: NeuronMCT or NeuronIntGrad for the pathway gradient."""
        return PAPER_NAMES[self.contribution] if self.method == PATHWAY_GRADIENT else self.method


@dataclass(frozen=True, eq=False)
class View:
    """What one state shows: the displayed map (H, W) in [0, 1] (``plotting.saliency_to_display``
    capped at ``plotting.CAP_PERCENTILE``, as the book's figures), the pathway's kept fraction
    per site (``None`` for a method without a pathway) and overall, the predicted class and the
    class probabilities."""

    state: State
    subject: Subject
    saliency: np.ndarray
    kept: Mapping[str, float] | None
    kept_overall: float | None
    predicted: int
    probabilities: np.ndarray


def photo_subjects(
    names: Sequence[str], model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> list[Subject]:
    """Photographs (``data.photo``) with EfficientNet-Lite0 (loaded on ``device`` when ``model``
    is None; a given model stays where it is)."""
    model = models.efficientnet_lite0(device) if model is None else model
    classes = tuple(data.imagenet_classes())
    photos = [(name, data.photo(name)) for name in names]
    return [Subject(name, model, x, data.photo_to_display(x), classes) for name, x in photos]


def digit_subjects(
    n: int, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> list[Subject]:
    """The first ``n`` MNIST test digits taken one class at a time, with the MNIST CNN (loaded
    on ``device`` when ``model`` is None; a given model stays where it is)."""
    model = models.mnist_cnn(device=device) if model is None else model
    images, labels = data.mnist("test")
    chosen = data.interleaved_by_class(labels, n).tolist()
    return [
        Subject(
            f"test digit {i} (class {int(labels[i])})",
            model,
            images[i : i + 1],
            data.mnist_to_display(images[i]),
            tuple(str(c) for c in range(10)),
        )
        for i in chosen
    ]


def _check_subjects(subjects: Sequence[Subject]) -> dict[str, Subject]:
    if not subjects or not all(isinstance(s, Subject) for s in subjects):
        raise TypeError(
            "Explorer needs a non-empty list of Subjects; make them with "
            "photo_subjects(...) or digit_subjects(...)."
        )
    named = {s.name: s for s in subjects}
    if len(named) != len(subjects):
        raise ValueError("two subjects share a name; give each input its own name.")
    for s in subjects:
        check_module(s.model)
        check_eval_mode(s.model)
        if not isinstance(s.inputs, Tensor) or not s.inputs.is_floating_point():
            raise TypeError(f"subject {s.name!r}: inputs must be a float tensor.")
        _check_logits(s)
    return named


def _check_logits(subject: Subject) -> None:
    """The model must give (1, len(classes)) logits for the subject's inputs."""
    fix = (
        "inputs must be a batch of one (images[i : i + 1], not images[i]) and classes must "
        "name every output of the model"
    )
    try:
        with torch.no_grad():
            logits = subject.model(subject.inputs.to(model_device(subject.model)))
    except RuntimeError as error:
        raise ValueError(
            f"subject {subject.name!r}: the model fails on its inputs ({error}); {fix}."
        ) from error
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (1, len(subject.classes)):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"subject {subject.name!r}: the model gives {shape} for its inputs, "
            f"expected (1, {len(subject.classes)}); {fix}."
        )


class Explorer:
    """Attribution maps and pathways of a few inputs, computed on demand and cached.

    ``methods`` are ``"PathwayGradient"`` and names of ``pathlib_core.methods``; ``options`` are
    the registry methods' options (method name -> options); ``n_steps`` the integration steps of
    integrated contributions. The models are only read: no mode, parameter or hook changes.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        methods: Sequence[str] = DEFAULT_METHODS,
        options: Mapping[str, Mapping[str, object]] | None = None,
        n_steps: int = 10,
        cache_size: int = 256,
    ) -> None:
        self.subjects = _check_subjects(subjects)
        unknown = [m for m in methods if m != PATHWAY_GRADIENT and m not in registry.METHODS]
        if unknown or not methods:
            raise ValueError(
                f"unknown method(s) {unknown}; use {PATHWAY_GRADIENT!r} or names of "
                f"pathlib_core.methods: {', '.join(registry.METHODS)}."
            )
        self.methods = tuple(methods)
        # read-only: the cached views depend on them
        self.options = MappingProxyType(
            {
                k: MappingProxyType(dict(v))
                for k, v in (DEFAULT_OPTIONS if options is None else options).items()
            }
        )
        self.n_steps = n_steps
        self._view = functools.lru_cache(maxsize=cache_size)(self._compute)
        self._contributions = functools.lru_cache(maxsize=8)(self._neuron_contributions)
        self._gates = functools.lru_cache(maxsize=8)(self._learned_gates)
        self._probabilities = functools.lru_cache(maxsize=None)(self._predict)

    # ------------------------------------------------------------------------------ computing

    def state(
        self,
        image: str | None = None,
        method: str = PATHWAY_GRADIENT,
        sparsity: float = 0.9,
        target: int | None = None,
        contribution: str = "taylor",
    ) -> State:
        """A checked ``State`` in canonical form: the target resolved to a class index, and the
        settings a method ignores fixed (sparsity 0 without a pathway, contribution "taylor"
        except for the pathway gradient), so that equal views share one cache entry."""
        image = next(iter(self.subjects)) if image is None else image
        check_choice(image, "image", list(self.subjects))
        check_choice(method, "method", self.methods)
        check_choice(contribution, "contribution kind", list(PAPER_NAMES))
        sparsity = check_sparsity(sparsity)
        if method not in PATHWAY_METHODS:
            sparsity = 0.0
        probabilities = self._probabilities(image)
        if target is None:
            target = int(probabilities.argmax())
        if (
            isinstance(target, bool)
            or not isinstance(target, (int, np.integer))
            or not (0 <= target < len(probabilities))
        ):
            raise ValueError(
                f"target {target!r} is not a class of {image!r}; use an int in "
                f"[0, {len(probabilities) - 1}] or None for the predicted class."
            )
        if method != PATHWAY_GRADIENT:
            contribution = "taylor"
        return State(image, method, sparsity, int(target), contribution)

    def compute(self, state: State) -> View:
        """The view of ``state`` (checked with ``state()`` first; cached)."""
        if not isinstance(state, State):
            raise TypeError(
                f"compute takes a State (explorer.state(...)), got {type(state).__name__}."
            )
        return self._view(
            self.state(state.image, state.method, state.sparsity, state.target, state.contribution)
        )

    def sweep(
        self,
        image: str,
        sparsities: Sequence[float],
        name: str = "NeuronMCT",
        target: int | None = None,
    ) -> list[View]:
        """The views of one input at each sparsity for the method the book calls ``name``
        (``State.label``: NeuronMCT, NeuronIntGrad, DGR, or another of ``methods``)."""
        kinds = {label: kind for kind, label in PAPER_NAMES.items()}
        if name not in kinds and name not in self.methods:
            raise ValueError(
                f"unknown method {name!r}; choose one of {', '.join(kinds)} or "
                f"{', '.join(self.methods)}."
            )
        method = PATHWAY_GRADIENT if name in kinds else name
        if method not in PATHWAY_METHODS:
            raise ValueError(
                f"{name} has no pathway, so its map does not change with the "
                f"sparsity; sweep {', '.join([*kinds, 'DGR'])}."
            )
        return [
            self.compute(self.state(image, method, s, target, kinds.get(name, "taylor")))
            for s in sparsities
        ]

    def probabilities(self, image: str) -> np.ndarray:
        """The model's class probabilities (softmax) for ``image``."""
        check_choice(image, "image", list(self.subjects))
        return self._probabilities(image).copy()

    def top_classes(self, image: str, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` most probable classes of ``image`` as (index, probability), best first."""
        probabilities = self.probabilities(image)
        order = np.argsort(-probabilities, kind="stable")[:k]
        return [(int(i), float(probabilities[i])) for i in order]

    def _predict(self, image: str) -> np.ndarray:
        subject = self.subjects[image]
        with torch.no_grad():
            logits = subject.model(subject.inputs.to(model_device(subject.model)))
        probabilities = torch.softmax(logits.double(), dim=1)[0].cpu().numpy()
        probabilities.setflags(write=False)  # shared by every view of this input
        return probabilities

    def _neuron_contributions(self, image: str, target: int, contribution: str):
        subject = self.subjects[image]
        return neuron_contributions(
            subject.model,
            subject.inputs.to(model_device(subject.model)),
            target,
            method=contribution,
            n_steps=self.n_steps,
        )

    def _learned_gates(self, image: str):
        subject = self.subjects[image]
        options = {**registry.METHODS["DGR"].defaults, **self.options.get("DGR", {})}
        return learned_gates(
            subject.model,
            subject.inputs.to(model_device(subject.model)),
            init=options["init"],
            n_steps=options["n_steps"],
            seed=options["seed"],
            progress=False,
        )

    def _pathway(self, state: State) -> Pathway:
        if state.method == "DGR":
            return select_pathway(self._gates(state.image), state.sparsity)
        contributions = self._contributions(state.image, state.target, state.contribution)
        return select_pathway(contributions, state.sparsity)

    def _compute(self, state: State) -> View:
        subject = self.subjects[state.image]
        x = subject.inputs.to(model_device(subject.model))
        target = torch.tensor([state.target], device=x.device)
        kept = overall = None
        if state.method in PATHWAY_METHODS:
            pathway = self._pathway(state)
            maps = restricted_input_gradient(subject.model, x, target, pathway)[0]
            kept = {name: float(v[0]) for name, v in pathway.kept_fraction().items()}
            overall = float(1.0 - pathway.sparsity[0])
        else:
            options = self.options.get(state.method, {})
            maps = registry.get(state.method, **options)(subject.model, x, target)
        saliency = plotting.saliency_to_display(
            maps.detach(), cap_percentile=plotting.CAP_PERCENTILE
        )[0].astype(np.float32)
        saliency.setflags(write=False)
        probabilities = self._probabilities(state.image)
        return View(
            state, subject, saliency, kept, overall, int(probabilities.argmax()), probabilities
        )

    def widget(self, **initial: Any) -> ExplorerWidget:
        """Live controls for Jupyter (needs ipywidgets, in the ``[book]`` extra); ``initial``
        are ``state()``'s arguments for the first view."""
        return ExplorerWidget(self, self.state(**initial))


# ---------------------------------------------------------------------------------- drawing


def _percent(value: float, _position: object = None) -> str:
    return f"{100 * value:g}%"


def draw(view: View, figure: Any = None, size: tuple[float, float] = (9.6, 3.4)) -> Any:
    """The view as a matplotlib figure: the input, its map (inferno, as ``saliency_to_display``
    scales it) and the pathway's kept fraction per site in forward order, on a log scale.
    Redraws ``figure`` if given, else makes one of ``size`` inches at 100 dpi (with an Agg
    canvas, not managed by pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    if figure is None:
        figure = Figure(figsize=size, dpi=100)
        FigureCanvasAgg(figure)
    figure.clear()
    shown, saliency, kept = figure.subplots(1, 3, width_ratios=[1, 1, 1.9])
    state, classes = view.state, view.subject.classes
    shown.imshow(view.subject.picture, cmap="gray", vmin=0, vmax=1)
    shown.set_title(f"{view.subject.name}\npredicted '{classes[view.predicted]}'", fontsize=8)
    saliency.imshow(view.saliency, cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
    saliency.set_title(
        f"{state.label}, target '{classes[state.target]}'\n(p = "
        f"{view.probabilities[state.target]:.3f})",
        fontsize=8,
    )
    for ax in (shown, saliency):
        ax.axis("off")
    if view.kept is None:
        kept.axis("off")
        kept.text(
            0.5,
            0.5,
            f"no pathway:\n{state.label} uses the whole network",
            ha="center",
            va="center",
            fontsize=9,
            transform=kept.transAxes,
        )
    else:
        names, values = list(view.kept), list(view.kept.values())
        colour = plotting.method_style(state.label, pathway=True)["color"]
        kept.bar(range(len(values)), values, color=colour, width=0.8)
        kept.axhline(view.kept_overall, color="0.3", ls="--", lw=0.8)
        kept.set_yscale("log")
        kept.set_ylim(1e-4, 1.5)
        kept.yaxis.set_major_formatter(FuncFormatter(_percent))
        step = -(-len(names) // 14)  # at most 14 readable labels
        ticks = range(0, len(names), step)
        kept.set_xticks(list(ticks), [names[i] for i in ticks], rotation=90, fontsize=7)
        kept.tick_params(axis="y", labelsize=7)
        kept.set_ylabel("neurons kept", fontsize=8)
        kept.set_title(
            f"pathway at sparsity {state.sparsity:g}: kept per site\n(dashed: all sites, "
            f"{_percent(round(view.kept_overall, 4))} kept)",
            fontsize=8,
        )
    figure.tight_layout(pad=0.4)
    return figure


def png(figure: Any) -> bytes:
    """The figure as PNG bytes (what the live explorer shows)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


_PNG_FRAME = re.compile(r'"data:image/png;base64,([^"]*)"')


def _palette_png(match: re.Match) -> str:
    from PIL import Image

    encoded = re.sub(r"\\\n|\s", "", match.group(1))  # the player breaks lines with a backslash
    picture = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
    buffer = io.BytesIO()
    picture.quantize(256).save(buffer, format="PNG", optimize=True)
    return f'"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"'


def slider(views: Sequence[View], sparsities: Sequence[float], title: str, *, photo: bool) -> Any:
    """The static book's slider over a sweep's ``views`` (at ``sparsities``): each drawn as by
    ``draw`` and played by ``plotting.scrubber``. Photographs' frames are JPEG; the digits'
    flat-coloured frames are 256-colour PNG (indistinguishable here, a third of the bytes), so
    that a full-profile page stays a few megabytes."""
    from IPython.display import HTML

    size = (9.6, 3.4) if photo else (7.2, 2.8)
    player = plotting.scrubber(
        [draw(view, size=size) for view in views],
        [f"sparsity {sparsity:g}" for sparsity in sparsities],
        title=title,
        size=size[0],
        frame_format="jpeg" if photo else "png",
    )
    return HTML(_PNG_FRAME.sub(_palette_png, player.data))


def live_allowed() -> bool:
    """False when ``pathbook`` executes the notebook (the book or ``pathbook run``): nobody is
    there to move a control, and the static book carries no widget JavaScript."""
    return plotting.CONTEXT_VARIABLE not in os.environ


# ---------------------------------------------------------------------------------- widgets


class ExplorerWidget:
    """ipywidgets controls (image, method, sparsity, target, contribution) that redraw the view.

    ``figure`` is the matplotlib figure drawn last and ``picture`` the ``ipywidgets.Image``
    showing it; ``error`` holds the message of a failed redraw (also shown under the picture).
    """

    def __init__(self, explorer: Explorer, state: State) -> None:
        import ipywidgets as w

        self.explorer, self.figure, self.error = explorer, None, None
        self._quiet = False
        slider = {
            "min": 0.0,
            "max": 0.99,
            "step": 0.01,
            "readout_format": ".2f",
            "continuous_update": False,
        }
        self.image = w.Dropdown(
            options=list(explorer.subjects), value=state.image, description="input"
        )
        self.method = w.Dropdown(
            options=list(explorer.methods), value=state.method, description="method"
        )
        self.sparsity = w.FloatSlider(value=state.sparsity, description="sparsity", **slider)
        self.target = w.Dropdown(description="target")
        self.contribution = w.ToggleButtons(
            options=list(PAPER_NAMES), value=state.contribution, description="contribution"
        )
        self.picture = w.Image(format="png")
        self.status = w.HTML()
        self._fill_targets(state.target)
        self._enable()
        for control in (self.method, self.sparsity, self.target, self.contribution):
            control.observe(self._changed, names="value")
        self.image.observe(self._image_changed, names="value")
        controls = w.VBox([self.image, self.method, self.sparsity, self.target, self.contribution])
        self.box = w.VBox([controls, self.picture, self.status])
        self.redraw()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def _fill_targets(self, value: int | None) -> None:
        """Target choices: the top five classes (all ten for a ten-class model), by name."""
        image = self.image.value
        classes = self.explorer.subjects[image].classes
        top = self.explorer.top_classes(image, k=5 if len(classes) > 10 else len(classes))
        if value is not None and value not in [i for i, _ in top]:  # a class chosen in code
            top.append((value, float(self.explorer.probabilities(image)[value])))
        self._quiet = True
        try:
            self.target.options = [(f"{classes[i]} ({100 * p:.1f}%)", i) for i, p in top]
            self.target.value = top[0][0] if value is None else value
        finally:
            self._quiet = False

    def _enable(self) -> None:
        method = self.method.value
        self.sparsity.disabled = method not in PATHWAY_METHODS
        self.contribution.disabled = method != PATHWAY_GRADIENT

    def _image_changed(self, change: dict) -> None:
        self._fill_targets(None)
        self.redraw()

    def _changed(self, change: dict) -> None:
        if not self._quiet:
            self._enable()
            self.redraw()

    def current_state(self) -> State:
        """The state the controls show, checked."""
        return self.explorer.state(
            self.image.value,
            self.method.value,
            self.sparsity.value,
            self.target.value,
            self.contribution.value,
        )

    def redraw(self) -> None:
        """Compute the controls' view (cached) and show it; a failure is shown, not raised."""
        start = time.perf_counter()
        try:
            view = self.explorer.compute(self.current_state())
            self.figure = draw(view, self.figure)
            self.picture.value = png(self.figure)
        except (ValueError, TypeError, RuntimeError) as error:
            self.error = f"{type(error).__name__}: {error}"
            self.picture.value = b""  # no picture of other settings under these controls
            self.status.value = f"<span style='color:#b00'>{self.error}</span>"
            return
        self.error = None
        self.status.value = (
            f"<small>{view.state.label} on {view.state.image}: "
            f"{time.perf_counter() - start:.2f} s</small>"
        )


def default_explorer(
    photos: Sequence[str] = ("chelsea", "coffee"),
    n_digits: int = 3,
    *,
    device: str | torch.device = "cpu",
    **kwargs: Any,
) -> Explorer:
    """An explorer of ``photos`` with EfficientNet-Lite0 and ``n_digits`` MNIST test digits with
    the MNIST CNN (either may be empty), both models on ``device``; ``kwargs`` go to
    ``Explorer``."""
    device = models.resolve_device(device)  # a missing GPU fails before any model is loaded
    subjects = (photo_subjects(photos, device=device) if photos else []) + (
        digit_subjects(n_digits, device=device) if n_digits else []
    )
    return Explorer(subjects, **kwargs)


__all__ = [
    "DEFAULT_METHODS",
    "PAPER_NAMES",
    "PATHWAY_GRADIENT",
    "PATHWAY_METHODS",
    "Explorer",
    "ExplorerWidget",
    "State",
    "Subject",
    "View",
    "default_explorer",
    "digit_subjects",
    "draw",
    "live_allowed",
    "photo_subjects",
    "png",
    "slider",
]
