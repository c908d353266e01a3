"""Class pathways (ours): the vote of ``j`` samples' pathways, and one pathway repeated to run
other inputs of the class through it."""

from __future__ import annotations

import torch

from ..pathway import Pathway


def class_pathway(pathway: Pathway, min_share: float = 0.5) -> Pathway:
    """The class pathway of ``j`` samples' pathways (ours: a vote): a neuron is kept if it is kept
    in at least ``min_share`` of the samples. A pathway of batch size 1; apply it to other inputs
    of the class with ``expand(class_pathway(...), n)``."""
    check_pathway(pathway, "class_pathway")
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
    check_pathway(pathway, "expand")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of inputs), got {n!r}.")
    if pathway.batch_size != 1:
        raise ValueError(
            f"expand repeats a pathway of one sample, but this one has {pathway.batch_size}; "
            "combine them first with class_pathway(pathway), or select one with pathway[i]."
        )
    masks = {name: mask.expand(n, *mask.shape[1:]) for name, mask in pathway.masks.items()}
    return Pathway(masks, pathway.settings)


def check_pathway(pathway: object, where: str) -> None:
    """Refuse anything but a ``Pathway`` in ``where``, saying how to make one."""
    if not isinstance(pathway, Pathway):
        raise TypeError(
            f"{where} needs a Pathway, got {type(pathway).__name__}; make one with "
            "generate_pathway(generator, model, inputs)."
        )
