"""Pathway gradient: the input gradient of the target logit through the input's own pathway.

PAPERS.md A.4 (official ``Pruner.generate_saliency``): select the pathway from the unmasked
network's neuron contributions, hold it fixed, and differentiate the target logit of the network
restricted to it with respect to the input. Signed, input-shaped, not multiplied by the input.
Cost: one forward + backward for the contributions and one through the masked network.
"""

from __future__ import annotations

import torch
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from ._validation import (
    Inputs,
    Target,
    as_input_tuple,
    check_choice,
    check_eval_mode,
    check_logits,
    check_module,
    check_sparsity,
)
from .contribution import METHODS, contributions_at, target_gradients
from .pathway import SCOPES, Pathway, restrict, select_pathway
from .sites import SiteSpec, site_modules


class PathwayGradient(GradientAttribution):
    """Captum attribution: ``PathwayGradient(model).attribute(inputs, target)``.

    ``sites`` selects the neuron-holding modules (default: every ``nn.ReLU``/``nn.ReLU6``).
    ``multiply_by_inputs`` sets the default of ``attribute``'s option of the same name (Captum's
    convention, reported by ``multiplies_by_inputs``).
    """

    def __init__(self, model: nn.Module, sites: SiteSpec = None, multiply_by_inputs: bool = False):
        check_module(model)
        GradientAttribution.__init__(self, model)
        self.model = model
        self.site_modules = site_modules(model, sites)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    @log_usage()
    def attribute(
        self,
        inputs: Inputs,
        target: Target = None,
        sparsity: float = 0.9,
        contribution: str = "taylor",
        scope: str = "global",
        multiply_by_inputs: bool | None = None,
        return_pathway: bool = False,
        n_steps: int = 10,
    ) -> Inputs | tuple[Inputs, Pathway]:
        """The pathway gradient of each sample's target logit, shaped like ``inputs``.

        ``target=None`` explains each sample's predicted class. ``sparsity`` is the fraction of
        neurons removed (the paper's "sparsity 90" is 0.9; 0 gives the plain gradient).
        ``contribution`` ("taylor" or "integrated", with ``n_steps``) and ``scope`` ("global" or
        "site") choose the pathway as ``neuron_contributions`` and ``select_pathway`` do.
        ``return_pathway=True`` also returns the ``Pathway`` (not under ``NoiseTunnel``, which
        expects attributions only).
        """
        check_eval_mode(self.model)
        tensors, is_tuple = as_input_tuple(inputs)
        sparsity = check_sparsity(sparsity)
        check_choice(contribution, "contribution method", METHODS)
        check_choice(scope, "scope", SCOPES)
        contributions = contributions_at(
            self.model, tensors, target, contribution, self.site_modules, n_steps, absolute=True
        )
        pathway = select_pathway(contributions, sparsity, scope)
        labels = contributions.targets
        del contributions  # free the scores before the masked pass allocates its activations
        gradients = restricted_input_gradient(self.model, tensors, labels, pathway)
        multiply = self._multiply_by_inputs if multiply_by_inputs is None else multiply_by_inputs
        if multiply:
            gradients = tuple(g * x.detach() for g, x in zip(gradients, tensors))
        attributions = gradients if is_tuple else gradients[0]
        return (attributions, pathway) if return_pathway else attributions


def restricted_input_gradient(
    model: nn.Module, inputs: Inputs, labels: Tensor, pathway: Pathway
) -> tuple[Tensor, ...]:
    """Gradient of each sample's ``labels`` logit w.r.t. the inputs, under ``restrict(model,
    pathway)``. The caller's tensors are not touched (detached copies are differentiated)."""
    tensors, _ = as_input_tuple(inputs)
    leaves = tuple(t.detach().requires_grad_(True) for t in tensors)
    with torch.enable_grad(), restrict(model, pathway):
        logits = check_logits(model(*leaves), leaves[0].shape[0])
    grads = target_gradients(logits, labels, leaves)
    return tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves))
