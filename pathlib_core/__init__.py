"""pathlib_core: critical neural pathways and the attributions computed through them.

The science library of the Critical Pathways companion (Khakzar et al., CVPR 2021). Not related to
Python's `pathlib`. Conventions follow Captum: inputs are batches, `target` is an int, a list or a
1-D tensor, attributions have the inputs' shape.

    from pathlib_core import PathwayGradient, models, data
    model = models.mnist_cnn()
    images, labels = data.mnist("test")
    maps = PathwayGradient(model).attribute(images[:8], target=labels[:8], sparsity=0.9)
"""

from . import (
    cache,
    data,
    evaluation,
    explorer,
    linearity,
    methods,
    models,
    plotting,
    pruning,
    transfer,
)
from .attribution import InputSpecificPruning, PathwayGradient
from .contribution import Contributions, neuron_contributions
from .pathway import Pathway, restrict, select_pathway, whole_and_restricted
from .sites import NotPiecewiseLinearWarning, Site, find_sites, site_hooks, site_modules

__all__ = [
    "Contributions",
    "InputSpecificPruning",
    "NotPiecewiseLinearWarning",
    "Pathway",
    "PathwayGradient",
    "Site",
    "cache",
    "data",
    "evaluation",
    "explorer",
    "find_sites",
    "linearity",
    "methods",
    "models",
    "neuron_contributions",
    "plotting",
    "pruning",
    "restrict",
    "select_pathway",
    "site_hooks",
    "site_modules",
    "transfer",
    "whole_and_restricted",
]
