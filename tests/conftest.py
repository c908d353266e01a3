"""Shared fixtures: the MNIST CNN is trained once per test session, into a temporary cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mnist_cache_dir(tmp_path_factory):
    """A cache folder holding the trained MNIST CNN (trained once per session, about 30 s)."""
    from pathlib_core.models import mnist_cnn

    folder = tmp_path_factory.mktemp("pathlib_core_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATHLIB_CORE_CACHE", str(folder))
        mnist_cnn(progress=False)
    return folder


@pytest.fixture
def mnist_model(mnist_cache_dir, monkeypatch):
    """A fresh copy of the trained MNIST CNN (eval mode, CPU), loaded from the session cache."""
    from pathlib_core.models import mnist_cnn

    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(mnist_cache_dir))
    return mnist_cnn(progress=False)
