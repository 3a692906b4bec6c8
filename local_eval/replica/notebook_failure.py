"""Turn a failed notebook execution into the one paragraph a researcher needs.

Papermill's own error is a coloured IPython traceback in which cells are named by
execution count, and the interesting frame is usually not the cell that failed:
the driver cell calls ``unlearning()``, which is defined in another cell. The
report names the innermost notebook frame (cell, tag, line and its source), where
the error surfaced, the exception, and where the executed notebook lies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nbformat import NotebookNode

if TYPE_CHECKING:
    from papermill.exceptions import PapermillExecutionError

# Cells papermill adds to the executed notebook; skipping them gives the built notebook's indices.
PAPERMILL_TAGS = frozenset({"injected-parameters", "papermill-error-cell-tag"})

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"Cell In\s*\[(\d+)\], line (\d+)(?:, in ([\w.<>]+))?")
_FILE_FRAME = re.compile(r"File (\S+?):(\d+), in ([\w.<>]+)")
_ARROW_LINE = re.compile(r"^-+> ?\s*(\d+)\s?(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class CellPlace:
    """A line in a cell of the built notebook, described the way a reader finds it."""

    index: int  # 0-based index in the built notebook (papermill's own cells not counted)
    execution_count: int | None
    tag: str | None
    first_line: str
    line_no: int | None = None
    line: str | None = None
    function: str | None = None

    def describe(self) -> str:
        name = (
            f"the cell tagged {self.tag!r}"
            if self.tag
            else f"the cell starting `{self.first_line}`"
        )
        where = f"cell {self.index}" + (
            f", In [{self.execution_count}]" if self.execution_count else ""
        )
        if self.line_no is None:
            return f"{name} ({where})"
        text = f"line {self.line_no} of {name} ({where})"
        if self.function and self.function != "<module>":
            text = f"{self.function}() at {text}"
        return text + (f": `{self.line}`" if self.line else "")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def source_cells(nb: NotebookNode) -> list[NotebookNode]:
    """The executed notebook's cells minus papermill's, i.e. in the built notebook's order."""
    return [
        cell
        for cell in nb.cells
        if not PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags", []))
    ]


def describe_failure(
    error: BaseException,
    executed: NotebookNode | None,
    *,
    notebook_path: Path,
    executed_path: Path | None,
    html_path: Path | None = None,
    timeout: int | None = None,
) -> str:
    """One paragraph: what went wrong, in which cell and line, and where to read the rest."""
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    head = f"Dry-run of {notebook_path} failed"
    if isinstance(error, PapermillExecutionError):  # a cell raised
        body = _describe_cell_error(error, executed, timeout)
    elif isinstance(error, TimeoutError):
        body = _describe_stall(
            executed,
            f"execution timed out after {timeout} s" if timeout else "execution timed out",
            "raise the timeout or make the method cheaper on the mock input.",
        )
    elif isinstance(error, DeadKernelError):
        body = _describe_stall(
            executed,
            "the Python kernel died (most often the machine ran out of memory)",
            "lower BATCH_SIZE or the method's memory use and retry.",
        )
    else:
        body = (
            f"before or while running the notebook: {type(error).__name__}: {_one_line(str(error))}"
        )
    tail = ""
    if executed_path is not None and executed_path.exists():
        tail = f" The executed notebook with the full output is at {executed_path}"
        tail += f" (HTML: {html_path})." if html_path is not None and html_path.exists() else "."
    return f"{head}: {body}{tail}"


def _describe_cell_error(
    error: PapermillExecutionError, executed: NotebookNode | None, timeout: int | None
) -> str:
    ename, evalue = error.ename, _one_line(strip_ansi(str(error.evalue or "")))
    exception = f"{ename}: {evalue}" if evalue else ename
    verb = "raised"
    if ename == "KeyboardInterrupt" and timeout:
        # The dry-run interrupts a cell that outlives the timeout, so the traceback shows where it hung.
        exception, verb = f"execution timed out after {timeout} s", "interrupted"
    traceback = [strip_ansi(entry) for entry in (error.traceback or [])]
    frames = _cell_frames(traceback, executed)
    surfaced = _place_of_count(executed, error.exec_count) if executed is not None else None
    if not frames:
        where = (
            f" in {surfaced.describe()}" if surfaced else f" in the cell In [{error.exec_count}]"
        )
        return f"{exception}{where}."
    innermost = frames[-1]
    text = f"{exception}, {verb} in {innermost.describe()}"
    library = _library_frame_after(traceback, innermost)
    if library:
        text += f" (inside {library})"
    if len(frames) > 1 and frames[0].index != innermost.index:
        text += f", called from {frames[0].describe()}"
    return text + "."


def _describe_stall(executed: NotebookNode | None, what: str, advice: str) -> str:
    running = _running_cell(executed) if executed is not None else None
    where = f" in {running.describe()}" if running else ""
    return f"{what}{where}; {advice}"


def _cell_frames(traceback: list[str], executed: NotebookNode | None) -> list[CellPlace]:
    """Notebook frames, outermost first, resolved to the cells and lines they point at."""
    frames: list[CellPlace] = []
    for entry in traceback:
        match = _CELL_FRAME.search(entry)
        if not match:
            continue
        count, line_no, function = int(match.group(1)), int(match.group(2)), match.group(3)
        place = _place_of_count(executed, count) if executed is not None else None
        line = _source_line(executed, count, line_no) or _arrow_line(entry, line_no)
        if place is None:
            place = CellPlace(index=-1, execution_count=count, tag=None, first_line="?")
        frames.append(
            replace(place, execution_count=count, line_no=line_no, line=line, function=function)
        )
    return frames


def _library_frame_after(traceback: list[str], innermost: CellPlace) -> str | None:
    """The deepest non-notebook frame, when the error came from inside a library call."""
    last_cell = max(
        (i for i, entry in enumerate(traceback) if _CELL_FRAME.search(entry)), default=None
    )
    if last_cell is None:
        return None
    for entry in reversed(traceback[last_cell + 1 :]):
        match = _FILE_FRAME.search(entry)
        if match:
            return f"{match.group(3)}() at {Path(match.group(1)).name}:{match.group(2)}"
    return None


def _place_of_count(executed: NotebookNode, count: int | None) -> CellPlace | None:
    for index, cell in enumerate(source_cells(executed)):
        if cell.cell_type == "code" and count is not None and cell.get("execution_count") == count:
            return _place(index, cell)
    return None


def _running_cell(executed: NotebookNode) -> CellPlace | None:
    """The last cell papermill started: the one that stalled (timeouts, dead kernels).

    Papermill marks even an interrupted cell "completed", so its start time is the only trace.
    """
    started = None
    for index, cell in enumerate(source_cells(executed)):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            started = _place(index, cell)
    return started


def _place(index: int, cell: NotebookNode) -> CellPlace:
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t not in PAPERMILL_TAGS]
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return CellPlace(
        index=index,
        execution_count=cell.get("execution_count"),
        tag=tags[0] if tags else None,
        first_line=_shorten(first),
    )


def _source_line(executed: NotebookNode | None, count: int, line_no: int) -> str | None:
    if executed is None:
        return None
    for cell in executed.cells:
        if cell.cell_type == "code" and cell.get("execution_count") == count:
            lines = cell.source.splitlines()
            if 1 <= line_no <= len(lines):
                return _shorten(lines[line_no - 1].strip())
    return None


def _arrow_line(entry: str, line_no: int) -> str | None:
    """The ``----> N code`` line IPython prints, for frames whose cell is not in the notebook."""
    for match in _ARROW_LINE.finditer(entry):
        if int(match.group(1)) == line_no:
            return _shorten(match.group(2).strip())
    return None


def _one_line(text: str) -> str:
    return _shorten(" ".join(text.split()), limit=300)


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
