"""How a GEN-CNP pathway stands for its model: faithfulness (Average Drop, Increase in
Confidence), class relevance (pathway IoU within and across classes) and the accuracy of a class
pathway transferred to other inputs. The definitions are ours (book/definitions.md,
"Transferable pathways")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import (
    Inputs,
    Target,
    as_input_tuple,
    check_eval_mode,
    check_module,
    resolve_target,
)
from ..pathway import Pathway, whole_and_restricted
from .class_pathways import check_pathway, expand


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
    check_pathway(pathway, "faithfulness")
    tensors, _ = as_input_tuple(inputs)
    _check_batch(pathway, tensors[0].shape[0])
    full, restricted = whole_and_restricted(model, tensors, pathway)
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


def class_relevance(pathway: Pathway, classes: Sequence[int] | Tensor) -> ClassRelevance:
    """``Pathway.pairwise_iou`` of the samples' pathways, averaged within and across ``classes``
    (one class per sample)."""
    check_pathway(pathway, "class_relevance")
    labels = _class_labels(classes, pathway.batch_size)
    iou = pathway.pairwise_iou()
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
    check_pathway(pathway, "transfer_accuracy")
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
    full, restricted = whole_and_restricted(model, tensors, pathway)
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
