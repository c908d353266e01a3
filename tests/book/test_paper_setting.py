"""The paper's setting end to end, in miniature: `pathbook run sensitivity_n` with a torchvision
ResNet over an ImageNet-validation-style folder, on the CPU, nothing downloaded.

The folder holds the bundled photos in two WordNet-id subfolders; the ResNet-18 weights file is
the seeded random initialisation saved where torchvision's hub cache keeps the real one. The
chapter runs in a temporary project holding only it, with a temporary pathlib_core cache (the
trained MNIST CNN copied in), and tiny settings (about a minute on one core)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from pathbook.cli import main
from pathlib_core import data

REPO = Path(__file__).resolve().parents[2]
CHAPTER = "sensitivity_n"
FOLDERS = {"n02123045": "chelsea", "n07920052": "coffee"}  # tabby cat, espresso

pytestmark = pytest.mark.slow


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "imagenet-val"
    for wnid, photo in FOLDERS.items():
        (folder / wnid).mkdir(parents=True)
        path = folder / wnid / f"ILSVRC2012_val_{wnid}.JPEG"
        Image.fromarray(data._read_rgb(photo)).resize((300, 256)).save(path)
    return folder


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """A hub cache holding a seeded random ResNet-18 under the file name of its ImageNet weights;
    any attempt to download fails the test."""
    import torchvision

    home = tmp_path / "torch"
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(torchvision.models.resnet18().state_dict(), checkpoints / os.path.basename(url))
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path, mnist_cache_dir, monkeypatch) -> Path:
    """A project holding only this chapter (its entry of the real profiles.yml), and a
    pathlib_core cache of its own."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy2(REPO / "notebooks" / f"{CHAPTER}.ipynb", root / "notebooks")
    spec = yaml.safe_load((REPO / "notebooks" / "profiles.yml").read_text())
    entry = {"quick": {}, "data": spec["notebooks"][CHAPTER].get("data", [])}
    (root / "notebooks" / "profiles.yml").write_text(
        yaml.safe_dump({"notebooks": {CHAPTER: entry}})
    )
    cache = shutil.copytree(mnist_cache_dir, tmp_path / "cache")
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(cache))
    return root


def test_sensitivity_n_on_resnet18_over_an_image_folder(
    project, image_folder, torch_home, tmp_path
):
    output = tmp_path / "out" / f"{CHAPTER}.ipynb"
    settings = {
        "model": "resnet18",
        "image_folder": str(image_folder),
        "n_images": "2",
        "device": "cpu",
        "n_digits": "4",
        "n_subsets": "8",
        "photo_subsets": "4",
        "photo_ns": "[16, 256]",
        "ig_steps": "2",
        "smoothgrad_samples": "2",
        "dgr_steps": "2",
    }
    args = ["--root", str(project), "run", CHAPTER, "-o", str(output)]
    for key, value in settings.items():
        args += ["-p", key, value]
    assert main(args) == 0, "the chapter failed; see the output above"

    figures = output.with_name(f"{CHAPTER}-figures")
    record = json.loads((figures / "sensitivity_photo.json").read_text())
    assert record["caption"].startswith("ResNet-18, 2 image(s): sensitivity-n")
    assert record["parameters"]["model"] == "resnet18"
    assert record["parameters"]["image_folder"] == str(image_folder)
    assert record["device"] == {"type": "cpu"}
    assert (figures / "sensitivity_photo.png").stat().st_size > 0
    text = output.read_text()
    assert "ResNet-18 in " in text  # the timing line names the model that ran
    assert "EfficientNet-Lite0" not in json.dumps(record)
