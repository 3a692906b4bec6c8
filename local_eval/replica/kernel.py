"""The Jupyter kernel that dry-runs execute notebooks in.

Papermill starts whatever kernel a name resolves to, and the stock ``python3``
spec runs the first ``python`` on ``PATH``: often not the project's environment,
so a dry-run would silently use another torch. We register a kernel named
``unlearnkit`` whose command is this interpreter's absolute path, inside
``sys.prefix`` (the ``--sys-prefix`` install of ``python -m ipykernel install``),
so each clone's virtual environment owns its own kernel and needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from local_eval.errors import EvalError

KERNEL_NAME = "unlearnkit"
DISPLAY_NAME = "Python (unlearnkit)"


class KernelUnavailable(EvalError):
    """The project's kernel could not be registered or resolves to another Python."""


def kernel_dir(prefix: str | os.PathLike[str] | None = None) -> Path:
    """Where the ``--sys-prefix`` install puts the kernel spec."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def ensure_kernel(prefix: str | os.PathLike[str] | None = None) -> str:
    """Register the project's kernel unless it already runs this interpreter; return its name.

    Cheap when nothing changed, so callers run it before every execution instead
    of asking users for a setup step. Safe against a second process installing at
    the same moment: the spec is staged beside its final place and renamed in.
    """
    target = kernel_dir(prefix)
    if not _spec_runs_this_python(target):
        _install(target)
    if prefix is None:
        _check_resolution()
    return KERNEL_NAME


def check_kernel_exists(name: str) -> str:
    """Fail clearly when a caller-chosen kernel is not installed, before papermill starts."""
    from jupyter_client.kernelspec import KernelSpecManager

    available = sorted(KernelSpecManager().find_kernel_specs())
    if name not in available:
        raise KernelUnavailable(
            f"Jupyter kernel {name!r} is not installed (installed: {', '.join(available) or 'none'}). "
            f"Leave kernel_name unset to use the project's {KERNEL_NAME!r} kernel, which is "
            "registered automatically, or install yours with `python -m ipykernel install --sys-prefix --name NAME`."
        )
    return name


def _spec_runs_this_python(spec_dir: Path) -> bool:
    try:
        spec = json.loads((spec_dir / "kernel.json").read_text())
    except (OSError, ValueError):
        return False
    argv = spec.get("argv") or []
    return bool(argv) and argv[0] == sys.executable


def _install(target: Path) -> None:
    from ipykernel.kernelspec import write_kernel_spec

    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{KERNEL_NAME}-", dir=parent))
        write_kernel_spec(
            staging / KERNEL_NAME,
            overrides={"display_name": DISPLAY_NAME},
        )
        try:
            _swap_in(staging / KERNEL_NAME, target, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except PermissionError as error:
        raise KernelUnavailable(
            f"Cannot register the Jupyter kernel {KERNEL_NAME!r} in {parent}: {error.strerror}. "
            "Run the dry-run from the project's virtual environment (`.venv/bin/python`, as `make` does), "
            "which is writable, or pass kernel_name= for a kernel you installed yourself."
        ) from error


def _swap_in(new: Path, target: Path, staging: Path) -> None:
    """Replace ``target`` by ``new`` with renames only, so readers never see half a spec."""
    if target.exists():
        try:
            target.rename(staging / "stale")
        except FileNotFoundError:
            pass  # another process moved it away first
    try:
        new.rename(target)
    except OSError:
        # Another process renamed its spec in between; keep it if it is as good as ours.
        if not _spec_runs_this_python(target):
            raise


def _check_resolution() -> None:
    """A user-level spec of the same name shadows ours; say so rather than run the wrong Python."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as error:
        raise KernelUnavailable(
            f"The Jupyter kernel {KERNEL_NAME!r} was written to {kernel_dir()} but Jupyter does not find it; "
            "check the JUPYTER_PATH and JUPYTER_DATA_DIR environment variables."
        ) from error
    if not spec.argv or spec.argv[0] != sys.executable:
        raise KernelUnavailable(
            f"The Jupyter kernel {KERNEL_NAME!r} resolves to {spec.resource_dir}, which runs "
            f"{spec.argv[0] if spec.argv else 'nothing'} instead of {sys.executable}. Remove it "
            f"(`jupyter kernelspec remove {KERNEL_NAME}`) so the project's own kernel in {kernel_dir()} is used."
        )
