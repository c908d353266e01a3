"""`--device` and `--devices` of `pathbook build`/`run`: the chapters' `device` parameter, its
place in the fingerprint and the stamp, the CUDA check before anything runs, and the device of
each worker slot. No kernel starts here (the `executed` fixture stands in for execution)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from pathbook.cli import main
from pathbook.devices import DeviceSlots, slot_devices

PARAMETERS = 'device = "cpu"\nn = 3'


@pytest.fixture
def root(make_project) -> Path:
    """Two chapters that declare `device`, with a full profile that sets n."""
    entries = {name: {"quick": {}, "full": {"n": 9}} for name in ("a", "b")}
    return make_project({"a": PARAMETERS, "b": PARAMETERS}, entries)


@pytest.fixture
def gpus(monkeypatch):
    """gpus(N): make torch see N CUDA devices (0: CUDA unavailable)."""

    def have(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return have


def stamp(root: Path, name: str) -> dict:
    return json.loads((root / ".pathbook" / "stamps" / f"{name}.json").read_text())


def test_device_reaches_the_parameters_the_fingerprint_and_the_stamp(root, cli, executed):
    assert cli(root, "build", "--device", "cpu", "--no-html") == 0
    assert {c["chapter"]: c["parameters"]["device"] for c in executed} == {"a": "cpu", "b": "cpu"}
    assert executed[0]["shown"] == {"device": "cpu", "n": 3}  # the header and figures show it
    record = stamp(root, "a")
    assert record["device"] == "cpu"
    assert record["components"]["parameters"] == {"device": "cpu"}


def test_run_takes_the_device_over_the_profile(root, cli, executed, tmp_path):
    out = tmp_path / "a.ipynb"
    assert cli(root, "run", "a", "--profile", "full", "--device", "cpu", "-o", str(out)) == 0
    assert executed[0]["parameters"] == {"n": 9, "device": "cpu"}


def test_changing_the_device_makes_a_built_chapter_stale(root, cli, executed, gpus, capsys):
    gpus(1)
    assert cli(root, "build", "--device", "cpu", "--no-html") == 0
    assert cli(root, "build", "--device", "cuda:0", "--no-html") == 0
    assert len(executed) == 4 and "parameters changed" in capsys.readouterr().err
    assert stamp(root, "a")["device"] == "cuda:0"
    assert stamp(root, "a")["components"]["parameters"] == {"device": "cuda"}  # any GPU


@pytest.mark.parametrize(
    "args, named",
    [
        (("build", "--device", "cuda", "--no-html"), "--device cuda:"),
        (("build", "--devices", "cuda:0,cuda:1", "--no-html"), "--devices cuda:0:"),
        (("run", "a", "--device", "cuda:1"), "--device cuda:1:"),
        (("run", "a", "-p", "device", "cuda"), "device cuda:"),
    ],
)
def test_cuda_without_cuda_stops_before_running(root, cli, executed, gpus, capsys, args, named):
    gpus(0)
    assert cli(root, *args) == 2
    err = capsys.readouterr().err
    assert named in err, "the message names the device"
    assert "torch.cuda.is_available() is False" in err and "Use --device cpu" in err
    assert executed == [] and not (root / ".pathbook").exists()


def test_a_gpu_index_the_machine_lacks_is_refused(root, cli, executed, gpus, capsys):
    gpus(1)
    assert cli(root, "build", "--device", "cuda:1", "--no-html") == 2
    assert "1 CUDA device(s), cuda:0 to cuda:0" in capsys.readouterr().err
    assert executed == []


def test_auto_becomes_the_device_that_runs(root, cli, executed, gpus):
    gpus(0)
    assert cli(root, "build", "--device", "auto", "--no-html", "--only", "a") == 0
    assert executed[0]["parameters"]["device"] == "cpu" and stamp(root, "a")["device"] == "cpu"


def test_a_chapter_without_a_device_parameter_fails_the_validation(make_project, cli, capsys):
    root = make_project({"old": "n = 3"}, {"old": {"quick": {}}})
    assert cli(root, "build", "--device", "cpu", "--no-html") == 2
    err = capsys.readouterr().err
    assert "notebook 'old' has no parameter 'device'" in err and "n (int, default 3)" in err


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--device", "cpu", "--devices", "cuda:0"), "not allowed with argument --device"),
        (("--devices", "cpu,cuda:0"), "CUDA devices with their index"),
        (("--devices", "cuda"), "CUDA devices with their index"),
        (("--device", "gpu"), "give cpu, cuda, cuda:N"),
    ],
)
def test_bad_device_options_are_refused(root, capsys, args, expected):
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(root), "build", *args])
    assert stop.value.code == 2 and expected in capsys.readouterr().err


def test_each_worker_slot_keeps_its_device_round_robin():
    assert slot_devices(["cuda:0", "cuda:1"], 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert slot_devices(["cuda:0", "cuda:1"], 1) == ["cuda:0"]
    slots = DeviceSlots(["cuda:0", "cuda:1"], 3)
    with slots.lease() as first, slots.lease() as second:
        assert (first, second) == ("cuda:0", "cuda:1")  # running together: different GPUs
        with slots.lease() as third:
            assert third == "cuda:0"  # the third slot wraps around
    with slots.lease() as again:
        assert again == "cuda:0"  # a free slot is reused with its device


def test_build_with_devices_runs_chapters_side_by_side_on_their_own_gpu(
    root, cli, executed, gpus, monkeypatch
):
    gpus(2)
    from pathbook import execute as module

    recorded = module.execute
    together = threading.Barrier(2, timeout=30)  # both chapters must run at once (-j 2 default)

    def side_by_side(*args, **options):
        together.wait()
        return recorded(*args, **options)

    monkeypatch.setattr(module, "execute", side_by_side)
    assert cli(root, "build", "--devices", "cuda:0,cuda:1", "--no-html") == 0
    assert sorted(c["parameters"]["device"] for c in executed) == ["cuda:0", "cuda:1"]
    ran = {c["chapter"]: c["parameters"]["device"] for c in executed}
    for name in ("a", "b"):
        assert stamp(root, name)["device"] == ran[name]
        assert stamp(root, name)["components"]["parameters"] == {"device": "cuda"}


def test_help_describes_the_device_options(capsys):
    for command in ("build", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--device D what the chapters compute on: cpu, cuda, cuda:N or auto" in text
        assert "(default: the profile's, else the notebook's)" in text
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--devices LIST one device per worker slot" in text and "round robin" in text
    assert "with --devices, one per device" in text
