"""Neuron contributions to the target logit (book/definitions.md, "Neuron contributions").

``"taylor"`` (the paper's NeuronMCT) is ``|a * d y / d a|`` per neuron, ``a`` the site's output and
``y`` the pre-softmax logit of the target class, as the official code's
``Pruner._compute_taylor_scores``: the first-order estimate of the change of ``y`` when the neuron
is set to zero. One forward and one backward pass for the whole batch.

``"integrated"`` (NeuronIntGrad) is the integrated gradient of ``y`` with respect to one site's
activations with a zero baseline, ``|a * integral_0^1 d y / d a' (alpha a) d alpha|``, each site
scaled separately while the other sites run unchanged (official ``Pruner._calc_integrad_scores``).
Cost: per site, one pass of the layers before it over the ``B`` inputs and one forward and
backward pass of the layers after it over ``(n_steps + 1) * B`` copies of its scaled output.

ReLU6 (EfficientNet-Lite0). ``a`` is the site's *output*, so a saturated unit (``a = 6``) has
``d a / d z = 0`` but not ``d y / d a = 0``: its Taylor score is ``6 |d y / d a|``, the
first-order effect of removing it, not 0. (The common caveat "a saturated unit has
Taylor score 0" holds for the pre-activation form ``z * d y / d z``, which equals ours for ReLU
but not for ReLU6.) What a saturated unit lacks is a gradient *through* it: kept in a pathway, it
adds nothing to the pathway gradient, although removing it changes the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import (
    Inputs,
    Target,
    as_input_tuple,
    check_choice,
    check_eval_mode,
    check_logits,
    check_module,
    check_positive_int,
    resolve_target,
)
from .cache import model_device
from .sites import SiteSpec, site_hooks, site_modules

METHODS = ("taylor", "integrated")


class Contributions(dict):
    """Site name -> contribution tensor (batch first, shaped like the site's activation), in
    forward order, with the ``settings`` and per-sample ``targets`` (class indices) that produced
    them."""

    def __init__(self, values: dict[str, Tensor], settings: dict, targets: Tensor):
        super().__init__(values)
        self.settings = settings
        self.targets = targets


def neuron_contributions(
    model: nn.Module,
    inputs: Inputs,
    target: Target = None,
    method: str = "taylor",
    sites: SiteSpec = None,
    n_steps: int = 10,
    absolute: bool = True,
) -> Contributions:
    """Per-neuron contributions to the target logit, keyed by site in forward order.

    ``target`` follows Captum (an int, a list or a 1-D tensor of length B); ``None`` takes each
    sample's predicted class. ``method="integrated"`` integrates with the trapezoid rule on the
    ``n_steps + 1`` points ``alpha_k = k / n_steps`` (the official code increments alpha
    cumulatively, 0, 0.1, 0.3, 0.6, ..., 5.5, a slip we do not copy; book/definitions.md, "Where we
    differ from the official code"). ``absolute`` takes ``|.|`` as the official code does; ``False``
    keeps the sign.
    """
    check_module(model)
    return contributions_at(
        model, inputs, target, method, site_modules(model, sites), n_steps, absolute
    )


def contributions_at(
    model: nn.Module,
    inputs: Inputs,
    target: Target,
    method: str,
    modules: dict[str, nn.Module],
    n_steps: int = 10,
    absolute: bool = True,
) -> Contributions:
    """``neuron_contributions`` at given site modules (``sites.site_modules``), for callers that
    resolve the sites once and reuse them."""
    check_eval_mode(model)
    tensors, _ = as_input_tuple(inputs)
    check_choice(method, "contribution method", METHODS)
    if not isinstance(absolute, bool):
        raise TypeError(f"absolute must be True or False, got {absolute!r}.")
    if method == "taylor":
        return _taylor(model, tensors, target, modules, absolute)
    return _integrated(
        model, tensors, target, modules, check_positive_int(n_steps, "n_steps"), absolute
    )


def forward_capturing(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    with_grad: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass keeping every site's output (in call order).

    With gradients, the inputs are detached copies that require grad, so a graph exists even when
    the model's parameters are frozen; the caller's tensors are never modified. An in-place
    operation after a site would change the kept tensor: that is detected and the pass repeated
    with copies. Inputs on another device than the model's raise a ``ValueError`` that says so
    (every result of the library lives on the inputs' device, so they are not moved silently).
    """
    check_same_device(model, tensors)
    logits, captured = _capture_once(model, tensors, modules, with_grad, copy=False)
    if any(output._version != version for output, version in captured.values()):
        logits, captured = _capture_once(model, tensors, modules, with_grad, copy=True)
    if not captured:
        raise ValueError(
            f"none of the site modules ran in the forward pass of {type(model).__name__}; "
            "pass sites= with modules that the forward pass calls."
        )
    _check_finite(logits)
    return logits, {name: output for name, (output, _) in captured.items()}


def check_same_device(model: nn.Module, tensors: Sequence[Tensor]) -> None:
    """Refuse inputs that are not on the model's device (a model without parameters or buffers
    accepts any), naming both devices and the fix."""
    if next(iter(model.parameters()), None) is None and next(iter(model.buffers()), None) is None:
        return
    device = model_device(model)
    for tensor in tensors:
        if tensor.device != device:
            raise ValueError(
                f"the inputs are on {tensor.device} but the model on {device}; move the inputs "
                f"with inputs.to('{device}') (or the model with model.to('{tensor.device}'))."
            )


def _capture_once(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    with_grad: bool,
    copy: bool,
) -> tuple[Tensor, dict[str, tuple[Tensor, int]]]:
    """Logits, and each site's output with its version counter at capture time; with ``copy``
    the model continues on a clone, so later in-place edits cannot reach the kept output."""
    captured: dict[str, tuple[Tensor, int]] = {}

    def capture(name: str, output: Tensor) -> Tensor | None:
        captured[name] = (output, output._version)
        return output.clone() if copy else None

    # without gradients the leaves are copies, so an in-place first layer cannot write into the
    # caller's inputs (with gradients autograd refuses in-place edits of a leaf)
    leaves = tuple(
        t.detach().requires_grad_(True) if with_grad else t.detach().clone() for t in tensors
    )
    batch = leaves[0].shape[0]
    with torch.set_grad_enabled(with_grad), site_hooks(model, capture, modules, batch_size=batch):
        logits = check_logits(model(*leaves), batch)
    return logits, captured


def _check_finite(logits: Tensor) -> None:
    bad = (~torch.isfinite(logits.detach())).any(dim=1)
    if bool(bad.any()):
        raise ValueError(
            "the model's logits are NaN or infinite for samples "
            f"{bad.nonzero().flatten().tolist()}; check those inputs (and their preprocessing) "
            "before computing contributions."
        )


def target_gradients(
    logits: Tensor, labels: Tensor, tensors: Sequence[Tensor]
) -> list[Tensor | None]:
    """Gradients of the sum over the batch of each sample's target logit (so each sample gets the
    gradient of its own logit) w.r.t. ``tensors``; ``None`` where a tensor does not matter."""
    with torch.enable_grad():
        total = logits.gather(1, labels.view(-1, 1).to(logits.device)).sum()
        if not total.requires_grad:
            return [None] * len(tensors)
        return list(torch.autograd.grad(total, tensors, allow_unused=True))


def _contribution(act: Tensor, grad: Tensor | None, absolute: bool, reuse: bool = False) -> Tensor:
    """``|a * grad|`` (or signed); ``reuse`` writes into ``grad``'s buffer (saves an allocation)."""
    if grad is None:
        return torch.zeros_like(act)
    score = grad.mul_(act.detach()) if reuse else act.detach() * grad
    return score.abs_() if absolute else score


def _reusable(grads: Sequence[Tensor | None], acts: Sequence[Tensor]) -> list[bool]:
    """Which gradient buffers may be overwritten: contiguous, full shape, and sharing storage
    with no other site's gradient (a site that is a view of another would)."""
    storages: dict[int, int] = {}
    for grad in grads:
        if grad is not None:
            key = grad.untyped_storage().data_ptr()
            storages[key] = storages.get(key, 0) + 1
    return [
        grad is not None
        and grad.shape == act.shape
        and grad.is_contiguous()
        and storages[grad.untyped_storage().data_ptr()] == 1
        for grad, act in zip(grads, acts, strict=False)
    ]


def _taylor(model, tensors, target, modules, absolute: bool) -> Contributions:
    logits, acts = forward_capturing(model, tensors, modules)
    labels = resolve_target(target, logits)
    grads = target_gradients(logits, labels, list(acts.values()))
    reuse = _reusable(grads, list(acts.values()))
    values = {
        name: _contribution(act, grad, absolute, ok)
        for (name, act), grad, ok in zip(acts.items(), grads, reuse, strict=False)
    }
    return Contributions(values, {"method": "taylor", "absolute": absolute}, labels)


_CHUNK_VALUES = 4e6  # input values per batched pass of the integrated contributions


def _integrated(model, tensors, target, modules, n_steps: int, absolute: bool) -> Contributions:
    logits, acts = forward_capturing(model, tensors, modules, with_grad=False)
    labels = resolve_target(target, logits)
    # all steps of a chunk of samples run as one batch; chunks keep that batch near 4 million
    # input values (all of MNIST's digits at once, two photos at 224 px) so activations fit
    per_sample = sum(t[0].numel() for t in tensors) * (n_steps + 1)
    chunks = torch.arange(labels.shape[0], device=labels.device).split(
        max(1, int(_CHUNK_VALUES // per_sample))
    )
    values = {}
    for name, act in acts.items():
        mean_grad = torch.cat(
            [
                _integrated_gradient_at(
                    model,
                    tuple(t[rows] for t in tensors),
                    labels[rows],
                    modules,
                    name,
                    act[rows],
                    n_steps,
                )
                for rows in chunks
            ]
        )
        values[name] = _contribution(act, mean_grad, absolute)
    settings = {"method": "integrated", "absolute": absolute, "n_steps": n_steps}
    return Contributions(values, settings, labels)


def trapezoid_weights(n_steps: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Points ``alpha_k = k / n_steps`` (k = 0..n_steps) and trapezoid weights summing to 1."""
    alphas = torch.linspace(0.0, 1.0, n_steps + 1, dtype=dtype)
    weights = torch.full((n_steps + 1,), 1.0 / n_steps, dtype=dtype)
    weights[0] = weights[-1] = 0.5 / n_steps
    return alphas, weights


def _integrated_gradient_at(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    labels: Tensor,
    modules: dict[str, nn.Module],
    site: str,
    act: Tensor,
    n_steps: int,
) -> Tensor:
    """Trapezoid-rule mean of ``d y / d a`` at ``alpha * a`` for one site, all steps in one batch.

    The steps form a batch of ``(n_steps + 1) * B`` (step-major) in which the site's output is
    multiplied by each block's alpha and every other site runs unchanged. The layers before the
    site do not depend on alpha, so they run once on the ``B`` inputs and the site's output is
    repeated (``_scaled_pass`` with ``expand``). A skip connection from before the site meets
    the big batch with ``B`` rows, which fails for ``B > 1``; then each sample is expanded on its
    own (one row broadcasts), and only if that fails too are the inputs themselves repeated.
    """
    batch = act.shape[0]
    steps = n_steps + 1
    alphas, weights = trapezoid_weights(n_steps, act.dtype)

    def mean_gradient(rows: slice, expand: bool) -> Tensor:
        part = act[rows]
        scale = alphas.to(act.device).repeat_interleave(part.shape[0])
        scale = scale.view(-1, *([1] * (act.dim() - 1)))
        grad = _scaled_pass(
            model,
            tuple(t[rows] for t in tensors),
            labels[rows],
            modules,
            site,
            scale,
            steps,
            expand=expand,
        )
        if grad is None:
            return torch.zeros_like(part)
        return torch.tensordot(weights.to(act.device), grad.view(steps, *part.shape), dims=1)

    try:
        return mean_gradient(slice(None), expand=True)
    except _REFUSED:
        pass
    if batch > 1:
        try:
            return torch.cat([mean_gradient(slice(b, b + 1), expand=True) for b in range(batch)])
        except _REFUSED:
            pass
    return mean_gradient(slice(None), expand=False)  # a genuine error is raised again here


class _NotExpandable(Exception):
    """The expanded pass gave logits of the wrong batch size."""


# how a model refuses a batch whose size changes at the site (shape errors, asserts on shapes)
_REFUSED = (RuntimeError, ValueError, AssertionError, _NotExpandable)


def _scaled_pass(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    labels: Tensor,
    modules: dict[str, nn.Module],
    site: str,
    scale: Tensor,
    steps: int,
    expand: bool,
) -> Tensor | None:
    """``d y / d a'`` at the scaled site outputs ``a' = alpha * a``, one block per alpha.

    ``expand``: the model runs on the inputs once; the site's output is repeated ``steps``
    times, scaled, and made a leaf, so the layers after it see the big batch and the backward
    stops at the site. Otherwise the inputs are repeated (they require grad so that a graph
    exists even when the parameters are frozen)."""
    scaled: dict[str, Tensor] = {}

    def scale_site(name: str, output: Tensor) -> Tensor | None:
        if name != site:
            return None
        if expand:
            base = output.detach().repeat(steps, *([1] * (output.dim() - 1)))
            scaled[name] = (base * scale).requires_grad_(True)
        else:
            scaled[name] = output * scale
        return scaled[name]

    inputs = tuple(
        t.detach()
        if expand
        else t.detach().repeat(steps, *([1] * (t.dim() - 1))).requires_grad_(True)
        for t in tensors
    )
    with torch.enable_grad(), site_hooks(model, scale_site, modules):
        logits = model(*inputs)
    if expand and (
        not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != scale.shape[0]
    ):
        raise _NotExpandable
    (grad,) = target_gradients(logits, labels.repeat(steps), [scaled[site]])
    return grad
