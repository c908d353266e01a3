"""What the hidden tests of the exercises use to grade each function on its own.

Two things would otherwise blur a score: a solution that only calls the `pathlib_core` function
the test compares with (one line, full marks, nothing learned), and a function that builds on an
earlier one of the student's (one mistake, several questions lost). `own_work` handles both
while a test calls the student's function: the named library functions refuse to run for the
student's code, and the earlier functions are replaced by the references below.

Replacing names would not do: a student reaches a function under any name (an alias, a default
argument, a closure, `functools.partial`, a bound method), so the function object itself is
changed. For the duration of the check its `__code__` is a stub that asks who called: the library
and this module (the references) get the real function, everyone else `LibraryCallError`.
"""

from __future__ import annotations

import itertools
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType
from typing import Any

import torch
from torch import Tensor, nn

from pathlib_core.attribution import restricted_input_gradient
from pathlib_core.pathway import Pathway, restrict

LIBRARY = "pathlib_core"
_ABSENT = object()
# code of the standard library and installed packages (contextlib, functools, torch, captum) is
# plumbing between a call and the function it reaches: the caller is further up the stack
_PLUMBING = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)


class LibraryCallError(RuntimeError):
    """A graded function called the library function its test compares with."""


def _message(label: str) -> str:
    return (
        f"this test compares your function with {label}, so your function may not call it: "
        "compute the result yourself, as the exercise describes."
    )


@dataclass(frozen=True)
class _Guard:
    """A library function whose code is swapped for a stub while a check runs."""

    function: FunctionType
    code: CodeType  # its own code, put back on exit
    real: FunctionType  # a copy that runs that code, for the library's own calls
    label: str  # what the error names, e.g. "pathlib_core.select_pathway"


_GUARDS: dict[int, _Guard] = {}  # stub key -> guard, for the stubs in place now
_KEYS = itertools.count()


def _trusted(frame: FrameType) -> bool | None:
    """True for the library and the references, None for plumbing, False for anyone else."""
    module = frame.f_globals.get("__name__", "")
    if module in (LIBRARY, __name__) or module.startswith(f"{LIBRARY}."):
        return True
    filename = frame.f_code.co_filename
    if filename.startswith(_PLUMBING) or filename.startswith("<frozen "):
        return None
    return False


def _guarded_call(key: int, args: tuple, kwargs: dict) -> Any:
    """What every stub runs: the real function for the library's calls, else an error."""
    guard = _GUARDS[key]
    frame = sys._getframe(2)  # 0: here, 1: the stub, 2: whoever called the function
    while frame is not None and (verdict := _trusted(frame)) is None:
        frame = frame.f_back
    if frame is not None and verdict:
        return guard.real(*args, **kwargs)
    raise LibraryCallError(_message(guard.label))


def _stub_code(function: FunctionType, key: int, label: str) -> CodeType:
    """Code that hands its arguments to `_guarded_call`, with the free variables of `function`
    (Python accepts a new `__code__` only with as many as the function's closure holds)."""
    free = function.__code__.co_freevars
    lines = ["def _outer():", *(f"    {name} = None" for name in free)]
    lines.append("    def forbidden(*args, **kwargs):")
    if free:
        lines.append(f"        lambda: ({', '.join(free)},)")
    lines += [
        f"        checks = __import__({__name__!r}, fromlist=['_guarded_call'])",
        f"        return checks._guarded_call({key}, args, kwargs)",
        "    return forbidden",
    ]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<{label}, forbidden in this test>", "exec"), namespace)
    return namespace["_outer"]().__code__


def _python_functions(found: Any) -> list[FunctionType]:
    """The functions whose code can be swapped: a function defined in Python, or the methods
    a class defines itself (`__init__`, `__call__`, `attribute`, ...). Builtins, C functions,
    `functools.partial` objects and other callables have no such code: `own_work` replaces
    their names instead."""
    if isinstance(found, FunctionType):
        return [found]
    if not isinstance(found, type):
        return []
    methods = []
    for value in vars(found).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, FunctionType):
            methods.append(value)
    return methods


def _real_copy(function: FunctionType) -> FunctionType:
    copy = FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    return copy


def _homes(original: Any) -> list[Any]:
    """Where a student reaches a library object by name: the `pathlib_core` package, which
    re-exports it, and the library module that defines it (the fallback for objects without
    Python code)."""
    names = {LIBRARY, getattr(original, "__module__", None) or LIBRARY}
    return [
        sys.modules[name]
        for name in names
        if name in sys.modules and (name == LIBRARY or name.startswith(f"{LIBRARY}."))
    ]


@contextmanager
def own_work(
    namespace: dict[str, Any], forbid: Iterable[str] = (), use: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Within the body, each name in `forbid` (a function or class of `pathlib_core`, such as
    "restrict" or "linearity.linearity_profile") raises `LibraryCallError` when code other than
    the library's and this module's calls it, however that code refers to it; each name in `use`
    is bound in `namespace` (the notebook's `globals()`) to the given object. A class refuses its
    own methods (construction, calls of an instance made earlier). Everything is restored on
    exit, also when the body raises.

    The library keeps working inside: a function that is not forbidden may call one that is.
    So forbid every library function that returns the answer being graded. Objects without
    Python code (see `_python_functions`) are only replaced under their names in `namespace`,
    `pathlib_core` and their defining module.
    """
    swapped: list[tuple[FunctionType, CodeType, int]] = []
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
            label = f"{LIBRARY}.{dotted}"
            functions = _python_functions(original)
            for function in functions:
                if any(guard.function is function for guard in _GUARDS.values()):
                    continue  # an enclosing check forbids it already, and will restore it
                key = next(_KEYS)
                _GUARDS[key] = _Guard(function, function.__code__, _real_copy(function), label)
                swapped.append((function, function.__code__, key))
                function.__code__ = _stub_code(function, key, label)
            if functions:
                continue
            name = dotted.rsplit(".", 1)[-1]
            stub = _forbidden(label)
            for module in _homes(original):
                if getattr(module, name, None) is original:
                    replace(module, name, stub)
            if namespace.get(name) is original:
                replace(namespace, name, stub)
        for name, value in (use or {}).items():
            replace(namespace, name, value)
        yield
    finally:
        for function, code, key in reversed(swapped):
            function.__code__ = code
            del _GUARDS[key]
        for holder, name, value, is_key in reversed(saved):
            if not is_key:
                setattr(holder, name, value)
            elif value is _ABSENT:
                holder.pop(name, None)
            else:
                holder[name] = value


def _forbidden(label: str) -> Callable[..., Any]:
    """A stand-in for an object without Python code, which refuses every call."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise LibraryCallError(_message(label))

    return refuse


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
