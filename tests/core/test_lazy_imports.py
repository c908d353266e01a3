"""`import pathlib_core` is cheap and every exported name still resolves (PEP 562 lazy exports)."""

import subprocess
import sys

import pytest

import pathlib_core
from pathlib_core import evaluation


def test_importing_the_package_loads_no_submodule_and_no_torch():
    code = (
        "import sys, pathlib_core, pathlib_core.evaluation\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('pathlib_core'))\n"
        "print('torch' in sys.modules, loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "False ['pathlib_core', 'pathlib_core._lazy', 'pathlib_core.evaluation']"
    )


@pytest.mark.parametrize("package", [pathlib_core, evaluation], ids=lambda p: p.__name__)
def test_every_exported_name_resolves_and_is_listed(package):
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert sorted(dir(package)) == sorted(package.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_a_renamed_export_is_the_original_object():
    from pathlib_core.evaluation.roar import roar

    assert evaluation.remove_and_retrain is roar
    assert pathlib_core.PathwayGradient.__module__ == "pathlib_core.attribution"
