"""Where cached artefacts live, how they are keyed, and how they reach disk.

Mock inputs and reference models take minutes to build, so they are cached under
a key derived from the options that produced them. Every write goes through a
temporary sibling and a rename, so an interrupted run never leaves a file (or a
folder) that a later run would mistake for a finished one.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from local_eval.errors import EvalError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CACHE_ENV = "UNLEARNKIT_CACHE"


def repo_root() -> Path:
    """The checkout this package was imported from: caches and outputs hang off it."""
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """The repository's ``.cache/``, or ``$UNLEARNKIT_CACHE`` so tests and CI stay hermetic."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else repo_root() / ".cache"


def options_key(options: dict[str, Any], length: int = 16) -> str:
    """A short, stable name for a set of options.

    Keys are sorted so that the order in which callers build the dict does not
    change the key; non-JSON values (paths, tuples) are stringified the same way
    every time.
    """
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


@contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    """A temp file next to ``path`` that replaces it on success and vanishes on failure.

    The sibling lives in the same folder so that the final ``os.replace`` is a
    rename within one filesystem, which is atomic.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise EvalError(write_failure(path, error)) from error
    os.close(handle)
    tmp = Path(name)
    try:
        tmp.chmod(_umasked(0o666))
        yield tmp
        os.replace(tmp, path)
    except OSError as error:  # a full disk or a folder made read-only under us
        tmp.unlink(missing_ok=True)
        raise EvalError(write_failure(path, error)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_failure(path: Path, error: OSError) -> str:
    """One line saying why ``path`` could not be written and what to do about it."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some disk space and run again"
    else:
        advice = "make the folder writable and run again"
    if Path(path).resolve().is_relative_to(cache_dir().resolve()):
        advice += f" (or point {CACHE_ENV} at another folder)"
    return f"cannot write {path} ({reason}): {advice}; nothing half-written was left behind."


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` so that readers see either the old file or the whole new one."""
    with _temporary_sibling(Path(path)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: Path | str, obj: Any, indent: int = 2) -> Path:
    """JSON with sorted keys and a trailing newline, so reruns produce identical files."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    return atomic_write_text(path, text)


def atomic_write_figure(figure: Figure, path: Path | str, dpi: int) -> Path:
    """A matplotlib figure as PNG, drawn in memory first: a failed draw leaves no file behind."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_torch_save(obj: Any, path: Path | str) -> Path:
    """``torch.save`` through a temp file: a killed run must not leave a truncated checkpoint."""
    with _temporary_sibling(Path(path)) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def stored_if_matches(path: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object at ``path`` when every field of ``stamp`` has the same value there, else None.

    The reuse rule, in one place so that every reuse on disk follows it: a stored
    result counts only while it carries exactly the stamp a fresh run would (what
    goes into the stamp is the scorer's to say, ``scoring.results``). The stamp is
    compared as it reads back from JSON, where tuples are lists.
    """
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    wanted = json.loads(json.dumps(stamp))
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in wanted.items()):
        return None
    return stored


def read_saved_state(path: Path | str) -> dict[str, Any] | None:
    """A dict ``atomic_torch_save`` wrote, or None where there is none to trust: missing,
    cut short by a crash outside the atomic rename, or not a dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, AttributeError, pickle.UnpicklingError):
        return None
    return state if isinstance(state, dict) else None


@contextmanager
def atomic_directory(path: Path | str) -> Iterator[Path]:
    """Build a folder in a temp sibling and move it to ``path`` only when the block succeeds.

    An existing ``path`` is replaced (moved aside, then deleted) after the new
    folder is complete, so a failed rebuild keeps the previous version intact.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as error:
        raise EvalError(write_failure(path, error)) from error
    try:
        tmp.chmod(_umasked(0o777))
        yield tmp
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EvalError(write_failure(path, error)) from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_directory(tmp, path)


def _umasked(mode: int) -> int:
    """The permissions a plain ``open()``/``mkdir()`` would give: mkstemp/mkdtemp use owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _replace_directory(new: Path, path: Path) -> None:
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
    try:
        os.replace(new, path)
    except OSError:
        # Another process finished the same folder in between: keep theirs.
        shutil.rmtree(new, ignore_errors=True)
        if not path.exists():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
