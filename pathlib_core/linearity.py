"""Local linearity of a network restricted to a pathway (Khakzar et al., 2021, second claim).

The paper proves that contribution pathways are locally linear in an L2 ball; the statement is not
available to us, so we measure the precise version stated and proved in book/definitions.md ("Local
linearity"). A ReLU network restricted to a pathway is affine on the set of inputs where no kept
neuron changes state (and no max-pooling window changes its winner). On that set every kept
pre-activation ``z_i`` is affine in the input, so the set is a polytope and the largest L2 ball
around ``x`` inside it has radius

    r(x) = min_i dist_i / ||grad_x z_i||,

``dist_i`` the distance of ``z_i`` from its nearest kink (0; also 6 for ReLU6). For a max-pooling
window the constraints are the margins ``u_win - u_j`` between its winner and each other input.
Removed neurons output 0 whatever the input, so they impose nothing: a pathway is linear on a
larger ball than the whole network when the neurons it removes are the ones closest to a kink.

- ``linear_radius``: ``r(x)`` exactly. The Jacobian of every constraint is pushed forward one
  input direction at a time (batched) through the network with its pattern at ``x`` frozen, for
  models small enough to afford ``input size`` forward passes per sample (the MNIST CNN).
- ``linearity_profile``: for any model (EfficientNet-Lite0), the relative first-order error and
  the fraction of kept neurons that change state at ``x + r d`` for radii ``r`` along random and
  gradient-aligned unit directions ``d``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ._validation import (
    Target,
    as_input_tuple,
    check_eval_mode,
    check_logits,
    check_module,
    check_positive_int,
    resolve_target,
)
from .attribution import restricted_input_gradient
from .pathway import Pathway, restrict
from .sites import SITE_TYPES, module_of_site, site_hooks, site_modules

# Leaf modules that are affine in eval mode (or piecewise linear and handled below).
_AFFINE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
)


@dataclass(frozen=True)
class LinearRadius:
    """``radius``: per sample, the L2 radius of the largest ball around the input on which the
    restricted network is affine (float64, ``inf`` if nothing can change). ``by_constraint``:
    per site (and per max-pooling call, named like a site), the smallest radius its own
    constraints allow; ``radius`` is their minimum. ``kinds`` says which constraints are neuron
    kinks (``"relu"``, ``"relu6"``) and which are max-pooling margins (``"pool"``).

    Max-pooling matters: where two inputs of a window tie (a constant background gives equal
    values at neighbouring positions), the pooled output is at a kink and ``radius`` is 0.
    ``neuron_radius`` is the radius of the neuron kinks alone (the paper's setting;
    book/definitions.md, "Local linearity").
    """

    radius: Tensor
    by_constraint: dict[str, Tensor]
    kinds: dict[str, str]

    @property
    def neuron_radius(self) -> Tensor:
        """Per sample, the smallest radius over the neurons' kinks only (pooling ignored)."""
        names = [n for n, kind in self.kinds.items() if kind != "pool"]
        return torch.stack([self.by_constraint[n] for n in names], dim=1).min(dim=1).values

    @property
    def binding(self) -> list[str]:
        """Per sample, the site or pooling layer whose constraint sets the radius."""
        names = list(self.by_constraint)
        stacked = torch.stack([self.by_constraint[n] for n in names], dim=1)
        return [names[i] for i in stacked.argmin(dim=1).tolist()]


def linear_radius(
    model: nn.Module,
    inputs: Tensor,
    pathway: Pathway | None = None,
    chunk: int = 256,
    progress: bool = True,
) -> LinearRadius:
    """The exact radius of the L2 ball on which ``model`` restricted to ``pathway`` is affine
    (module docstring); ``pathway=None`` is the whole network.

    Every ReLU/ReLU6 module must be a site of the pathway (their states define the linear
    region); max-pooling must have ``kernel_size == stride`` and no padding; other leaf modules
    must be affine (convolutions, linear, batch norm with running statistics, average pooling,
    flatten, dropout in eval mode). A nonlinear function called outside these modules (a
    functional ``F.relu`` or ``torch.clamp`` inside some ``forward``) would add constraints this
    computation cannot see, so it is detected during the pass and refused.
    Cost: one forward pass of the batch, then per sample ``inputs[0].numel()`` forward passes of
    the frozen-pattern network (no biases), ``chunk`` at a time.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    check_module(model)
    check_eval_mode(model)
    (x,), _ = as_input_tuple(inputs)
    chunk = check_positive_int(chunk, "chunk")
    modules = _check_piecewise_linear(model, pathway)
    if pathway is not None:
        if not isinstance(pathway, Pathway):
            raise TypeError(f"pathway must be a Pathway or None, got {type(pathway).__name__}.")
        first = next(iter(pathway.masks.values()))
        if pathway.batch_size != x.shape[0] or first.device != x.device:
            raise ValueError(
                f"the pathway holds {pathway.batch_size} samples on {first.device}, the inputs "
                f"{x.shape[0]} on {x.device}; a pathway belongs to its batch of inputs (select "
                "samples with pathway[indices], move it with pathway.to(device))."
            )
    masks = None if pathway is None else pathway.masks
    tracker = _ConstraintTracker(modules)
    # the pattern at x: one masked forward pass of the whole batch
    with (
        torch.no_grad(),
        tracker.recording(model),
        _NoHiddenNonlinearity(model),
        _maybe_restrict(model, pathway),
    ):
        model(x.detach().clone())  # a copy: an in-place first layer must not write into x
    linear_part = _linear_part_parameters(model)
    directions = x[0].numel()
    per_sample = []
    for b in tqdm(range(x.shape[0]), desc="linear radius", disable=not progress):
        with torch.no_grad(), tracker.propagating(model, b, masks):
            for start in range(0, directions, chunk):
                count = min(chunk, directions - start)
                basis = torch.zeros(count, directions, dtype=x.dtype, device=x.device)
                basis[torch.arange(count), torch.arange(start, start + count)] = 1.0
                torch.func.functional_call(
                    model, linear_part, (basis.view(count, *x.shape[1:]),), strict=False
                )
        per_sample.append(tracker.radii(b, masks))
    names = list(per_sample[0])
    by_constraint = {n: torch.stack([r[n] for r in per_sample]) for n in names}
    radius = torch.stack(list(by_constraint.values()), dim=1).min(dim=1).values
    return LinearRadius(radius, by_constraint, dict(tracker.kinds))


@contextmanager
def _maybe_restrict(model: nn.Module, pathway: Pathway | None) -> Iterator[None]:
    if pathway is None:
        yield
    else:
        with restrict(model, pathway):
            yield


def _linear_part_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Zero biases (and zero running means of batch norms): with these, the affine modules compute
    their linear part, so the frozen-pattern network maps a direction v to J v exactly."""
    zeros: dict[str, Tensor] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, _AFFINE) and isinstance(getattr(module, "bias", None), Tensor):
            zeros[prefix + "bias"] = torch.zeros_like(module.bias)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            zeros[prefix + "running_mean"] = torch.zeros_like(module.running_mean)
    return zeros


def _check_piecewise_linear(model: nn.Module, pathway: Pathway | None) -> dict[str, nn.Module]:
    """The ReLU/ReLU6 modules (all of them must be the pathway's sites), after checking that
    every other leaf module is affine or a supported max-pooling."""
    relus = {n: m for n, m in model.named_modules() if isinstance(m, SITE_TYPES)}
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU/nn.ReLU6 modules.")
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or isinstance(module, SITE_TYPES):
            continue
        if isinstance(module, nn.MaxPool2d):
            if (
                _pair(module.kernel_size) != _pair(module.stride)
                or _pair(module.padding)
                != (
                    0,
                    0,
                )
                or _pair(module.dilation) != (1, 1)
                or module.ceil_mode
            ):
                raise ValueError(
                    f"'{name}' is a MaxPool2d with overlapping or padded windows; linear_radius "
                    "supports kernel_size == stride without padding. Use linearity_profile."
                )
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
            raise ValueError(
                f"'{name}' is a batch norm without running statistics: it normalises with the "
                "batch's own statistics, which is not affine in one input."
            )
        elif not isinstance(module, _AFFINE):
            raise ValueError(
                f"'{name}' ({type(module).__name__}) is not known to be affine, so the exact "
                "radius cannot be computed for this model; use linearity_profile instead."
            )
    if pathway is not None:
        covered = {module_of_site(s) for s in pathway.sites}
        missing = sorted(set(relus) - covered)
        if missing:
            raise ValueError(
                f"the pathway has no sites in {missing[:5]}; their states bound the linear region, "
                "so select the pathway over all ReLU modules (sites=None)."
            )
    return relus


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value, value) if isinstance(value, int) else tuple(value)


# Functions that are not affine; called outside a site or pooling module they would be missed.
_NONLINEAR_NAMES = frozenset(
    [
        "relu",
        "relu_",
        "relu6",
        "hardtanh",
        "hardtanh_",
        "threshold",
        "threshold_",
        "clamp",
        "clamp_",
        "clip",
        "clip_",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "maximum",
        "minimum",
        "max",
        "min",
        "amax",
        "amin",
        "abs",
        "abs_",
        "where",
        "sign",
        "gelu",
        "silu",
        "mish",
        "sigmoid",
        "tanh",
        "softmax",
        "log_softmax",
        "elu",
        "selu",
        "celu",
        "leaky_relu",
        "hardswish",
        "hardsigmoid",
        "softplus",
        "round",
        "floor",
        "ceil",
    ]
)


class _NoHiddenNonlinearity(torch.overrides.TorchFunctionMode):
    """Raise when a nonlinear torch function runs outside the calls of the site and pooling
    modules (whose constraints the tracker records)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.depth = 0
        self.handles: list = []

    def __enter__(self):
        for module in self.model.modules():
            if isinstance(module, (*SITE_TYPES, nn.MaxPool2d)):
                self.handles.append(module.register_forward_pre_hook(self._enter))
                self.handles.append(module.register_forward_hook(self._leave))
        return super().__enter__()

    def _enter(self, *_: object) -> None:
        self.depth += 1

    def _leave(self, *_: object) -> None:
        self.depth -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.depth == 0 and name in _NONLINEAR_NAMES:
            raise ValueError(
                f"the forward pass calls the nonlinear function '{name}' outside an nn.ReLU, "
                "nn.ReLU6 or nn.MaxPool2d module, so its kinks cannot be counted; replace it by "
                "such a module, or use linearity_profile."
            )
        return func(*args, **(kwargs or {}))

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        super().__exit__(*exc)


class _ConstraintTracker:
    """Hooks for the two passes of ``linear_radius``.

    ``recording``: at the inputs (the whole batch, masked), keep every constraint's value: the
    pre-activation of each ReLU/ReLU6 call and, for each max-pooling call, its winners and the
    margins ``u_win - u_j``. ``propagating``: for one sample, freeze that pattern (each unit
    multiplies its input by its derivative times its mask, each pooling window passes its winner)
    so that, with zero biases, a forward pass maps input directions to the constraints' tangents;
    their squares, summed over all directions, are the squared norms of the constraints' input
    gradients. Half the work of dual numbers: no primal is carried along."""

    def __init__(self, relus: dict[str, nn.Module]):
        self.relus = relus
        self.values: dict[str, Tensor] = {}
        self.winners: dict[str, Tensor] = {}
        self.kinds: dict[str, str] = {}
        self.squares: dict[str, Tensor] = {}

    @contextmanager
    def _hooks(self, model: nn.Module, on_relu, on_pool, after=None) -> Iterator[None]:
        counts: dict[str, int] = {}
        handles = [model.register_forward_pre_hook(lambda *_: counts.clear())]

        def call_name(module_name: str) -> str:
            call = counts.get(module_name, 0)
            counts[module_name] = call + 1
            return module_name if call == 0 else f"{module_name}#{call}"

        def pre(module_name: str, module: nn.Module, fn):
            return lambda _, args: fn(call_name(module_name), module, args[0])

        try:
            for name, module in model.named_modules():
                if name in self.relus:
                    handles.append(module.register_forward_pre_hook(pre(name, module, on_relu)))
                elif isinstance(module, nn.MaxPool2d):
                    handles.append(module.register_forward_pre_hook(pre(name, module, on_pool)))
                else:
                    continue
                if after is not None:
                    handles.append(module.register_forward_hook(after))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def recording(self, model: nn.Module):
        def on_relu(name: str, module: nn.Module, z: Tensor) -> None:
            self.values[name] = z.clone()  # before an in-place unit overwrites it
            self.kinds[name] = "relu6" if isinstance(module, nn.ReLU6) else "relu"

        def on_pool(name: str, module: nn.MaxPool2d, u: Tensor) -> None:
            windows = _windows(u, module.kernel_size)
            winner = windows.argmax(dim=-1, keepdim=True)
            self.winners[name] = winner
            self.values[name] = windows.gather(-1, winner) - windows
            self.kinds[name] = "pool"

        return self._hooks(model, on_relu, on_pool)

    def propagating(self, model: nn.Module, b: int, masks: dict[str, Tensor] | None):
        self.squares = {}
        slopes = {}
        for name, kind in self.kinds.items():
            if kind == "pool":
                continue
            z = self.values[name][b : b + 1]
            slope = (z > 0) & (z < 6) if kind == "relu6" else z > 0
            if masks is not None:
                slope = slope & masks[name][b : b + 1]
            slopes[name] = slope.to(z.dtype)
        linear: dict[nn.Module, Tensor] = {}

        def accumulate(name: str, tangent: Tensor) -> None:
            square = tangent.square().sum(dim=0)
            self.squares[name] = self.squares[name] + square if name in self.squares else square

        def on_relu(name: str, module: nn.Module, t: Tensor) -> None:
            accumulate(name, t)
            linear[module] = t * slopes[name]

        def on_pool(name: str, module: nn.MaxPool2d, t: Tensor) -> None:
            windows = _windows(t, module.kernel_size)
            winner = self.winners[name][b : b + 1].expand(*windows.shape[:-1], 1)
            best = windows.gather(-1, winner)
            accumulate(name, best - windows)
            linear[module] = best.squeeze(-1)  # the window passes its winner's tangent

        def after(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
            value = linear.pop(module)
            if getattr(module, "inplace", False):
                return output.copy_(value)  # the caller's tensor holds the unit's output
            return value

        return self._hooks(model, on_relu, on_pool, after)

    def radii(self, b: int, masks: dict[str, Tensor] | None) -> dict[str, Tensor]:
        result = {}
        for name, value in self.values.items():
            value = value[b]
            norm = self.squares[name].sqrt()
            kind = self.kinds[name]
            if kind == "pool":
                distance = value.double()  # margins >= 0 by construction
            elif kind == "relu6":
                distance = torch.minimum(value.abs(), (value - 6.0).abs()).double()
            else:
                distance = value.abs().double()
            ratio = torch.where(norm > 0, distance / norm, math.inf)
            if kind != "pool" and masks is not None:
                ratio = torch.where(masks[name][b], ratio, math.inf)
            result[name] = (ratio.min() if ratio.numel() else ratio.new_tensor(math.inf)).double()
        return result


def _windows(t: Tensor, kernel: int | tuple[int, int]) -> Tensor:
    """(N, C, H, W) -> (N, C, H // kh, W // kw, kh * kw): the non-overlapping pooling windows
    (trailing rows and columns dropped, as ``MaxPool2d`` without ``ceil_mode``)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    n, c, h, w = t.shape
    t = t[:, :, : h // kh * kh, : w // kw * kw]
    t = t.reshape(n, c, h // kh, kh, w // kw, kw).permute(0, 1, 2, 4, 3, 5)
    return t.reshape(n, c, h // kh, w // kw, kh * kw)


# ------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class LinearityProfile:
    """At ``x + r d`` for every radius ``r`` and unit direction ``d`` (per sample):

    - ``relative_error`` (B, R, D): ``|f(x + r d) - f(x) - r grad f . d| / (r ||grad f||)``, the
      first-order error relative to the largest first-order change at that radius (``f`` the
      target logit through the pathway);
    - ``flipped`` (B, R, D): the fraction of the pathway's neurons whose state (off, linear, or
      saturated for ReLU6) differs from their state at ``x``.

    ``directions`` names the columns: ``"random"`` (Gaussian, normalised) and ``"gradient"``
    (``grad f / ||grad f||``, the direction of steepest first-order change). ``roundoff`` (B, R)
    is the error that float round-off alone produces, ``eps |f(x)| / (r ||grad f||)`` (the
    cancellation in ``f(x + r d) - f(x)``): errors near it say nothing about linearity. A
    pathway with a tiny gradient has a high floor; compute in float64 to lower it.
    ``gradient_norm`` (B,) is ``||grad f||`` at the input: how strongly the restricted network
    responds to its input at all."""

    radii: Tensor
    directions: list[str]
    relative_error: Tensor
    flipped: Tensor
    roundoff: Tensor
    gradient_norm: Tensor


def linearity_profile(
    model: nn.Module,
    inputs: Tensor,
    pathway: Pathway | None = None,
    radii: Sequence[float] = (0.01, 0.1, 1.0),
    n_directions: int = 8,
    target: Target = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> LinearityProfile:
    """How far from linear the restricted network is around each input (``LinearityProfile``).

    ``pathway=None`` is the whole network. ``target=None`` follows each sample's predicted class
    (of the whole network). Works for any model; the cost is ``len(radii)`` forward passes over a
    batch of ``B * (n_directions + 1)`` inputs, run ``batch_size`` at a time (default: at most
    4 million input values and 25 million neurons a pass, e.g. 330 MNIST digits or 2 photos
    through EfficientNet-Lite0, so that the activations, states and gates of a pass stay near
    1 GB). ``progress`` draws a tqdm bar on stderr; it changes no result.
    """
    check_module(model)
    check_eval_mode(model)
    (x,), _ = as_input_tuple(inputs)
    n_directions = check_positive_int(n_directions, "n_directions")
    radii_t = torch.as_tensor(list(radii), dtype=torch.float64)
    if radii_t.numel() == 0 or not bool((radii_t > 0).all()):
        raise ValueError(f"radii must be positive numbers, got {list(radii)!r}.")
    modules = site_modules(
        model, None if pathway is None else sorted({module_of_site(s) for s in pathway.sites})
    )
    batch = x.shape[0]
    with torch.no_grad():
        logits = check_logits(model(x), batch)
    labels = resolve_target(target, logits)
    if pathway is None:
        from .pruning import site_activations

        pathway = Pathway(
            {n: torch.ones_like(a, dtype=torch.bool) for n, a in site_activations(model, x).items()}
        )
    if batch_size is None:
        batch_size = max(1, min(int(4e6 // x[0].numel()), int(2.5e7 // pathway.n_neurons)))
    batch_size = check_positive_int(batch_size, "batch_size")
    gates = pathway.gates(x.dtype)  # gathered per pass: no bool -> float copies of each chunk
    base_value, base_states = _restricted(model, x, pathway, labels, modules)
    (grad,) = restricted_input_gradient(model, x, labels, pathway)
    grad = grad.double().flatten(1)
    grad_norm = grad.norm(dim=1)
    generator = torch.Generator().manual_seed(int(seed))
    random = torch.randn(
        batch, n_directions, grad.shape[1], generator=generator, dtype=torch.float64
    )
    random = random / random.norm(dim=2, keepdim=True)
    aligned = (grad / grad_norm.clamp_min(1e-300).unsqueeze(1)).cpu().unsqueeze(1)
    units = torch.cat([random, aligned], dim=1).to(x.device)  # (B, D, n)
    count = units.shape[1]
    repeat = torch.arange(batch, device=x.device).repeat_interleave(count)
    n_kept = sum(m.flatten(1).sum(dim=1, dtype=torch.float64) for m in pathway.masks.values())
    moves = units.reshape(batch * count, *x.shape[1:])
    errors, flips = [], []
    passes = torch.arange(batch * count, device=x.device).split(batch_size)
    bar = tqdm(total=len(radii_t) * len(passes), desc="linearity profile", disable=not progress)
    for r in radii_t.tolist():
        value, changed = [], []
        for rows in passes:
            owner = repeat[rows]  # the input each perturbed row belongs to
            moved = x.double()[owner] + r * moves[rows]
            chunk = Pathway.from_gates({n: g[owner] for n, g in gates.items()}, pathway.settings)
            v, states = _restricted(model, moved.to(x.dtype), chunk, labels[owner], modules)
            value.append(v)
            changed.append(
                sum(
                    ((states[n] != base_states[n][owner]).to(x.dtype) * chunk.gates(x.dtype)[n])
                    .flatten(1)
                    .sum(dim=1, dtype=torch.float64)
                    for n in states
                )
            )
            del chunk, states
            bar.update()
        predicted = r * (units * grad.unsqueeze(1)).sum(dim=2).reshape(-1)
        change = torch.cat(value) - base_value[repeat]
        scale = r * grad_norm[repeat]
        errors.append(((change - predicted).abs() / scale).view(batch, count))
        flips.append((torch.cat(changed) / n_kept[repeat]).view(batch, count))
    bar.close()
    eps = torch.finfo(x.dtype).eps
    roundoff = eps * base_value.abs().unsqueeze(1) / (radii_t.to(x.device) * grad_norm.unsqueeze(1))
    return LinearityProfile(
        radii=radii_t,
        directions=["random"] * n_directions + ["gradient"],
        relative_error=torch.stack(errors, dim=1).cpu(),
        flipped=torch.stack(flips, dim=1).cpu(),
        roundoff=roundoff.cpu(),
        gradient_norm=grad_norm.cpu(),
    )


def _restricted(
    model: nn.Module,
    x: Tensor,
    pathway: Pathway,
    labels: Tensor,
    modules: dict[str, nn.Module],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Target logit (float64) through the pathway, and every site's neuron states (0 off, 1
    linear, 2 saturated ReLU6) before masking."""
    states: dict[str, Tensor] = {}

    def record(name: str, output: Tensor) -> None:
        state = (output > 0).to(torch.int8)
        if isinstance(modules.get(module_of_site(name)), nn.ReLU6):
            state += (output >= 6).to(torch.int8)
        states[name] = state

    with torch.no_grad(), site_hooks(model, record, modules), restrict(model, pathway):
        logits = check_logits(model(x), x.shape[0])
    value = logits.double().gather(1, labels.view(-1, 1).to(logits.device)).squeeze(1)
    return value, states
