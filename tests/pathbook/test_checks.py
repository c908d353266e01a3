"""pathbook.checks: the hidden tests' guard against calling the reference, and the references."""

from __future__ import annotations

import pytest
import torch

import pathlib_core
from pathbook import checks
from pathbook.checks import LibraryCallError, own_work
from pathlib_core import PathwayGradient, linearity, neuron_contributions, restrict, select_pathway
from pathlib_core import contribution as contribution_module


def test_forbidden_names_raise_wherever_a_student_reaches_them_and_come_back():
    namespace = {"neuron_contributions": neuron_contributions, "linearity": linearity}
    with own_work(namespace, forbid=["neuron_contributions", "linearity.linearity_profile"]):
        for call in (
            namespace["neuron_contributions"],
            pathlib_core.neuron_contributions,
            contribution_module.neuron_contributions,
            namespace["linearity"].linearity_profile,
        ):
            with pytest.raises(LibraryCallError, match="compute the result yourself"):
                call(None, None, None)
    assert namespace["neuron_contributions"] is neuron_contributions
    assert pathlib_core.neuron_contributions is neuron_contributions
    assert contribution_module.neuron_contributions is neuron_contributions
    assert "linearity_profile" not in namespace and linearity.linearity_profile.__name__ == (
        "linearity_profile"
    )


def test_everything_is_restored_when_the_body_raises_and_use_binds_names():
    namespace = {"restrict": restrict}
    with (
        pytest.raises(ZeroDivisionError),
        own_work(namespace, forbid=["restrict"], use={"helper": len, "restrict": 1}),
    ):
        assert namespace["helper"] is len and namespace["restrict"] == 1
        _ = 1 / 0
    assert namespace == {"restrict": restrict} and pathlib_core.restrict is restrict
    with (
        pytest.raises(ValueError, match="no 'no_such_function'"),
        own_work({}, forbid=["no_such_function"]),
    ):
        pass


def test_the_references_equal_the_library_and_work_while_it_is_forbidden(mnist_model):
    from pathlib_core import data

    images, labels = data.mnist("test")
    x, y = images[:6], labels[:6]
    gradient, pathway = PathwayGradient(mnist_model).attribute(
        x, y, sparsity=0.9, return_pathway=True
    )
    with torch.no_grad(), restrict(mnist_model, pathway):
        logits = mnist_model(x)
    masks = dict(select_pathway(neuron_contributions(mnist_model, x, y), 0.9).masks)
    with own_work({}, forbid=["restrict", "PathwayGradient", "neuron_contributions"]):
        mine_logits = checks.restricted_forward(mnist_model, x, masks)
        mine_gradient = checks.pathway_gradient(mnist_model, x, y, masks)
    torch.testing.assert_close(mine_logits, logits)
    torch.testing.assert_close(mine_gradient, gradient)
    assert not any(m._forward_hooks for m in mnist_model.modules())
