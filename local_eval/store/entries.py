"""Trustworthy cache entries: verified on load, set aside when broken, built by one process.

A cached model is two files: its weights and a JSON record of its measurements.
Scoring reads only the record, so a truncated weights file would otherwise go
unnoticed until something loads it. The record therefore carries the sha256 of the
weights, and an entry counts as present only when the record parses, has its keys,
and the weights hash to that value. A broken entry is reported in one line, moved
aside as ``<name>.corrupt-<timestamp>`` (kept for inspection, never deleted) and
rebuilt. Records written before the hash existed are checked (the weights must
load) and given their hash instead of being rebuilt.

Two processes scoring on one cache (two terminals, Ray workers) must not build the
same entry twice: building, stamping and setting aside happen under an exclusive
``flock`` on a per-entry lock file. The kernel drops the lock when its holder dies,
so a killed build never leaves a stale claim; the holder's pid is written into the
lock file for the message shown while waiting. With an executor the models train
elsewhere (workers without the cache's disk) and the driver writes them, so the
driver claims every missing entry (takes its lock, in one fixed order, so two
drivers cannot deadlock) before dispatching and releases each once written
(:func:`claim_missing`, :func:`finish_entry`): another driver waits for the claim
and then finds the entry ready instead of training it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from local_eval.errors import EvalError
from local_eval.store.files import atomic_write_json, write_failure

HASH_KEY = "weights_sha256"

# (path, size, mtime_ns) -> sha256: a leaderboard loads the same references many times.
_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered while its size and modification time stay the same."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hashes:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def report(message: str) -> None:
    """One line on stderr: the run goes on, but the user should know what was repaired."""
    print(f"cache: {message}", file=sys.stderr, flush=True)


def set_aside(path: Path, why: str) -> Path | None:
    """Move a broken file to ``<name>.corrupt-<timestamp>`` and say so in one line."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        os.replace(path, target)
    except OSError as error:
        raise EvalError(unwritable_message(path.parent, error)) from error
    report(f"{path} is {why}; moved to {target.name} and rebuilding it.")
    return target


def unwritable_message(folder: Path, error: OSError) -> str:
    """What to do when the cache cannot be written, in one line."""
    return write_failure(Path(error.filename) if error.filename else folder, error)


def cache_folder(directory: Path) -> Path:
    """``directory``, created if needed; a folder that cannot be created is one clear line."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvalError(unwritable_message(directory, error)) from error
    return directory


def _read_record(record: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed record, or why it cannot be used."""
    try:
        text = record.read_text(encoding="utf-8")
    except OSError as error:
        return None, f"unreadable ({error.strerror or type(error).__name__})"
    except UnicodeDecodeError:
        return None, "not text (corrupt)"
    try:
        stored = json.loads(text)
    except ValueError as error:
        return None, f"not valid JSON (truncated or corrupt: {error.msg} at line {error.lineno})"
    if not isinstance(stored, dict):
        return None, "not a JSON object (corrupt)"
    return stored, None


def _weights_problem(weights: Path) -> str | None:
    """Why the weights cannot be used, or None when they load as a state dict."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except OSError as error:
        return f"unreadable ({error.strerror or type(error).__name__})"
    except Exception as error:  # torch raises RuntimeError, pickle and zip errors alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"not a loadable checkpoint (truncated or corrupt: {first[:120]})"
    if not isinstance(state, dict):
        return f"not a state dict but a {type(state).__name__} (corrupt)"
    return None


def _verdict(
    record: Path, weights: Path, required: Iterable[str]
) -> tuple[dict[str, Any] | None, list[tuple[Path, str]], bool]:
    """(usable record, files to set aside with why, record needs its hash added)."""
    if not record.exists():
        if weights.exists():
            problem = _weights_problem(weights)
            return None, [(weights, problem)] if problem else [], False
        return None, [], False
    stored, problem = _read_record(record)
    if stored is None:
        return None, [(record, problem)], False
    missing = [key for key in required if key not in stored]
    if missing:
        return None, [(record, f"missing {', '.join(missing)} (corrupt)")], False
    if not weights.is_file():
        return None, [(record, f"without its weights {weights.name}")], False
    expected = stored.get(HASH_KEY)
    if expected is None:  # written before records carried a hash
        problem = _weights_problem(weights)
        if problem:
            return None, [(weights, problem), (record, f"the record of {weights.name}")], False
        return stored, [], True
    try:
        actual = file_sha256(weights)
    except OSError as error:
        return None, [(weights, f"unreadable ({error.strerror})"), (record, f"the record of {weights.name}")], False
    if actual != expected:
        why = f"not the file its record describes (sha256 {actual[:12]}, recorded {expected[:12]}: truncated or changed)"
        return None, [(weights, why), (record, f"the record of {weights.name}")], False
    return stored, [], False


def verified_record(record: Path, weights: Path, required: Iterable[str]) -> dict[str, Any] | None:
    """The record when the entry is complete and its weights match; never writes anything."""
    stored, _, needs_hash = _verdict(record, weights, tuple(required))
    return stored if stored is not None and not needs_hash else None


def lock_path(record: Path) -> Path:
    return record.with_name(f".{record.stem}.lock")


@contextmanager
def entry_lock(record: Path) -> Iterator[None]:
    """Hold the entry's exclusive lock; another process waits (and is told whom for)."""
    path = lock_path(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise EvalError(unwritable_message(path.parent, error)) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            report(f"waiting for {holder}, which is building {record.stem} in {record.parent}.")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _repair(record: Path, weights: Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """Under the lock: set broken files aside, add a missing hash; the usable record or None."""
    stored, broken, needs_hash = _verdict(record, weights, required)
    for path, why in broken:
        set_aside(path, why)
    if stored is not None and needs_hash:
        stored = {**stored, HASH_KEY: file_sha256(weights)}
        atomic_write_json(record, stored)
    return stored


def claim_missing(
    entries: Iterable[tuple[Hashable, Path, Path]],
    required: Iterable[str],
    stack: ExitStack,
    also: Callable[[Hashable], bool] | None = None,
) -> dict[Hashable, ExitStack]:
    """Lock every entry that is not ready; the keys still missing, each with its held lock.

    ``entries`` are (key, record, weights), locked in the order given: every
    driver lists them in the same order, so two of them never wait on each other
    in a cycle. Under each lock a broken entry is set aside and an old record gets
    its hash; what is then usable (or was finished meanwhile by the process we
    waited for) is released at once. ``also(key)``, checked under the lock, marks
    an entry missing despite a usable record (a file beside it that is absent).
    Close a returned lock once its entry is written; ``stack`` releases the rest.
    """
    required = tuple(required)
    claims = {}
    for key, record, weights in entries:
        wanted = also is not None and also(key)
        if not wanted and verified_record(record, weights, required) is not None:
            continue
        lock = stack.enter_context(ExitStack())
        lock.enter_context(entry_lock(record))
        stored = _repair(record, weights, required)
        if stored is None or (also is not None and also(key)):
            claims[key] = lock
        else:
            lock.close()
    return claims


def finish_entry(record: Path, weights: Path, required: Iterable[str]) -> dict[str, Any]:
    """Check what the claim's holder just wrote: its verified record, or one clear line."""
    stored = verified_record(record, weights, tuple(required))
    if stored is None:
        raise EvalError(
            f"{record} was just built but does not verify against {weights.name}; "
            "the cache folder may be on a failing disk: move it and run again."
        )
    return stored


def load_verified(record: Path, weights: Path, required: Iterable[str]) -> dict[str, Any]:
    """The record of an entry that must already be complete; a broken one is set aside."""
    stored = verified_record(record, weights, tuple(required))
    if stored is not None:
        return stored
    with entry_lock(record):
        stored = _repair(record, weights, tuple(required))
    if stored is None:
        raise EvalError(
            f"{record} is missing or was broken and has been set aside; run the same command "
            "again to rebuild it."
        )
    return stored
