"""Progress you can see: a line per cell on the terminal, the kernel's bars in the chapter's log,
none of it on the published page, and each stale chapter's last run time as its estimate."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from pathbook.cli import main

CELLS = [
    "import sys, time, warnings\nfrom tqdm import tqdm",
    'for _ in tqdm(range(3), desc="tiny bar"):\n    time.sleep(0.01)',
    'print("a printed result")\nwarnings.warn("a warning for the log")',
]


def write_chapter(path: Path) -> None:
    params = nbformat.v4.new_code_cell("n = 3")
    params.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell("# A chapter"), params]
    cells += [nbformat.v4.new_code_cell(code) for code in CELLS]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel}), path)


def pathbook(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """Two chapters built side by side (-j 2); returns the root and what the terminal showed."""
    root = tmp_path_factory.mktemp("progress")
    (root / "notebooks").mkdir()
    (root / "pathlib_core").mkdir()
    (root / "pathlib_core" / "core.py").write_text("VALUE = 1\n")
    for name in ("a", "b"):
        write_chapter(root / "notebooks" / f"{name}.ipynb")
    spec = {"notebooks": {"a": {"quick": {}, "full": {}}, "b": {"quick": {}, "full": {}}}}
    (root / "notebooks" / "profiles.yml").write_text(yaml.safe_dump(spec))
    with pytest.MonkeyPatch.context() as mp:
        terminal = io.StringIO()
        mp.setattr(sys, "stderr", terminal)
        code = pathbook(root, "build", "--no-html", "-j", "2")
        assert code == 0, terminal.getvalue()[-4000:]  # what went wrong, if anything
    return root, terminal.getvalue()


def log_of(root: Path, name: str) -> str:
    return (root / ".pathbook" / "logs" / f"{name}.log").read_text()


def test_terminal_shows_each_cell_of_both_chapters_but_not_their_bars_with_two_jobs(built):
    _, terminal = built
    for name in ("a", "b"):
        for number in (1, 2, 3, 4):  # the parameters cell counts; markdown does not
            assert f"{name}: cell {number}/4 (" in terminal
    assert "a: cell 3/4 (" in terminal and "`for _ in tqdm(range(3)" in terminal
    assert "tiny bar: " not in terminal, "with -j 2 the bars go to the logs only"
    assert ".pathbook/logs/NAME.log" in terminal, "the build says where the logs are"


def test_log_has_the_cells_the_bar_as_plain_lines_and_the_kernel_output(built):
    root, _ = built
    log = log_of(root, "a")
    assert "\r" not in log
    bar_lines = [line for line in log.splitlines() if "tiny bar: " in line]
    assert bar_lines and "3/3" in bar_lines[-1], log
    assert "a printed result" in log and "a warning for the log" in log
    assert log.index("a: cell 3/4") < log.index("tiny bar: ") < log.index("a: cell 4/4")


def test_published_page_has_no_stderr_but_keeps_printed_results(built):
    root, _ = built
    nb = nbformat.read(root / "book" / "generated" / "a.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    assert any("a printed result" in o.get("text", "") for o in outputs)


def test_one_job_streams_the_bars_and_a_stale_chapter_shows_its_last_run(built, capsys):
    root, _ = built
    seconds = json.loads((root / ".pathbook" / "stamps" / "a.json").read_text())["seconds"]
    assert pathbook(root, "build", "--no-html", "--only", "a", "--force", "-j", "1") == 0
    terminal = capsys.readouterr().err
    assert f"a: --force; last run {seconds:.0f} s" in terminal
    assert "a: cell 3/4 (" in terminal
    assert "  tiny bar: " in terminal, "with -j 1 the chapter's bars reach the terminal"
    assert "tiny bar: " in log_of(root, "a"), "the log is rewritten by each run"
    assert pathbook(root, "status") == 0
    assert "last run" not in capsys.readouterr().out, "no estimate for an up-to-date chapter"


# ------------------------------------------------ the library's one `progress` convention


LONG_FUNCTIONS = [
    "pathlib_core.evaluation.sanity:cascading_randomisation",
    "pathlib_core.evaluation.sanity:data_randomisation",
    "pathlib_core.evaluation.roar:roar",
    "pathlib_core.evaluation.roar:cached_attributions",
    "pathlib_core.evaluation.perturbation:pixel_perturbation",
    "pathlib_core.evaluation.sensitivity:sensitivity_n",
    "pathlib_core.evaluation.sensitivity:patch_sensitivity",
    "pathlib_core.evaluation.method_maps:method_maps",
    "pathlib_core.evaluation.method_maps:timed_method_maps",
    "pathlib_core.evaluation.method_maps:cached_method_maps",
    "pathlib_core.linearity:linear_radius",
    "pathlib_core.linearity:linearity_profile",
    "pathlib_core.pruning:learned_gates",
    "pathlib_core.pruning:greedy_pathways",
    "pathlib_core.pruning:decode_pathway",
    "pathlib_core.resumable:learned_gates_in_chunks",
    "pathlib_core.kinds:KindBuilder",
    "pathlib_core.kinds:decode_kinds",
    "pathlib_core.transfer.training:train_generator",
    "pathlib_core.models:train_mnist_cnn",
]


@pytest.mark.parametrize("where", LONG_FUNCTIONS)
def test_every_long_function_draws_its_bar_by_default(where):
    import importlib
    import inspect

    module, name = where.split(":")
    function = getattr(importlib.import_module(module), name)
    parameter = inspect.signature(function).parameters.get("progress")
    assert parameter is not None, f"{where} has no progress keyword"
    assert parameter.default is True and parameter.annotation in (bool, "bool")


def test_a_bar_changes_no_number(capsys):
    import torch

    from pathlib_core import linearity, neuron_contributions, select_pathway

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    ).eval()
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    model.double()
    pathway = select_pathway(neuron_contributions(model, x), 0.5)
    drawn = linearity.linearity_profile(model, x, pathway, radii=[0.1, 1.0], batch_size=8)
    assert "linearity profile" in capsys.readouterr().err, "on by default, on stderr"
    quiet = linearity.linearity_profile(
        model, x, pathway, radii=[0.1, 1.0], batch_size=8, progress=False
    )
    assert capsys.readouterr().err == ""
    assert torch.equal(drawn.relative_error, quiet.relative_error)
    assert torch.equal(drawn.flipped, quiet.flipped)
