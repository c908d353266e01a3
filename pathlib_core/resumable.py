"""Long computations saved piece by piece, each piece the moment it is done, so a stopped run
continues where it stopped instead of starting over.

The full profile's pruning objective (``pruning.learned_gates``, 1,000 SGD steps per sample, as the
official code) needs hours on a CPU for 1,000 digits; every sample is optimised on its own, so
each sample's gates are saved on their own and serve any later call on that sample
(:func:`learned_gates_in_chunks`). The sanity checks' maps and ROAR's maps are saved a chunk of
inputs at a time (:func:`run_in_chunks`); :func:`cached_result` keeps one result whole.

A piece lives in ``cache_dir()/chunks/NAME-KEY/`` (folder ``$PATHLIB_CORE_CACHE``) as
``START-STOP.pt`` (a chunk), ``SAMPLE.pt`` (one sample's gates) or ``result.pt``, written
atomically. ``KEY`` (:func:`pathlib_core.cache.content_key`) hashes everything the result depends
on: the weights, the inputs (for gates, each sample's own hash names its file), the options and the
source of the library modules involved, so nothing stale is loaded. A file that cannot be read is
reported with a warning and recomputed; :func:`discard` removes pieces no longer needed.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ._validation import check_eval_mode, check_module, check_positive_int
from .cache import (
    GATE_SOURCES,
    atomic_write,
    cache_dir,
    content_key,
    device_options,
    hash_tensor,
    load_or_warn,
    model_device,
    versions,
)
from .contribution import Contributions
from .sites import site_modules

PER_SAMPLE_SETTINGS = ("kept_prediction", "l1_final")  # learned_gates settings, one per sample
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def model_identity(model: nn.Module) -> dict[str, str]:
    """The model's class and architecture (``repr``), for keys that must change with the model's
    code as well as with its weights."""
    kind = type(model)
    return {"model": f"{kind.__module__}.{kind.__qualname__}", "architecture": repr(model)}


def cached_result(
    name: str, key: str, compute: Callable[[], dict[str, Any]], cache: bool = True
) -> dict[str, Any]:
    """``compute()`` (a dict of tensors and plain values; tensors come back on the CPU), saved in
    ``cache_dir()/chunks/NAME-KEY/result.pt`` the moment it returns and loaded instead of
    computed by a later call with the same ``name`` and ``key``. ``cache=False`` neither reads
    nor writes."""
    return _stored(_folder(name, key) / "result.pt", compute, cache)


def run_in_chunks(
    name: str,
    key: str,
    n: int,
    chunk_size: int,
    compute: Callable[[slice], dict[str, Any]],
    cache: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """``compute(rows)`` for ``rows = slice(0, chunk_size), slice(chunk_size, 2 * chunk_size),
    ...`` up to ``n``; each result (a dict of tensors and plain values; tensors come back on the
    CPU) is saved as soon as it is
    computed and loaded instead of computed on a later call with the same ``name`` and ``key``.
    ``cache=False`` neither reads nor writes.
    ``progress`` draws a tqdm bar on stderr; it changes no result. (A single chunk draws none.)"""
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    folder = _folder(name, key) if cache else Path()
    results = []
    starts = range(0, n, chunk_size)
    for start in tqdm(starts, desc=name, disable=not progress or len(starts) < 2):
        rows = slice(start, min(n, start + chunk_size))
        results.append(
            _stored(folder / f"{rows.start}-{rows.stop}.pt", lambda rows=rows: compute(rows), cache)
        )
    return results


def _folder(name: str, key: str) -> Path:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name must be a non-empty file-name-safe string (letters, digits, "
            f"'_', '.', '+', '-'), got {name!r}."
        )
    return cache_dir() / "chunks" / f"{name}-{key[:16]}"


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples, at any depth) moved to the
    CPU: what goes to disk, so a saved piece loads on any machine and a computed result looks
    the same as a loaded one whatever device computed it."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(on_cpu(v) for v in value)
    return value


def _stored(path: Path, compute: Callable[[], dict[str, Any]], cache: bool) -> dict[str, Any]:
    """The result saved at ``path``, else ``compute()`` with its tensors on the CPU (as a saved
    one loads), saved there atomically."""
    stored = _load(path) if cache else None
    if stored is None:
        stored = on_cpu(compute())
        if cache:
            atomic_write(path, lambda fh: torch.save(stored, fh))
    return stored


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    message = "the saved chunk {path} could not be read ({exc}); computing it again."
    return load_or_warn(path, message, stacklevel=5)


def learned_gates_in_chunks(
    model: nn.Module,
    inputs: Tensor,
    chunk_size: int,
    cache: bool = True,
    progress: bool = True,
    **options: Any,
) -> Contributions:
    """``pruning.learned_gates(model, inputs, **options)``, saved sample by sample: the same
    gates (up to float round-off, which can split a tie when the gates are binarised), settings
    and targets as one call on the whole batch.

    The pruning objective optimises every sample on its own, so a sample's gates depend on the
    model, the settings and that sample only. Each is saved under that key, in
    ``chunks/gates-KEY/`` (one folder per model and settings, one file per sample): any later
    call with the same model and settings reuses it, whatever its batch (the DGR maps of the
    evaluation chapters load the gates the comparison chapter learned). The samples not saved
    yet are computed ``chunk_size`` at a time, each chunk's samples saved when it finishes, so a
    stopped run loses at most the chunk in progress.
    ``progress`` draws a tqdm bar on stderr; it changes no result."""
    from .pruning import learned_gates

    check_module(model)
    check_eval_mode(model)  # before loading, as learned_gates would refuse it
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be one tensor (batch first), got {type(inputs).__name__}.")
    if inputs.dim() == 0 or len(inputs) == 0:
        raise ValueError(
            f"inputs must hold at least one sample (batch first), got shape {tuple(inputs.shape)}."
        )
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    options.pop("progress", None)
    try:  # every setting, defaults filled in: explicit defaults and omitted ones share a key
        bound = inspect.signature(learned_gates).bind(model, inputs, **options)
    except TypeError as exc:
        raise TypeError(f"{exc}; the settings are those of pruning.learned_gates.") from None
    bound.apply_defaults()
    settings = {
        k: v for k, v in bound.arguments.items() if k not in ("model", "inputs", "progress")
    }
    if settings["sites"] is not None:  # modules by their names (a module's repr names no site)
        settings["sites"] = tuple(site_modules(model, settings["sites"]))
    key = content_key(
        {
            **settings,
            **model_identity(model),
            **versions(),
            **device_options(model_device(model)),
            "function": "gates",
        },
        model.state_dict().items(),
        GATE_SOURCES,
    )
    folder = _folder("gates", key)
    files = [folder / f"{_sample_key(sample)}.pt" for sample in inputs]
    entries: list[dict[str, Any] | None] = [None] * len(inputs)
    if cache:
        entries = [_load(path) for path in files]
    missing = [i for i, entry in enumerate(entries) if entry is None]
    starts = range(0, len(missing), chunk_size)
    for start in tqdm(starts, desc="learned gates", disable=not progress or len(starts) < 2):
        rows = missing[start : start + chunk_size]
        part = _as_part(learned_gates(model, inputs[rows], progress=False, **options))
        for j, i in enumerate(rows):
            entries[i] = on_cpu(_row(part, j))
            if cache:
                atomic_write(files[i], lambda fh, entry=entries[i]: torch.save(entry, fh))
    return _joined(entries, inputs.device)


def _sample_key(sample: Tensor) -> str:
    digest = hashlib.sha256()
    hash_tensor(digest, sample, "sample")
    return digest.hexdigest()[:32]


def _as_part(gates: Contributions) -> dict[str, Any]:
    """A ``learned_gates`` result as plain tensors and values (what a saved file holds)."""
    settings = dict(gates.settings)
    per_sample = {k: settings.pop(k) for k in PER_SAMPLE_SETTINGS}
    return {
        "values": dict(gates),
        "targets": gates.targets,
        "per_sample": per_sample,
        "settings": settings,
    }


def _row(part: dict[str, Any], j: int) -> dict[str, Any]:
    """Sample ``j`` of ``part``, its tensors copied out of the batch's (so each file holds one)."""
    return {
        "values": {site: v[j : j + 1].clone() for site, v in part["values"].items()},
        "targets": part["targets"][j : j + 1].clone(),
        "per_sample": {k: v[j : j + 1].clone() for k, v in part["per_sample"].items()},
        "settings": part["settings"],
    }


def _joined(parts: list[dict[str, Any]], device: torch.device) -> Contributions:
    """The samples' gates as one batch on ``device`` (saved files load on the CPU)."""

    def cat(tensors: list[Tensor]) -> Tensor:
        return torch.cat([t.to(device) for t in tensors])

    values = {site: cat([p["values"][site] for p in parts]) for site in parts[0]["values"]}
    per_sample = {
        k: torch.cat([p["per_sample"][k].cpu() for p in parts]) for k in PER_SAMPLE_SETTINGS
    }  # as learned_gates returns them
    return Contributions(
        values, {**parts[0]["settings"], **per_sample}, cat([p["targets"] for p in parts])
    )


def discard(name: str, key: str) -> None:
    """Remove the saved chunks of ``name`` and ``key`` (once their whole result is kept
    elsewhere); nothing happens when there are none."""
    shutil.rmtree(_folder(name, key), ignore_errors=True)
