"""Executes one notebook with papermill in its own process: `python -m pathbook.worker JOB.json`.

A process per notebook gives each kernel its own environment (the figure folder and provenance in
`PATHBOOK_CONTEXT`) and lets `pathbook build -j N` run notebooks side by side. The worker writes
the executed notebook to the job's temporary path and a result JSON; it never touches the book.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import papermill


def _locate_failure(source: Path, error: papermill.PapermillExecutionError) -> dict:
    """Where the failing cell is in the source notebook (papermill's index counts injected
    cells)."""
    cells = nbformat.read(source, as_version=4).cells
    index = next((i for i, c in enumerate(cells) if c.source == error.source), None)
    first_line = next((ln for ln in error.source.splitlines() if ln.strip()), "")
    return {
        "cell": None if index is None else index + 1,
        "first_line": first_line,
        "ename": error.ename,
        "evalue": error.evalue,
    }


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    source, output = Path(job["source"]), Path(job["output"])
    result: dict = {"ok": True}
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=job["parameters"],
            cwd=str(source.parent),
            kernel_name=job.get("kernel_name", "python3"),
            progress_bar=job.get("progress_bar", False),
            log_output=job.get("log_output", False),
            report_mode=False,
            execution_timeout=job.get("timeout"),
        )
    except papermill.PapermillExecutionError as error:
        result = {"ok": False, **_locate_failure(source, error)}
    except Exception as error:  # kernel died, notebook unreadable, ...: report, don't crash
        result = {
            "ok": False,
            "cell": None,
            "first_line": "",
            "ename": type(error).__name__,
            "evalue": str(error),
        }
    Path(job["result"]).write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
