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


def test_the_injected_cell_says_it_holds_the_values_the_page_ran_with():
    from pathbook.prose import INJECTED_FIRST_LINE, present_parameters

    defaults = nbformat.v4.new_code_cell(
        "# Parameters (the `quick` profile)\n"
        "n = 3  # digits drawn\n"
        "ks = [\n    1,\n    2,\n]  # steps, over lines\n"
        'name = "a#b"  # a string holding a hash\n'
        "bare = 1\n"
    )
    defaults.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(
        '# Parameters\nn = 10\nks = [4, 5]\nname = "c"\nbare = 2\n'
    )
    injected.metadata["tags"] = ["injected-parameters"]
    nb = nbformat.v4.new_notebook(cells=[defaults, injected])
    present_parameters(nb)
    assert injected.source.splitlines() == [
        INJECTED_FIRST_LINE,
        "n = 10  # digits drawn",
        "ks = [4, 5]  # steps, over lines",
        'name = "c"  # a string holding a hash',
        "bare = 2",
    ]
    once = injected.source
    present_parameters(nb)
    assert injected.source == once and defaults.source.startswith("# Parameters (the `quick`")
    # the defaults (another profile's values) are folded, once; the values that ran stay open
    assert defaults.metadata["tags"] == ["parameters", "hide-input"]
    assert injected.metadata["tags"] == ["injected-parameters"]
    alone = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    present_parameters(alone)  # nothing injected: nothing to say
    assert alone.cells[0].source == "x = 1"
    quick = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("n = 3")])
    quick.cells[0].metadata["tags"] = ["parameters"]
    present_parameters(quick)  # the defaults ran: they stay open
    assert quick.cells[0].metadata["tags"] == ["parameters"]
