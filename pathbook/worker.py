"""Executes one notebook with papermill in its own process: `python -m pathbook.worker JOB.json`.

A process per notebook gives each kernel its own environment (the figure folder and provenance in
`PATHBOOK_CONTEXT`) and lets `pathbook build -j N` run notebooks side by side. The worker writes
the executed notebook to the job's temporary path and a result JSON; it never touches the book.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO

import nbformat
import papermill
from papermill.engines import NBClientEngine, papermill_engines


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


MODULES_TAG = "pathbook-modules"


def with_module_record(source: Path, work: Path) -> tuple[Path, Path]:
    """A copy of `source` whose last cell writes which `pathlib_core` modules the kernel loaded
    (the chapter's library dependencies, see `fingerprint.module_sources`), and that record's
    path. The cell is removed from the executed notebook by `strip_module_record`."""
    record = work / "modules.json"
    nb = nbformat.read(source, as_version=4)
    cell = nbformat.v4.new_code_cell(
        "import json as _json, sys as _sys\n"
        f"with open({str(record)!r}, 'w') as _f:\n"
        "    _json.dump(sorted(m for m in _sys.modules if m.split('.')[0] == 'pathlib_core'), _f)"
    )
    cell.metadata["tags"] = [MODULES_TAG]
    nb.cells.append(cell)
    copy = work / "input.ipynb"
    nbformat.write(nb, copy)
    return copy, record


def strip_module_record(output: Path, record: Path) -> list[str] | None:
    nb = nbformat.read(output, as_version=4)
    nb.cells = [c for c in nb.cells if MODULES_TAG not in c.metadata.get("tags", [])]
    nbformat.write(nb, output)
    return json.loads(record.read_text()) if record.exists() else None


def _since(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"


class _Progress:
    """What a long run is doing, for a reader watching the terminal or the log.

    A line per code cell as it starts ("NAME: cell 7/13 (2 min in) `first line`") goes to both;
    the kernel's own output (its tqdm bars, prints, warnings) goes to the log, one line per bar
    update (the bars' carriage returns become line breaks), and to the terminal too when `echo`.
    While one cell runs longer than `heartbeat` seconds, a reminder line says so.
    """

    SKIPPED_TAGS = ("injected-parameters", MODULES_TAG)  # pathbook's and papermill's own cells

    def __init__(
        self, name: str, terminal: IO[str] | None, log: IO[str], echo: bool, heartbeat: float
    ):
        self.name, self.terminal, self.log, self.echo = name, terminal, log, echo
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.numbers: dict[int, int] = {}  # notebook cell index -> code cell number
        self.current: tuple[int, float] | None = None  # (number, started)
        self.last = ""  # the last line of kernel output
        if heartbeat > 0:
            threading.Thread(target=self._beat, args=(heartbeat,), daemon=True).start()

    def _say(self, line: str, terminal: bool) -> None:
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()
            if terminal and self.terminal is not None:
                self.terminal.write(line + "\n")
                self.terminal.flush()

    def count_cells(self, cells: list) -> None:
        for index, cell in enumerate(cells):
            tags = cell.metadata.get("tags", [])
            if cell.cell_type == "code" and not any(t in tags for t in self.SKIPPED_TAGS):
                self.numbers[index] = len(self.numbers) + 1

    def cell_started(self, cell: nbformat.NotebookNode, index: int | None) -> None:
        if index not in self.numbers:
            return
        now = time.monotonic()
        self.current = (self.numbers[index], now)
        first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
        first = first if len(first) <= 60 else first[:57] + "..."
        self._say(
            f"{self.name}: cell {self.numbers[index]}/{len(self.numbers)} "
            f"({_since(now - self.start)} in) `{first}`",
            terminal=True,
        )

    def kernel_output(self, text: str) -> None:
        for piece in re.split(r"[\r\n]", text):
            line = f"  {piece.rstrip()}"
            if piece.strip() and line != self.last:  # a closing bar redraws its last state
                self.last = line
                self._say(line, terminal=self.echo)

    def _beat(self, every: float) -> None:
        while True:
            time.sleep(every)
            if self.current is not None and time.monotonic() - self.current[1] >= every:
                number, started = self.current
                self._say(
                    f"{self.name}: still in cell {number}/{len(self.numbers)} "
                    f"({_since(time.monotonic() - started)} in this cell, "
                    f"{_since(time.monotonic() - self.start)} in all)",
                    terminal=True,
                )


class _KernelStream:
    """papermill's `stdout_file`/`stderr_file`: hands each chunk of kernel output on."""

    def __init__(self, progress: _Progress):
        self.progress = progress

    def write(self, text: str) -> None:
        self.progress.kernel_output(text)

    def flush(self) -> None:
        pass


def _engine(progress: _Progress) -> str:
    """Register papermill's nbclient engine with a hook at each cell's start; returns its name."""

    class ReportingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            progress.count_cells(nb_man.nb.cells)
            started = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                progress.cell_started(cell, cell_index)
                return started(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("pathbook", ReportingEngine)
    return "pathbook"


def kernel_peak_memory() -> int | None:
    """The largest resident set, in bytes, of the processes this worker started and waited for:
    the kernel (papermill waits for it at shutdown) and whatever it started and waited for."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024) or None  # Linux: KiB


def main(job_path: str, terminal: IO[str] | None = None) -> int:
    job = json.loads(Path(job_path).read_text())
    progress = _Progress(
        job.get("name", Path(job["source"]).stem),
        terminal,
        sys.stderr,
        echo=job.get("echo", False),
        heartbeat=job.get("heartbeat", 300),
    )
    stream = _KernelStream(progress)
    source, output = Path(job["source"]), Path(job["output"])
    result: dict = {"ok": True}
    try:
        notebook, record = with_module_record(source, output.parent)
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=job["parameters"],
            cwd=str(source.parent),
            kernel_name=job.get("kernel_name", "python3"),
            engine_name=_engine(progress),
            progress_bar=False,  # one line per cell instead, from the engine's hook
            stdout_file=stream,
            stderr_file=stream,
            report_mode=False,
            execution_timeout=job.get("timeout"),
        )
        result["modules"] = strip_module_record(output, record)
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
    result["peak_memory"] = kernel_peak_memory()
    Path(job["result"]).write_text(json.dumps(result))
    return 0 if result["ok"] else 1


def _children() -> list[int]:
    """This process's children (Linux: from /proc; elsewhere none are found)."""
    mine, found = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == mine:
            found.append(int(entry.name))
    return found


def _stop(signum: int, _frame: object) -> None:
    """Stop the kernel with this worker. jupyter_client starts it in a session of its own, so a
    signal to pathbook or to this worker does not reach it, and a kernel left behind would
    compute on for hours; its whole process group is ended."""
    for pid in _children():
        with contextlib.suppress(OSError):  # it ended meanwhile
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
    os._exit(128 + signum)


def stop_with_parent(parent: int) -> None:
    """End this worker and its kernel on SIGTERM or SIGINT, and (Linux) when `parent`, the
    pathbook process, dies, however it dies."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # no prctl: rely on the signals
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        _stop(signal.SIGTERM, None)


if __name__ == "__main__":
    stop_with_parent(int(os.environ.get("PATHBOOK_PARENT", os.getppid())))
    # stdout is the pipe to pathbook's terminal: keep it for the progress lines, and send every
    # other output of this process and of the kernel it starts (fd 1 and 2) to the log (stderr)
    _terminal = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.exit(main(sys.argv[1], _terminal))
