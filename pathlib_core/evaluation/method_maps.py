"""The maps that the evaluation chapters compare: chosen methods of the registry, each with its
options, plus the ``Random`` baseline, for one model and one batch of inputs
(book/definitions.md, "Methods compared" and "Evaluation protocols").

Every evaluation judges a method against the others and against chance, so every chapter needs
the same dictionary ``{method name: maps}`` with a seeded random map beside the real ones. This
module builds it once: plainly (:func:`method_maps`), with each method's time per input
(:func:`timed_method_maps`), or saved on disk for a whole dataset (:func:`cached_method_maps`,
what ROAR needs for every training and test image). A chapter with methods of its own (not in
the registry) passes them as ``functions``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import cache, methods
from ..attribution import InputSpecificPruning
from ..methods import AttributionFn
from .perturbation import random_attributions
from .roar import cached_attributions

RANDOM = "Random"
"""The name of the chance baseline: a seeded standard-normal map (``random_attributions``)."""

Options = Mapping[str, Mapping[str, object]]


def functions(names: Sequence[str] | None = None, options: Options | None = None) -> dict:
    """``{name: AttributionFn}`` of registry methods (default: all, in registration order),
    each built with its entry of ``options`` (method name -> options, as
    ``methods.common_options`` returns them)."""
    options = options or {}
    chosen = methods.names() if names is None else list(names)
    return {name: methods.get(name, **options.get(name, {})) for name in chosen}


def predicted(model: nn.Module, inputs: Tensor) -> Tensor:
    """The class the model predicts for each input: the target the chapters explain (on the
    model's device, where the inputs are moved)."""
    with torch.no_grad():
        return model(inputs.to(cache.model_device(model))).argmax(dim=1)


def _chosen(
    names: Sequence[str] | None, options: Options | None, fns: Mapping[str, AttributionFn] | None
) -> dict[str, AttributionFn]:
    if fns is not None and (names is not None or options is not None):
        raise ValueError("pass either registry names and options, or functions, not both.")
    if fns is not None:
        if not all(callable(fn) for fn in fns.values()):
            raise TypeError("functions must map names to fn(model, inputs, target) callables.")
        return dict(fns)
    return functions(names, options)


def _with_random(maps: dict[str, Tensor], inputs: Tensor, random_seed: int | None) -> dict:
    if random_seed is not None:
        if RANDOM in maps:
            raise ValueError(f"a method is named {RANDOM!r}; rename it or pass random_seed=None.")
        maps[RANDOM] = random_attributions(inputs, seed=random_seed).cpu()  # as the others
    return maps


def _check_batch_size(batch_size: object) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")


def method_maps(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | None = None,
    names: Sequence[str] | None = None,
    options: Options | None = None,
    *,
    functions: Mapping[str, AttributionFn] | None = None,
    random_seed: int | None = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict[str, Tensor]:
    """``{name: maps}`` of each method on ``inputs`` for ``target`` (default: the predicted
    class), detached on the CPU, then ``Random`` (seeded by ``random_seed``; ``None`` leaves it
    out). Methods are the registry's ``names`` with ``options``, or your own ``functions``;
    ``batch_size`` inputs are explained at a time (all at once by default), on the model's device
    (inputs and targets are moved there). ``progress`` draws a tqdm bar on stderr; it changes no
    result."""
    _check_batch_size(batch_size)
    chosen = _chosen(names, options, functions)
    device = cache.model_device(model)
    target = predicted(model, inputs) if target is None else torch.as_tensor(target).to(device)
    on_device = inputs.to(device)
    step = batch_size or len(inputs)
    starts = range(0, len(inputs), step)
    maps = {}
    with tqdm(total=len(chosen) * len(starts), desc="method maps", disable=not progress) as bar:
        for name, fn in chosen.items():
            parts = []
            bar.set_postfix_str(name, refresh=False)  # shown with the next update
            for i in starts:
                chunk = on_device[i : i + step]
                parts.append(fn(model, chunk, target[i : i + step]).detach().cpu())
                bar.update()
            maps[name] = torch.cat(parts)
    return _with_random(maps, inputs, random_seed)


def timed_method_maps(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    names: Sequence[str] | None = None,
    options: Options | None = None,
    *,
    random_seed: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """:func:`method_maps` of registry methods (no ``Random`` by default) and each method's
    seconds per input. A method whose options save results across calls (a ``gate_chunk``, as
    DGR's learned gates) may have loaded them, so its time is measured again on one input with
    that option off: the time it takes when nothing is saved yet.
    ``progress`` draws a tqdm bar on stderr; it changes no result."""
    options = options or {}
    chosen = methods.names() if names is None else list(names)
    maps, seconds = {}, {}
    for name in chosen:
        started = time.perf_counter()
        maps.update(
            method_maps(model, inputs, target, [name], options, random_seed=None, progress=progress)
        )
        seconds[name] = (time.perf_counter() - started) / len(inputs)
    for name in chosen:
        own = dict(options.get(name, {}))
        if own.get("gate_chunk") is not None:
            device = cache.model_device(model)
            first, label = inputs[:1].to(device), torch.as_tensor(target[:1]).to(device)
            started = time.perf_counter()
            methods.attribute(name, model, first, label, **{**own, "gate_chunk": None})
            if device.type == "cuda":  # GPU work is asynchronous: wait for it before timing
                torch.cuda.synchronize(device)
            seconds[name] = time.perf_counter() - started
    return _with_random(maps, inputs, random_seed), seconds


def maps_fingerprint(model: nn.Module) -> str:
    """16 hex digits naming what a saved map of ``model`` depends on besides its method and
    inputs: the model's weights, the library code that computes maps and the torch, Captum,
    timm and torchvision versions."""
    return cache.content_key(cache.versions(), model.state_dict().items(), cache.MAP_SOURCES)[:16]


def cached_method_maps(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    names: Sequence[str],
    options: Options | None = None,
    *,
    split: str,
    model_name: str,
    random_seed: int | None = 0,
    batch_size: int = 250,
    progress: bool = True,
) -> dict[str, Tensor]:
    """:func:`method_maps` for a whole dataset (each image explained for its ``labels`` entry),
    saved on disk per method and loaded by any later call with the same model, method, options,
    images and labels (``evaluation.roar.cached_attributions``). ``model_name`` and ``split``
    (e.g. ``"mnist_cnn"``, ``"train"``) name the saved files. The maps are computed on the
    model's device and stored on the CPU; a device other than the CPU is part of the key
    (``cache.device_options``). ``progress`` draws a tqdm bar on stderr; it changes no result."""
    options = options or {}
    version = maps_fingerprint(model)
    maps = {}
    for name, fn in functions(names, options).items():
        key = f"{model_name}|{version}|{split}|{name}|{sorted(options.get(name, {}).items())}"
        maps[name] = cached_attributions(
            name,
            lambda x, t, fn=fn: fn(model, x, t),
            images,
            labels,
            key=key,
            batch_size=batch_size,
            progress=progress,
            device=cache.model_device(model),
        )
    return _with_random(maps, images, random_seed)


def options_key(options: Options) -> str:
    """A text naming every method's options, for the ``cache_key`` of an evaluation that saves
    maps (the sanity checks' cascades): the same options give the same text."""
    return repr(sorted(dict(options).items()))


def pruned_names(sparsities: Sequence[float]) -> list[str]:
    """The chapter's name of the pruned gradient at each sparsity: ``PruneGrad 0.9``."""
    return [f"PruneGrad {s}" for s in sparsities]


def input_specific_pruning_functions(
    prune_sparsities: Sequence[float],
    sparsity: float,
    epsilon: float,
    n_pgd_steps: int,
    ig_steps: int,
) -> dict[str, AttributionFn]:
    """Every map of the chapter as ``fn(model, inputs, target)``: the plain gradient, PruneGrad at
    each of ``prune_sparsities``, PrunePGD (budget ``epsilon``, pruned at ``sparsity``) and two
    references, Integrated Gradients (built to add up) and the 2021 NeuronIntGrad."""
    fns: dict[str, AttributionFn] = {"Gradient": methods.get("Gradient")}
    for s, name in zip(prune_sparsities, pruned_names(prune_sparsities), strict=True):
        fns[name] = lambda model, x, t, s=s: InputSpecificPruning(model).attribute(
            x, t, sparsity=s, mode="gradient"
        )
    fns["PrunePGD"] = lambda model, x, t: InputSpecificPruning(model).attribute(
        x, t, sparsity=sparsity, epsilon=epsilon, n_pgd_steps=n_pgd_steps
    )
    fns["IntegratedGradients"] = methods.get("IntegratedGradients", n_steps=ig_steps)
    fns["NeuronIntGrad"] = methods.get("NeuronIntGrad", sparsity=sparsity)
    return fns
