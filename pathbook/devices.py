"""Which device the chapters compute on: `--device` and `--devices` of `pathbook build`/`run`.

Every chapter declares a `device` parameter; these options set it for one invocation. Nothing here
imports torch at module level: `require_devices` imports it only when a CUDA device (or `auto`)
is asked for, so that `pathbook --help`, `--version` and `status` stay fast.
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .project import PathbookError

DEVICE_PARAMETER = "device"  # the parameter every chapter declares (default "cpu")
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
_INDEXED_CUDA = re.compile(r"^cuda:\d+$")
TORCH_INSTALL = "https://pytorch.org/get-started/locally/"


def parse_device(text: str) -> str:
    """argparse type of `--device`: cpu, cuda, cuda:N or auto."""
    device = text.strip().lower()
    if not _DEVICE.match(device):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device; give cpu, cuda, cuda:N (N: the GPU's index) or auto"
        )
    return device


def parse_devices(text: str) -> list[str]:
    """argparse type of `--devices`: a comma-separated list of indexed CUDA devices.

    Only `cuda:N`: the list exists to spread chapters over several GPUs, and chapters running on
    different kinds of device would not compute the same results under one fingerprint.
    """
    devices = [parse_device(part) for part in text.split(",") if part.strip()]
    wrong = [d for d in devices if not _INDEXED_CUDA.match(d)]
    if not devices or wrong:
        raise argparse.ArgumentTypeError(
            f"{text!r}: --devices takes CUDA devices with their index, comma-separated "
            "(e.g. cuda:0,cuda:1); for a single device, or cpu or auto, use --device"
        )
    return devices


def slot_devices(devices: Sequence[str], jobs: int) -> list[str]:
    """The device of each of `jobs` worker slots: slot k uses devices[k], round robin when there
    are more slots than devices."""
    if not devices:
        raise ValueError("slot_devices needs at least one device")
    return [devices[k % len(devices)] for k in range(max(1, jobs))]


class DeviceSlots:
    """Worker slots, each with its own device, leased by the chapters that run at once.

    A thread pool of `jobs` workers runs at most `jobs` chapters together; each takes the lowest
    free slot for the time it runs, so concurrently running chapters get different slots (hence
    different devices while slots <= devices), and a slot always keeps its device.
    """

    def __init__(self, devices: Sequence[str], jobs: int) -> None:
        self.devices = slot_devices(devices, jobs)
        self._free = set(range(len(self.devices)))
        self._ready = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[str]:
        """Hold the lowest free slot while the block runs; yields its device."""
        with self._ready:
            self._ready.wait_for(lambda: bool(self._free))
            slot = min(self._free)
            self._free.remove(slot)
        try:
            yield self.devices[slot]
        finally:
            with self._ready:
                self._free.add(slot)
                self._ready.notify()


def with_device(values: dict[str, Any], device: str | None) -> dict[str, Any]:
    """`values` with the chapter's device set to `device` (a copy; unchanged when None)."""
    return values if device is None else {**values, DEVICE_PARAMETER: device}


def fingerprint_device(values: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the fingerprint records them: `cuda:N` as `cuda`.

    Which of the machine's GPUs ran a chapter does not change what it computes, and `--devices`
    picks the GPU only when the chapter starts; cpu against cuda (and the other values) count.
    """
    device = values.get(DEVICE_PARAMETER)
    if isinstance(device, str) and _INDEXED_CUDA.match(device):
        return {**values, DEVICE_PARAMETER: "cuda"}
    return values


def require_devices(devices: Sequence[str], option: str = "--device") -> list[str]:
    """Check, before anything executes, that the CUDA devices asked for exist; resolve `auto`
    (to cuda when available, else cpu) so that the fingerprint and the stamp say what ran.

    A chapter started on a missing GPU would fail only after its kernel has loaded its data; here
    the message names the device and the fix at once. `option` says where the devices came from
    (--device, --devices, or the profile's `device`); other devices (cpu) pass unchecked.
    """
    if not any(d == "auto" or d.startswith("cuda") for d in devices):
        return list(devices)
    import torch  # only here: a cpu run, --help and status never pay for it

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    resolved = []
    for device in devices:
        if device == "auto":
            resolved.append("cuda" if available else "cpu")
            continue
        if device.startswith("cuda") and not available:
            cuda = torch.version.cuda
            build = f"built for CUDA {cuda}" if cuda else "a CPU-only build"
            raise PathbookError(
                f"{option} {device}: no CUDA device here (torch {torch.__version__}, {build}: "
                "torch.cuda.is_available() is False). Use --device cpu (or auto), or run on a "
                "machine with an NVIDIA GPU, its driver and a CUDA build of torch "
                f"({TORCH_INSTALL})."
            )
        index = int(device.partition(":")[2] or 0)
        if device.startswith("cuda") and index >= count:
            raise PathbookError(
                f"{option} {device}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}; pick among those."
            )
        resolved.append(device)
    return resolved
