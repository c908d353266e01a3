"""Small seeded float64 models and independent (hook-free) references for the core tests.

The references never use ``pathlib_core``: masked networks are written out as explicit forward
loops that multiply each ReLU output by its mask, and the selection rule is implemented by sorting.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn


def mlp(sizes: list[int], seed: int = 0) -> nn.Sequential:
    """Linear -> ReLU -> ... -> Linear, float64, eval mode."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double().eval()


def small_cnn(seed: int = 0, classes: int = 5) -> nn.Sequential:
    """conv-relu-conv-relu-pool-flatten-linear-relu-linear on 1x8x8 inputs, float64, eval mode."""
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(6 * 4 * 4, 12),
            nn.ReLU(),
            nn.Linear(12, classes),
        )
        .double()
        .eval()
    )


def relu_positions(model: nn.Sequential) -> list[int]:
    return [i for i, layer in enumerate(model) if isinstance(layer, (nn.ReLU, nn.ReLU6))]


def hand_forward(
    model: nn.Sequential,
    x: Tensor,
    masks: list[Tensor] | None = None,
    keep: list[Tensor] | None = None,
) -> Tensor:
    """Forward through a Sequential, multiplying the i-th ReLU output by ``masks[i]`` (no hooks).

    ``keep`` collects the (masked) ReLU outputs, which stay in the graph.
    """
    relu_index = 0
    for layer in model:
        x = layer(x)
        if isinstance(layer, (nn.ReLU, nn.ReLU6)):
            if masks is not None:
                x = x * masks[relu_index].to(x.dtype)
            if keep is not None:
                keep.append(x)
            relu_index += 1
    return x


def hand_taylor(
    model: nn.Sequential, x: Tensor, target: Tensor, absolute: bool = True
) -> list[Tensor]:
    """|a * d y_target / d a| per ReLU output, by autograd on the hand-written forward."""
    acts: list[Tensor] = []
    logits = hand_forward(model, x, keep=acts)
    grads = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), acts)
    scores = [a.detach() * g for a, g in zip(acts, grads, strict=False)]
    return [s.abs() for s in scores] if absolute else scores


def hand_integrated(model: nn.Sequential, x: Tensor, target: Tensor, n_steps: int) -> list[Tensor]:
    """Layer-wise integrated gradients, one site and one alpha at a time (explicit loops),
    trapezoid rule on alpha_k = k / n_steps."""
    relus = relu_positions(model)
    with torch.no_grad():
        acts: list[Tensor] = []
        hand_forward(model, x, keep=acts)
    scores = []
    for site, act in enumerate(acts):
        total = torch.zeros_like(act)
        for step in range(n_steps + 1):
            alpha = step / n_steps
            weight = (0.5 if step in (0, n_steps) else 1.0) / n_steps
            scaled = (act * alpha).requires_grad_(True)
            out = scaled
            for layer in list(model)[relus[site] + 1 :]:
                out = layer(out)
            (grad,) = torch.autograd.grad(out.gather(1, target.view(-1, 1)).sum(), scaled)
            total += weight * grad
        scores.append((act * total).abs())
    return scores


def hand_pathway_gradient(
    model: nn.Sequential, x: Tensor, target: Tensor, masks: list[Tensor]
) -> Tensor:
    """Input gradient of the target logit through the explicitly masked network."""
    x = x.clone().requires_grad_(True)
    logits = hand_forward(model, x, masks)
    (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    return grad


def reference_masks(scores: list[Tensor], sparsity: float, scope: str = "global") -> list[Tensor]:
    """The documented selection rule by sorting: remove r = ceil(s * n) neurons per sample;
    keep score > (r-th smallest) and score != 0 when s > 0."""
    batch = scores[0].shape[0]
    groups = [list(range(len(scores)))] if scope == "global" else [[i] for i in range(len(scores))]
    masks: list[Tensor | None] = [None] * len(scores)
    for group in groups:
        flat = torch.cat([scores[i].reshape(batch, -1) for i in group], dim=1)
        n = flat.shape[1]
        r = min(n, max(0, math.ceil(sparsity * n - 1e-6)))
        if r == 0:
            threshold = torch.full((batch, 1), -math.inf, dtype=flat.dtype)
        else:
            threshold = flat.sort(dim=1).values[:, r - 1 : r]
        for i in group:
            value = scores[i]
            t = threshold.view(-1, *([1] * (value.dim() - 1)))
            keep = value > t
            if sparsity > 0:
                keep &= value != 0
            masks[i] = keep
    return masks  # type: ignore[return-value]


class ReusedReLU(nn.Module):
    """One nn.ReLU called twice per forward (as torchvision's ResNet blocks), float64."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(4, 6)
        self.fc2 = nn.Linear(6, 5)
        self.fc3 = nn.Linear(5, 3)
        self.relu = nn.ReLU()
        self.double().eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))

    def hand_forward(self, x: Tensor, masks: list[Tensor]) -> Tensor:
        h = torch.relu(self.fc1(x)) * masks[0]
        return self.fc3(torch.relu(self.fc2(h)) * masks[1])


class EditsSiteInPlace(nn.Module):
    """An in-place ReLU whose output is modified in place afterwards (``a += 1``)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(4, 6)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(6, 3)
        self.double().eval()

    def forward(self, x: Tensor) -> Tensor:
        a = self.relu(self.fc1(x))
        a += 1.0
        return self.fc2(a)


class Raises(nn.Module):
    """Raises in forward when ``armed``; used to test cleanup."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def forward(self, x: Tensor) -> Tensor:
        if self.armed:
            raise RuntimeError("boom")
        return x


def raising_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), Raises(), nn.Linear(6, 3)).double().eval()


def model_state(model: nn.Module) -> dict:
    """Everything a call must leave unchanged: parameters and buffers bit for bit, modes,
    requires_grad flags, hooks on every module, and the global module hooks."""
    from torch.nn.modules import module as module_lib

    hook_dicts = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_pre_hooks_with_kwargs",
        "_state_dict_hooks",
        "_load_state_dict_pre_hooks",
    )
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {
            name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()
        },
        "hooks": {
            name: {h: list(getattr(m, h, {}).keys()) for h in hook_dicts}
            for name, m in model.named_modules()
        },
        "global": [
            len(getattr(module_lib, h))
            for h in dir(module_lib)
            if h.startswith("_global_") and isinstance(getattr(module_lib, h), dict)
        ],
    }


def assert_same_state(before: dict, after: dict) -> None:
    for key in ("training", "requires_grad", "hooks", "global"):
        if before[key] != after[key]:
            raise AssertionError(f"model {key} changed: {before[key]} -> {after[key]}")
    for name, value in before["tensors"].items():
        if not torch.equal(value, after["tensors"][name]):
            raise AssertionError(f"tensor {name} changed")
    for name, grad in before["grads"].items():
        other = after["grads"][name]
        if (grad is None) != (other is None) or (grad is not None and not torch.equal(grad, other)):
            raise AssertionError(f".grad of {name} changed")


def count_gate_learning(monkeypatch) -> list[int]:
    """Record the batch size of every call of ``pruning.learned_gates`` from now on (the wrapper
    keeps its signature, which the gate store reads)."""
    import functools

    from pathlib_core import pruning

    calls: list[int] = []
    original = pruning.learned_gates

    @functools.wraps(original)
    def counted(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(pruning, "learned_gates", counted)
    return calls
