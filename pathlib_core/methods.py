"""One registry of attribution methods, used by every chapter (book/definitions.md, "Methods
compared").

``methods.get(name, **options)`` returns an ``AttributionFn``: ``fn(model, inputs, target)`` ->
input-shaped maps ``(B, C, H, W)``, signed, not post-processed. The baselines are Captum's own
implementations, never re-implemented here; the pathway methods are this library's. Adding a
method is one ``register`` line at the bottom of this file.

Two Captum limits are handled on a private copy of the model (the caller's model is never
changed): Guided Backprop and DeepLift only know ``nn.ReLU`` modules (Captum tests the module's
type), so in the copy every ``nn.ReLU6`` becomes an ``nn.ReLU`` module that computes ReLU6 (its
guided and rescale rules are exactly those of a ReLU6), and in-place units are made out of place.
A third: Captum's DeepLift keeps one input and output per activation module, so for DeepLift an
activation module that one forward pass calls several times (torchvision ResNet's ``self.relu``)
becomes, in the copy, one fresh unit per call, used in call order.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from torch import Tensor, nn
from tqdm import tqdm

from ._validation import check_choice, check_positive_int, check_sparsity
from .attribution import PathwayGradient, restricted_input_gradient
from .pathway import select_pathway
from .pruning import INITS, learned_gates
from .resumable import learned_gates_in_chunks

AttributionFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Method:
    """A registered method: ``build(**options)`` returns its ``AttributionFn``.

    ``paper_name`` is the name in the paper's tables and the official code (``None`` where the
    paper did not evaluate the method); ``family`` is ``"baseline"`` or ``"pathway"``."""

    name: str
    build: Callable[..., AttributionFn]
    family: str
    paper_name: str | None = None
    description: str = ""
    defaults: dict[str, object] = field(default_factory=dict)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (its name must be new)."""
    if method.name in METHODS:
        raise ValueError(
            f"a method named {method.name!r} is already registered; pick another name."
        )
    if method.family not in ("baseline", "pathway"):
        raise ValueError(f"family must be 'baseline' or 'pathway', got {method.family!r}.")
    METHODS[method.name] = method
    return method


def names(family: str | None = None) -> list[str]:
    """Registered method names, in registration order (optionally of one family)."""
    return [n for n, m in METHODS.items() if family is None or m.family == family]


def get(name: str, **options: object) -> AttributionFn:
    """The attribution function of ``name`` with ``options`` (e.g. ``sparsity=0.7`` for the
    pathway methods, ``n_steps=50`` for IntegratedGradients)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(METHODS)}.")
    method = METHODS[name]
    unknown = set(options) - set(method.defaults)
    if unknown:
        raise TypeError(
            f"{name} has no option(s) {sorted(unknown)}; its options are "
            f"{sorted(method.defaults) or 'none'}."
        )
    return method.build(**{**method.defaults, **options})


def attribute(name: str, model: nn.Module, inputs: Tensor, target: Tensor, **options) -> Tensor:
    """``get(name, **options)(model, inputs, target)``."""
    return get(name, **options)(model, inputs, target)


def attribute_all(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    options: Mapping[str, Mapping[str, object]] | None = None,
    names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Maps of every method in ``names`` (default: all registered), each with its ``options``
    (method name -> options), computed ``batch_size`` inputs at a time, detached, on the CPU."""
    options = options or {}
    names = list(METHODS) if names is None else list(names)
    step = batch_size or len(inputs)
    result = {}
    for name in tqdm(names, desc="attribution methods", disable=not progress):
        fn = get(name, **options.get(name, {}))
        chunks = [
            fn(model, inputs[i : i + step], target[i : i + step]).detach().cpu()
            for i in range(0, len(inputs), step)
        ]
        result[name] = torch.cat(chunks)
    return result


def common_options(
    *,
    sparsity: float = 0.9,
    ig_steps: int = 50,
    smoothgrad_samples: int = 25,
    dgr_steps: int = 300,
    seed: int = 0,
    dgr_gate_chunk: int | None = None,
) -> dict[str, dict[str, object]]:
    """Options for ``attribute_all`` from the few settings the chapters vary: the pathway
    sparsity, Integrated Gradients' steps, SmoothGrad's samples, DGR's pruning-objective steps and
    the seed of the stochastic methods; ``dgr_gate_chunk`` saves DGR's gates per input, learned
    that many at a time (see the DGR method). Methods not named keep the registry's defaults."""
    return {
        "IntegratedGradients": {"n_steps": ig_steps},
        "SmoothGrad": {"nt_samples": smoothgrad_samples, "seed": seed},
        "NeuronMCT": {"sparsity": sparsity},
        "NeuronIntGrad": {"sparsity": sparsity},
        "DGR": {
            "sparsity": sparsity,
            "n_steps": dgr_steps,
            "seed": seed,
            "gate_chunk": dgr_gate_chunk,
        },
    }


# ------------------------------------------------------------------------------- helpers


class _UnitPerCall(nn.Module):
    """Stands in for an activation module that one forward pass calls ``len(units)`` times: the
    k-th call of a pass goes to ``units[k]`` (a counter modulo the number of calls, set back to 0
    by a pre-hook on the root module at the start of every pass), so each unit sees one call."""

    def __init__(self, units: list[nn.Module]):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        unit = self.units[self.calls % len(self.units)]
        self.calls += 1
        return unit(x)


def _relu_unit(relu6: bool) -> nn.Module:
    unit = nn.ReLU()  # exactly nn.ReLU: Captum's DeepLift looks up type(module)
    if relu6:
        unit.forward = partial(F.relu6, inplace=False)
    return unit


def captum_compatible(model: nn.Module, inputs: Tensor | None = None) -> nn.Module:
    """``model`` itself when Captum's ReLU rules apply to it unchanged; otherwise a copy in which
    every ``nn.ReLU6`` is an ``nn.ReLU`` module computing ReLU6 and no unit is in place. With
    ``inputs``, also every ReLU or ReLU6 module that a forward pass on ``inputs[:1]`` calls several
    times becomes a ``_UnitPerCall`` holding one fresh such unit per call (as DeepLift needs)."""
    calls = {} if inputs is None else _check_single_use_units(model, inputs)
    units = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not calls and not any(isinstance(m, nn.ReLU6) or m.inplace for m in units):
        return model
    memo: dict[int, object] = {}
    clone = copy.deepcopy(model, memo)
    split = {}  # id of a copied unit that runs several times -> its stand-in
    for key, n in calls.items():
        relu6 = isinstance(memo[key], nn.ReLU6)
        split[id(memo[key])] = _UnitPerCall([_relu_unit(relu6) for _ in range(n)])
    for parent in list(clone.modules()):
        for child_name, child in list(parent._modules.items()):  # every name of a shared unit
            if id(child) in split:
                setattr(parent, child_name, split[id(child)])
            elif isinstance(child, nn.ReLU6):
                setattr(parent, child_name, _relu_unit(True))
            elif isinstance(child, nn.ReLU):
                child.inplace = False
    if split:
        clone.register_forward_pre_hook(partial(_restart_calls, list(split.values())))
    return clone


def _restart_calls(stand_ins: list[_UnitPerCall], *_) -> None:
    """A forward pre-hook: a pass starts at every stand-in's first unit (returns None, so the
    inputs pass unchanged)."""
    for stand_in in stand_ins:
        stand_in.calls = 0


def _fresh(inputs: Tensor) -> Tensor:
    return inputs.detach().clone().requires_grad_(True)


def _finished_modules(model: nn.Module, x: Tensor, wanted: Callable[[object], bool]) -> list:
    """Every module call of one forward pass on ``x[:1]`` (containers included), in the order
    the calls finish, whose output satisfies ``wanted``; hooks removed afterwards."""
    seen: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda module, _, out: seen.append(module) if wanted(out) else None)
        for m in model.modules()
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _last_spatial_module(model: nn.Module, inputs: Tensor) -> nn.Module:
    """The last module to finish with a 4-D feature map larger than 1 x 1: Grad-CAM's layer
    (ResNet's ``layer4``, Lite0's last activation, the MNIST CNN's last pooling; a global
    pooling's 1 x 1 output would make the map constant). Containers count, so a block ending in a
    functional operation (a residual sum) is taken whole."""
    seen = _finished_modules(
        model,
        inputs,
        lambda out: isinstance(out, Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1,
    )
    if not seen:
        raise ValueError("Grad-CAM needs a layer with a 4-D (B, C, H, W) output; pass layer=.")
    return seen[-1]


def _check_single_use_units(model: nn.Module, inputs: Tensor) -> dict[int, int]:
    """The ReLU and ReLU6 modules that one forward pass on ``inputs[:1]`` calls several times
    (torchvision ResNet's ``self.relu``): ``id(module)`` -> calls per pass. Captum's DeepLift
    keeps one input and output per activation module, so ``captum_compatible`` splits them."""
    counts: dict[int, int] = {}
    for unit in _finished_modules(model, inputs, lambda out: True):
        if isinstance(unit, (nn.ReLU, nn.ReLU6)):
            counts[id(unit)] = counts.get(id(unit), 0) + 1
    return {key: n for key, n in counts.items() if n > 1}


# ------------------------------------------------------------------------------- builders


def _saliency() -> AttributionFn:
    return lambda model, x, target: Saliency(model).attribute(_fresh(x), target=target, abs=False)


def _input_x_gradient() -> AttributionFn:
    return lambda model, x, target: InputXGradient(model).attribute(_fresh(x), target=target)


def _integrated_gradients(n_steps: int, internal_batch_size: int | None) -> AttributionFn:
    """Captum's IntegratedGradients; ``internal_batch_size=None`` runs the interpolated inputs in
    chunks of about 4 million input values (all of them at once for MNIST, 26 photos at 224 px),
    so that the activations of a large model fit in memory."""

    def fn(model, x, target):
        chunk = internal_batch_size or max(x.shape[0], int(4e6 // x[0].numel()))
        return IntegratedGradients(model).attribute(
            x.detach(), target=target, n_steps=n_steps, internal_batch_size=chunk
        )

    return fn


def _smoothgrad(nt_samples: int, noise_level: float, seed: int) -> AttributionFn:
    """SmoothGrad (Smilkov et al., 2017): mean gradient under Gaussian noise of standard
    deviation ``noise_level`` times each image's value range. One image at a time (Captum takes
    one noise level per input tensor), each with the same seeded noise stream, so an image's map
    does not depend on the rest of the batch."""

    def fn(model, x, target):
        tunnel = NoiseTunnel(Saliency(model))
        maps = []
        for image, label in zip(x.detach(), target.reshape(-1).expand(x.shape[0]), strict=False):
            stdev = noise_level * float(image.max() - image.min())
            with torch.random.fork_rng(devices=[image.device] if image.is_cuda else []):
                torch.manual_seed(seed)
                maps.append(
                    tunnel.attribute(
                        _fresh(image[None]),
                        target=int(label),
                        nt_type="smoothgrad",
                        nt_samples=nt_samples,
                        stdevs=stdev,
                        abs=False,
                    )
                )
        return torch.cat(maps)

    return fn


def _with_captum_rules(kind: type) -> Callable[[], AttributionFn]:
    """Guided Backprop or DeepLift on ``captum_compatible(model)``; Captum's notices that it
    sets hooks (and removes them afterwards) are silenced."""

    def build() -> AttributionFn:
        def fn(model, x, target):
            compatible = captum_compatible(model, x if kind is DeepLift else None)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"\s*Setting (forward|backward)")
                return kind(compatible).attribute(_fresh(x), target=target)

        return fn

    return build


def _gradcam(layer: str | None) -> AttributionFn:
    """Grad-CAM (Selvaraju et al., 2017) at ``layer`` (a qualified module name; default the last
    4-D feature map), ReLU applied, bilinearly upsampled to the input size and repeated over the
    input channels."""

    def fn(model, x, target):
        module = _last_spatial_module(model, x) if layer is None else model.get_submodule(layer)
        cam = LayerGradCam(model, module).attribute(
            _fresh(x), target=target, relu_attributions=True
        )
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return cam.expand(-1, x.shape[1], -1, -1).detach()

    return fn


def _pathway_gradient(contribution: str, sparsity: float, n_steps: int) -> AttributionFn:
    def fn(model, x, target):
        return PathwayGradient(model).attribute(
            x, target=target, sparsity=sparsity, contribution=contribution, n_steps=n_steps
        )

    return fn


def _learned_pathway_gradient(
    sparsity: float, n_steps: int, init: str, seed: int, gate_chunk: int | None
) -> AttributionFn:
    """The gradient through the pruning objective's pathway (``pruning.learned_pathway``) at the
    same sparsity: PathwayGradient with DGR in place of the contribution criterion. With
    ``gate_chunk``, the gates are learned that many inputs at a time and saved per input
    (``resumable.learned_gates_in_chunks``): a stopped run resumes, and gates learned before on
    the same model, inputs and settings (by any chapter) are loaded instead of learned again.
    The options are checked here, when the method is built, not at its first call."""
    wanted = check_sparsity(sparsity)
    settings = {
        "init": check_choice(init, "DGR init", INITS),
        "n_steps": check_positive_int(n_steps, "DGR n_steps"),
        "seed": seed,
        "progress": False,
    }
    if gate_chunk is not None:
        gate_chunk = check_positive_int(gate_chunk, "DGR gate_chunk")

    def fn(model, x, target):
        gates = (
            learned_gates(model, x, **settings)
            if gate_chunk is None
            else learned_gates_in_chunks(model, x, gate_chunk, **settings)
        )
        return restricted_input_gradient(model, x, target, select_pathway(gates, wanted))[0]

    return fn


# ------------------------------------------------------------------------------- the registry

register(
    Method("Gradient", _saliency, "baseline", "Gradients", "plain input gradient (Captum Saliency)")
)
register(
    Method("InputXGradient", _input_x_gradient, "baseline", "InputMCT", "gradient times input")
)
register(
    Method(
        "IntegratedGradients",
        _integrated_gradients,
        "baseline",
        "InputIntGrad",
        "Integrated Gradients, zero baseline",
        {"n_steps": 50, "internal_batch_size": None},
    )
)
register(
    Method(
        "SmoothGrad",
        _smoothgrad,
        "baseline",
        None,
        "NoiseTunnel(Saliency)",
        {"nt_samples": 25, "noise_level": 0.15, "seed": 0},
    )
)
register(
    Method(
        "GuidedBackprop",
        _with_captum_rules(GuidedBackprop),
        "baseline",
        "GBP",
        "Guided Backpropagation",
    )
)
register(
    Method("GradCAM", _gradcam, "baseline", "GradCAM", "LayerGradCam, upsampled", {"layer": None})
)
register(
    Method(
        "DeepLift",
        _with_captum_rules(DeepLift),
        "baseline",
        None,
        "DeepLift (rescale), zero baseline",
    )
)
register(
    Method(
        "NeuronMCT",
        partial(_pathway_gradient, "taylor"),
        "pathway",
        "NeuronMCT",
        "PathwayGradient, Taylor contributions",
        {"sparsity": 0.9, "n_steps": 10},
    )
)
register(
    Method(
        "NeuronIntGrad",
        partial(_pathway_gradient, "integrated"),
        "pathway",
        "NeuronIntGrad",
        "PathwayGradient, integrated contributions",
        {"sparsity": 0.9, "n_steps": 10},
    )
)
register(
    Method(
        "DGR",
        _learned_pathway_gradient,
        "pathway",
        None,
        "gradient through the pruning objective's pathway",
        {"sparsity": 0.9, "n_steps": 300, "init": "ones", "seed": 0, "gate_chunk": None},
    )
)
