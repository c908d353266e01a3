"""Pathways: per-sample boolean masks over the neurons, their selection, and running through them.

Selection (book/definitions.md, "Selecting a pathway"): per sample, one ranking of the contributions
of all sites together (``scope="global"``, the official code's single percentile over all layers) or
of each site on its own (``scope="site"``). ``sparsity`` is the fraction removed. With ``n`` neurons
ranked, ``r = ceil(sparsity * n)`` are to be removed: the threshold ``t`` is the ``r``-th smallest
score and a neuron is kept iff ``score > t`` and ``score != 0``. Ties at the threshold are therefore
all removed, as the official ``score <= thr``, and neurons with zero contribution (dead units) are
always removed when ``sparsity > 0``; so the kept fraction is at most ``1 - sparsity``, never more,
and ``Pathway.sparsity`` reports the fraction actually removed. ``sparsity = 0`` keeps every neuron.
Signed contributions are ranked by value, so negative ones go first.

Imposing (book/definitions.md, "Imposing a pathway"): under ``restrict(model, pathway)`` every
site's output is multiplied by its mask in a forward hook, so removed neurons output zero and every
later layer recomputes from there; biases are untouched.

Speed. EfficientNet-Lite0 has about 6 million neurons per image, so the selection must be linear
and lean: the threshold is found by a Floyd-Rivest style bracket (``_threshold_and_gates``) in a
few large tensor operations per site, without concatenating, sorting or ``torch.kthvalue`` over
all neurons (which copies and builds an int64 index array), and the kept/removed flags come out of
the same scan. On CPU this is ~4x faster than ``torch.kthvalue`` alone (benchmarks/).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType

import torch
from torch import Tensor, nn

from ._validation import (
    Inputs,
    as_input_tuple,
    check_choice,
    check_eval_mode,
    check_logits,
    check_module,
    check_sparsity,
)
from .sites import module_of_site, site_hooks, site_modules

SCOPES = ("global", "site")


class Pathway:
    """Boolean masks (site name -> mask shaped like the activation, batch first), forward order.

    ``settings`` records what produced the pathway (contribution method, requested sparsity,
    scope, ...). Indexing selects samples: ``pathway[i]`` is sample ``i``'s pathway (batch of 1).
    Internally the masks are held as 0.0/1.0 float "gates", what ``restrict`` multiplies by and
    what the statistics sum (on CPU, float arithmetic is much faster than bool); the bool masks
    are derived on first use.
    """

    def __init__(self, masks: Mapping[str, Tensor], settings: Mapping[str, object] | None = None):
        _check_masks(masks, bool_only=True)
        self._masks: dict[str, Tensor] | None = dict(masks)
        self._primary = {name: mask.to(torch.get_default_dtype()) for name, mask in masks.items()}
        self._gates = {torch.get_default_dtype(): self._primary}
        self.settings: dict[str, object] = dict(settings or {})

    @classmethod
    def from_gates(cls, gates: Mapping[str, Tensor], settings: Mapping[str, object]) -> Pathway:
        """A pathway from 0.0/1.0 float tensors, as the selection computes them."""
        _check_masks(gates, bool_only=False)
        pathway = cls.__new__(cls)
        pathway._masks = None
        pathway._primary = dict(gates)
        pathway._gates = {next(iter(gates.values())).dtype: pathway._primary}
        pathway.settings = dict(settings)
        return pathway

    @property
    def masks(self) -> Mapping[str, Tensor]:
        """Read-only mapping site name -> boolean mask, in forward order."""
        if self._masks is None:
            self._masks = {name: gate != 0 for name, gate in self._primary.items()}
        return MappingProxyType(self._masks)

    def gates(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """The masks as 0.0/1.0 tensors of ``dtype`` (cached)."""
        if dtype not in self._gates:
            self._gates[dtype] = {name: gate.to(dtype) for name, gate in self._primary.items()}
        return self._gates[dtype]

    @property
    def sites(self) -> list[str]:
        return list(self._primary)

    @property
    def batch_size(self) -> int:
        return next(iter(self._primary.values())).shape[0]

    @property
    def n_neurons(self) -> int:
        """Neurons per sample, all sites together."""
        return sum(gate[0].numel() for gate in self._primary.values())

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> Pathway:
        """The pathway of the selected samples (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Pathway({name: mask[index] for name, mask in self.masks.items()}, self.settings)

    def __repr__(self) -> str:
        removed = ", ".join(f"{s:.3f}" for s in self.sparsity.tolist()[:4])
        more = ", ..." if self.batch_size > 4 else ""
        return (
            f"Pathway({len(self.sites)} sites, {self.n_neurons} neurons per sample, "
            f"batch {self.batch_size}, sparsity [{removed}{more}])"
        )

    def kept_count(self) -> Tensor:
        """Kept neurons per sample (long tensor of length B)."""
        return sum(self._site_counts().values()).round().long()

    def _site_counts(self) -> dict[str, Tensor]:
        return {name: _row_sums(gate) for name, gate in self._primary.items()}

    @property
    def sparsity(self) -> Tensor:
        """Fraction of neurons actually removed, per sample (float64, length B)."""
        return 1.0 - self.kept_count().double() / self.n_neurons

    def kept_fraction(self) -> dict[str, Tensor]:
        """Per site, the fraction of its neurons kept, per sample (float64)."""
        return {
            name: count / self._primary[name][0].numel()
            for name, count in self._site_counts().items()
        }

    def iou(self, other: Pathway, by_site: bool = False) -> Tensor | dict[str, Tensor]:
        """Intersection over union (Jaccard) with ``other``, sample ``i`` with sample ``i``
        (float64, length B); per site if ``by_site``. Two empty masks have IoU 1 (they agree).
        The one IoU of the library, as the official ``path_analysis.py``; ``pairwise_iou``
        compares every sample with every other by the same computation."""
        inter, union = self._overlap(other, pairwise=False)
        if by_site:
            return {name: _ratio(inter[name], union[name]) for name in inter}
        return _ratio(sum(inter.values()), sum(union.values()))

    def pairwise_iou(self, other: Pathway | None = None) -> Tensor:
        """The IoU of sample ``i`` of this pathway with sample ``j`` of ``other`` (default: this
        pathway), a ``(B, B_other)`` float64 matrix on the CPU; with one pathway it is symmetric
        with 1 on the diagonal. The same computation as ``iou``, vectorised: the intersections
        are the matrix product of the kept sets as 0/1 rows, site by site; no loop over pairs."""
        inter, union = self._overlap(self if other is None else other, pairwise=True)
        return _ratio(sum(inter.values()), sum(union.values())).cpu()

    def _overlap(
        self, other: Pathway, pairwise: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per site, the kept neurons in both pathways and in either (float64 counts): per
        sample (``pairwise=False``, equal batches) or for every pair of samples."""
        if not isinstance(other, Pathway):
            raise TypeError(f"iou compares two Pathways, got {type(other).__name__}.")
        if other.sites != self.sites or (not pairwise and other.batch_size != self.batch_size):
            raise ValueError(
                "iou needs pathways over the same sites and samples; these differ "
                f"({len(self.sites)} vs {len(other.sites)} sites, batch {self.batch_size} vs "
                f"{other.batch_size})."
            )
        inter, union = {}, {}
        for name, gate in self._primary.items():
            theirs = other._primary[name].to(gate.device)
            mine_kept, their_kept = _row_sums(gate), _row_sums(theirs)
            if pairwise:
                # 0/1 products summed in float32 are exact integers up to 2^24 neurons per site
                dtype = torch.promote_types(
                    torch.promote_types(gate.dtype, theirs.dtype), torch.float32
                )
                rows, other_rows = gate.reshape(len(gate), -1), theirs.reshape(len(theirs), -1)
                inter[name] = (rows.to(dtype) @ other_rows.to(dtype).T).double()
                union[name] = mine_kept.unsqueeze(1) + their_kept.unsqueeze(0) - inter[name]
            else:
                inter[name] = _row_sums(gate * theirs)
                union[name] = mine_kept + their_kept - inter[name]
        return inter, union

    @staticmethod
    def cat(pathways: Sequence[Pathway]) -> Pathway:
        """One pathway holding the samples of ``pathways`` in order (same sites required), e.g.
        to run several kinds of pathway of one input as one batch; settings of the first."""
        pathways = list(pathways)
        if not pathways or not all(isinstance(p, Pathway) for p in pathways):
            raise TypeError("Pathway.cat takes a non-empty list of Pathways.")
        sites = pathways[0].sites
        for other in pathways[1:]:
            if other.sites != sites:
                raise ValueError(
                    "Pathway.cat needs pathways over the same sites (selected on one model)."
                )
        masks = {name: torch.cat([p.masks[name] for p in pathways]) for name in sites}
        return Pathway(masks, pathways[0].settings)

    def to(self, device: str | torch.device) -> Pathway:
        return Pathway({name: mask.to(device) for name, mask in self.masks.items()}, self.settings)


def _row_sums(gate: Tensor) -> Tensor:
    return gate.flatten(1).sum(dim=1, dtype=torch.float64)


def _check_masks(masks: Mapping[str, Tensor], bool_only: bool) -> None:
    if not isinstance(masks, Mapping) or not masks:
        raise ValueError("a Pathway needs a non-empty mapping of site name -> boolean mask.")
    first = None
    for name, mask in masks.items():
        if not isinstance(mask, Tensor) or (bool_only and mask.dtype != torch.bool):
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"mask '{name}' is {kind}; masks must be bool tensors (use mask > 0).")
        if mask.dim() < 2:
            raise ValueError(
                f"mask '{name}' has shape {tuple(mask.shape)}; masks are shaped like the "
                "activation with the batch first, e.g. (B, C, H, W) or (B, features)."
            )
        if first is not None and (mask.shape[0] != first.shape[0] or mask.device != first.device):
            raise ValueError(
                f"mask '{name}' has batch size {mask.shape[0]} on {mask.device}, but the first "
                f"mask has {first.shape[0]} on {first.device}; all masks must describe the same "
                "samples on one device."
            )
        first = mask


def _ratio(inter: Tensor, union: Tensor) -> Tensor:
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def removed_count(sparsity: float, n: int) -> int:
    """``ceil(sparsity * n)``, robust to float round-off (``0.07 * 100`` is ``7.000000000000001``,
    which must remove 7 neurons, not 8)."""
    return min(n, max(0, math.ceil(sparsity * n - 1e-6)))


def select_pathway(
    contributions: Mapping[str, Tensor], sparsity: float, scope: str = "global"
) -> Pathway:
    """Keep, per sample, the neurons with the highest contributions (module docstring for ties).

    ``contributions`` maps site name -> tensor (batch first, finite), as ``neuron_contributions``
    returns. Linear time per sample and no copy of the contributions: the threshold is an exact
    order statistic found without sorting (``kth_smallest``); no loop over samples.
    """
    sparsity = check_sparsity(sparsity)
    check_choice(scope, "scope", SCOPES)
    rows = _as_rows(contributions)
    groups = [list(rows)] if scope == "global" else [[name] for name in rows]
    gates: dict[str, Tensor] = {}
    for group in groups:
        for name, gate in zip(
            group, _gates([rows[name] for name in group], sparsity), strict=False
        ):
            gates[name] = gate.view(contributions[name].shape)
    settings = dict(getattr(contributions, "settings", {}))
    settings.update(sparsity=sparsity, scope=scope)
    return Pathway.from_gates(gates, settings)


def _as_rows(contributions: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each site's contributions as a (batch, neurons) view, after checking them."""
    if not isinstance(contributions, Mapping) or not contributions:
        raise ValueError("contributions must be a non-empty mapping site name -> tensor.")
    first = None
    rows = {}
    for name, value in contributions.items():
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() < 2:
            raise TypeError(f"contributions['{name}'] must be a float tensor shaped (batch, ...).")
        if first is not None and (value.shape[0] != first.shape[0] or value.dtype != first.dtype):
            raise ValueError(
                f"contributions['{name}'] has batch size {value.shape[0]} and {value.dtype}, "
                f"expected {first.shape[0]} and {first.dtype} like the first site."
            )
        first = value
        rows[name] = value.reshape(value.shape[0], -1)
    return rows


def _gates(parts: list[Tensor], sparsity: float) -> list[Tensor]:
    """Per part, 1.0 where the neuron is kept and 0.0 where it is removed."""
    k = removed_count(sparsity, sum(part.shape[1] for part in parts))
    if k == 0:
        return [
            torch.ones_like(part) if sparsity == 0 else (part != 0).to(part.dtype) for part in parts
        ]
    thresholds, gates = _threshold_and_gates(parts, k)
    if bool((thresholds < 0).any()):  # signed contributions: zeros go as well
        for gate, part in zip(gates, parts, strict=False):
            gate.mul_(part != 0)
    return gates


def kth_smallest(parts: Sequence[Tensor], k: int) -> Tensor:
    """The exact ``k``-th smallest value (1-based) of each row of ``torch.cat(parts, dim=1)``,
    in O(n) per row without concatenating (see ``_threshold_and_gates``)."""
    return _threshold_and_gates(parts, k)[0]


def _threshold_and_gates(parts: Sequence[Tensor], k: int) -> tuple[Tensor, list[Tensor]]:
    """Per row the k-th smallest value ``t``, and per part the gates ``value > t`` (0.0/1.0).

    Floyd-Rivest style selection: two order statistics of a strided sample of each row bracket
    ``t``; one scan per site computes ``value > lo`` (the gates, but for the bracket), counts it,
    and extracts the few values inside the bracket, among which one more selection finds ``t``;
    the bracketed values ``<= t`` are then removed from the gates. Rows whose bracket misses
    (rare) fall back to ``torch.kthvalue``. Deterministic. Values must be finite (NaN is not
    ranked).
    """
    batch = parts[0].shape[0]
    n = sum(part.shape[1] for part in parts)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}.")
    if n <= _DIRECT_SELECTION:
        thresholds = torch.cat(list(parts), dim=1).kthvalue(k, dim=1).values
        return thresholds, [_above(part, thresholds) for part in parts]
    lo, hi = _bracket(parts, k, n)
    above_lo, pieces, gates = _scan(parts, lo, hi)
    upto_lo = n - above_lo
    found = (upto_lo < k) & (k <= upto_lo + sum(counts for counts, _, _ in pieces))
    thresholds = _select_in_bracket(pieces, torch.where(found, k - upto_lo, 1), batch)
    _remove_bracketed(pieces, gates, thresholds, found)
    if bool(found.all()):
        return thresholds, gates
    # the k-th value is lo itself (a tie mass at lo, e.g. dead neurons): the gates are right
    at_lo = ~found & (k <= upto_lo) & (_count_below(parts, lo) < k)
    thresholds = torch.where(at_lo, lo.squeeze(1), thresholds)
    missed = ~(found | at_lo)
    if bool(missed.any()):
        thresholds[missed] = (
            torch.cat([part[missed] for part in parts], dim=1).kthvalue(k, dim=1).values
        )
        for gate, part in zip(gates, parts, strict=False):
            gate[missed] = _above(part[missed], thresholds[missed])
    return thresholds, gates


def _above(part: Tensor, thresholds: Tensor) -> Tensor:
    return (part > thresholds.unsqueeze(1)).to(part.dtype)


_DIRECT_SELECTION = 1 << 14  # rows this short: torch.kthvalue is as fast
_SIGMAS = 4.0  # bracket half-width in standard deviations of the sample quantile
_SAME_SIZE_INT = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
Pieces = list[tuple[Tensor, Tensor, Tensor]]  # per site: count per row, values, flat positions


def _bracket(parts: Sequence[Tensor], k: int, n: int) -> tuple[Tensor, Tensor]:
    """Per row, ``lo <= hi`` (shape (B, 1)) such that the k-th smallest lies in [lo, hi] with
    high probability, read off a sample of about ``2 n^(2/3)`` values per row.

    The sample takes every ``stride``-th value of each site, with a stride coprime to 2, 3, 5
    and 7 so that it does not lock onto a channel or a row of a feature map; a biased sample
    only costs speed (the bracket misses), never exactness.
    """
    wanted = min(2 * n ** (2 / 3), n / 8, 1 << 16)
    samples = []
    for part in parts:
        stride = _coprime_stride(part.shape[1] / max(1.0, wanted * part.shape[1] / n))
        samples.append(part[:, stride // 2 :: stride])
    sample = torch.cat(samples, dim=1)
    m = sample.shape[1]
    p = k / n
    margin = _SIGMAS * math.sqrt(max(p * (1 - p), 1.0 / m) / m) + 2.0 / m
    low = min(m, max(1, math.floor((p - margin) * m)))
    high = min(m, max(low, math.ceil((p + margin) * m)))
    lo, hi = _order_statistics(sample, [low, high])
    return lo.unsqueeze(1), hi.unsqueeze(1)


def _coprime_stride(approximate: float) -> int:
    stride = max(1, int(approximate))
    while math.gcd(stride, 210) != 1:
        stride += 1
    return stride


def _order_statistics(rows: Tensor, ranks: list[int]) -> list[Tensor]:
    """Per row, the ``ranks``-th smallest values (1-based). On CPU NumPy's introselect, which
    needs no index array and is about twice as fast as ``torch.kthvalue``."""
    if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64):
        import numpy

        positions = [r - 1 for r in ranks]
        selected = numpy.partition(rows.detach().numpy(), positions, axis=1)
        return [torch.from_numpy(selected[:, p].copy()) for p in positions]
    return [rows.kthvalue(r, dim=1).values for r in ranks]


def _scan(parts: Sequence[Tensor], lo: Tensor, hi: Tensor) -> tuple[Tensor, Pieces, list[Tensor]]:
    """Per site the gates ``value > lo``; per row how many there are; per site the values in
    (lo, hi] with their count per row and flat positions.

    Comparisons write 0.0/1.0 floats: on CPU, summing floats is many times faster than summing
    bools. A few large operations per site, no chunking (many small parallel operations crawl
    on a busy machine).
    """
    buffer = torch.empty(max(part.numel() for part in parts), dtype=lo.dtype, device=lo.device)
    above_lo = torch.zeros(lo.shape[0], dtype=torch.long, device=lo.device)
    pieces, gates = [], []
    for part in parts:
        gate = torch.gt(part, lo, out=torch.empty(part.shape, dtype=part.dtype, device=part.device))
        above_lo += gate.sum(dim=1).long()
        inside = torch.gt(part, hi, out=buffer[: part.numel()].view(part.shape))
        torch.sub(gate, inside, out=inside)  # 1.0 exactly where lo < value <= hi, else 0.0
        counts = inside.sum(dim=1).long()
        # nonzero on the integer view of 0.0/1.0 is the fastest test; row-major order
        where = inside.view(-1).view(_SAME_SIZE_INT[inside.dtype]).nonzero().squeeze(1)
        if part.is_contiguous():
            values = part.reshape(-1)[where]
        else:
            values = part[where // part.shape[1], where % part.shape[1]]
        pieces.append((counts, values, where))
        gates.append(gate)
    return above_lo, pieces, gates


def _select_in_bracket(pieces: Pieces, ranks: Tensor, batch: int) -> Tensor:
    """Per row, the ``ranks``-th smallest (1-based) of its bracketed values, in one selection:
    each row is led by ``max(ranks) - rank`` copies of -inf so that all rows' answers sit at the
    same rank, then holds its values, then +inf padding."""
    rank = int(ranks.max())
    lead = rank - ranks
    counts = sum(c for c, _, _ in pieces)
    width = max(int((lead + counts).max()), rank)
    dtype, device = pieces[0][1].dtype, pieces[0][1].device
    columns = torch.arange(width, device=device)
    padded = torch.where(columns < lead.unsqueeze(1), -math.inf, math.inf).to(dtype)
    next_free = lead + torch.arange(batch, device=device) * width  # flat index per row
    for row_counts, values, _ in pieces:
        starts = torch.cumsum(row_counts, 0) - row_counts
        offsets = torch.repeat_interleave(
            next_free - starts, row_counts, output_size=values.numel()
        )
        padded.view(-1)[torch.arange(values.numel(), device=device) + offsets] = values
        next_free += row_counts
    (result,) = _order_statistics(padded, [rank])
    return result.to(device)


def _remove_bracketed(
    pieces: Pieces, gates: list[Tensor], thresholds: Tensor, rows: Tensor
) -> None:
    """In the given rows, set the gates of bracketed values ``<= threshold`` to 0 (elsewhere the
    bracketed gates stay 1: they are above lo)."""
    effective = torch.where(rows, thresholds, -math.inf)
    for (counts, values, where), gate in zip(pieces, gates, strict=False):
        per_value = torch.repeat_interleave(effective, counts, output_size=values.numel())
        gate.view(-1)[where] = (values > per_value).to(gate.dtype)


def _count_below(parts: Sequence[Tensor], bound: Tensor) -> Tensor:
    """Per row, how many values are < bound."""
    buffer = torch.empty(
        max(part.numel() for part in parts), dtype=bound.dtype, device=bound.device
    )
    total = torch.zeros(bound.shape[0], dtype=torch.long, device=bound.device)
    for part in parts:
        total += (
            torch.lt(part, bound, out=buffer[: part.numel()].view(part.shape)).sum(dim=1).long()
        )
    return total


@contextmanager
def restrict(model: nn.Module, pathway: Pathway) -> Iterator[Pathway]:
    """Within the context, ``model`` computes through ``pathway`` only.

    Every site's output is multiplied by its mask (removed neurons output zero; later layers
    recompute from there), as the official code's forward hook. Each forward pass must run the
    pathway's sites with activations of exactly the masks' shapes (the same batch of samples);
    otherwise ``ValueError``. Hooks are removed on exit, also when the body raises.
    """
    check_module(model)
    if not isinstance(pathway, Pathway):
        raise TypeError(
            f"restrict needs a Pathway, got {type(pathway).__name__}; see select_pathway."
        )
    sites = pathway.sites
    named = dict(model.named_modules())
    absent = sorted({module_of_site(name) for name in sites} - set(named))
    if absent:
        raise ValueError(
            f"the pathway has sites in modules that {type(model).__name__} does not have "
            f"({', '.join(absent[:5])}); it was selected on another model: select it on this one."
        )
    modules = site_modules(model, sorted({module_of_site(name) for name in sites}))

    def apply_mask(name: str, output: Tensor) -> Tensor:
        gates = pathway.gates(output.dtype)
        gate = gates.get(name)
        if gate is None:
            raise ValueError(
                f"site '{name}' ran but the pathway has no mask for it; the pathway was selected "
                "on another model or with other sites= (compute it on this model)."
            )
        if gate.shape != output.shape or gate.device != output.device:
            raise ValueError(
                f"site '{name}' has activation {tuple(output.shape)} on {output.device}, but the "
                f"pathway's mask is {tuple(gate.shape)} on {gate.device}. A pathway belongs to its "
                "batch of samples: run the same inputs, select samples with pathway[indices], "
                "or move it with pathway.to(device)."
            )
        return output * gate

    def check_all_ran(calls: list[str]) -> None:
        ran = set(calls)
        missing = [name for name in sites if name not in ran]
        if missing:
            raise ValueError(
                f"the pathway has masks for sites that did not run in this forward pass: "
                f"{', '.join(missing[:5])}; the pathway was selected on another model or input."
            )

    with site_hooks(model, apply_mask, modules, after_forward=check_all_ran):
        yield pathway


def whole_and_restricted(
    model: nn.Module, inputs: Inputs, pathway: Pathway
) -> tuple[Tensor, Tensor]:
    """The logits of the whole network and of the network restricted to ``pathway`` (one pathway
    per sample of ``inputs``), from two forward passes without gradients; the model is left as it
    was (eval mode required). The one comparison behind the measures of how well a pathway
    stands for its network (``pruning.output_preservation``, ``transfer.faithfulness``,
    ``transfer.transfer_accuracy``)."""
    check_module(model)
    check_eval_mode(model)
    tensors, _ = as_input_tuple(inputs)
    batch = tensors[0].shape[0]
    with torch.no_grad():
        whole = check_logits(model(*tensors), batch)
        with restrict(model, pathway):
            restricted = check_logits(model(*tensors), batch)
    return whole, restricted
