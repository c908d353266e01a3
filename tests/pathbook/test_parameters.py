"""Parameter checks against a notebook's `parameters` cell (no execution)."""

import nbformat
import pytest

from pathbook.parameters import parse_cli_value, validate
from pathbook.project import PathbookError


def make(tmp_path, source, kernel=True):
    cells = [nbformat.v4.new_markdown_cell("# T")]
    if source is not None:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    path = tmp_path / "t.ipynb"
    metadata = (
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        if kernel
        else {}
    )
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=metadata), path)
    return path


def test_types_come_from_annotations_or_default_literals(tmp_path):
    path = make(
        tmp_path, 'sparsity = 0.9\nsteps: int = 10\nname = "x"\nflag = False\nanything = None'
    )
    validate("t", path, {"sparsity": 1, "steps": 3, "name": "y", "flag": True, "anything": [1]})
    for bad in ({"sparsity": "high"}, {"steps": 2.5}, {"steps": True}, {"flag": 1}, {"name": 3}):
        with pytest.raises(PathbookError, match="expects"):
            validate("t", path, bad)


def test_notebook_without_parameters_cell(tmp_path):
    with pytest.raises(PathbookError, match="no cell tagged 'parameters'"):
        validate("t", make(tmp_path, None), {})
    with pytest.raises(PathbookError, match="kernelspec"):
        validate("t", make(tmp_path, "x = 1", kernel=False), {})


def test_cli_values_are_yaml():
    assert parse_cli_value("8") == 8 and parse_cli_value("0.5") == 0.5
    assert parse_cli_value("[1, 2]") == [1, 2] and parse_cli_value("true") is True
    assert parse_cli_value("chelsea") == "chelsea"
    assert parse_cli_value("1e-3") == 0.001 and parse_cli_value("2.5E4") == 25000.0


def test_validate_returns_all_values_with_defaults(tmp_path):
    path = make(tmp_path, 'sparsity = 0.9\nsteps = 10\nnames = ["a", "b"]')
    assert validate("t", path, {"steps": 3}) == {"sparsity": 0.9, "steps": 3, "names": ["a", "b"]}
