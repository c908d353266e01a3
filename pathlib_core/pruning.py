"""Other ways to choose a pathway, and the measures that compare pathways (Khakzar et al., 2021).

The paper's first claim is that the *pruning objective* (keep the smallest set of neurons for which
the output stays the same; CDRP, Wang et al. 2018) does not find the neurons that carry the input's
critical information, while ranking neurons by their contribution does. This module provides the
competitors of ``select_pathway`` as the official code builds them (book/definitions.md, "The
pruning objective"):

- ``learned_pathway`` / ``learned_gates``: per-element gates on every site learned by the pruning
  objective ("DGR", CDRP as the official ``cdrp/main.py`` and ``main2.py`` re-implement it), then
  binarised;
- ``greedy_pathway`` / ``greedy_pathways``: iterative Taylor pruning (``Pruner.prune_greedy``);
- ``random_pathway``: the same fraction removed at random in every site (``Pruner.prune_random``);
- ``active_pathway``: every neuron with a positive activation (the "active sub-network");

and the measures of the analysis (``path_analysis.py``): ``dead_fraction``,
``output_preservation``, and ``decode_pathway`` (what input a pathway encodes;
``path_decoding.py``); the overlap of two pathways is ``Pathway.iou``.
Every function takes a batch; each sample has its own pathway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ._validation import (
    Inputs,
    Target,
    as_input_tuple,
    check_choice,
    check_eval_mode,
    check_logits,
    check_module,
    check_positive_int,
    check_sparsity,
    resolve_target,
)
from .contribution import Contributions, contributions_at, forward_capturing
from .pathway import (
    Pathway,
    kth_smallest,
    removed_count,
    restrict,
    select_pathway,
    whole_and_restricted,
)
from .sites import SiteSpec, site_hooks, site_modules

INITS = ("ones", "uniform")
GREEDY_VARIANTS = ("official", "clean")


# --------------------------------------------------------------------------- activations


def site_activations(model: nn.Module, inputs: Inputs, sites: SiteSpec = None) -> dict[str, Tensor]:
    """Every site's output for ``inputs`` (site name -> tensor, batch first, forward order), from
    one forward pass without gradients; what ``dead_fraction`` and ``active_pathway`` read."""
    check_module(model)
    check_eval_mode(model)
    tensors, _ = as_input_tuple(inputs)
    _, acts = forward_capturing(model, tensors, site_modules(model, sites), with_grad=False)
    return {name: act.detach() for name, act in acts.items()}


def active_pathway(model: nn.Module, inputs: Inputs, sites: SiteSpec = None) -> Pathway:
    """The active sub-network: per sample, every neuron whose activation is positive (official
    ``Pruner.base_sparsity``/"Active Subnet"). Its sparsity is the fraction of dead neurons."""
    masks = {name: act > 0 for name, act in site_activations(model, inputs, sites).items()}
    return Pathway(masks, {"method": "active"})


def random_pathway(
    model: nn.Module,
    inputs: Inputs,
    sparsity: float,
    seed: int = 0,
    sites: SiteSpec = None,
) -> Pathway:
    """Remove the fraction ``sparsity`` of every site's neurons uniformly at random, per sample
    (official ``Pruner.prune_random``, which removes ``floor(sparsity * size)`` per layer; here
    ``ceil``, as everywhere in this library). Seeded: the same seed gives the same pathway."""
    sparsity = check_sparsity(sparsity)
    activations = site_activations(model, inputs, sites)
    generator = torch.Generator().manual_seed(int(seed))
    # uniform scores in (0, 1]: never 0, so no neuron counts as "zero contribution"
    scores = {
        name: (1.0 - torch.rand(act.shape, generator=generator, dtype=torch.float64)).to(act.device)
        for name, act in activations.items()
    }
    pathway = select_pathway(scores, sparsity, scope="site")
    pathway.settings.update(method="random", seed=int(seed))
    return pathway


# ----------------------------------------------------------------------- greedy pruning


def greedy_pathway(
    model: nn.Module,
    inputs: Inputs,
    sparsity: float,
    target: Target = None,
    step_size: float = 0.01,
    variant: str = "official",
    sites: SiteSpec = None,
    progress: bool = True,
) -> Pathway:
    """Iterative Taylor pruning: remove neurons in rounds of ``step_size``, recomputing the Taylor
    contributions through the pathway left after each round (official ``Pruner.prune_greedy``).

    ``variant="clean"``: round ``j`` keeps the neurons that ``select_pathway`` keeps at sparsity
    ``j * step_size`` from the contributions through the current pathway; removed neurons have zero
    contribution, so they stay removed, and the last round reaches ``sparsity``.

    ``variant="official"`` (default, what the paper's figures used) reproduces the official
    rule, which differs in two ways: (1) in every round the removal threshold is the percentile of
    the scores in which every zero score is replaced by the largest score, and only neurons with
    ``0 < score <= threshold`` are removed; (2) every neuron with zero score is put back, so the
    dead neurons and the neurons removed in the previous round return to the pathway. The result
    keeps many more neurons than ``1 - sparsity`` (``Pathway.sparsity`` reports how many) and is
    full of dead neurons. The official loop also runs a round at percentile 0 (removing the
    neuron(s) with the smallest positive score) and stops one round early (its last percentile
    is ``(iterations - 1) * step_size``); here the rounds are at ``step_size, 2 step_size, ...,
    sparsity``.
    For several sparsities, ``greedy_pathways`` shares the rounds they have in common.
    """
    return greedy_pathways(model, inputs, [sparsity], target, step_size, variant, sites, progress)[
        check_sparsity(sparsity)
    ]


def greedy_pathways(
    model: nn.Module,
    inputs: Inputs,
    sparsities: Sequence[float],
    target: Target = None,
    step_size: float = 0.01,
    variant: str = "official",
    sites: SiteSpec = None,
    progress: bool = True,
) -> dict[float, Pathway]:
    """``greedy_pathway`` at each of ``sparsities`` (sparsity -> pathway), the same pathways as
    separate calls. The rounds of a sparsity that is a multiple of ``step_size`` are the first
    rounds of every larger one, so those sparsities are read off one run as it passes them
    (sparsities 0.5, 0.7, ..., 0.99 at step size 0.01: 99 rounds instead of 581)."""
    check_module(model)
    wanted = sorted({check_sparsity(s) for s in sparsities})
    if not wanted:
        raise ValueError("sparsities is empty; pass at least one fraction in [0, 1), e.g. [0.9].")
    check_choice(variant, "greedy variant", GREEDY_VARIANTS)
    if isinstance(step_size, bool) or not (
        isinstance(step_size, (int, float)) and 0 < step_size < 1
    ):
        raise ValueError(f"step_size must be a fraction in (0, 1), e.g. 0.01; got {step_size!r}.")
    modules = site_modules(model, sites)
    tensors, _ = as_input_tuple(inputs)
    first = contributions_at(model, tensors, target, "taylor", modules)
    labels = first.targets
    result: dict[float, Pathway] = {}
    for run in _greedy_runs(wanted, step_size):
        scores = first
        last = max(run)
        for j in tqdm(range(1, last + 1), desc="greedy pruning", disable=not progress):
            fraction = run.get(j, j * step_size)
            if variant == "clean":
                pathway = select_pathway(scores, fraction)
            else:
                pathway = _official_greedy_round(scores, fraction)
            if j in run:
                pathway.settings.update(
                    method="greedy", variant=variant, sparsity=run[j], step_size=step_size
                )
                result[run[j]] = pathway
            if j < last:
                with restrict(model, pathway):
                    scores = contributions_at(model, tensors, labels, "taylor", modules)
    return {s: result[s] for s in wanted}


def _greedy_runs(wanted: Sequence[float], step_size: float) -> list[dict[int, float]]:
    """Plan the greedy runs: each maps a round number to the sparsity read off after it. The
    rounds of ``s`` are ``step_size, 2 step_size, ..., (r - 1) step_size, s`` with
    ``r = round(s / step_size)``; a sparsity on the step grid ends where a larger run passes
    anyway, any other needs its own run."""
    shared: dict[int, float] = {}
    runs = []
    for s in wanted:
        rounds = max(1, round(s / step_size))
        if abs(rounds * step_size - s) <= 1e-9:
            shared[rounds] = s
        else:
            runs.append({rounds: s})
    # a run only passes rounds below its last at j * step_size, so every shared sparsity below the
    # largest one is read off exactly where its own run would end
    return ([shared] if shared else []) + runs


def _official_greedy_round(scores: Mapping[str, Tensor], fraction: float) -> Pathway:
    """One round of ``Pruner._mask_least_important_neurons_iterative``: the threshold is the
    ``fraction`` quantile of the scores with zeros moved to the top; neurons with
    ``0 < score <= threshold`` are removed, all others (zero scores included) kept."""
    rows = {name: s.reshape(s.shape[0], -1) for name, s in scores.items()}
    top = torch.stack([r.max(dim=1).values for r in rows.values()], dim=1).max(dim=1).values
    lifted = [torch.where(r > 0, r, top.unsqueeze(1)) for r in rows.values()]
    n = sum(r.shape[1] for r in lifted)
    k = removed_count(fraction, n)
    if k == 0:
        return Pathway({name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()})
    threshold = kth_smallest(lifted, k).unsqueeze(1)
    masks = {
        name: ~((r > 0) & (r <= threshold)).view(scores[name].shape) for name, r in rows.items()
    }
    return Pathway(masks)


# ------------------------------------------------------------------ the pruning objective


def learned_pathway(
    model: nn.Module,
    inputs: Inputs,
    sparsity: float,
    init: str = "ones",
    l1: float = 0.01,
    n_steps: int = 1000,
    lr: float = 0.01,
    momentum: float = 0.9,
    max_rounds: int = 4,
    seed: int = 0,
    sites: SiteSpec = None,
    progress: bool = True,
) -> Pathway:
    """The pruning objective's pathway ("DGR", CDRP as re-implemented by the official code):
    ``learned_gates`` (see there), binarised to ``sparsity`` by keeping the largest gates
    (``select_pathway`` on the gates: zero gates go first, ties at the threshold are removed), as
    ``Pruner.prune_dgr``. To binarise one run at several sparsities, call ``learned_gates`` once
    and ``select_pathway(gates, s)`` for each ``s``."""
    sparsity = check_sparsity(sparsity)
    gates = learned_gates(
        model, inputs, init, l1, n_steps, lr, momentum, max_rounds, seed, sites, progress
    )
    return select_pathway(gates, sparsity)


def learned_gates(
    model: nn.Module,
    inputs: Inputs,
    init: str = "ones",
    l1: float = 0.01,
    n_steps: int = 1000,
    lr: float = 0.01,
    momentum: float = 0.9,
    max_rounds: int = 4,
    seed: int = 0,
    sites: SiteSpec = None,
    progress: bool = True,
) -> Contributions:
    """The gates of the pruning objective (CDRP as the official ``cdrp/main.py`` and ``main2.py``
    re-implement it), site name -> tensor shaped like the activation, in forward order.

    Every neuron gets a gate ``g >= 0`` multiplied into its activation. Per sample the gates
    minimise ``-sum_k p_k log q_k + l1 * sum |g|`` (``p`` the network's softmax, fixed; ``q`` the
    gated network's) by SGD (``lr``, ``momentum``), clamped to [0, 100] after every step, for
    ``n_steps`` steps; the result is the iterate with the lowest loss among those that keep the
    prediction. ``init="ones"`` starts from 1 (``cdrp/main.py``: the first iterate is the whole
    network, so a solution always exists); ``"uniform"`` from U(0, 1) with ``seed``
    (``cdrp/main2.py``; every sample starts from the same draw), and a sample without a solution
    continues from its gates and momentum with ``l1 / 10`` for up to ``max_rounds`` rounds, as
    ``main2.py`` (which allows 100). The samples of a batch are optimised together, each with
    its own gates and loss, so a batch gives the same gates as one sample at a time. The official
    loss adds 1e-20 inside ``log(softmax)``; ``log_softmax`` is used here (the same up to that
    constant).

    ``settings`` records ``kept_prediction`` (per sample, whether a prediction-keeping iterate
    was found) and ``l1_final`` (the weight of the last round) next to the arguments;
    ``targets`` holds the predictions the gates preserve. The model's parameters and their
    ``.grad`` are not touched.
    """
    check_module(model)
    check_eval_mode(model)
    check_choice(init, "gate init", INITS)
    n_steps = check_positive_int(n_steps, "n_steps")
    max_rounds = check_positive_int(max_rounds, "max_rounds")
    for name, value in (("l1", l1), ("lr", lr), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    tensors, _ = as_input_tuple(inputs)
    modules = site_modules(model, sites)
    logits, acts = forward_capturing(model, tensors, modules, with_grad=False)
    batch = logits.shape[0]
    reference = F.softmax(logits.detach(), dim=1)
    prediction = reference.argmax(dim=1)
    # every sample starts from the same draw, so a sample's gates do not depend on its batch
    generator = torch.Generator().manual_seed(int(seed))
    gates = {
        name: (
            torch.ones(act.shape, dtype=act.dtype)
            if init == "ones"
            else torch.rand((1, *act.shape[1:]), generator=generator, dtype=act.dtype)
            .expand(act.shape)
            .clone()
        ).to(act.device)
        for name, act in acts.items()
    }
    velocity: dict[str, Tensor] = {}
    best = {name: g.clone() for name, g in gates.items()}
    best_loss = torch.full((batch,), math.inf, dtype=torch.float64, device=logits.device)
    weight = torch.full((batch,), float(l1), dtype=torch.float64, device=logits.device)
    pending = torch.arange(batch, device=logits.device)
    rounds_used = 0
    bar = tqdm(total=n_steps, desc="learning gates", disable=not progress)
    while pending.numel() and rounds_used < max_rounds:
        rounds_used += 1
        state = _GateDescent(gates, pending, lr, momentum, velocity or None)
        bar.reset(total=n_steps)
        for _ in range(n_steps):
            current = state.gates()
            loss, kept = _gated_loss(
                model, tensors, modules, current, pending, reference, prediction, weight[pending]
            )
            better = kept & (loss.detach().double() < best_loss[pending])
            if bool(better.all()) and pending.numel() == batch:  # the common case: no gather
                best_loss.copy_(loss.detach().double())
                for name, value in current.items():
                    best[name].copy_(value.detach())
            elif bool(better.any()):
                rows = pending[better]
                best_loss[rows] = loss.detach().double()[better]
                for name, value in current.items():
                    best[name][rows] = value.detach()[better]
            grads = torch.autograd.grad(loss.sum(), list(current.values()), allow_unused=True)
            state.step(grads, weight[pending])
            bar.update()
        state.write_back(gates, velocity)
        solved = torch.isfinite(best_loss[pending])
        pending = pending[~solved]
        if init == "ones" or rounds_used == max_rounds:
            break
        weight[pending] /= 10
    bar.close()
    kept_prediction = torch.isfinite(best_loss)
    for name in best:  # samples without a solution: their last gates
        best[name][~kept_prediction] = gates[name][~kept_prediction]
    settings = dict(
        method="learned",
        init=init,
        l1=float(l1),
        n_steps=n_steps,
        lr=float(lr),
        momentum=float(momentum),
        seed=int(seed),
        kept_prediction=kept_prediction.cpu(),
        l1_final=weight.cpu(),
    )
    return Contributions(best, settings, prediction)


class _GateDescent:
    """SGD with momentum (PyTorch's rule: ``v = m v + g; w -= lr v``) on the gates of the samples
    ``rows``, each element independent, with the clamp to [0, 100] after every step."""

    def __init__(
        self,
        gates: dict[str, Tensor],
        rows: Tensor,
        lr: float,
        momentum: float,
        velocity: dict[str, Tensor] | None,
    ):
        self.rows = rows
        self.values = {name: g[rows].clone() for name, g in gates.items()}
        self.velocity = (
            None if velocity is None else {n: v[rows].clone() for n, v in velocity.items()}
        )
        self.lr, self.momentum = lr, momentum

    def gates(self) -> dict[str, Tensor]:
        return {name: v.detach().requires_grad_(True) for name, v in self.values.items()}

    def step(self, grads: tuple[Tensor | None, ...], l1: Tensor) -> None:
        """One step; ``grads`` are those of the distillation term alone, the L1 term's gradient
        ``l1 * sign(g)`` is added here (gates are never negative, and ``sign(0) = 0`` as
        autograd's ``abs``), which saves autograd's pass through ``abs``."""
        full = []
        for g, value in zip(grads, self.values.values(), strict=False):
            g = torch.zeros_like(value) if g is None else g
            weight = l1.to(value.dtype).view(-1, *([1] * (value.dim() - 1)))
            full.append(g.add_(torch.where(value > 0, weight, 0.0)))
        if self.velocity is None:
            self.velocity = dict(zip(self.values, full, strict=False))
        else:
            for v, g in zip(self.velocity.values(), full, strict=False):
                v.mul_(self.momentum).add_(g)
        for name, value in self.values.items():  # torch.optim.SGD's update, then the clamp
            value.add_(self.velocity[name], alpha=-self.lr).clamp_(0.0, 100.0)

    def write_back(self, gates: dict[str, Tensor], velocity: dict[str, Tensor]) -> None:
        """Store the rows' gates and momentum into the full-batch tensors."""
        for name, value in self.values.items():
            gates[name][self.rows] = value
            if self.velocity is not None:
                velocity.setdefault(name, torch.zeros_like(gates[name]))[self.rows] = self.velocity[
                    name
                ]


def _gated_loss(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    gates: dict[str, Tensor],
    rows: Tensor,
    reference: Tensor,
    prediction: Tensor,
    weight: Tensor,
) -> tuple[Tensor, Tensor]:
    """Per sample of ``rows``: the pruning objective and whether the gated network keeps the
    prediction. The L1 term enters the value only (it is computed without autograd: the gates
    are never negative, so its gradient is ``weight`` where a gate is positive, which
    ``_GateDescent.step`` adds)."""

    def gate(name: str, output: Tensor) -> Tensor:
        return output * gates[name]

    subset = tuple(t[rows].detach() for t in tensors)
    with torch.enable_grad(), site_hooks(model, gate, modules, batch_size=rows.numel()):
        logits = check_logits(model(*subset), rows.numel())
    distillation = -(reference[rows] * F.log_softmax(logits, dim=1)).sum(dim=1)
    with torch.no_grad():
        sparsity_term = sum(g.flatten(1).sum(dim=1) for g in gates.values())
    loss = distillation + weight.to(logits.dtype) * sparsity_term
    return loss, logits.detach().argmax(dim=1) == prediction[rows]


# --------------------------------------------------------------------------- measures


def dead_fraction(
    pathway: Pathway, activations: Mapping[str, Tensor], by_site: bool = False
) -> Tensor | dict[str, Tensor]:
    """Per sample, the fraction of the pathway's neurons that are dead for that input
    (activation <= 0, so they pass no information about it); per site with ``by_site``.
    ``activations`` is ``site_activations(model, inputs)``. NaN where the pathway is empty."""
    if not isinstance(pathway, Pathway):
        raise TypeError(f"dead_fraction needs a Pathway, got {type(pathway).__name__}.")
    missing = [name for name in pathway.sites if name not in activations]
    if missing:
        raise ValueError(
            f"activations lack the sites {missing[:5]}; compute them with "
            "site_activations(model, inputs) on the pathway's model and inputs."
        )
    dead, kept = {}, {}
    for name, mask in pathway.masks.items():
        act = activations[name].to(mask.device)
        if act.shape != mask.shape:
            raise ValueError(
                f"activations['{name}'] has shape {tuple(act.shape)}, the mask "
                f"{tuple(mask.shape)}; use the activations of the same inputs."
            )
        kept[name] = mask.flatten(1).sum(dim=1, dtype=torch.float64)
        dead[name] = (mask & (act <= 0)).flatten(1).sum(dim=1, dtype=torch.float64)
    if by_site:
        return {name: dead[name] / kept[name] for name in dead}
    return sum(dead.values()) / sum(kept.values())


@dataclass(frozen=True)
class Preservation:
    """How well a pathway preserves the network's output, per sample (official
    ``prune_neuron_mct`` return value): the target's softmax probability through the whole
    network and through the pathway, ``relative_change = |p_pathway - p_original| / p_original``,
    and whether the pathway keeps the network's predicted class."""

    target: Tensor
    p_original: Tensor
    p_pathway: Tensor
    relative_change: Tensor
    prediction_kept: Tensor


def output_preservation(
    model: nn.Module, inputs: Inputs, pathway: Pathway, target: Target = None
) -> Preservation:
    """Compare the outputs of the whole network and of the network restricted to ``pathway``
    (``pathway.whole_and_restricted``; ``target=None``: each sample's predicted class)."""
    original, restricted = whole_and_restricted(model, inputs, pathway)
    labels = resolve_target(target, original)
    p_original = F.softmax(original.double(), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    p_pathway = F.softmax(restricted.double(), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    return Preservation(
        target=labels,
        p_original=p_original,
        p_pathway=p_pathway,
        relative_change=(p_pathway - p_original).abs() / p_original,
        prediction_kept=restricted.argmax(dim=1) == original.argmax(dim=1),
    )


def decode_pathway(
    model: nn.Module,
    pathway: Pathway,
    target: Target,
    like: Tensor,
    bounds: tuple[float, float],
    n_steps: int = 512,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> Tensor:
    """What input the pathway itself encodes: gradient ascent in pixel space on the ``target``
    logit of the network restricted to ``pathway`` (official ``path_decoding.py``, lucent with a
    plain pixel parameterisation and no transforms).

    Each sample of the batch decodes through its own pathway. The image is ``low + (high - low) *
    sigmoid(w)`` (``bounds = (low, high)`` in the model's input space, so it never leaves the
    valid range), ``w`` starts at ``N(0, 0.01^2)`` around the neutral mid-grey, shaped like
    ``like``; Adam with ``lr`` for ``n_steps`` steps, as lucent's ``render_vis``. Returns the
    decoded inputs (detached, shaped like ``like``).
    """
    check_module(model)
    check_eval_mode(model)
    n_steps = check_positive_int(n_steps, "n_steps")
    if not isinstance(like, Tensor) or not like.is_floating_point():
        raise TypeError("like must be a float tensor shaped like a batch of the model's inputs.")
    if like.shape[0] != pathway.batch_size:
        raise ValueError(
            f"like has batch {like.shape[0]} but the pathway {pathway.batch_size}; each decoded "
            "input runs through its own sample's pathway."
        )
    if target is None:
        raise ValueError(
            "decode_pathway needs the class to decode (an int, a list or a tensor, e.g. the "
            "targets the pathway was selected for); there is no prediction of a blank start."
        )
    low, high = (float(b) for b in bounds)
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}.")
    generator = torch.Generator().manual_seed(int(seed))
    weights = (torch.randn(like.shape, generator=generator, dtype=like.dtype) * 0.01).to(
        like.device
    )
    weights.requires_grad_(True)
    optimiser = torch.optim.Adam([weights], lr=lr)
    labels = None
    with restrict(model, pathway), torch.enable_grad():
        for _ in tqdm(range(n_steps), desc="decoding pathways", disable=not progress):
            image = low + (high - low) * torch.sigmoid(weights)
            logits = check_logits(model(image), like.shape[0])
            if labels is None:
                labels = resolve_target(target, logits)
            objective = logits.gather(1, labels.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(-objective, [weights])
            weights.grad = grad
            optimiser.step()
    return (low + (high - low) * torch.sigmoid(weights)).detach()
