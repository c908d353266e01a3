"""Input checks shared by the core modules.

Every check raises ``TypeError`` or ``ValueError`` with a sentence that names the fix; none uses
``assert`` (which ``python -O`` removes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

Inputs = Tensor | tuple[Tensor, ...]
Target = None | int | Sequence[int] | Tensor


def check_module(model: object) -> nn.Module:
    """Return ``model`` if it is a ``torch.nn.Module``; the neurons are found through its
    modules."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module, got {type(model).__name__}; wrap a plain function "
            "in a Module whose ReLU/ReLU6 nonlinearities are submodules."
        )
    return model


def check_eval_mode(model: nn.Module) -> None:
    """Refuse a model in training mode; the library never switches the mode itself."""
    for name, module in model.named_modules():
        if module.training:
            where = f"submodule '{name}'" if name else "the model"
            raise ValueError(
                f"{where} is in training mode; call model.eval() first (pathways are defined for "
                "the deterministic network: BatchNorm running statistics, no dropout). "
                "This library never changes the mode of your model."
            )


def as_input_tuple(inputs: Inputs) -> tuple[tuple[Tensor, ...], bool]:
    """Captum's convention: a tensor or a tuple of tensors, batch first, floating point.

    Returns the inputs as a tuple and whether they were given as one.
    """
    is_tuple = isinstance(inputs, tuple)
    items = inputs if is_tuple else (inputs,)
    if not items:
        raise ValueError(
            "inputs is an empty tuple; pass a batch of inputs, e.g. shape (B, C, H, W)."
        )
    batch = None
    for i, tensor in enumerate(items):
        where = f"inputs[{i}]" if is_tuple else "inputs"
        if not isinstance(tensor, Tensor):
            raise TypeError(
                f"{where} must be a torch.Tensor (or a tuple of tensors), got "
                f"{type(tensor).__name__}; convert it with torch.as_tensor(...)."
            )
        if not tensor.is_floating_point():
            raise TypeError(
                f"{where} has dtype {tensor.dtype}; gradients need floating point inputs: "
                "convert with inputs.float() (and scale images to the range the model expects)."
            )
        if tensor.dim() == 0 or tensor.shape[0] == 0:
            raise ValueError(
                f"{where} has shape {tuple(tensor.shape)}; inputs are batches with the batch "
                "dimension first, e.g. image.unsqueeze(0) for a single image."
            )
        if batch is not None and tensor.shape[0] != batch:
            raise ValueError(
                f"{where} has batch size {tensor.shape[0]} but inputs[0] has {batch}; "
                "all inputs must share the first (batch) dimension."
            )
        batch = tensor.shape[0]
    return tuple(items), is_tuple


def check_logits(logits: object, batch_size: int) -> Tensor:
    """The model must return one row of class scores (pre-softmax logits) per sample."""
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"the model returned {type(logits).__name__}; it must return a tensor of logits of "
            "shape (batch, classes). Wrap the model so that forward returns that tensor."
        )
    if logits.dim() != 2 or logits.shape[0] != batch_size:
        raise ValueError(
            f"the model returned shape {tuple(logits.shape)}, expected (batch, classes) with "
            f"batch = {batch_size}. If the inputs lack the batch dimension, add it with "
            "inputs.unsqueeze(0); if the model returns more dimensions, wrap it so that it "
            "returns one logit per class."
        )
    return logits


def resolve_target(target: Target, logits: Tensor) -> Tensor:
    """Captum's ``target`` (None, int, list or 1-D tensor) as a long tensor of length B.

    ``None`` means each sample's predicted class (the arg-max logit), as the official code's
    ``Pruner`` does when no label is given.
    """
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError(
            "target must be an int, a list of ints or a 1-D integer tensor, got a bool."
        )
    if isinstance(target, int):
        labels = torch.full((batch,), target, dtype=torch.long)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(
                f"target has dtype {target.dtype}; class indices must be integers: "
                "use target.long()."
            )
        if target.dim() > 1:
            raise ValueError(
                f"target has shape {tuple(target.shape)}; give one class index per sample "
                "(a 1-D tensor of length B) or a single int."
            )
        labels = target.reshape(-1).long()
        if labels.numel() == 1:
            labels = labels.expand(batch)
    elif isinstance(target, tuple):
        raise TypeError(
            "tuple targets index multi-dimensional outputs in Captum, which is not supported: the "
            "model must return (batch, classes); give per-sample classes as a list or a 1-D tensor."
        )
    elif isinstance(target, list):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            raise TypeError("target as a list must hold one int class index per sample.")
        labels = torch.tensor(list(target), dtype=torch.long)
    else:
        raise TypeError(
            f"target must be None, an int, a list of ints or a 1-D integer tensor, "
            f"got {type(target).__name__}."
        )
    if labels.numel() != batch:
        raise ValueError(
            f"target has {labels.numel()} entries but the batch has {batch} samples; "
            "give one class index per sample or a single int."
        )
    labels = labels.to(logits.device)
    if bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(
            f"target {labels.tolist()} is out of range for a model with {classes} classes; "
            f"use class indices in [0, {classes - 1}]."
        )
    return labels


def check_sparsity(sparsity: object) -> float:
    """Sparsity is the fraction of neurons removed, in [0, 1) (the paper's "sparsity 90" is 0.9)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(
            f"sparsity must be a number in [0, 1), got {type(sparsity).__name__}; "
            "the paper's 'sparsity 90' is sparsity=0.9."
        )
    value = float(sparsity)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        hint = f" (did you mean {value / 100:g}?)" if 1.0 <= value < 100.0 else ""
        raise ValueError(
            f"sparsity must be the fraction of neurons removed, in [0, 1), got {sparsity}{hint}; "
            "the paper's 'sparsity 90' is sparsity=0.9."
        )
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` must be one of ``choices`` (strings)."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; choose one of {options}.")
    return str(value)


def check_positive_int(value: object, name: str) -> int:
    """A positive integer, e.g. a number of integration steps."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value
