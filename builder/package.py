"""The folders ``kaggle`` pushes: ``submissions/<method>/{kernel,assets}/``.

``kaggle kernels push -p kernel/`` uploads the notebook named in
``kernel-metadata.json``; ``kaggle datasets create -p assets/`` uploads every
file beside ``dataset-metadata.json``. Each folder is staged and swapped in
whole, and validated offline, so what is on disk is always ready to push or
clearly reported as not. Nothing here touches the network or credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.assets import DATASET_METADATA_FILE, collect_assets, has_assets
from builder.atomic_files import (
    copy_file_atomic,
    remove_directory,
    replaced_directory,
    write_json_atomic,
)
from builder.dataset_metadata import assets_dataset_id, dataset_metadata
from builder.errors import BuildError
from builder.kaggle_names import find_owner
from builder.kernel_metadata import KERNEL_METADATA_FILE, kernel_metadata, kernel_slug
from builder.validate_submission import Problem, ensure_valid, validate_submission

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS_ROOT = REPO_ROOT / "submissions"
DRYRUN_FILE = "dryrun.json"


@dataclass(frozen=True)
class PackageResult:
    method_name: str
    kernel_dir: Path
    assets_dir: Path | None
    owner: str
    owner_source: str
    kernel_id: str
    dataset_id: str | None
    problems: tuple[Problem, ...]

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.blocking)


def submission_dir(method_name: str, out_root: Path = SUBMISSIONS_ROOT) -> Path:
    return Path(out_root) / method_name


def assets_folder(method_name: str, out_root: Path = SUBMISSIONS_ROOT) -> Path:
    """The local copy of the assets dataset: the dry-run's ``ASSETS_DIR``."""
    return submission_dir(method_name, out_root) / "assets"


def kernel_folder(method_name: str, out_root: Path = SUBMISSIONS_ROOT) -> Path:
    return submission_dir(method_name, out_root) / "kernel"


def package_assets(
    method_name: str, method_cls: type, owner: str, out_root: Path = SUBMISSIONS_ROOT
) -> Path | None:
    """Write ``assets/`` (files flat + ``dataset-metadata.json``); None for a method without assets.

    Run it before the dry-run, which reads the assets from this folder.
    """
    final = assets_folder(method_name, out_root)
    if not has_assets(method_cls):
        remove_directory(final)  # left over from a version that had assets
        return None
    with replaced_directory(final) as staging:
        collect_assets(method_cls, staging)
        write_json_atomic(staging / DATASET_METADATA_FILE, dataset_metadata(owner, method_name))
    return final


def package_kernel(
    method_name: str,
    notebook_path: Path,
    owner: str,
    dataset_id: str | None,
    accelerator: str = "gpu",
    out_root: Path = SUBMISSIONS_ROOT,
) -> Path:
    """Write ``kernel/``: a byte-for-byte copy of the notebook and its metadata."""
    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise BuildError(
            f"notebook {notebook_path} does not exist; build it first (make notebook METHOD={method_name})."
        )
    meta = kernel_metadata(
        owner, method_name, notebook_path.name, [dataset_id] if dataset_id else [], accelerator
    )
    final = kernel_folder(method_name, out_root)
    with replaced_directory(final) as staging:
        copy_file_atomic(notebook_path, staging / notebook_path.name)
        write_json_atomic(staging / KERNEL_METADATA_FILE, meta)
    return final


def package(
    method_name: str,
    *,
    notebook_path: Path,
    method_cls: type,
    owner: str | None = None,
    accelerator: str = "gpu",
    out_root: Path = SUBMISSIONS_ROOT,
    for_push: bool = False,
    require_dryrun: bool = True,
) -> PackageResult:
    """Package and validate offline; raises ``SubmissionInvalid`` listing every blocking problem.

    ``require_dryrun=False`` reports a missing or stale dry-run as a warning only
    (for packaging before the dry-run); a push always requires it.
    """
    resolved_owner, owner_source = find_owner(owner)
    assets_dir = package_assets(method_name, method_cls, resolved_owner, out_root)
    dataset_id = assets_dataset_id(resolved_owner, method_name) if assets_dir else None
    kernel_dir = package_kernel(
        method_name, Path(notebook_path), resolved_owner, dataset_id, accelerator, out_root
    )
    problems = validate_submission(
        kernel_dir,
        assets_dir,
        dataset_id,
        Path(notebook_path).parent / DRYRUN_FILE,
        for_push=for_push,
        require_dryrun=require_dryrun or for_push,
    )
    ensure_valid(problems, f"submission {method_name!r}")
    return PackageResult(
        method_name=method_name,
        kernel_dir=kernel_dir,
        assets_dir=assets_dir,
        owner=resolved_owner,
        owner_source=owner_source,
        kernel_id=f"{resolved_owner}/{kernel_slug(method_name)}",
        dataset_id=dataset_id,
        problems=tuple(problems),
    )
