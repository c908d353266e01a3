"""A build that is killed leaves nothing computing: each worker ends its kernel, which runs in a
session of its own and would otherwise compute on for hours."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal and /proc are Linux's"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie computes nothing; its reaping is up to the system


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_killing_a_build_ends_its_kernel(tmp_path, how):
    root, pid_file = tmp_path / "project", tmp_path / "kernel.pid"
    (root / "notebooks").mkdir(parents=True)
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    long = nbformat.v4.new_code_cell(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    )
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = nbformat.v4.new_notebook(cells=[params, long], metadata={"kernelspec": kernel})
    nbformat.write(nb, root / "notebooks" / "slow.ipynb")
    spec = {"notebooks": {"slow": {"quick": {}, "full": {}}}}
    (root / "notebooks" / "profiles.yml").write_text(yaml.safe_dump(spec))
    build = subprocess.Popen(
        [sys.executable, "-m", "pathbook", "--root", str(root), "build", "--no-html"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 120), "no kernel"
        kernel_pid = int(pid_file.read_text())
        assert _alive(kernel_pid)
        build.send_signal(how)
        build.wait(timeout=30)
        assert _wait_for(lambda: not _alive(kernel_pid), 30), "the kernel outlived its build"
    finally:
        build.kill()
        if pid_file.is_file() and pid_file.read_text():
            with contextlib.suppress(OSError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
