"""The GEN-CNP generator (ours, after Lin et al. 2023): the network that reads the target model's
feature maps and predicts each input's channel masks, the straight-through relaxation it trains
with, and the forward pass that captures the target model's sites for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._validation import check_logits
from ..sites import site_hooks

HEAD_BIAS = 2.0
"""Initial bias of every head: sigmoid(2) = 0.88, so training starts from "keep (almost) all"."""


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


def capture_sites(
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


def broadcast_channels(channel_mask: Tensor, shape: Sequence[int]) -> Tensor:
    """A (B, C) mask viewed as (B, C, 1, ...) and expanded to ``shape``."""
    view = channel_mask.view(*channel_mask.shape, *([1] * (len(shape) - 2)))
    return view.expand(*shape)


def check_site_order(calls: list[str], sites: list[str]) -> None:
    """The sites that ran must be the generator's, in its order: else it belongs to another
    model."""
    if list(calls) != list(sites):
        raise ValueError(
            f"the forward pass ran the sites {calls[:5]}..., but the generator predicts masks "
            f"for {sites[:5]}...; it was trained on another model: train one for this model."
        )
