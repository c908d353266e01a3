"""The kinds of pathway the chapters compare, built side by side for one batch of inputs.

The paper's first two claims compare pathways chosen in different ways for the same input:
by contribution (NeuronMCT, NeuronIntGrad; book/definitions.md, "Selecting a pathway"), by the
pruning objective from two initialisations (DGR; "The pruning objective"), by greedy Taylor
pruning, at random, and the active sub-network. The expensive ingredients (contributions, learned
gates, greedy runs) do not depend on the sparsity, or are shared between sparsities, so
``KindBuilder`` computes them once and reads every kind off at any sparsity. ``compare`` does
this for the comparison chapter and keeps the pathways as boolean masks (``BooleanPathways``),
which is what lets the full profile hold dozens of pathways of millions of neurons.

The display names double as keys; ``COLOURS`` gives every kind one colour in every chapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import pruning, resumable
from .attribution import restricted_input_gradient
from .contribution import neuron_contributions
from .pathway import Pathway, select_pathway

CONTRIBUTION = ("NeuronMCT", "NeuronIntGrad")
"""The paper's contribution pathways: Taylor and layer-wise integrated-gradient contributions."""
COMPARED = ("NeuronMCT", "NeuronIntGrad", "DGR (init 1)", "DGR (init U)", "Greedy", "Random")
"""The kinds of the comparison chapter, in the order of its tables and figures."""
WHOLE, ACTIVE = "whole network", "active"
"""The two references that have no sparsity: every neuron, and every neuron with a positive
activation."""
KINDS = (WHOLE, ACTIVE, *COMPARED)
COLOURS = {
    WHOLE: "black",
    ACTIVE: "tab:green",
    "NeuronMCT": "tab:blue",
    "NeuronIntGrad": "tab:cyan",
    "DGR (init 1)": "tab:red",
    "DGR (init U)": "tab:orange",
    "Greedy": "tab:purple",
    "Random": "tab:gray",
}
"""One colour per kind, the same in every chapter."""

_GATE_INITS = {"DGR (init 1)": "ones", "DGR (init U)": "uniform"}


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds of pathway {unknown}; choose from {list(KINDS)}.")
    return kinds


class BooleanPathways(Mapping):
    """kind -> Pathway, each held as its boolean masks and rebuilt on access.

    A ``Pathway`` computes with float gates, four times the memory of booleans; the comparison's
    full profile keeps about 48 pathways of ~75,000 neurons x 1,000 digits or ~6 million neurons
    x 11 photos, which only fits as booleans. Access costs one conversion of the masks.
    """

    def __init__(self, pathways: Mapping[str, Pathway]):
        bad = [k for k, p in pathways.items() if not isinstance(p, Pathway)]
        if bad:
            raise TypeError(f"BooleanPathways holds Pathways; {bad} are not (build them first).")
        self._held = {k: (dict(p.masks), dict(p.settings)) for k, p in pathways.items()}

    def __getitem__(self, kind: str) -> Pathway:
        masks, settings = self._held[kind]
        return Pathway(masks, settings)

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)


class KindBuilder:
    """The ingredients of ``kinds`` for the batch ``inputs``, computed once, and the pathways
    read off them at any sparsity (``at``).

    Targets are the network's own predictions (as the official code). The learned gates come
    from ``pruning.learned_gates`` (``gate_chunk=None``) or, saved per input so that a stopped
    run resumes, from ``resumable.learned_gates_in_chunks`` (the same gates up to round-off).
    Greedy pruning runs once for all of ``sparsities`` (``pruning.greedy_pathways``), so only
    those can be asked for. ``n_steps``, ``step_size`` and ``seed`` are the pruning objective's
    steps, the greedy round size, and the seed of the uniform gates and random pathways.
    ``progress`` draws a tqdm bar on stderr; it changes no result.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        kinds: Sequence[str] = COMPARED,
        sparsities: Sequence[float] = (),
        *,
        n_steps: int = 1000,
        step_size: float = 0.01,
        gate_chunk: int | None = None,
        seed: int = 0,
        progress: bool = True,
    ):
        self.model, self.inputs, self.seed = model, inputs, int(seed)
        self.kinds = _check_kinds(kinds)
        self.taylor = neuron_contributions(model, inputs, method="taylor")
        self.targets: Tensor = self.taylor.targets
        self.integrated = None
        if "NeuronIntGrad" in self.kinds:
            self.integrated = neuron_contributions(model, inputs, method="integrated")
        self.gates = {}
        for kind, init in _GATE_INITS.items():
            if kind not in self.kinds:
                continue
            options = {"init": init, "n_steps": n_steps}
            if init == "uniform":
                options["seed"] = self.seed
            if gate_chunk is None:
                self.gates[kind] = pruning.learned_gates(
                    model, inputs, progress=progress, **options
                )
            else:
                self.gates[kind] = resumable.learned_gates_in_chunks(
                    model, inputs, gate_chunk, progress=progress, **options
                )
        self._greedy: dict[float, Pathway] = {}
        if "Greedy" in self.kinds:
            self._greedy = pruning.greedy_pathways(
                model,
                inputs,
                list(sparsities),
                target=self.targets,
                step_size=step_size,
                progress=progress,
            )  # one run, read off at each sparsity

    @property
    def kept_prediction(self) -> dict[str, Tensor]:
        """Per DGR kind, whether its learned gates kept each input's prediction."""
        return {k: g.settings["kept_prediction"] for k, g in self.gates.items()}

    def references(self) -> dict[str, Pathway | None]:
        """The references among the kinds: the whole network as ``None`` (as ``linearity``
        takes it) and the active sub-network; neither depends on a sparsity."""
        built: dict[str, Pathway | None] = {}
        for kind in self.kinds:
            if kind == WHOLE:
                built[kind] = None
            elif kind == ACTIVE:
                built[kind] = pruning.active_pathway(self.model, self.inputs)
        return built

    def at(self, sparsity: float) -> dict[str, Pathway]:
        """Every kind's pathway at ``sparsity``, the references left out (``references``).
        A greedy pathway can be read once (it is handed over, not copied)."""
        built = {}
        for kind in self.kinds:
            if kind == "NeuronMCT":
                built[kind] = select_pathway(self.taylor, sparsity)
            elif kind == "NeuronIntGrad":
                built[kind] = select_pathway(self.integrated, sparsity)
            elif kind in self.gates:
                built[kind] = select_pathway(self.gates[kind], sparsity)
            elif kind == "Greedy":
                if sparsity not in self._greedy:
                    raise ValueError(
                        f"greedy pathways were run for the sparsities {sorted(self._greedy)} "
                        f"(or already read), not {sparsity}; pass every sparsity you need."
                    )
                built[kind] = self._greedy.pop(sparsity)
            elif kind == "Random":
                built[kind] = pruning.random_pathway(
                    self.model, self.inputs, sparsity, seed=self.seed
                )
        return built


def by_kind(
    model: nn.Module,
    inputs: Tensor,
    kinds: Sequence[str],
    sparsities: Sequence[float],
    **options: object,
) -> dict[str, dict[float, Pathway | None]]:
    """kind -> sparsity -> pathway for the batch ``inputs`` (``KindBuilder`` options). The whole
    network (``None``) and the active sub-network appear once, at sparsity 0.0."""
    builder = KindBuilder(model, inputs, kinds, sparsities, **options)
    at_sparsity = [builder.at(s) for s in sparsities]
    references = builder.references()
    return {
        kind: {0.0: references[kind]}
        if kind in (WHOLE, ACTIVE)
        else {s: made[kind] for s, made in zip(sparsities, at_sparsity, strict=True)}
        for kind in builder.kinds
    }


@dataclass
class Comparison:
    """Every compared kind of pathway of one batch, and what the chapter measures beside them.

    ``pathways``: sparsity -> kind -> Pathway (``BooleanPathways``), at the sparsities kept.
    ``preservation``: kind -> sparsity -> (``pruning.Preservation``, fraction actually removed),
    measured as each pathway was made, at the swept sparsities, and ``active_preservation``
    that of the active sub-network. ``whole`` keeps every neuron
    (a Pathway, for decoding and gradients), ``active`` is the active sub-network,
    ``activations`` the site outputs that ``pruning.dead_fraction`` reads."""

    pathways: dict[float, BooleanPathways]
    targets: Tensor
    active: Pathway
    whole: Pathway
    activations: dict[str, Tensor]
    preservation: dict[str, dict[float, tuple[pruning.Preservation, float]]]
    active_preservation: pruning.Preservation
    kept_prediction: dict[str, Tensor] = field(default_factory=dict)

    def at(self, sparsity: float) -> dict[str, Pathway]:
        """The references and every compared kind at ``sparsity``, as one dict."""
        return {WHOLE: self.whole, ACTIVE: self.active, **self.pathways[sparsity]}


def compare(
    model: nn.Module,
    inputs: Tensor,
    sparsities: Sequence[float],
    keep: Sequence[float],
    sweep: Sequence[float] = (),
    **options: object,
) -> Comparison:
    """Every kind in ``COMPARED`` for ``inputs`` at each of ``sparsities`` (``KindBuilder``
    options), kept as boolean masks only at the sparsities in ``keep``; at those in ``sweep``,
    the output preservation of each pathway is measured as it is made. Holding all of them as
    float gates needed more than 20 GB in the full profile."""
    missing = sorted((set(keep) | set(sweep)) - set(sparsities))
    if missing:
        raise ValueError(f"keep and sweep must be among the sparsities; add {missing}.")
    builder = KindBuilder(model, inputs, COMPARED, sparsities, **options)
    kept: dict[float, BooleanPathways] = {}
    swept: dict[str, dict[float, tuple[pruning.Preservation, float]]] = {k: {} for k in COMPARED}
    for s in sparsities:
        made = builder.at(s)
        if s in sweep:
            for kind, pathway in made.items():
                swept[kind][s] = (
                    pruning.output_preservation(model, inputs, pathway),
                    float(pathway.sparsity.mean()),
                )
        if s in keep:
            kept[s] = BooleanPathways(made)
    active = pruning.active_pathway(model, inputs)
    return Comparison(
        pathways=kept,
        targets=builder.targets,
        active=active,
        whole=select_pathway(builder.taylor, 0.0),
        activations=pruning.site_activations(model, inputs),
        preservation=swept,
        active_preservation=pruning.output_preservation(model, inputs, active),
        kept_prediction=builder.kept_prediction,
    )


def decode_kinds(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    pathways: Mapping[str, Pathway],
    bounds: tuple[float, float],
    n_steps: int,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """``pruning.decode_pathway`` through every pathway of ``pathways`` (kind -> pathway of the
    batch ``inputs``) in one batch, and whether the whole network assigns each decoded input to
    its target. Returns decoded inputs (kinds, batch, ...) and recognised (kinds, batch).
    ``progress`` draws a tqdm bar on stderr; it changes no result."""
    batch = Pathway.cat(list(pathways.values()))
    n_kinds = len(pathways)
    repeated = targets.repeat(n_kinds)
    like = inputs.repeat(n_kinds, *[1] * (inputs.dim() - 1))
    decoded = pruning.decode_pathway(
        model,
        batch,
        repeated,
        like=like,
        bounds=bounds,
        n_steps=n_steps,
        seed=seed,
        progress=progress,
    )
    with torch.no_grad():
        recognised = model(decoded).argmax(dim=1) == repeated
    n = len(inputs)
    return decoded.view(n_kinds, n, *inputs.shape[1:]), recognised.view(n_kinds, n)


def gradients(
    model: nn.Module, inputs: Tensor, targets: Tensor, pathways: Mapping[str, Pathway]
) -> dict[str, Tensor]:
    """kind -> input gradient of each target logit through that kind's pathway."""
    return {
        kind: restricted_input_gradient(model, inputs, targets, pathway)[0]
        for kind, pathway in pathways.items()
    }
