"""The transfer chapter's comparisons: pathways of equal size, their controls, and class summaries.

A generated pathway (``generate_pathway``) is judged against pathways that keep as many of the
same input's neurons but are chosen otherwise: by contribution (NeuronMCT), at random among the
input's active neurons, or as random channels with the generator's per-site channel counts. Size
is counted in *active* neurons (non-zero ReLU output), because an inactive neuron passes nothing
on whether it is kept or not (book/definitions.md, "Transferable pathways"). Everything here is
our construction; the 2023 paper's abstract names none of these controls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attribution import restricted_input_gradient
from ..pathway import Pathway, select_pathway
from .class_pathways import expand

__all__ = [
    "active_kept",
    "active_scores",
    "class_iou_matrix",
    "cosine_to",
    "gradients_through",
    "mean_field",
    "shuffled_channels",
    "top_k_pathway",
    "transferred_contribution_pathway",
]


def active_kept(pathway: Pathway, active: Pathway, rows: Tensor | Sequence[int]) -> Tensor:
    """Per input of ``rows``, how many of its active neurons ``pathway`` keeps: the size that
    matters, since keeping an inactive neuron changes nothing. ``active`` is
    ``pruning.active_pathway`` of all inputs; ``pathway`` holds one sample per row, or one sample
    that is applied to every row (a class pathway)."""
    _check(pathway, "active_kept")
    _check(active, "active_kept")
    if pathway.sites != active.sites:
        raise ValueError(
            "active_kept needs the pathway and the active pathway over the same sites; select "
            "both on the same model."
        )
    return sum(
        (pathway.masks[name] & mask[rows]).flatten(1).sum(dim=1)
        for name, mask in active.masks.items()
    )


def top_k_pathway(scores: Mapping[str, Tensor], counts: Sequence[int] | Tensor) -> Pathway:
    """Each input's ``counts[i]`` highest-scoring neurons (``select_pathway`` per input, so
    neurons tied at the threshold and zero scores are never kept): a pathway of a given size
    chosen by ``scores`` (contributions, or ``active_scores`` for a random choice)."""
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError("scores must be a non-empty mapping site name -> tensor (batch first).")
    n_neurons = sum(value[0].numel() for value in scores.values())
    batch = next(iter(scores.values())).shape[0]
    counts = [int(k) for k in counts]
    if len(counts) != batch:
        raise ValueError(f"got {len(counts)} counts for {batch} inputs; give one per input.")
    if any(k < 0 or k > n_neurons for k in counts):
        raise ValueError(f"counts must lie in [0, {n_neurons}] (the neurons per input).")

    def keep(i: int, k: int) -> Pathway:
        part = {name: value[i : i + 1] for name, value in scores.items()}
        if k == 0:  # sparsity 1 is no selection: an empty pathway
            return Pathway(
                {name: torch.zeros_like(v, dtype=torch.bool) for name, v in part.items()}
            )
        return select_pathway(part, (n_neurons - k) / n_neurons)

    return Pathway.cat([keep(i, k) for i, k in enumerate(counts)])


def active_scores(active: Pathway, rows: Tensor | Sequence[int], seed: int) -> dict[str, Tensor]:
    """Uniform scores in (0, 1] on each input's active neurons and 0 on the others (seeded):
    with ``top_k_pathway``, a random pathway of active neurons only. Drawn on the CPU and moved
    to the masks' device, so a seed gives the same scores on every device."""
    _check(active, "active_scores")
    rng = torch.Generator().manual_seed(seed)
    scores = {}
    for name, mask in active.masks.items():
        chosen = mask[rows]
        draw = torch.rand(chosen.shape, generator=rng, dtype=torch.float64)
        scores[name] = torch.where(chosen, 1.0 - draw.to(chosen.device), 0.0)
    return scores


def shuffled_channels(pathway: Pathway, seed: int) -> Pathway:
    """The channel structure of ``pathway`` without its choice: in every site and sample, the kept
    channels moved to random channels of that site (same counts; seeded, drawn on the CPU so a
    seed gives the same pathway on every device). Needs channel masks (every position of a
    channel kept or removed together), as the generator makes."""
    _check(pathway, "shuffled_channels")
    rng = torch.Generator().manual_seed(seed)
    masks = {}
    for name, mask in pathway.masks.items():
        channels = mask.reshape(*mask.shape[:2], -1)[:, :, 0]
        order = torch.rand(channels.shape, generator=rng).argsort(dim=1).to(channels.device)
        masks[name] = (
            channels.gather(1, order)
            .view(*channels.shape, *[1] * (mask.dim() - 2))
            .expand(mask.shape)
        )
    return Pathway(masks)


def mean_field(results: Sequence[object], field: str) -> float:
    """The mean of one field over several results (e.g. ``faithfulness`` of random seeds)."""
    if not results:
        raise ValueError("mean_field needs at least one result to average.")
    return float(np.mean([getattr(result, field) for result in results]))


def class_iou_matrix(
    pathway: Pathway, classes: Sequence[int] | Tensor, n_classes: int = 10
) -> np.ndarray:
    """The mean IoU of the pathways of two different samples of classes ``a`` and ``b``,
    an ``(n_classes, n_classes)`` array (NaN where a class has no such pair): the diagonal is
    class relevance within a class, the rest across classes (``Pathway.pairwise_iou``)."""
    _check(pathway, "class_iou_matrix")
    labels = torch.as_tensor(classes).long().cpu()
    if labels.dim() != 1 or len(labels) != pathway.batch_size:
        raise ValueError(
            f"give one class per sample: {pathway.batch_size} samples, classes shaped "
            f"{tuple(labels.shape)}."
        )
    iou = pathway.pairwise_iou()
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    matrix = np.zeros((n_classes, n_classes))
    for a in range(n_classes):
        for b in range(n_classes):
            block = (labels == a).unsqueeze(1) & (labels == b).unsqueeze(0) & off_diagonal
            matrix[a, b] = float(iou[block].mean()) if bool(block.any()) else np.nan
    return matrix


def transferred_contribution_pathway(
    contributions: Mapping[str, Tensor], rows: Tensor | Sequence[int], sparsity: float
) -> Pathway:
    """A class pathway built from contributions instead of a generator (our reference): the
    ``rows`` samples' contributions, each divided by its own total so that every sample weighs
    the same, averaged, and selected at ``sparsity`` (one sample, to transfer to others)."""
    scores = {name: value[rows] for name, value in contributions.items()}
    total = sum(value.flatten(1).sum(dim=1) for value in scores.values()).clamp(min=1e-30)
    mean = {
        name: (value / total.view(-1, *[1] * (value.dim() - 1))).mean(dim=0, keepdim=True)
        for name, value in scores.items()
    }
    return select_pathway(mean, sparsity)


def gradients_through(
    model: nn.Module, inputs: Tensor, target: Tensor, pathways: Mapping[str, Pathway]
) -> dict[str, Tensor]:
    """The input gradient of each input's ``target`` logit through each named pathway (the
    pathway gradient, book/definitions.md "The pathway gradient"); a pathway of one sample (a
    class pathway) is applied to every input."""
    maps = {}
    for name, pathway in pathways.items():
        _check(pathway, "gradients_through")
        if pathway.batch_size == 1:
            pathway = expand(pathway, len(inputs))
        maps[name] = restricted_input_gradient(model, inputs, target, pathway)[0]
    return maps


def cosine_to(maps: Mapping[str, Tensor], reference: str) -> dict[str, Tensor]:
    """Per input, the cosine similarity of every other map with ``maps[reference]``."""
    if reference not in maps:
        raise ValueError(f"reference {reference!r} is not one of the maps ({', '.join(maps)}).")
    base = maps[reference].flatten(1)
    return {
        name: F.cosine_similarity(value.flatten(1), base, dim=1)
        for name, value in maps.items()
        if name != reference
    }


def _check(pathway: object, where: str) -> None:
    if not isinstance(pathway, Pathway):
        raise TypeError(
            f"{where} needs a Pathway, got {type(pathway).__name__}; make one with "
            "generate_pathway or select_pathway."
        )
