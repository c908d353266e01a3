"""Number formatting and small sentence pieces shared by the chapters' tables and verdicts."""

from __future__ import annotations

from collections.abc import Sequence


def pct(fraction: float, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: ``pct(0.1234) == "12.3%"``."""
    return f"{100 * float(fraction):.{digits}f}%"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (GitHub/MyST syntax) from a header and rows; cells are ``str()``-ed."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError("every row must have as many cells as the header.")
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
