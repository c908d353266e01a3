"""Evaluations that judge attribution maps (Khakzar et al., 2021, Sec. 5; book/definitions.md,
"Evaluation protocols").

- ``sanity``: cascading parameter randomisation and data randomisation (Adebayo et al., 2018);
- ``perturbation``: LeRF / MoRF pixel perturbation and AOPC (Samek et al., 2017);
- ``roar``: ROAR / KAR, replace the most (least) important pixels and retrain (Hooker et al., 2019);
- ``sensitivity``: sensitivity-n (Ancona et al., 2018).

Maps are input-shaped attributions ``(B, C, H, W)`` as Captum returns them; ``maps`` holds the
shared conversions (one importance value per pixel, replacement images).
"""

from . import maps, perturbation, roar, sanity, sensitivity
from .perturbation import PerturbationCurve, pixel_perturbation, random_attributions
from .roar import RoarResult, cached_attributions, degrade
from .roar import roar as remove_and_retrain
from .sanity import SanityResult, cascading_randomisation, data_randomisation
from .sensitivity import SensitivityN, patch_sensitivity, sensitivity_n

__all__ = [
    "PerturbationCurve",
    "RoarResult",
    "SanityResult",
    "SensitivityN",
    "cached_attributions",
    "cascading_randomisation",
    "data_randomisation",
    "degrade",
    "maps",
    "perturbation",
    "patch_sensitivity",
    "pixel_perturbation",
    "random_attributions",
    "remove_and_retrain",
    "roar",
    "sanity",
    "sensitivity",
    "sensitivity_n",
]
