# ruff: noqa: F401 - the TYPE_CHECKING imports are the static view of the lazy exports
"""Evaluations that judge attribution maps (Khakzar et al., 2021, Sec. 5; book/definitions.md,
"Evaluation protocols").

- ``sanity``: cascading parameter randomisation and data randomisation (Adebayo et al., 2018);
- ``perturbation``: LeRF / MoRF pixel perturbation and AOPC (Samek et al., 2017);
- ``roar``: ROAR / KAR, replace the most (least) important pixels and retrain (Hooker et al., 2019);
- ``sensitivity``: sensitivity-n (Ancona et al., 2018).

Maps are input-shaped attributions ``(B, C, H, W)`` as Captum returns them; ``maps`` holds the
shared conversions (one importance value per pixel, replacement images).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    submodules=("maps", "method_maps", "perturbation", "roar", "sanity", "sensitivity"),
    names={
        "PerturbationCurve": "perturbation",
        "pixel_perturbation": "perturbation",
        "random_attributions": "perturbation",
        "RoarResult": "roar",
        "cached_attributions": "roar",
        "degrade": "roar",
        "remove_and_retrain": "roar:roar",
        "SanityResult": "sanity",
        "cascading_randomisation": "sanity",
        "data_randomisation": "sanity",
        "SensitivityN": "sensitivity",
        "patch_sensitivity": "sensitivity",
        "sensitivity_n": "sensitivity",
    },
)

if TYPE_CHECKING:
    from . import maps, method_maps, perturbation, roar, sanity, sensitivity
    from .perturbation import PerturbationCurve, pixel_perturbation, random_attributions
    from .roar import RoarResult, cached_attributions, degrade
    from .roar import roar as remove_and_retrain
    from .sanity import SanityResult, cascading_randomisation, data_randomisation
    from .sensitivity import SensitivityN, patch_sensitivity, sensitivity_n
