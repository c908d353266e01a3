# ruff: noqa: F401 - the TYPE_CHECKING imports are the static view of the lazy exports
"""pathlib_core: critical neural pathways and the attributions computed through them.

The science library of the Critical Pathways companion (Khakzar et al., CVPR 2021). Not related to
Python's `pathlib`. Conventions follow Captum: inputs are batches, `target` is an int, a list or a
1-D tensor, attributions have the inputs' shape.

    from pathlib_core import PathwayGradient, models, data
    model = models.mnist_cnn()
    images, labels = data.mnist("test")
    maps = PathwayGradient(model).attribute(images[:8], target=labels[:8], sparsity=0.9)
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    submodules=(
        "cache",
        "data",
        "evaluation",
        "explorer",
        "images",
        "kinds",
        "linearity",
        "methods",
        "models",
        "plotting",
        "pruning",
        "report",
        "transfer",
    ),
    names={
        "InputSpecificPruning": "attribution",
        "PathwayGradient": "attribution",
        "Contributions": "contribution",
        "neuron_contributions": "contribution",
        "Pathway": "pathway",
        "restrict": "pathway",
        "select_pathway": "pathway",
        "whole_and_restricted": "pathway",
        "NotPiecewiseLinearWarning": "sites",
        "Site": "sites",
        "find_sites": "sites",
        "site_hooks": "sites",
        "site_modules": "sites",
    },
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from . import (
        cache,
        data,
        evaluation,
        explorer,
        images,
        kinds,
        linearity,
        methods,
        models,
        plotting,
        pruning,
        report,
        transfer,
    )
    from .attribution import InputSpecificPruning, PathwayGradient
    from .contribution import Contributions, neuron_contributions
    from .pathway import Pathway, restrict, select_pathway, whole_and_restricted
    from .sites import NotPiecewiseLinearWarning, Site, find_sites, site_hooks, site_modules
