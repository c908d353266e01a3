"""The library's on-disk cache: where it lives, the one way to key a saved result, atomic
writes, and checksummed weight files.

Every cache of the library (trained models, the GEN-CNP generator, ROAR's maps and retrainings,
the pruning objective's gates, the sanity checks' maps) names its files by :func:`content_key`,
a hash of everything the saved result depends on, so a changed input, setting or library source
gives a new key and the result is recomputed rather than loaded stale. A result computed on a GPU
differs in its last bits from the CPU's, so every key also names the device type through
:func:`device_options`, which adds nothing for the CPU (keys of CPU results stay as they were).

Every weight file ``NAME.pt`` has a sidecar ``NAME.json`` holding the sha256 of the weight file and
free-form metadata. A file whose checksum does not match, or that fails to load, is reported with a
warning and treated as absent, so the caller rebuilds it; it is never used silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "PATHLIB_CORE_CACHE"

# the modules the pruning objective's result depends on (an edit elsewhere keeps saved gates)
GATE_SOURCES = ("pruning.py", "contribution.py", "pathway.py", "sites.py", "_validation.py")
# and those an attribution map of the method registry on the book's models depends on
MAP_SOURCES = (*GATE_SOURCES, "attribution.py", "methods.py", "models.py")


def cache_dir() -> Path:
    """The cache folder: ``$PATHLIB_CORE_CACHE``, else ``$XDG_CACHE_HOME/pathlib_core``,
    else ``~/.cache/pathlib_core``. Created when missing."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base).expanduser() / "pathlib_core"
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_tensor(digest: hashlib._Hash, tensor: torch.Tensor, label: str = "") -> None:
    """Feed ``label``, the dtype, shape and bytes of ``tensor`` into ``digest`` (cache keys)."""
    tensor = tensor.detach().cpu().contiguous()
    prefix = f"|{label}" if label else ""
    digest.update(f"{prefix}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def content_key(
    options: Mapping[str, Any],
    tensors: Iterable[tuple[str, torch.Tensor]] = (),
    sources: Sequence[str] = (),
) -> str:
    """sha256 of ``options`` (sorted by key), of each ``(label, tensor)`` (dtype, shape, bytes)
    and of the library's ``sources`` (file names relative to this package): the key of a saved
    result, which must name everything the result depends on."""
    digest = hashlib.sha256(repr(sorted(options.items())).encode())
    for name, tensor in tensors:
        hash_tensor(digest, tensor, name)
    for name in sources:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def device_options(device: str | torch.device | None) -> dict[str, str]:
    """The device's part of a cache key: ``{}`` for the CPU (or ``None``), else
    ``{"device": TYPE}`` (e.g. ``"cuda"``). The one rule every cache key follows, so a piece
    computed on a GPU is never loaded as a CPU one or the reverse, while CPU keys keep the value
    they had before devices were keyed (existing CPU caches stay valid). Only the type counts:
    ``cuda:0`` and ``cuda:1`` compute alike."""
    kind = "cpu" if device is None else torch.device(device).type
    return {} if kind == "cpu" else {"device": kind}


def model_device(model: torch.nn.Module, fallback: str | torch.device = "cpu") -> torch.device:
    """The device of ``model``'s first parameter or buffer (``fallback`` when it has none):
    where the library computes with that model and moves its inputs."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device(fallback) if first is None else first.device


def versions() -> dict[str, str]:
    """The versions of the packages whose numerics a saved result depends on: torch, Captum,
    and timm and torchvision, which build the models."""
    import captum
    import timm
    import torchvision

    return {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "timm": timm.__version__,
        "torchvision": torchvision.__version__,
    }


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], Any]) -> None:
    """Write ``path`` through ``write(fh)`` into a temporary file in the same folder, then
    ``os.replace`` it into place, so readers see the old file or the new one, never half of one.
    The temporary file is removed if ``write`` raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cache files are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_state_dict(path: str | os.PathLike, state_dict: dict, meta: dict | None = None) -> str:
    """Save ``state_dict`` atomically to ``path`` and its sha256 (plus ``meta``) to the JSON
    sidecar beside it. Tensors are written as CPU tensors (whatever device holds them), so the
    file loads on any machine. Returns the sha256."""
    path = Path(path)
    buffer = io.BytesIO()
    if any(isinstance(v, torch.Tensor) and v.device.type != "cpu" for v in state_dict.values()):
        state_dict = {
            k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()
        }
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    atomic_write(path, lambda fh: fh.write(data))
    record = {"file": path.name, "sha256": digest, **(meta or {})}
    text = json.dumps(record, indent=2, sort_keys=True).encode()
    atomic_write(_sidecar(path), lambda fh: fh.write(text))
    return digest


def load_state_dict(path: str | os.PathLike) -> dict | None:
    """Load a state dict saved by :func:`save_state_dict`, or return ``None`` when it is absent.

    A weight file without a readable sidecar, with a checksum mismatch, or that ``torch.load``
    cannot read is reported with a ``UserWarning`` and ``None`` is returned, so the caller
    rebuilds it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        expected = json.loads(_sidecar(path).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(
            f"Cached weights {path} have no valid checksum record ({exc}); rebuilding them.",
            stacklevel=2,
        )
        return None
    actual = sha256_file(path)
    if actual != expected:
        warnings.warn(
            f"Cached weights {path} are corrupted (sha256 {actual[:12]}... differs "
            f"from the recorded {expected[:12]}...); rebuilding them.",
            stacklevel=2,
        )
        return None
    return load_or_warn(path, "Cached weights {path} could not be loaded ({exc}); rebuilding them.")


def load_or_warn(path: Path, message: str, stacklevel: int = 3) -> Any | None:
    """``torch.load`` (CPU, weights only), or ``None`` with a ``UserWarning`` when the file cannot
    be read: ``message`` (formatted with ``path`` and ``exc``) says what the caller does instead.
    A saved piece that is unreadable is recomputed, never trusted."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is recomputed
        warnings.warn(message.format(path=path, exc=exc), stacklevel=stacklevel)
        return None
