"""What the hidden tests of the exercises use to grade each function on its own.

Two things would otherwise blur a score: a solution that only calls the `pathlib_core` function
the test compares with (one line, full marks, nothing learned), and a function that builds on an
earlier one of the student's (one mistake, several questions lost). `own_work` handles both
while a test calls the student's function: the named library functions raise, and the earlier
functions are replaced by the references below. The references hold their own handles on the
library, so forbidding a name does not reach them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from pathlib_core.attribution import restricted_input_gradient
from pathlib_core.pathway import Pathway, restrict

LIBRARY = "pathlib_core"
_ABSENT = object()


class LibraryCallError(RuntimeError):
    """A graded function called the library function its test compares with."""


def _forbidden(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise LibraryCallError(
            f"this test compares your function with {name}, so your function may not call it: "
            "compute the result yourself, as the exercise describes."
        )

    return refuse


def _homes(original: Any) -> list[Any]:
    """Where a student reaches a library function: the `pathlib_core` package, which re-exports
    it, and the module that defines it. Other modules' imports of it stay as they are, so the
    library's own internals (and the references below) keep working."""
    names = {LIBRARY, getattr(original, "__module__", LIBRARY)}
    return [sys.modules[name] for name in names if name in sys.modules]


@contextmanager
def own_work(
    namespace: dict[str, Any], forbid: Iterable[str] = (), use: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Within the body, each name in `forbid` (a function or class of `pathlib_core`, such as
    "restrict" or "linearity.linearity_profile") raises `LibraryCallError` when called from
    `namespace` (the notebook's `globals()`), from `pathlib_core` or from its defining module, and
    each name in `use` is bound in `namespace` to the given object. Everything is restored on exit,
    also when the body raises."""
    saved: list[tuple[Any, str, Any, bool]] = []  # (holder, name, old value, was it a dict key)

    def replace(holder: Any, name: str, value: Any) -> None:
        if isinstance(holder, dict):
            saved.append((holder, name, holder.get(name, _ABSENT), True))
            holder[name] = value
        else:
            saved.append((holder, name, getattr(holder, name), False))
            setattr(holder, name, value)

    try:
        for dotted in forbid:
            original = _library_object(dotted)
            name = dotted.rsplit(".", 1)[-1]
            stub = _forbidden(f"{LIBRARY}.{dotted}")
            for module in _homes(original):
                if getattr(module, name, None) is original:
                    replace(module, name, stub)
            if namespace.get(name) is original:
                replace(namespace, name, stub)
        for name, value in (use or {}).items():
            replace(namespace, name, value)
        yield
    finally:
        for holder, name, value, is_key in reversed(saved):
            if not is_key:
                setattr(holder, name, value)
            elif value is _ABSENT:
                holder.pop(name, None)
            else:
                holder[name] = value


def _library_object(dotted: str) -> Any:
    """`pathlib_core.<dotted>`, e.g. "restrict" or "linearity.linearity_profile"."""
    import importlib

    found: Any = importlib.import_module(LIBRARY)
    for part in dotted.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ValueError(f"{LIBRARY} has no {dotted!r} to forbid; check the test.")
    return found


def restricted_forward(model: nn.Module, inputs: Tensor, masks: Mapping[str, Tensor]) -> Tensor:
    """The logits of `model` restricted to `masks` (site name -> boolean mask), through
    `pathlib_core.restrict`: the reference for an exercise's restricted network."""
    with restrict(model, Pathway(masks)):
        return model(inputs)


def pathway_gradient(
    model: nn.Module, inputs: Tensor, target: Tensor, masks: Mapping[str, Tensor]
) -> Tensor:
    """The input gradient of each sample's `target` logit through `masks`, the pathway gradient
    of Khakzar et al. 2021 as `pathlib_core.PathwayGradient` computes it: the reference."""
    (grad,) = restricted_input_gradient(model, (inputs,), torch.as_tensor(target), Pathway(masks))
    return grad


__all__ = ["LibraryCallError", "own_work", "pathway_gradient", "restricted_forward"]
