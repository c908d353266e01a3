"""The numbers behind the CVPR 2021 paper's evaluation plots (Khakzar et al., 2021), as the
official PathwayGrad code stores them: ``plots.py`` (ROAR and LeRF lists) and
``sanity_checks/plot_with_ready_data/ResNet/*.npy`` (sanity-check curves, rounded to 3 decimals).
Table and figure numbers in the paper are not verified (the paper's full text was not available);
the chapters print these beside our own results and say where they differ.

Method names are the paper's: Gradients, GBP, GradCAM, InputMCT (gradient x input), InputIntGrad
(Integrated Gradients), NeuronMCT, NeuronIntGrad, NeuronIntGrad* (a variant; see the ROAR
chapter). ``REGISTRY_NAME`` maps them to ``pathlib_core.methods`` names.
"""

from __future__ import annotations

REGISTRY_NAME = {
    "Gradients": "Gradient",
    "GBP": "GuidedBackprop",
    "GradCAM": "GradCAM",
    "InputMCT": "InputXGradient",
    "InputIntGrad": "IntegratedGradients",
    "NeuronMCT": "NeuronMCT",
    "NeuronIntGrad": "NeuronIntGrad",
}

ROAR_FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)

# ROAR test accuracy (%) after replacing 10, 30, 50, 70, 90% of the pixels and retraining.
ROAR = {
    "CIFAR-10": {
        "base": 84.36,
        "Gradients": (79.100, 81.100, 82.810, 82.260, 75.500),
        "GBP": (79.240, 76.830, 78.020, 78.360, 74.780),
        "GradCAM": (74.650, 69.990, 63.270, 58.030, 47.580),
        "InputMCT": (79.220, 79.850, 82.540, 81.580, 74.470),
        "InputIntGrad": (80.800, 81.980, 83.370, 83.230, 80.900),
        "NeuronMCT": (74.430, 67.800, 65.480, 57.870, 44.390),
        "NeuronIntGrad": (75.110, 67.330, 61.710, 56.900, 47.980),
        "NeuronIntGrad*": (75.090, 63.560, 54.600, 47.850, 37.270),
    },
    "Birdsnap": {
        "base": 58.630,
        "Gradients": (33.615, 29.395, 26.823, 24.312, 28.692),
        "GBP": (30.299, 26.160, 22.604, 23.347, 24.051),
        "GradCAM": (20.052, 7.816, 5.304, 4.240, 2.351),
        "InputMCT": (31.565, 27.165, 23.508, 21.640, 20.836),
        "InputIntGrad": (30.762, 26.723, 23.146, 22.343, 22.483),
        "NeuronMCT": (22.885, 12.678, 8.620, 3.797, 3.074),
        "NeuronIntGrad": (19.023, 9.13, 6.32, 4.01, 3.03),
        "NeuronIntGrad*": (16.858, 8.077, 5.210, 3.680, 2.213),
    },
}

LERF_FRACTIONS = tuple(k / 100 for k in range(1, 11))

# LeRF: absolute fractional output change after removing 1..10% of the least important pixels.
LERF = {
    "CIFAR-10": {
        "Gradients": (.216, .285, .327, .361, .390, .428, .450, .477, .510, .540),
        "GBP": (.150, .202, .242, .280, .314, .333, .350, .368, .381, .387),
        "GradCAM": (.076, .092, .103, .111, .120, .126, .123, .134, .136, .148),
        "InputMCT": (.150, .168, .183, .194, .200, .215, .221, .229, .235, .247),
        "InputIntGrad": (.139, .169, .190, .207, .209, .217, .219, .229, .239, .246),
        "NeuronMCT": (.039, .058, .073, .088, .100, .111, .118, .125, .140, .152),
        "NeuronIntGrad": (.039, .058, .072, .088, .099, .111, .118, .125, .141, .150),
        "NeuronIntGrad*": (.034, .047, .058, .069, .079, .087, .096, .101, .107, .113),
    },
    "Birdsnap": {
        "Gradients": (.833, .924, .953, .966, .973, .975, .978, .978, .979, .982),
        "GBP": (.740, .839, .881, .902, .917, .931, .939, .945, .953, .956),
        "GradCAM": (.079, .094, .107, .125, .136, .147, .149, .162, .168, .174),
        "InputMCT": (.856, .929, .954, .963, .968, .972, .974, .974, .975, .976),
        "InputIntGrad": (.852, .928, .959, .966, .969, .971, .973, .974, .975, .976),
        "NeuronMCT": (.061, .075, .090, .103, .112, .124, .137, .148, .158, .166),
        "NeuronIntGrad": (.060, .074, .089, .102, .112, .124, .137, .148, .158, .166),
        "NeuronIntGrad*": (.029, .045, .059, .075, .089, .102, .113, .126, .137, .146),
    },
    "ImageNet": {
        "Gradients": (.324, .393, .446, .479, .506, .528, .548, .568, .583, .599),
        "GBP": (.255, .348, .405, .453, .489, .517, .541, .563, .580, .591),
        "GradCAM": (.065, .077, .088, .100, .110, .115, .117, .122, .129, .132),
        "InputMCT": (.309, .371, .408, .438, .468, .489, .508, .526, .541, .556),
        "InputIntGrad": (.305, .363, .401, .431, .456, .470, .487, .501, .513, .527),
        "NeuronMCT": (.050, .073, .091, .100, .112, .122, .131, .141, .151, .157),
        # identical to the Birdsnap row in plots.py (probably a copy there)
        "NeuronIntGrad": (.060, .074, .089, .102, .112, .124, .137, .148, .158, .166),
        "NeuronIntGrad*": (.048, .064, .076, .088, .096, .106, .110, .119, .126, .132),
    },
}

# Cascading randomisation of torchvision ResNet-50 (ImageNet, 1,000 images): mean similarity to
# the original map after randomising from the logits down to each stage.
SANITY_STAGES = ("original", "fc") + tuple(f"bottleneck_{i}" for i in range(15, -1, -1)) + ("conv1",)
SANITY = {
    "ssim": {
        "Gradients": (1, .472, .302, .294, .273, .264, .267, .276, .274, .277, .277, .272, .287,
                      .287, .294, .246, .261, .224, .419),
        "GBP": (1, .991, .968, .946, .932, .919, .901, .879, .863, .852, .773, .726, .746, .721,
                .715, .691, .488, .573, .612),
        "GradCAM": (1, .780, .689, .673, .687, .686, .688, .674, .680, .680, .670, .663, .664,
                    .674, .661, .671, .669, .680, .668),
        "InputMCT": (1, .572, .423, .419, .398, .391, .391, .398, .395, .400, .397, .392, .409,
                     .407, .423, .374, .376, .348, .530),
        "InputIntGrad": (1, .528, .401, .379, .367, .355, .357, .369, .360, .368, .371, .379,
                         .382, .368, .378, .352, .345, .344, .523),
        "NeuronMCT": (1, .517, .370, .358, .334, .316, .327, .343, .333, .343, .350, .334, .348,
                      .364, .383, .333, .337, .330, .524),
        "NeuronIntGrad": (1, .518, .432, .414, .385, .372, .370, .356, .335, .331, .282, .289,
                          .274, .263, .220, .215, .211, .238, .095),
    },
    "spearman_abs": {
        "Gradients": (1, .485, .365, .355, .340, .333, .334, .336, .333, .329, .301, .305, .285,
                      .276, .252, .232, .215, .108, .042),
        "GBP": (1, .991, .959, .936, .927, .917, .905, .876, .867, .848, .735, .726, .700, .654,
                .592, .599, .270, .325, .149),
        "GradCAM": (1, .710, .512, .487, .530, .519, .524, .485, .506, .507, .477, .471, .474,
                    .486, .459, .479, .466, .488, .416),
        "InputMCT": (1, .619, .532, .527, .518, .512, .511, .509, .506, .502, .479, .479, .467,
                     .456, .444, .424, .386, .300, .184),
        "InputIntGrad": (1, .583, .494, .488, .481, .478, .480, .479, .474, .474, .460, .459,
                         .448, .440, .426, .419, .402, .361, .235),
        "NeuronMCT": (1, .504, .351, .342, .328, .329, .339, .331, .329, .321, .297, .300, .282,
                      .279, .241, .232, .239, .220, .116),
        "NeuronIntGrad": (1, .514, .368, .358, .350, .343, .354, .346, .339, .338, .318, .319,
                          .307, .303, .270, .259, .253, .273, .151),
    },
}


def roar_auc(fractions: tuple[float, ...], accuracy: tuple[float, ...]) -> float:
    """Trapezoid area over ``fractions`` of accuracy in [0, 1] (``plots.roar_plot``)."""
    ys = [a / 100 for a in accuracy]
    return sum((fractions[i + 1] - fractions[i]) * (ys[i] + ys[i + 1]) / 2
               for i in range(len(ys) - 1))
