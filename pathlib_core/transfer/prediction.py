"""Each input's GEN-CNP pathway, predicted by a trained generator from one forward pass of the
target model."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import Inputs, as_input_tuple, check_eval_mode, check_module
from ..cache import model_device
from ..pathway import Pathway
from ..sites import module_of_site, site_modules
from .generator import PathwayGenerator, broadcast_channels, capture_sites, check_site_order


def generate_pathway(generator: PathwayGenerator, model: nn.Module, inputs: Inputs) -> Pathway:
    """Each input's GEN-CNP pathway: one forward pass of ``model`` without gradients captures the
    sites' activations, the generator's hard channel masks (logit > 0) are broadcast to each
    site's activation shape. An ordinary ``Pathway`` (``settings["method"] == "GEN-CNP"``), on
    the model's device (the inputs are moved there)."""
    if not isinstance(generator, PathwayGenerator):
        raise TypeError(
            f"generator must be a PathwayGenerator, got {type(generator).__name__}; train one "
            "with train_generator(model, images)."
        )
    check_module(model)
    check_eval_mode(model)
    device, own = model_device(model), model_device(generator)
    if device != own:
        raise ValueError(
            f"the generator is on {own} but the model on {device}; both must run on one device: "
            f"move the generator with generator.to('{device}')."
        )
    tensors, _ = as_input_tuple(inputs)
    tensors = tuple(t.to(device) for t in tensors)
    modules = _generator_modules(generator, model)
    with torch.no_grad():
        _, features, shapes, calls = capture_sites(
            model, tensors, modules, keep=(generator.shallow, generator.deep)
        )
        check_site_order(calls, generator.sites)
        logits = generator(features)
    dtype = torch.get_default_dtype()
    gates = {
        name: broadcast_channels((logits[name] > 0).to(dtype), shapes[name]).contiguous()
        for name in generator.sites
    }
    settings = {
        "method": "GEN-CNP",
        "granularity": "channel",
        "shallow": generator.shallow,
        "deep": generator.deep,
    }
    return Pathway.from_gates(gates, settings)


def _generator_modules(generator: PathwayGenerator, model: nn.Module) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    wanted = sorted({module_of_site(name) for name in generator.sites})
    absent = [name for name in wanted if name not in named]
    if absent:
        raise ValueError(
            f"the generator predicts masks for modules that {type(model).__name__} does not have "
            f"({', '.join(absent[:5])}); it was trained on another model: train one for this one."
        )
    return site_modules(model, wanted)
