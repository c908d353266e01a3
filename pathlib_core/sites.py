"""Where the neurons are: the outputs of ReLU/ReLU6 modules, one *site* per call.

A neuron is one element of one ReLU/ReLU6 output (channel x position, or a fully connected unit),
as in the official code's ``Pruner`` (which hooks ``nn.ReLU`` only; we hook ``nn.ReLU6`` too, see
book/definitions.md, "Neurons and sites"). A module called several times in one forward pass
(torchvision's ResNet blocks reuse one ``nn.ReLU``) gives one site per call.

Site names. A site is named by its module's qualified name; the first call of a module in a forward
pass is the plain name (``"layer1.0.relu"``), later calls append ``#1``, ``#2``, ...
(``"layer1.0.relu#1"``). Calls are counted from the start of each forward pass of the model.

Discovery. Which *modules* hold neurons is static (``site_modules``); how often and in which order
they run is only known from a forward pass. ``find_sites(model, inputs)`` runs one forward pass
without gradients and lists the sites in forward order; every computation in this package
discovers the sites the same way, during the forward pass it needs anyway, so a site list is never
out of date.

Only modules are seen: a ``torch.relu``/``F.relu`` call inside some other module's ``forward`` is
invisible; replace it by an ``nn.ReLU`` submodule or pass ``sites=`` with the module whose output
should count as neurons.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._validation import Inputs, as_input_tuple, check_eval_mode, check_module

#: Module types whose outputs are neurons by default (subclasses included).
SITE_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)

_NOT_PIECEWISE_LINEAR: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Softplus,
    nn.LogSigmoid,
    nn.Tanhshrink,
)
# Activation classes of other libraries (timm, transformers) that are not torch subclasses.
_NOT_PIECEWISE_LINEAR_NAMES = frozenset(
    {
        "gelu",
        "gelutanh",
        "quickgelu",
        "silu",
        "swish",
        "mish",
        "sigmoid",
        "tanh",
        "hardswish",
        "elu",
        "selu",
        "celu",
        "softplus",
    }
)

SiteSpec = Sequence[str | nn.Module] | None
SiteFunction = Callable[[str, Tensor], Tensor | None]


class NotPiecewiseLinearWarning(UserWarning):
    """The model has nonlinearities that are not piecewise linear (GELU, SiLU, ...)."""


@dataclass(frozen=True)
class Site:
    """One call of one neuron-holding module.

    ``shape`` is the per-sample activation shape (batch dimension left out), ``None`` when the
    sites were listed without running the model.
    """

    name: str
    module_name: str
    call: int
    module_type: str
    shape: tuple[int, ...] | None = None

    @property
    def numel(self) -> int | None:
        """Neurons per sample at this site (``None`` if the shape is unknown)."""
        if self.shape is None:
            return None
        count = 1
        for size in self.shape:
            count *= size
        return count


def site_name(module_name: str, call: int) -> str:
    """The name of call ``call`` (0-based) of a module: ``name``, ``name#1``, ``name#2``, ..."""
    return module_name if call == 0 else f"{module_name}#{call}"


def module_of_site(name: str) -> str:
    """The module's qualified name of a site name (``"layer1.0.relu#1"`` -> ``"layer1.0.relu"``)."""
    return name.split("#", 1)[0]


def site_modules(model: nn.Module, sites: SiteSpec = None) -> dict[str, nn.Module]:
    """The modules whose outputs are neurons, by qualified name, in registration order.

    ``sites=None`` selects every ``nn.ReLU``/``nn.ReLU6`` (and subclasses); otherwise ``sites``
    lists module names or modules of ``model``. Warns (``NotPiecewiseLinearWarning``) when the
    model contains nonlinearities that are not piecewise linear: the pathway's local linearity does
    not hold there.
    """
    check_module(model)
    named = dict(model.named_modules())
    _warn_if_not_piecewise_linear(named)
    if sites is None:
        chosen = {name: module for name, module in named.items() if isinstance(module, SITE_TYPES)}
        if not chosen:
            raise ValueError(
                f"{type(model).__name__} has no nn.ReLU or nn.ReLU6 modules, so no neurons were "
                "found; pass sites= explicitly (names or modules whose outputs are the neurons), "
                "or replace functional torch.relu/F.relu calls by nn.ReLU submodules."
            )
        return chosen
    if isinstance(sites, (str, nn.Module)) or not isinstance(sites, Sequence):
        raise TypeError(
            "sites must be a list of module names or modules, e.g. sites=['features.1']."
        )
    if not sites:
        raise ValueError(
            "sites is empty; pass at least one module name, or sites=None for all ReLUs."
        )
    wanted = {_module_name(model, named, spec) for spec in sites}
    return {name: module for name, module in named.items() if name in wanted}


def _module_name(model: nn.Module, named: dict[str, nn.Module], spec: str | nn.Module) -> str:
    if isinstance(spec, nn.Module):
        for name, module in named.items():
            if module is spec and name:
                return name
        raise ValueError(
            f"sites= holds a {type(spec).__name__} that is not a submodule of "
            f"{type(model).__name__}; pass modules of this model or their qualified names."
        )
    if not isinstance(spec, str):
        raise TypeError(
            f"sites entries must be module names or modules, got {type(spec).__name__}."
        )
    if spec in named and spec:
        return spec
    if "#" in spec and module_of_site(spec) in named:
        raise ValueError(
            f"'{spec}' is a site (one call of a module); sites= names modules: pass "
            f"'{module_of_site(spec)}' and every call of it becomes a site."
        )
    close = difflib.get_close_matches(spec, [n for n in named if n], n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ValueError(
        f"'{spec}' is not a module of {type(model).__name__}; sites= takes qualified names "
        f"as listed by model.named_modules().{hint}"
    )


def _warn_if_not_piecewise_linear(named: dict[str, nn.Module]) -> None:
    smooth = sorted(
        {
            type(module).__name__
            for module in named.values()
            if isinstance(module, _NOT_PIECEWISE_LINEAR)
            or type(module).__name__.lower() in _NOT_PIECEWISE_LINEAR_NAMES
        }
    )
    if smooth:
        warnings.warn(
            f"the model uses nonlinearities that are not piecewise linear ({', '.join(smooth)}); "
            "they are not neurons of the pathway, and the pathway is not locally linear there, "
            "so the linearity results of Khakzar et al. (2021) do not hold for this model.",
            NotPiecewiseLinearWarning,
            stacklevel=3,
        )


@contextmanager
def site_hooks(
    model: nn.Module,
    fn: SiteFunction,
    modules: dict[str, nn.Module],
    after_forward: Callable[[list[str]], None] | None = None,
    batch_size: int | None = None,
) -> Iterator[list[str]]:
    """Call ``fn(site_name, output)`` at every site of every forward pass of ``model``.

    ``fn`` may return a tensor that replaces the module's output (as the official code's
    forward hook returns the masked activation), or ``None`` to leave it. The context yields the
    list of site names of the latest forward pass, in call order. ``after_forward(calls)`` runs
    at the end of each forward pass of ``model``. With ``batch_size``, every site's activation must
    have it as its first dimension (sites are batch first). All hooks are removed on exit, also
    when the body raises.
    """
    calls: list[str] = []
    counts: dict[str, int] = {}

    def start_forward(module: nn.Module, args: object) -> None:
        calls.clear()
        counts.clear()

    def end_forward(module: nn.Module, args: object, output: object) -> None:
        if after_forward is not None:
            after_forward(calls)

    def make_hook(module_name: str) -> Callable[..., Tensor | None]:
        def hook(module: nn.Module, args: object, output: object) -> Tensor | None:
            call = counts.get(module_name, 0)
            counts[module_name] = call + 1
            name = site_name(module_name, call)
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"site '{name}' ({type(module).__name__}) returned {type(output).__name__}; "
                    "a site must return one tensor of activations: choose another module in sites=."
                )
            if batch_size is not None and (output.dim() == 0 or output.shape[0] != batch_size):
                raise ValueError(
                    f"site '{name}' has activation shape {tuple(output.shape)}, but the inputs "
                    f"have batch size {batch_size}; activations must be batch first. If the "
                    "inputs lack the batch dimension, add it with inputs.unsqueeze(0)."
                )
            calls.append(name)
            return fn(name, output)

        return hook

    handles = []
    try:
        handles.append(model.register_forward_pre_hook(start_forward))
        for module_name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(module_name)))
        handles.append(model.register_forward_hook(end_forward))
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def find_sites(
    model: nn.Module, inputs: Inputs | None = None, sites: SiteSpec = None
) -> list[Site]:
    """The sites (neuron-holding module calls) of ``model``, in forward order.

    With ``inputs`` (recommended), runs one forward pass under ``torch.no_grad()`` (the model must
    be in eval mode) and returns one ``Site`` per call, with its per-sample shape. Without inputs,
    returns one ``Site`` per module in registration order (``model.named_modules()``), which is
    the forward order of sequential models only, and cannot show repeated calls or shapes.
    """
    modules = site_modules(model, sites)
    if inputs is None:
        return [Site(name, name, 0, type(module).__name__) for name, module in modules.items()]
    check_eval_mode(model)
    tensors, _ = as_input_tuple(inputs)
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str, output: Tensor) -> None:
        shapes[name] = tuple(output.shape[1:])

    with (
        torch.no_grad(),
        site_hooks(model, record, modules, batch_size=tensors[0].shape[0]) as calls,
    ):
        model(*tensors)
        order = list(calls)
    if not order:
        raise ValueError(
            f"none of the {len(modules)} site modules ran in a forward pass of "
            f"{type(model).__name__}; pass sites= with modules that the forward pass calls."
        )
    return [
        Site(
            name,
            module_of_site(name),
            _call_index(name),
            type(modules[module_of_site(name)]).__name__,
            shapes[name],
        )
        for name in order
    ]


def _call_index(name: str) -> int:
    _, _, call = name.partition("#")
    return int(call) if call else 0
