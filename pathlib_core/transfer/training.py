"""Training the GEN-CNP generator for a frozen model (``train_generator``, its recipe
``GeneratorTraining`` and losses, all ours) and the on-disk cache of trained generators
(keyed by ``cache.content_key``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .._validation import Inputs, as_input_tuple, check_eval_mode, check_logits, check_module
from ..cache import (
    cache_dir,
    content_key,
    device_options,
    load_state_dict,
    model_device,
    save_state_dict,
)
from ..models import deterministic, resolve_device
from ..sites import site_hooks, site_modules
from .generator import (
    PathwayGenerator,
    broadcast_channels,
    capture_sites,
    check_site_order,
    straight_through,
)

# Bump when the training code changes in a way that changes the weights, so that old cache
# entries are not reused.
_RECIPE_VERSION = 1
HISTORY_TERMS = ("total", "faithfulness", "sparsity", "relevance", "kept")
"""The per-epoch means in ``generator.history``: the loss and its three terms (unweighted), and
the share of neurons that the hard masks keep."""


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
    device: str | torch.device | None = None,
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
    Training runs on the model's device (the images are moved there batch by batch) inside
    ``models.deterministic``; ``device``, when given, must be that device (a check, so a script
    that asks for a GPU fails at once rather than training elsewhere; move the model yourself).
    Seeded (initialisation and batch order from ``config.seed``, drawn on the CPU); on the CPU
    the same inputs give bitwise identical weights. With ``cache``, the weights are saved on disk
    (as CPU tensors) under a key (``cache.content_key``) of the model's state, the images, the
    config, the recipe version and a device other than the CPU (``cache.device_options``), and a
    saved generator is loaded instead of training. Returns the generator in eval mode, on the
    model's device, with ``sites``, ``config`` and ``history`` (``HISTORY_TERMS`` -> per-epoch
    means). ``progress`` draws a tqdm bar on stderr; it changes no result.
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
    device = _training_device(model, tensors[0], device)
    modules = site_modules(model)
    first = tuple(t[: min(len(t), config.batch_size)].to(device) for t in tensors)
    _, _, shapes, order = capture_sites(model, first, modules, keep=())
    site_channels = _site_channels(shapes, order)
    shallow, deep = _roles(config, shapes, order)

    path = _cache_path(model, tensors, config, device) if cache else None
    if path is not None:
        loaded = _load_cached(path, site_channels, shallow, deep, config)
        if loaded is not None:
            return _finish(loaded[0], config, loaded[1], device)

    with deterministic(config.num_threads, device):
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
            "device": device.type,
        }
        save_state_dict(path, state, meta)
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
                full, features, shapes, calls = capture_sites(
                    model, x, modules, keep=(shallow, deep)
                )
                check_site_order(calls, generator.sites)
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


def _cache_path(
    model: nn.Module, tensors: tuple[Tensor, ...], config: GeneratorTraining, device: torch.device
) -> Path:
    """``cache_dir()/pathway_generator-<key>.pt``; the key (``cache.content_key``) hashes the
    model's architecture and state, the images, the config, ``_RECIPE_VERSION`` and a device
    other than the CPU."""
    key = content_key(
        {
            "model": "pathway_generator",
            "architecture": repr(model),
            "config": dataclasses.asdict(config),
            "recipe": _RECIPE_VERSION,
            **device_options(device),
        },
        [
            *(("state." + name, value) for name, value in model.state_dict().items()),
            *((f"images.{i}", tensor) for i, tensor in enumerate(tensors)),
        ],
    )
    return cache_dir() / f"pathway_generator-{key[:16]}.pt"


def _load_cached(
    path: Path,
    site_channels: dict[str, int],
    shallow: str,
    deep: str,
    config: GeneratorTraining,
) -> tuple[PathwayGenerator, dict[str, list[float]]] | None:
    state = load_state_dict(path)
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


def _restricted_logits(
    model: nn.Module,
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    masks: Mapping[str, Tensor],
) -> Tensor:
    """The model's logits with every site's output multiplied by its channel mask (with grad)."""

    def apply(name: str, output: Tensor) -> Tensor:
        return output * broadcast_channels(masks[name].to(output.dtype), output.shape)

    batch = tensors[0].shape[0]
    with torch.enable_grad(), site_hooks(model, apply, modules, batch_size=batch):
        return check_logits(model(*tensors), batch)


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


def _training_device(
    model: nn.Module, images: Tensor, asked: str | torch.device | None
) -> torch.device:
    """The model's device (the images' for a model without tensors); ``asked`` must be it."""
    device = model_device(model, fallback=images.device)
    if asked is None:
        return device
    wanted = resolve_device(asked)
    if wanted.type != device.type or wanted.index not in (None, device.index):
        raise ValueError(
            f"device={str(asked)!r} was asked for, but the model is on {device}; the generator "
            f"trains where the model runs: move the model first (model.to({str(wanted)!r})) or "
            "leave device=None."
        )
    return device
