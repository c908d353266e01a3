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


# ------------------------------------------------ however a student binds the forbidden function

BINDINGS = {
    "alias": (
        "from pathlib_core.pathway import select_pathway as pick\n"
        "\n"
        "def mine(contributions, sparsity):\n"
        "    return pick(contributions, sparsity)\n"
    ),
    "default argument": (
        "from pathlib_core import select_pathway\n"
        "\n"
        "def mine(contributions, sparsity, pick=select_pathway):\n"
        "    return pick(contributions, sparsity)\n"
    ),
    "closure": (
        "def make():\n"
        "    from pathlib_core import select_pathway as pick\n"
        "\n"
        "    def mine(contributions, sparsity):\n"
        "        return pick(contributions, sparsity)\n"
        "\n"
        "    return mine\n"
        "\n"
        "mine = make()\n"
    ),
    "functools.partial": (
        "import functools\n"
        "\n"
        "import pathlib_core\n"
        "\n"
        "mine = functools.partial(pathlib_core.select_pathway, scope='global')\n"
    ),
}


def notebook(source: str) -> dict:
    """The globals of a notebook that ran `source`, as a student's kernel holds them."""
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<student cell>", "exec"), namespace)
    return namespace


@pytest.fixture
def tiny():
    """A small ReLU network in eval mode, inputs and targets."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 8), torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    ).eval()  # fmt: skip
    return model, torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])


@pytest.mark.parametrize("binding", list(BINDINGS))
def test_a_forbidden_function_refuses_however_the_student_binds_it(binding, tiny):
    model, x, y = tiny
    contributions = neuron_contributions(model, x, y)
    expected = select_pathway(contributions, 0.5).masks
    student = notebook(BINDINGS[binding])
    own_code = select_pathway.__code__
    for name, mask in student["mine"](contributions, 0.5).masks.items():  # works before
        assert torch.equal(mask, expected[name])
    with own_work(student, forbid=["select_pathway"]):
        with pytest.raises(LibraryCallError, match=r"with pathlib_core\.select_pathway, so"):
            student["mine"](contributions, 0.5)
        # the library's own calls go through: PathwayGradient selects with select_pathway
        PathwayGradient(model).attribute(x, y, sparsity=0.5)
    assert select_pathway.__code__ is own_code
    for name, mask in student["mine"](contributions, 0.5).masks.items():  # and after
        assert torch.equal(mask, expected[name])


def test_a_class_refuses_construction_and_an_instance_made_before_and_restrict_its_context(tiny):
    model, x, y = tiny
    student = notebook(
        "from pathlib_core import PathwayGradient, restrict\n"
        "\n"
        "def explain(model, x, y):\n"
        "    return PathwayGradient(model).attribute(x, y)\n"
        "\n"
        "def explain_with(method, x, y):\n"
        "    return method(x, y)\n"
        "\n"
        "def logits(model, x, pathway):\n"
        "    with restrict(model, pathway):\n"
        "        return model(x)\n"
    )
    bound = PathwayGradient(model).attribute  # a method bound before the check
    pathway = select_pathway(neuron_contributions(model, x, y), 0.5)
    with own_work(student, forbid=["PathwayGradient", "restrict"]):
        for call in (
            lambda: student["explain"](model, x, y),
            lambda: student["explain_with"](bound, x, y),
        ):
            with pytest.raises(LibraryCallError, match=r"pathlib_core\.PathwayGradient"):
                call()
        with pytest.raises(LibraryCallError, match=r"pathlib_core\.restrict"):
            student["logits"](model, x, pathway)
        masks = dict(pathway.masks)
        reference = checks.restricted_forward(model, x, masks)  # the references may use them
    assert not any(m._forward_hooks for m in model.modules())
    torch.testing.assert_close(student["logits"](model, x, pathway), reference)
    torch.testing.assert_close(
        student["explain_with"](bound, x, y), PathwayGradient(model).attribute(x, y)
    )


def test_the_library_works_inside_and_everything_is_restored_also_when_the_body_raises(tiny):
    model, x, y = tiny
    expected = PathwayGradient(model).attribute(x, y, sparsity=0.9)
    swapped = (
        select_pathway,
        neuron_contributions,
        PathwayGradient.__init__,
        PathwayGradient.__dict__["attribute"],
    )
    codes = [f.__code__ for f in swapped]
    with (
        pytest.raises(ZeroDivisionError),
        own_work({}, forbid=["select_pathway", "neuron_contributions"]),
    ):
        # not forbidden, PathwayGradient computes contributions and selects as it always does
        torch.testing.assert_close(PathwayGradient(model).attribute(x, y, sparsity=0.9), expected)
        assert [f.__code__ is code for f, code in zip(swapped, codes, strict=True)] == [
            False,
            False,
            True,
            True,
        ]
        with (
            own_work({}, forbid=["select_pathway", "PathwayGradient"]),  # nested checks
            pytest.raises(LibraryCallError),
        ):
            PathwayGradient(model)
        assert PathwayGradient.__init__.__code__ is codes[2]
        with pytest.raises(LibraryCallError):  # still forbidden by the enclosing check
            select_pathway({}, 0.5)
        _ = 1 / 0
    assert [f.__code__ for f in swapped] == codes and checks._GUARDS == {}
    torch.testing.assert_close(PathwayGradient(model).attribute(x, y, sparsity=0.9), expected)


def test_objects_without_python_code_are_replaced_by_name_only(monkeypatch):
    import math

    monkeypatch.setattr(pathlib_core, "hypot", math.hypot, raising=False)
    namespace = {"hypot": math.hypot}
    with own_work(namespace, forbid=["hypot"]):
        for call in (namespace["hypot"], pathlib_core.hypot):
            with pytest.raises(LibraryCallError, match=r"pathlib_core\.hypot"):
                call(3, 4)
        assert math.hypot(3, 4) == 5  # the builtin itself, and its own module, are untouched
    assert namespace["hypot"] is math.hypot and pathlib_core.hypot is math.hypot
