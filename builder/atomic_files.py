"""Writes that are all-or-nothing.

A half-written ``kernel-metadata.json`` or a kernel folder missing its notebook
would be pushed as is by ``kaggle kernels push``; writing to a temporary name
and renaming means a reader sees the old version or the new one, never a mix.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import BuildError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _usual_mode(path: str | Path, directory: bool = False) -> None:
    """Temporary files are private (0600/0700); the result should look like any other file."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_failure(path: Path, error: OSError) -> BuildError:
    """One line naming the file, the reason and the fix; the caller has removed its temp file."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some disk space and run again"
    else:
        advice = f"make {path.parent} writable (or run from a checkout you can write to)"
    return BuildError(f"cannot write {path} ({reason}): {advice}; nothing half-written was left behind.")


@contextmanager
def _reported(path: Path) -> Iterator[None]:
    """Disk-full and permission errors as a ``BuildError`` the command line prints in one line."""
    try:
        yield
    except OSError as error:
        raise write_failure(path, error) from error


def write_text_atomic(path: Path, text: str) -> None:
    with _reported(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            _usual_mode(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_json_atomic(path: Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def copy_file_atomic(source: Path, dest: Path) -> None:
    with _reported(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            _usual_mode(tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def replaced_directory(final: Path) -> Iterator[Path]:
    """A fresh staging folder that replaces ``final`` only if the block succeeds.

    On error the staging folder is removed and ``final`` keeps its old content.
    """
    with _reported(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        _usual_mode(staging, directory=True)
    try:
        with _reported(final):
            yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = None
    try:
        with _reported(final):
            if final.exists():
                retired = Path(
                    tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent)
                )
                os.replace(final, retired / final.name)
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None:
            if not final.exists():
                os.replace(retired / final.name, final)  # put the previous version back
            shutil.rmtree(retired, ignore_errors=True)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def remove_directory(path: Path) -> None:
    """Move ``path`` out of the way in one rename, then delete it."""
    if not path.exists():
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, retired / path.name)
    shutil.rmtree(retired, ignore_errors=True)
