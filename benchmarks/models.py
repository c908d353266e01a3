"""Speed of the embedded models: MNIST CNN training (and its accuracy), EfficientNet-Lite0 forward
and forward + backward per image.

    python benchmarks/models.py            # full: the real training recipe, 4 photos, 7 repeats
    python benchmarks/models.py --quick    # smoke test: 1 epoch on 512 digits, 2 photos, 2 repeats

Training always runs on the CPU (that is what mnist_cnn() does); --device applies to Lite0.
The MNIST model is trained here directly (train_mnist_cnn), not read from the cache. Timings on
shared cores are noisy: two processes with two threads each on two cores slow each other down
many times over, hence the min beside the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pathlib_core.data import mnist, photo_names, photos
from pathlib_core.models import (
    MNIST_TRAINING,
    accuracy,
    efficientnet_lite0,
    resolve_device,
    train_mnist_cnn,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _times(fn, repeats: int, device: torch.device) -> list[float]:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench_mnist(quick: bool) -> list[tuple[str, str]]:
    images, labels = mnist("train")
    test_x, test_y = mnist("test")
    params = dict(MNIST_TRAINING)
    if quick:
        images, labels, params["epochs"] = images[:512], labels[:512], 1
    start = time.perf_counter()
    model = train_mnist_cnn(images, labels, progress=False, **params)
    seconds = time.perf_counter() - start
    acc = accuracy(model, test_x, test_y)
    return [
        (
            f"MNIST CNN training ({len(images)} digits, {params['epochs']} epochs, "
            f"{params['num_threads']} threads)",
            f"{seconds:8.1f} s",
        ),
        ("MNIST CNN accuracy on the 1,000 test digits", f"{100 * acc:8.1f} %"),
    ]


def bench_lite0(device: torch.device, batch: int, repeats: int) -> list[tuple[str, str]]:
    model = efficientnet_lite0(device)
    x = photos(photo_names()[:batch]).to(device)

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        inp = x.clone().requires_grad_(True)
        logits = model(inp)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()

    rows = []
    for label, fn in (
        ("forward", forward),
        ("forward + backward (input gradient)", forward_backward),
    ):
        times = [1000 * t / len(x) for t in _times(fn, repeats, device)]
        rows.append(
            (
                f"Lite0 {label}, batch {len(x)}, median (min) of {repeats}",
                f"{statistics.median(times):8.1f} ms/image ({min(times):.1f})",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (Lite0 only)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    batch, repeats = (2, 2) if args.quick else (4, 7)

    rows = bench_lite0(device, batch, repeats) + bench_mnist(args.quick)
    width = max(len(name) for name, _ in rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Lite0 on {device}")
    print(f"{'measurement'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 16}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
