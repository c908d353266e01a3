"""The shared formatting of the chapters' tables and sentences."""

import pytest

from pathlib_core.report.text import markdown_table, pct


def test_pct_formats_a_fraction_as_a_percentage():
    assert pct(0.1234) == "12.3%"
    assert pct(1) == "100.0%"
    assert pct(0.5, digits=0) == "50%"


def test_markdown_table_lines_and_ragged_rows():
    table = markdown_table(["method", "AUC"], [["Gradient", 0.856], ["Random", ".838"]])
    assert table.splitlines() == [
        "| method | AUC |",
        "|---|---|",
        "| Gradient | 0.856 |",
        "| Random | .838 |",
    ]
    with pytest.raises(ValueError, match="as many cells"):
        markdown_table(["a", "b"], [[1]])
