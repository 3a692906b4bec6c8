"""Simulated disk faults: a folder that refuses writes and a disk that fills up mid-write.

Both are simulated rather than real (chmod does not stop root, and filling a disk is
not something a test may do), at the system calls every writer goes through.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def refuse_under(folder: Path, monkeypatch) -> None:
    """Creating files or folders under ``folder`` fails as on a read-only mount."""
    for name in ("open", "mkdir"):
        real = getattr(os, name)

        def refusing(path, *args, _real=real, **kwargs):
            if str(path).startswith(str(folder)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, refusing)


def disk_full_after(written: bytes = b"half a file"):
    """A stand-in for a write that puts ``written`` on disk, then finds it full."""

    def write(*args, **kwargs):
        paths = [a for a in args if isinstance(a, (str, Path))]
        path = paths[-1] if paths else None  # the destination: torch.save(obj, f), copyfile(src, dst)
        if path is not None:
            Path(path).write_bytes(written)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def leftovers(folder: Path) -> list[str]:
    """Temporary siblings a failed write could have left behind."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".tmp", ".old")) or ".tmp" in p.name
    )
