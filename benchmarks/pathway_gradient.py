"""Speed and memory of PathwayGradient against Captum's Saliency and IntegratedGradients.

One run, same model and batch for every method: the ratios are measured against baselines
timed in the same run, interleaved round by round so that a busy machine slows all methods
alike. Times are medians after warm-up; the pathway gradient is also split into its
contribution pass, selection and masked pass.

Memory (CPU): for each method a fresh subprocess builds the model and inputs, returns free heap
to the OS (``malloc_trim``), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``),
runs the method once and reports the peak resident-set growth (VmHWM - VmRSS before). On CUDA:
``torch.cuda.max_memory_allocated`` growth.

    python benchmarks/pathway_gradient.py          # MNIST CNN (batch 64), Lite0 224 px (batch 4)
    python benchmarks/pathway_gradient.py --quick  # smoke test, well under a minute
    python benchmarks/pathway_gradient.py --models mnist,lite0,resnet50 --device auto --threads 1
    python benchmarks/pathway_gradient.py --models lite0,resnet50 --device cuda --batch 32
        # the GPU goals: >= 2,000 (Lite0) and >= 1,000 (ResNet-50) images/s, pathway/saliency <= 2.3
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from pathlib_core.attribution import PathwayGradient, restricted_input_gradient
from pathlib_core.contribution import contributions_at
from pathlib_core.pathway import select_pathway

SPARSITY = 0.9
IG_STEPS = 50
GOALS = {  # model -> (pathway / saliency at most, IG50 / pathway at least)
    "mnist": (2.3, 20.0),
    "lite0": (3.0, 20.0),
    "resnet50": (3.0, 20.0),
}
# on a GPU (224 px, batch 32): pathway-gradient images per second at least, and pathway /
# saliency at most GPU_RATIO for every model
GPU_THROUGHPUT = {"lite0": 2000.0, "resnet50": 1000.0}
GPU_RATIO = 2.3


@dataclass
class Setting:
    model: str
    batch: int
    size: int


def build_model(name: str) -> tuple[nn.Module, str]:
    """The model and a note on where its weights come from."""
    from pathlib_core import models

    if name == "mnist":
        return models.mnist_cnn(progress=False), "trained, pathlib_core.models.mnist_cnn()"
    if name == "lite0":
        return models.efficientnet_lite0(), "pretrained, pathlib_core.models.efficientnet_lite0()"
    if name == "resnet50":
        import torchvision

        torch.manual_seed(0)
        return torchvision.models.resnet50(
            weights=None
        ).eval(), "RANDOM weights, torchvision resnet50"
    raise SystemExit(f"unknown model {name!r}; choose from mnist, lite0, resnet50")


def build_inputs(setting: Setting, device: torch.device) -> tuple[torch.Tensor, str]:
    """Real inputs from ``pathlib_core.data`` when it provides them (MNIST test digits, the
    skimage photos), else seeded noise (timing barely depends on the values; the fraction of
    dead neurons does, a little)."""
    try:
        if setting.model == "mnist":
            from pathlib_core.data import mnist

            images = _first_tensor(mnist("test"))[: setting.batch]
            source = "MNIST test digits"
        else:
            from pathlib_core.data import photo_names, photos

            names = photo_names()[: setting.batch]
            images, source = photos(names, setting.size), f"photos {', '.join(names)}"
        channels = 1 if setting.model == "mnist" else 3
        if tuple(images.shape) == (setting.batch, channels, setting.size, setting.size):
            return images.float().to(device), source
    except Exception:  # noqa: BLE001, S110 - no usable data: seeded noise below
        pass
    generator = torch.Generator().manual_seed(0)
    channels = 1 if setting.model == "mnist" else 3
    shape = (setting.batch, channels, setting.size, setting.size)
    return torch.randn(shape, generator=generator).to(device), "seeded Gaussian noise"


def _first_tensor(data: object) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, (tuple, list)):
        return _first_tensor(data[0])
    if isinstance(data, dict):
        return _first_tensor(next(iter(data.values())))
    tensors = getattr(data, "tensors", None)  # a TensorDataset
    if tensors:
        return tensors[0]
    raise TypeError(f"cannot find images in {type(data).__name__}")


def methods(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> dict[str, Callable[[], object]]:
    saliency, pathway = Saliency(model), PathwayGradient(model)
    ig = IntegratedGradients(model)
    internal = ig_internal_batch(model, x)
    return {
        "saliency": lambda: saliency.attribute(
            x.clone().requires_grad_(True), target=target, abs=False
        ),
        "pathway": lambda: pathway.attribute(x, target, sparsity=SPARSITY),
        "ig50": lambda: ig.attribute(
            x, target=target, n_steps=IG_STEPS, internal_batch_size=internal
        ),
    }


def ig_internal_batch(model: nn.Module, x: torch.Tensor) -> int:
    """Examples per IG chunk: all steps at once where that stays near ~2 GB of activations."""
    sites = PathwayGradient(model).site_modules
    neurons = sum(
        value[0].numel() for value in contributions_at(model, x[:1], 0, "taylor", sites).values()
    )
    budget = int(1.2e8 // max(neurons, 1))
    return max(x.shape[0], min(x.shape[0] * IG_STEPS, budget))


def breakdown(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> dict[str, Callable[[], object]]:
    """The three stages of PathwayGradient.attribute, separately."""
    modules = PathwayGradient(model).site_modules
    contributions = contributions_at(model, x, target, "taylor", modules)
    pathway = select_pathway(contributions, SPARSITY)
    return {
        "contribution pass": lambda: contributions_at(model, x, target, "taylor", modules),
        "selection": lambda: select_pathway(contributions, SPARSITY),
        "masked pass": lambda: restricted_input_gradient(model, x, target, pathway),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(
    functions: dict[str, Callable], repeats: dict[str, int], warmup: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call; methods alternate round by round."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_index in range(max(repeats.values())):
        for name, function in functions.items():
            if round_index >= repeats[name]:
                continue
            _sync(device)
            start = time.perf_counter()
            function()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_memory(args: argparse.Namespace, setting: Setting, method: str) -> float:
    """Peak memory growth (MB) of one call, in a fresh subprocess."""
    spec = f"{setting.model}:{setting.batch}:{setting.size}:{method}"
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--_memory",
        spec,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        return float("nan")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def _memory_child(spec: str, device: torch.device) -> None:
    name, batch, size, method = spec.split(":")
    setting = Setting(name, int(batch), int(size))
    model, _ = build_model(name)
    model = model.to(device)
    x, _ = build_inputs(setting, device)
    with torch.no_grad():
        target = model(x).argmax(1)
    function = methods(model, x, target)[method]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        function()
        peak = (_status_kb("VmHWM") - before) * 1024
    print(json.dumps({"peak_mb": peak / 2**20}))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_setting(args: argparse.Namespace, setting: Setting, device: torch.device) -> None:
    model, weights = build_model(setting.model)
    model = model.to(device)
    x, data = build_inputs(setting, device)
    with torch.no_grad():
        target = model(x).argmax(1)
    pathway = PathwayGradient(model).attribute(x, target, sparsity=SPARSITY, return_pathway=True)[1]
    internal = ig_internal_batch(model, x)
    print(
        f"\n== {setting.model}: batch {setting.batch}, {tuple(x.shape[1:])} inputs ({data}); "
        f"{weights}"
    )
    print(
        f"   {len(pathway.sites)} sites, {pathway.n_neurons:,} neurons per sample, "
        f"removed fraction at sparsity {SPARSITY}: {pathway.sparsity.mean():.4f}"
    )
    repeats = {"saliency": args.repeats, "pathway": args.repeats, "ig50": args.ig_repeats}
    timed = time_interleaved(methods(model, x, target), repeats, args.warmup, device)
    stage_repeats = {
        stage: args.repeats for stage in ("contribution pass", "selection", "masked pass")
    }
    stages = time_interleaved(breakdown(model, x, target), stage_repeats, args.warmup, device)
    memory = {m: (measure_memory(args, setting, m) if args.memory else float("nan")) for m in timed}
    labels = {
        "saliency": "captum Saliency",
        "pathway": f"PathwayGradient (sparsity {SPARSITY})",
        "ig50": f"captum IntegratedGradients ({IG_STEPS} steps, internal batch {internal})",
    }
    print(f"   {'method':<58}{'median ms':>11}{'images/s':>10}{'peak MB':>10}")
    for method, seconds in timed.items():
        rate = setting.batch / seconds
        print(f"   {labels[method]:<58}{seconds * 1e3:>11.1f}{rate:>10.0f}{memory[method]:>10.1f}")
    parts = ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in stages.items())
    print(f"   pathway stages: {parts}")
    most, least = GOALS[setting.model]
    if device.type == "cuda":
        most = GPU_RATIO
    ratio_pathway = timed["pathway"] / timed["saliency"]
    ratio_ig = timed["ig50"] / timed["pathway"]
    print(f"   {'ratio':<30}{'value':>8}   goal")
    met_pathway = _verdict(ratio_pathway <= most, args.quick)
    met_ig = _verdict(ratio_ig >= least, args.quick)
    print(f"   {'pathway / saliency':<30}{ratio_pathway:>8.2f}   <= {most:<5} {met_pathway}")
    print(f"   {'IG50 / pathway':<30}{ratio_ig:>8.2f}   >= {least:<5} {met_ig}")
    if device.type == "cuda" and setting.model in GPU_THROUGHPUT:
        rate, goal = setting.batch / timed["pathway"], GPU_THROUGHPUT[setting.model]
        met_rate = _verdict(rate >= goal, args.quick)
        print(f"   {'pathway images/s':<30}{rate:>8.0f}   >= {goal:<5.0f} {met_rate}")


def _verdict(ok: bool, quick: bool) -> str:
    if quick:
        return "n/a (--quick)"
    return "met" if ok else "NOT met"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--batch", type=int, default=None, help="batch size for every model")
    parser.add_argument("--quick", action="store_true", help="smallest setting: a smoke test")
    parser.add_argument(
        "--models", default="mnist,lite0", help="comma list of mnist, lite0, resnet50"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads, the same for every method (default: torch's default)",
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ig-repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--_memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = (2, 1, 1) if args.quick else (7, 3, 2)
    args.repeats = args.repeats or defaults[0]
    args.ig_repeats = args.ig_repeats or defaults[1]
    args.warmup = args.warmup if args.warmup is not None else defaults[2]
    return args


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", module="captum")
    torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    if args._memory:
        _memory_child(args._memory, device)
        return
    sizes = {"mnist": (64, 28), "lite0": (4, 224), "resnet50": (4, 224)}
    if args.quick:
        sizes = {"mnist": (8, 28), "lite0": (1, 96), "resnet50": (1, 64)}
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    load = os.getloadavg()[0]
    print(
        f"pathway gradient benchmark: device {device}, torch {torch.__version__}, "
        f"{args.threads} threads, {args.repeats} repeats ({args.ig_repeats} for IG) after "
        f"{args.warmup} warm-up, load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    if args.quick:
        print("--quick: smoke-test sizes; the goals refer to the default sizes")
    for name in names:
        batch, size = sizes.get(name, (4, 224))
        run_setting(args, Setting(name, args.batch or batch, size), device)
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.2f} (other processes slow every method)"
    )


if __name__ == "__main__":
    main()
