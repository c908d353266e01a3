"""The paper's numbers as stored: complete tables, names that map onto the registry, and the
ROAR AUCs computed independently (by hand, trapezoid rule) from the same lists (0.7287 and
0.5241)."""

import pytest

from pathlib_core import methods, paper_numbers


def test_every_paper_method_maps_onto_a_registered_method():
    assert set(paper_numbers.REGISTRY_NAME.values()) <= set(methods.names())
    for table in (
        *paper_numbers.ROAR.values(),
        *paper_numbers.LERF.values(),
        *paper_numbers.SANITY.values(),
    ):
        for name in table:
            assert name in paper_numbers.REGISTRY_NAME or name in ("base", "NeuronIntGrad*")


def test_tables_have_one_value_per_step():
    for table in paper_numbers.ROAR.values():
        assert all(
            len(v) == len(paper_numbers.ROAR_FRACTIONS) - 1 for k, v in table.items() if k != "base"
        )
    for table in paper_numbers.LERF.values():
        assert all(len(v) == len(paper_numbers.LERF_FRACTIONS) for v in table.values())
    for table in paper_numbers.SANITY.values():
        assert all(len(v) == len(paper_numbers.SANITY_STAGES) and v[0] == 1 for v in table.values())


@pytest.mark.parametrize(
    "dataset, method, auc",
    [
        ("CIFAR-10", "Gradients", 0.7287),
        ("CIFAR-10", "NeuronIntGrad*", 0.5241),
        ("Birdsnap", "GradCAM", 0.0965),
    ],
)
def test_roar_auc_reproduces_the_independent_computation(dataset, method, auc):
    table = paper_numbers.ROAR[dataset]
    values = (table["base"],) + table[method]
    assert paper_numbers.roar_auc(paper_numbers.ROAR_FRACTIONS, values) == pytest.approx(
        auc, abs=5e-5
    )
