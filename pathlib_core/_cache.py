"""A small on-disk cache for trained weights: where it lives, atomic writes, checksums.

Every weight file ``NAME.pt`` has a sidecar ``NAME.json`` holding the sha256 of the weight file and
free-form metadata. A file whose checksum does not match, or that fails to load, is reported with a
warning and treated as absent, so the caller rebuilds it; it is never used silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "PATHLIB_CORE_CACHE"


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
    prefix = f"|{label}" if label else ""  # without a label: the keys ROAR's cache always had
    digest.update(f"{prefix}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


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
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_state_dict(path: str | os.PathLike, state_dict: dict, meta: dict | None = None) -> str:
    """Save ``state_dict`` atomically to ``path`` and its sha256 (plus ``meta``) to the JSON
    sidecar beside it. Returns the sha256."""
    path = Path(path)
    buffer = io.BytesIO()
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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
        warnings.warn(
            f"Cached weights {path} could not be loaded ({exc}); rebuilding them.", stacklevel=2
        )
        return None
