"""GEN-CNP: neural pathways predicted by a generator, and their transfer to other inputs of a class.

Lin et al. 2023 ("On Model Explanations with Transferable Neural Pathways", arXiv 2309.09887)
train a generator that reads the frozen target model's feature maps (a shallow and a deep layer)
and predicts, per input, a sparse binary *neural pathway* ("GEN-CNP"). Its objective asks for
per-instance sparsity (no fixed target), faithfulness (the model restricted to the pathway
behaves like the whole model) and class relevance (pathways of one class are similar). The
pathways of ``j`` samples of a class are combined into a class pathway that is transferred to
explain other samples of that class.

Only the abstract of the paper is known to us. Everything below beyond that is ours:

- the generator's architecture (``PathwayGenerator``): global average and max pooling of the
  shallow and the deep site, a two-layer MLP, one linear head per site with one logit per
  *channel*; the mask of a channel is broadcast over its positions;
- the relaxation: hard 0/1 masks in the forward pass, the sigmoid's gradient in the backward pass
  (``straight_through``), so each input's sparsity is whatever its own scores decide;
- the losses and their weights (``train_generator``): a KL divergence for faithfulness, the
  expected share of kept neurons for sparsity, a cosine-similarity contrast for class relevance;
- the class pathway (``class_pathway``): a vote of the ``j`` samples' pathways;
- the metrics' definitions (``faithfulness``, ``class_relevance``, ``transfer_accuracy``), of
  which "Average Drop" and "Increase in Confidence" are Chattopadhay et al.'s (Grad-CAM++, 2018).

A generated pathway is an ordinary ``Pathway`` (element masks of every site), so ``restrict``,
``Pathway.iou``, ``pruning.jaccard`` and ``restricted_input_gradient`` work on it. The target model
is never changed: the generator is trained with ``torch.autograd.grad`` on its own parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import _cache
from ._validation import (
    Inputs,
    Target,
    as_input_tuple,
    check_eval_mode,
    check_logits,
    check_module,
    resolve_target,
)
from .pathway import Pathway, restrict
from .sites import module_of_site, site_hooks, site_modules

# Bump when the training code changes in a way that changes the weights, so that old cache
# entries are not reused.
_RECIPE_VERSION = 1
HEAD_BIAS = 2.0
"""Initial bias of every head: sigmoid(2) = 0.88, so training starts from "keep (almost) all"."""
HISTORY_TERMS = ("total", "faithfulness", "sparsity", "relevance", "kept")
"""The per-epoch means in ``generator.history``: the loss and its three terms (unweighted), and
the share of neurons that the hard masks keep."""


# ------------------------------------------------------------------------------- the generator


class PathwayGenerator(nn.Module):
    """Predicts one logit per channel of every site from the target model's feature maps (ours).

    ``forward(features)`` takes a mapping site name -> activation (batch first, channels in
    dimension 1) holding at least the ``shallow`` and ``deep`` sites. Both are pooled over all
    dimensions after the channel dimension, by their mean and by their maximum (a fully connected
    site has no such dimensions and is used as it is); the four vectors are concatenated and go
    through ``Linear -> ReLU -> Linear -> ReLU`` of width ``hidden`` and one ``Linear`` head per
    site. Returns site name -> logits ``(B, C_site)``, in site order; a channel is kept where its
    logit is positive.

    Why channels: a per-element mask would tie a pathway to the positions of one image and could
    not transfer to other instances of a class, whose parts sit elsewhere; a channel (a feature
    detector) can. The output also stays small (the MNIST CNN has 32+32+64+64+256 = 448 channels
    and units). The heads' biases start at ``HEAD_BIAS`` (+2), so training starts from keeping
    (almost) everything, where the restricted model is faithful.
    """

    def __init__(
        self, site_channels: Mapping[str, int], shallow: str, deep: str, hidden: int = 128
    ):
        super().__init__()
        if not isinstance(site_channels, Mapping) or not site_channels:
            raise ValueError(
                "site_channels must be a non-empty mapping site name -> number of channels, in "
                "forward order, e.g. {'relu1': 32, 'relu2': 32}."
            )
        for name, channels in site_channels.items():
            if not isinstance(name, str) or isinstance(channels, bool):
                raise TypeError("site_channels maps site names (str) to channel counts (int).")
            if not isinstance(channels, int) or channels < 1:
                raise ValueError(
                    f"site_channels['{name}'] is {channels!r}; give the size of dimension 1 of "
                    "the site's activation (a positive int)."
                )
        for role, name in (("shallow", shallow), ("deep", deep)):
            if name not in site_channels:
                raise ValueError(
                    f"{role}={name!r} is not one of the sites ({', '.join(site_channels)}); "
                    f"choose the {role} site among them."
                )
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive int (the MLP's width), got {hidden!r}.")
        self.sites: list[str] = list(site_channels)
        self.site_channels: dict[str, int] = dict(site_channels)
        self.shallow, self.deep, self.hidden = shallow, deep, hidden
        width = 2 * (site_channels[shallow] + site_channels[deep])
        self.trunk = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in site_channels.values())
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default ``nn.Linear`` initialisation (uniform in +-1/sqrt(fan_in)), drawn
        from ``generator`` (default: the global RNG), and the heads' biases at ``HEAD_BIAS``."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    bound = 1.0 / math.sqrt(module.in_features)
                    for param in (module.weight, module.bias):
                        values = torch.rand(param.shape, generator=generator, dtype=param.dtype)
                        param.copy_((2 * values - 1) * bound)
            for head in self.heads:
                head.bias.fill_(HEAD_BIAS)

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        pooled = []
        dtype = self.trunk[0].weight.dtype
        if not isinstance(features, Mapping):
            raise TypeError(
                f"features must be a mapping site name -> activation, got "
                f"{type(features).__name__}; e.g. pruning.site_activations(model, inputs)."
            )
        for role, name in (("shallow", self.shallow), ("deep", self.deep)):
            act = features.get(name)
            if act is None:
                raise ValueError(
                    f"features lack the {role} site '{name}'; pass the activations of the "
                    "target model (site name -> tensor), e.g. as generate_pathway captures them."
                )
            if not isinstance(act, Tensor):
                raise TypeError(f"features['{name}'] must be a tensor, got {type(act).__name__}.")
            if act.dim() < 2 or act.shape[1] != self.site_channels[name]:
                raise ValueError(
                    f"features['{name}'] has shape {tuple(act.shape)}, expected "
                    f"(batch, {self.site_channels[name]}, ...); the generator was built for "
                    "another model: train one for this model."
                )
            flat = act.flatten(2) if act.dim() > 2 else act.unsqueeze(2)
            pooled += [flat.mean(dim=2).to(dtype), flat.amax(dim=2).to(dtype)]
        hidden = self.trunk(torch.cat(pooled, dim=1))
        return {name: head(hidden) for name, head in zip(self.sites, self.heads, strict=False)}


def straight_through(logits: Tensor) -> Tensor:
    """Hard 0/1 masks (``logits > 0``) in the forward pass with the sigmoid's gradient in the
    backward pass (``hard + (p - p.detach())``, ``p = sigmoid(logits)``; ours): each instance keeps
    whatever its own scores decide, with no fixed sparsity."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError("straight_through takes a float tensor of logits; use logits.float().")
    p = torch.sigmoid(logits)
    hard = (logits > 0).to(logits.dtype)
    return hard + (p - p.detach())  # exactly hard: p - p.detach() is 0.0


# ------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class GeneratorTraining:
    """The recipe of ``train_generator`` (all of it ours; the loss weights chosen on the MNIST CNN).

    ``shallow``/``deep`` name the sites the generator reads; ``None`` picks the second site in
    forward order (the first one if there is only one) for ``shallow``, and the last site with a
    spatial map (more than one dimension per sample, else the last site) for ``deep``: on the MNIST
    CNN ``relu2`` and ``relu4``. ``num_threads``: intra-op CPU threads during training (``None``:
    leave the setting), fixed because float sums depend on it (as ``models.MNIST_TRAINING``).

    The loss weights were chosen on the MNIST CNN (5 epochs on the 4,000 training digits,
    measured on the 1,000 test digits): ``sparsity_weight=2, relevance_weight=3`` keep 44% of the
    neurons on average (26% to 49% per digit) and the prediction of 96.8% of the digits (Average
    Drop 21%), with pathway IoU 0.92 within a class and 0.80 across classes. Fewer neurons were
    not reached without collapse: the KL term is bounded (about log(10) when the restricted
    model outputs a constant), so from ``sparsity_weight`` 4 on (4, 5, 10 tried) a near-empty
    pathway is the cheaper optimum and training falls into it within two epochs (0.1% to 7.5% of
    the neurons, 10% to 11% of the predictions kept); weights 0.3 to 3 all settled at 44% to 61%
    kept. A larger ``relevance_weight`` makes the pathways more class-specific and more varied
    per instance, at some cost in faithfulness (5 with ``sparsity_weight=3``: 92% kept).
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    sparsity_weight: float = 2.0
    relevance_weight: float = 3.0
    seed: int = 0
    shallow: str | None = None
    deep: str | None = None
    hidden: int = 128
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GeneratorTraining.{name} must be a positive int, got {value!r}.")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool)
            or not isinstance(self.num_threads, int)
            or self.num_threads < 1
        ):
            raise ValueError(
                f"GeneratorTraining.num_threads must be a positive int or None (leave the "
                f"thread count as it is), got {self.num_threads!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"GeneratorTraining.seed must be an int, got {self.seed!r}.")
        for name in ("lr", "sparsity_weight", "relevance_weight"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (name == "lr" and value == 0)
            ):
                kind = "a positive" if name == "lr" else "a non-negative"
                raise ValueError(
                    f"GeneratorTraining.{name} must be {kind} finite number, got {value!r}."
                )
        for name in ("shallow", "deep"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"GeneratorTraining.{name} must be a site name (str) or None for the "
                    f"default, got {type(value).__name__}."
                )


def train_generator(
    model: nn.Module,
    images: Inputs,
    config: GeneratorTraining = GeneratorTraining(),
    *,
    cache: bool = True,
    progress: bool = True,
) -> PathwayGenerator:
    """Train a ``PathwayGenerator`` for the frozen ``model`` (eval mode) on ``images`` (GEN-CNP,
    Lin et al. 2023; the losses are ours).

    Per batch, the generator reads the whole model's activations and predicts hard channel masks
    (``straight_through``); the model runs again with every site's output multiplied by its mask
    (broadcast over positions). With ``p``/``q`` the softmax of the whole / restricted model:

    - faithfulness: ``KL(p || q)`` per sample, batch mean;
    - sparsity: the expected share of neurons kept, ``sum_sites sum_c sigmoid(logit_c) *
      (elements per channel) / (neurons per sample)``, batch mean; no target, pressure only;
    - class relevance: with ``S`` the cosine similarities of the samples' concatenated channel
      probabilities, mean ``S`` over pairs of different classes minus mean ``S`` over pairs of one
      class (diagonal excluded; a term without pairs is skipped). The classes are the model's own
      predictions: the pathway explains the model, not the labels;
    - total: ``faithfulness + sparsity_weight * sparsity + relevance_weight * relevance``, Adam.

    The model is left as it was (parameters, ``.grad``, mode, hooks), also when an error is
    raised: gradients are taken by ``torch.autograd.grad`` for the generator's parameters only.
    Seeded (initialisation and batch order from ``config.seed``); on the CPU the same inputs give
    bitwise identical weights. With ``cache``, the weights are cached on disk (``_cache``) under
    a hash of the model's state, the images, the config and the recipe version, and a cached
    file is loaded instead of training. Returns the generator in eval mode, on the model's device,
    with ``sites``, ``config`` and ``history`` (``HISTORY_TERMS`` -> per-epoch means).
    """
    check_module(model)
    check_eval_mode(model)
    if not isinstance(config, GeneratorTraining):
        raise TypeError(
            f"config must be a GeneratorTraining, got {type(config).__name__}; e.g. "
            "GeneratorTraining(epochs=3)."
        )
    tensors, _ = as_input_tuple(images)
    tensors = tuple(t.detach() for t in tensors)
    device = _device(model, tensors[0])
    modules = site_modules(model)
    first = tuple(t[: min(len(t), config.batch_size)].to(device) for t in tensors)
    _, _, shapes, order = _capture(model, first, modules, keep=())
    site_channels = _site_channels(shapes, order)
    shallow, deep = _roles(config, shapes, order)

    path = _cache_path(model, tensors, config) if cache else None
    if path is not None:
        loaded = _load_cached(path, site_channels, shallow, deep, config)
        if loaded is not None:
            return _finish(loaded[0], config, loaded[1], device)

    with _reproducible(device, config.num_threads):
        generator, history = _train(
            model, tensors, modules, site_channels, shallow, deep, config, device, progress
        )
    if path is not None:
        state = {name: value.detach().cpu() for name, value in generator.state_dict().items()}
        for term, values in history.items():
            state[f"history.{term}"] = torch.tensor(values, dtype=torch.float64)
        meta = {
            "model": "pathway_generator",
            "config": dataclasses.asdict(config),
            "sites": site_channels,
            "shallow": shallow,
            "deep": deep,
            "last_epoch": {term: values[-1] for term, values in history.items()},
            "recipe": _RECIPE_VERSION,
            "torch": torch.__version__,
        }
        _cache.save_state_dict(path, state, meta)
    return _finish(generator, config, history, device)


def _train(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    site_channels: dict[str, int],
    shallow: str,
    deep: str,
    config: GeneratorTraining,
    device: torch.device,
    progress: bool,
) -> tuple[PathwayGenerator, dict[str, list[float]]]:
    rng = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global RNG: not the user's
        generator = PathwayGenerator(site_channels, shallow, deep, config.hidden)
    generator.reset_parameters(rng)
    generator.to(device).train()
    params = list(generator.parameters())
    optimiser = torch.optim.Adam(params, lr=config.lr)
    n = len(tensors[0])
    batches = -(-n // config.batch_size)
    history: dict[str, list[float]] = {term: [] for term in HISTORY_TERMS}
    per_channel: dict[str, int] | None = None
    with tqdm(
        total=config.epochs * batches,
        desc="training GEN-CNP generator",
        disable=not progress,
        leave=False,
        mininterval=1.0,
    ) as bar:
        for _ in range(config.epochs):
            sums = dict.fromkeys(HISTORY_TERMS, 0.0)
            order = torch.randperm(n, generator=rng)
            for start in range(0, n, config.batch_size):
                idx = order[start : start + config.batch_size]
                x = tuple(t[idx].to(device) for t in tensors)
                full, features, shapes, calls = _capture(model, x, modules, keep=(shallow, deep))
                _check_calls(calls, generator.sites)
                if per_channel is None:
                    per_channel = {name: math.prod(shapes[name][2:]) for name in generator.sites}
                logits = generator(features)
                masks = {name: straight_through(value) for name, value in logits.items()}
                restricted = _restricted_logits(model, x, modules, masks)
                terms = _losses(full, restricted, logits, masks, per_channel)
                loss = (
                    terms["faithfulness"]
                    + config.sparsity_weight * terms["sparsity"]
                    + config.relevance_weight * terms["relevance"]
                )
                grads = torch.autograd.grad(loss, params)
                for param, grad in zip(params, grads, strict=False):
                    param.grad = grad
                optimiser.step()
                terms["total"] = loss
                for term in HISTORY_TERMS:
                    sums[term] += float(terms[term].detach()) * len(idx)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{float(loss.detach()):.3f}",
                    kept=f"{float(terms['kept']):.2f}",
                    refresh=False,
                )
            for term in HISTORY_TERMS:
                history[term].append(sums[term] / n)
    for param in params:
        param.grad = None
    return generator, history


def _losses(
    full: Tensor,
    restricted: Tensor,
    logits: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    per_channel: Mapping[str, int],
) -> dict[str, Tensor]:
    """The three loss terms (unweighted) and, detached, the share of neurons the masks keep."""
    log_p = F.log_softmax(full.detach(), dim=1)
    log_q = F.log_softmax(restricted, dim=1)
    faithful = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=1).mean()
    total = sum(value.shape[1] * per_channel[name] for name, value in logits.items())
    probs = {name: torch.sigmoid(value) for name, value in logits.items()}
    expected = sum(p.sum(dim=1) * per_channel[name] for name, p in probs.items()) / total
    kept = sum(m.detach().sum(dim=1) * per_channel[name] for name, m in masks.items()) / total
    vectors = F.normalize(torch.cat(list(probs.values()), dim=1), dim=1)
    similarity = vectors @ vectors.T
    classes = full.argmax(dim=1)
    same = classes.unsqueeze(0) == classes.unsqueeze(1)
    other = ~same
    same.fill_diagonal_(False)
    relevance = similarity.new_zeros(())
    if bool(other.any()):
        relevance = relevance + similarity[other].mean()
    if bool(same.any()):
        relevance = relevance - similarity[same].mean()
    return {
        "faithfulness": faithful,
        "sparsity": expected.mean(),
        "relevance": relevance,
        "kept": kept.mean(),
    }


def _finish(
    generator: PathwayGenerator,
    config: GeneratorTraining,
    history: dict[str, list[float]],
    device: torch.device,
) -> PathwayGenerator:
    generator.config = config
    generator.history = history
    return generator.to(device).eval()


# ------------------------------------------------------------------------------------- caching


def _cache_path(model: nn.Module, tensors: tuple[Tensor, ...], config: GeneratorTraining) -> Path:
    """``cache_dir()/pathway_generator-<key>.pt``; the key hashes the model's architecture and
    state, the images, the config and ``_RECIPE_VERSION``."""
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    for name, value in model.state_dict().items():
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(_tensor_bytes(value))
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(_tensor_bytes(tensor))
    record = {
        "state_and_images": digest.hexdigest(),
        "config": dataclasses.asdict(config),
        "recipe": _RECIPE_VERSION,
    }
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    return _cache.cache_dir() / f"pathway_generator-{key[:16]}.pt"


def _tensor_bytes(tensor: Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _load_cached(
    path: Path,
    site_channels: dict[str, int],
    shallow: str,
    deep: str,
    config: GeneratorTraining,
) -> tuple[PathwayGenerator, dict[str, list[float]]] | None:
    state = _cache.load_state_dict(path)
    if state is None:
        return None
    history = {
        term: state.pop(f"history.{term}").tolist()
        for term in HISTORY_TERMS
        if f"history.{term}" in state
    }
    with torch.random.fork_rng(devices=[]):
        generator = PathwayGenerator(site_channels, shallow, deep, config.hidden)
    try:
        if set(history) != set(HISTORY_TERMS):
            raise KeyError("the training history is missing")
        generator.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        warnings.warn(f"Cached generator {path} does not fit ({exc}); retraining.", stacklevel=3)
        return None
    return generator, history


# ----------------------------------------------------------------------------------- pathways


def generate_pathway(generator: PathwayGenerator, model: nn.Module, inputs: Inputs) -> Pathway:
    """Each input's GEN-CNP pathway: one forward pass of ``model`` without gradients captures the
    sites' activations, the generator's hard channel masks (logit > 0) are broadcast to each
    site's activation shape. An ordinary ``Pathway`` (``settings["method"] == "GEN-CNP"``)."""
    if not isinstance(generator, PathwayGenerator):
        raise TypeError(
            f"generator must be a PathwayGenerator, got {type(generator).__name__}; train one "
            "with train_generator(model, images)."
        )
    check_module(model)
    check_eval_mode(model)
    tensors, _ = as_input_tuple(inputs)
    modules = _generator_modules(generator, model)
    with torch.no_grad():
        _, features, shapes, calls = _capture(
            model, tensors, modules, keep=(generator.shallow, generator.deep)
        )
        _check_calls(calls, generator.sites)
        logits = generator(features)
    dtype = torch.get_default_dtype()
    gates = {
        name: _broadcast((logits[name] > 0).to(dtype), shapes[name]).contiguous()
        for name in generator.sites
    }
    settings = {
        "method": "GEN-CNP",
        "granularity": "channel",
        "shallow": generator.shallow,
        "deep": generator.deep,
    }
    return Pathway._from_gates(gates, settings)


def class_pathway(pathway: Pathway, min_share: float = 0.5) -> Pathway:
    """The class pathway of ``j`` samples' pathways (ours: a vote): a neuron is kept if it is kept
    in at least ``min_share`` of the samples. A pathway of batch size 1; apply it to other inputs
    of the class with ``expand(class_pathway(...), n)``."""
    _check_pathway(pathway, "class_pathway")
    if (
        isinstance(min_share, bool)
        or not isinstance(min_share, (int, float))
        or not 0 < min_share <= 1
    ):
        raise ValueError(
            f"min_share must be a fraction in (0, 1], got {min_share!r}; 0.5 keeps the neurons "
            "kept by at least half of the samples, 1.0 those kept by all."
        )
    j = pathway.batch_size
    needed = min_share * j - 1e-9
    masks = {
        name: mask.sum(dim=0, keepdim=True, dtype=torch.float64) >= needed
        for name, mask in pathway.masks.items()
    }
    settings = dict(pathway.settings)
    settings.update(combined="class vote", votes=j, min_share=float(min_share))
    return Pathway(masks, settings)


def expand(pathway: Pathway, n: int) -> Pathway:
    """A batch-1 pathway (e.g. a class pathway) repeated for ``n`` samples, to run ``n`` other
    inputs through it with ``restrict``."""
    _check_pathway(pathway, "expand")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of inputs), got {n!r}.")
    if pathway.batch_size != 1:
        raise ValueError(
            f"expand repeats a pathway of one sample, but this one has {pathway.batch_size}; "
            "combine them first with class_pathway(pathway), or select one with pathway[i]."
        )
    masks = {name: mask.expand(n, *mask.shape[1:]) for name, mask in pathway.masks.items()}
    return Pathway(masks, pathway.settings)


# ------------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class Faithfulness:
    """How the model restricted to a pathway treats the target class (``faithfulness``).

    With ``p``/``p'`` the target's softmax probability of the whole / restricted model:
    ``average_drop`` mean of ``max(0, p - p') / p`` in % and ``increase_in_confidence`` % of
    samples with ``p' > p`` (Chattopadhay et al.'s Grad-CAM++ measures, applied to pathways);
    ``mean_increase`` / ``mean_decrease``: the mean of ``max(0, p' - p)`` / ``max(0, p - p')`` in
    percentage points (our reading of GEN-CNP's mIC / mDC); ``prediction_kept`` % of samples whose
    restricted prediction is the target (ours); ``confidence_change`` ``p' - p`` per sample;
    ``kept_fraction`` the share of neurons kept per sample."""

    average_drop: float
    increase_in_confidence: float
    mean_increase: float
    mean_decrease: float
    prediction_kept: float
    confidence_change: Tensor
    kept_fraction: Tensor


def faithfulness(
    model: nn.Module, inputs: Inputs, pathway: Pathway, target: Target = None
) -> Faithfulness:
    """Compare the whole model and the model restricted to ``pathway`` on ``inputs`` (one pathway
    per sample); ``target=None``: each sample's prediction by the whole model."""
    check_module(model)
    check_eval_mode(model)
    _check_pathway(pathway, "faithfulness")
    tensors, _ = as_input_tuple(inputs)
    batch = tensors[0].shape[0]
    _check_batch(pathway, batch)
    with torch.no_grad():
        full = check_logits(model(*tensors), batch)
        with restrict(model, pathway):
            restricted = check_logits(model(*tensors), batch)
    labels = resolve_target(target, full).view(-1, 1)
    p = F.softmax(full.double(), dim=1).gather(1, labels).squeeze(1)
    q = F.softmax(restricted.double(), dim=1).gather(1, labels).squeeze(1)
    drop = (p - q).clamp(min=0) / p.clamp(min=1e-300)
    kept = (restricted.argmax(dim=1) == labels.squeeze(1)).double()
    return Faithfulness(
        average_drop=100.0 * float(drop.mean()),
        increase_in_confidence=100.0 * float((q > p).double().mean()),
        mean_increase=100.0 * float((q - p).clamp(min=0).mean()),
        mean_decrease=100.0 * float((p - q).clamp(min=0).mean()),
        prediction_kept=100.0 * float(kept.mean()),
        confidence_change=(q - p).cpu(),
        kept_fraction=(1.0 - pathway.sparsity).cpu(),
    )


@dataclass(frozen=True)
class ClassRelevance:
    """Mean IoU (``Pathway.iou``) of the pathways of two samples of one class (``within``) and
    of two different classes (``across``), and ``within`` per class (classes with at least two
    samples). NaN where there is no such pair. Our measure of the paper's "class relevance"."""

    within: float
    across: float
    per_class: dict[int, float]


def pairwise_iou(pathway: Pathway) -> Tensor:
    """The IoU of every pair of the samples' pathways, a ``(B, B)`` float64 matrix (1 on the
    diagonal; two empty pathways count as equal). Vectorised: intersections are the matrix
    product of the kept sets as 0/1 rows, site by site; no loop over pairs."""
    _check_pathway(pathway, "pairwise_iou")
    batch = pathway.batch_size
    inter = torch.zeros(batch, batch, dtype=torch.float64)
    sizes = torch.zeros(batch, dtype=torch.float64)
    for gate in pathway.gates(torch.get_default_dtype()).values():
        rows = gate.reshape(batch, -1)
        # 0/1 products summed in float32 are exact integers up to 2^24 neurons per site
        inter += (rows @ rows.T).double().cpu()
        sizes += rows.sum(dim=1, dtype=torch.float64).cpu()
    union = sizes.unsqueeze(0) + sizes.unsqueeze(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def class_relevance(pathway: Pathway, classes: Sequence[int] | Tensor) -> ClassRelevance:
    """``pairwise_iou`` of the samples' pathways, averaged within and across ``classes`` (one
    class per sample)."""
    _check_pathway(pathway, "class_relevance")
    labels = _class_labels(classes, pathway.batch_size)
    iou = pairwise_iou(pathway)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    pairs = ~torch.eye(pathway.batch_size, dtype=torch.bool)
    per_class = {}
    for c in labels.unique().tolist():
        members = labels == c
        block = same & pairs & members.unsqueeze(0) & members.unsqueeze(1)
        if bool(block.any()):
            per_class[int(c)] = float(iou[block].mean())
    return ClassRelevance(
        within=_mean_or_nan(iou[same & pairs]),
        across=_mean_or_nan(iou[~same]),
        per_class=per_class,
    )


@dataclass(frozen=True)
class Transfer:
    """A class pathway applied to other inputs (``transfer_accuracy``; ours): % of inputs whose
    restricted prediction is their label and the mean softmax probability of the label, for the
    restricted and (for reference) the whole model, and the pathway's kept share of neurons."""

    accuracy: float
    confidence: float
    model_accuracy: float
    model_confidence: float
    kept_fraction: float


def transfer_accuracy(
    model: nn.Module, inputs: Inputs, labels: Sequence[int] | Tensor, pathway: Pathway
) -> Transfer:
    """Run the inputs through ``pathway`` and score the predictions against ``labels``. A pathway
    of batch 1 (e.g. ``class_pathway`` of ``j`` other samples' pathways) is applied to every
    input; a pathway with one sample per input (e.g. each input's own) is applied as it is.
    ``kept_fraction`` is the mean share of neurons kept."""
    check_module(model)
    check_eval_mode(model)
    _check_pathway(pathway, "transfer_accuracy")
    tensors, _ = as_input_tuple(inputs)
    batch = tensors[0].shape[0]
    if pathway.batch_size == 1:
        pathway = expand(pathway, batch)
    elif pathway.batch_size != batch:
        raise ValueError(
            f"the pathway holds {pathway.batch_size} samples but the inputs {batch}; give one "
            "pathway for all (batch 1, e.g. class_pathway(p)) or one per input."
        )
    expected = _class_labels(labels, batch)
    with torch.no_grad():
        full = check_logits(model(*tensors), batch)
        with restrict(model, pathway):
            restricted = check_logits(model(*tensors), batch)
    expected = expected.to(full.device)

    def scores(logits: Tensor) -> tuple[float, float]:
        probs = F.softmax(logits.double(), dim=1).gather(1, expected.view(-1, 1))
        correct = (logits.argmax(dim=1) == expected).double()
        return 100.0 * float(correct.mean()), float(probs.mean())

    accuracy, confidence = scores(restricted)
    model_accuracy, model_confidence = scores(full)
    return Transfer(
        accuracy=accuracy,
        confidence=confidence,
        model_accuracy=model_accuracy,
        model_confidence=model_confidence,
        kept_fraction=float(1.0 - pathway.sparsity.mean()),
    )


# ------------------------------------------------------------------------------------- helpers


def _capture(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    keep: Sequence[str],
) -> tuple[Tensor, dict[str, Tensor], dict[str, tuple[int, ...]], list[str]]:
    """One forward pass without gradients: logits, copies of the ``keep`` sites' activations
    (copies: a later in-place operation cannot change them), every site's shape, call order."""
    features: dict[str, Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    batch = tensors[0].shape[0]

    def capture(name: str, output: Tensor) -> None:
        shapes[name] = tuple(output.shape)
        if name in keep:
            features[name] = output.detach().clone()

    with torch.no_grad(), site_hooks(model, capture, modules, batch_size=batch) as calls:
        logits = check_logits(model(*tensors), batch)
        order = list(calls)
    if not order:
        raise ValueError(
            f"no ReLU/ReLU6 site ran in a forward pass of {type(model).__name__}; GEN-CNP needs "
            "nn.ReLU/nn.ReLU6 submodules (replace functional relu calls by modules)."
        )
    return logits, features, shapes, order


def _restricted_logits(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    masks: Mapping[str, Tensor],
) -> Tensor:
    """The model's logits with every site's output multiplied by its channel mask (with grad)."""

    def apply(name: str, output: Tensor) -> Tensor:
        return output * _broadcast(masks[name].to(output.dtype), output.shape)

    batch = tensors[0].shape[0]
    with torch.enable_grad(), site_hooks(model, apply, modules, batch_size=batch):
        return check_logits(model(*tensors), batch)


def _broadcast(channel_mask: Tensor, shape: Sequence[int]) -> Tensor:
    """A (B, C) mask viewed as (B, C, 1, ...) and expanded to ``shape``."""
    view = channel_mask.view(*channel_mask.shape, *([1] * (len(shape) - 2)))
    return view.expand(*shape)


def _site_channels(shapes: dict[str, tuple[int, ...]], order: list[str]) -> dict[str, int]:
    for name in order:
        if len(shapes[name]) < 2:
            raise ValueError(
                f"site '{name}' has activation shape {shapes[name]}; GEN-CNP needs activations "
                "shaped (batch, channels, ...) at every site."
            )
    return {name: shapes[name][1] for name in order}


def _roles(
    config: GeneratorTraining, shapes: dict[str, tuple[int, ...]], order: list[str]
) -> tuple[str, str]:
    """The shallow and deep sites: the config's, or the defaults (see ``GeneratorTraining``)."""
    spatial = [name for name in order if len(shapes[name]) > 2]
    shallow = config.shallow or (order[1] if len(order) > 1 else order[0])
    deep = config.deep or (spatial[-1] if spatial else order[-1])
    for role, name in (("shallow", shallow), ("deep", deep)):
        if name not in shapes:
            raise ValueError(
                f"GeneratorTraining.{role}={name!r} is not a site of {len(order)} sites of this "
                f"model ({', '.join(order[:8])}{', ...' if len(order) > 8 else ''}); pass one of "
                "them, or None for the default."
            )
    return shallow, deep


def _check_calls(calls: list[str], sites: list[str]) -> None:
    if list(calls) != list(sites):
        raise ValueError(
            f"the forward pass ran the sites {calls[:5]}..., but the generator predicts masks "
            f"for {sites[:5]}...; it was trained on another model: train one for this model."
        )


def _generator_modules(generator: PathwayGenerator, model: nn.Module) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    wanted = sorted({module_of_site(name) for name in generator.sites})
    absent = [name for name in wanted if name not in named]
    if absent:
        raise ValueError(
            f"the generator predicts masks for modules that {type(model).__name__} does not have "
            f"({', '.join(absent[:5])}); it was trained on another model: train one for this one."
        )
    return site_modules(model, wanted)


def _device(model: nn.Module, fallback: Tensor) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return fallback.device


@contextlib.contextmanager
def _reproducible(device: torch.device, num_threads: int | None) -> Iterator[None]:
    """On the CPU, deterministic algorithms and a fixed thread count (as the MNIST model's
    training); CUDA's deterministic mode needs a cuBLAS setting of the user's, so it is left."""
    if device.type != "cpu":
        yield
        return
    from .models import _deterministic

    with _deterministic(num_threads):
        yield


def _check_pathway(pathway: object, where: str) -> None:
    if not isinstance(pathway, Pathway):
        raise TypeError(
            f"{where} needs a Pathway, got {type(pathway).__name__}; make one with "
            "generate_pathway(generator, model, inputs)."
        )


def _check_batch(pathway: Pathway, batch: int) -> None:
    if pathway.batch_size != batch:
        raise ValueError(
            f"the pathway holds {pathway.batch_size} samples but the inputs {batch}; a pathway "
            "belongs to its batch: to apply one class pathway to many inputs, use expand(p, n)."
        )


def _class_labels(classes: Sequence[int] | Tensor, batch: int) -> Tensor:
    if isinstance(classes, Tensor):
        if classes.is_floating_point() or classes.dtype == torch.bool or classes.dim() != 1:
            raise TypeError(
                "classes/labels must be a 1-D integer tensor (one class per sample); use .long()."
            )
        labels = classes.detach().long().cpu()
    elif isinstance(classes, Sequence) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in classes
    ):
        labels = torch.tensor(list(classes), dtype=torch.long)
    else:
        raise TypeError(
            "classes/labels must be a list of ints or a 1-D integer tensor, one per sample."
        )
    if labels.numel() != batch:
        raise ValueError(
            f"got {labels.numel()} classes/labels for {batch} samples; give one per sample."
        )
    return labels


def _mean_or_nan(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan
