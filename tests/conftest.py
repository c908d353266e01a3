"""Shared fixtures: the trained MNIST CNN in a temporary cache, made once per test session."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch

# figures are drawn off screen in every test (before any test module imports matplotlib)
os.environ.setdefault("MPLBACKEND", "agg")


@pytest.fixture(scope="session")
def mnist_cache_dir(tmp_path_factory):
    """A cache folder holding the trained MNIST CNN: copied from the user's cache when that holds
    it (the book build, which runs first, trains it there), else trained once per session (about
    a minute). The copy is checked against its recorded sha256 like any cached weights."""
    from pathlib_core.models import mnist_cnn, mnist_cnn_cache_path

    folder = tmp_path_factory.mktemp("pathlib_core_cache")
    trained = mnist_cnn_cache_path()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATHLIB_CORE_CACHE", str(folder))
        if trained.exists() and trained.with_suffix(".json").exists():
            for source in (trained, trained.with_suffix(".json")):
                shutil.copy2(source, folder / source.name)
        mnist_cnn(progress=False)
    return folder


@pytest.fixture
def mnist_model(mnist_cache_dir, monkeypatch):
    """A fresh copy of the trained MNIST CNN (eval mode, CPU), loaded from the session cache."""
    from pathlib_core.models import mnist_cnn

    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(mnist_cache_dir))
    return mnist_cnn(progress=False)


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models run faster on one thread, and many small parallel operations crawl on a busy
    machine; the previous setting is restored after the module. Modules that want it say
    ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def close_figures():
    """No test leaves its figures open for the next one (matplotlib warns past 20 open)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
