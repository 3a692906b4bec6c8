"""Everything the kaggle CLI or Kaggle would reject, checked offline.

A push that fails on the server costs a round trip, and some failures are
silent: the CLI exits 0 on ``Kernel push error``, and a notebook whose
``ASSETS_DIR`` misses the mounted dataset only fails hours later on Kaggle.
Each check yields one line naming the file and field and what to do.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from builder.assets import DATASET_METADATA_FILE, kaggle_assets_dir
from builder.errors import BuildError
from builder.kaggle_names import (
    DATASET_SLUG_LENGTH,
    DATASET_TITLE_LENGTH,
    KERNEL_SLUG_LENGTH,
    KERNEL_TITLE_MIN,
    PLACEHOLDER_OWNER,
    is_valid_owner,
    is_valid_slug,
    slugify,
    split_ref,
)
from builder.kernel_metadata import COMPETITION, KERNEL_METADATA_FILE

CREDENTIAL_FILE_NAMES = frozenset(
    {"kaggle.json", "access_token", "access_token.txt", "credentials.json"}
)
KERNEL_REQUIRED = (
    "id",
    "title",
    "code_file",
    "language",
    "kernel_type",
    "is_private",
    "enable_gpu",
    "enable_internet",
    "competition_sources",
)
KERNEL_BOOLEANS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
# What a submission must say, whatever the CLI would accept.
KERNEL_REQUIRED_VALUES = {
    "language": "python",
    "kernel_type": "notebook",
    "is_private": True,
    "enable_gpu": True,
    "enable_internet": False,
}


@dataclass(frozen=True)
class Problem:
    """One finding; ``blocking`` ones stop a push, the others are warnings."""

    where: str
    message: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{'error' if self.blocking else 'warning'}: {self.where}: {self.message}"


class SubmissionInvalid(BuildError):
    """Raised with every blocking problem, one per line."""


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_json_object(path: Path, problems: list[Problem]) -> dict | None:
    where = display_path(path)
    if not path.is_file():
        problems.append(Problem(where, "file is missing; re-run packaging (make submission)"))
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        problems.append(Problem(where, f"is not valid JSON ({error}); re-run packaging"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(where, "must hold a JSON object; re-run packaging"))
        return None
    return data


def validate_owner(owner: str, where: str, for_push: bool) -> list[Problem]:
    if owner == PLACEHOLDER_OWNER:
        return [
            Problem(
                where,
                f"owner is the placeholder {PLACEHOLDER_OWNER!r}; set KAGGLE_USERNAME, put your "
                "username in ~/.kaggle/kaggle.json or pass --owner before pushing",
                blocking=for_push,
            )
        ]
    if not is_valid_owner(owner):
        return [
            Problem(where, f"owner {owner!r} is not a Kaggle username (letters, digits, - or _)")
        ]
    return []


def _validate_ref(
    value: object, field: str, where: str, slug_length: tuple[int, int], for_push: bool
) -> list[Problem]:
    parts = split_ref(value)
    if parts is None:
        return [
            Problem(where, f"field {field!r} is {value!r}; it must have the form '<owner>/<slug>'")
        ]
    owner, slug = parts
    problems = validate_owner(owner, f"{where} field {field!r}", for_push)
    if not is_valid_slug(slug, slug_length):
        low, high = slug_length
        problems.append(
            Problem(
                where,
                f"field {field!r} has slug {slug!r}; a slug is {low}-{high} lower-case letters, "
                "digits and single hyphens",
            )
        )
    return problems


def validate_kernel_metadata(
    kernel_dir: Path, expected_dataset: str | None, for_push: bool = False
) -> list[Problem]:
    """The checks ``kaggle kernels push`` makes, plus what the competition requires."""
    path = kernel_dir / KERNEL_METADATA_FILE
    where = display_path(path)
    problems: list[Problem] = []
    meta = read_json_object(path, problems)
    if meta is None:
        return problems
    for key in KERNEL_REQUIRED:
        if key not in meta:
            problems.append(Problem(where, f"required field {key!r} is missing"))
    for key in KERNEL_BOOLEANS:
        if key in meta and not isinstance(meta[key], bool):
            problems.append(Problem(where, f"field {key!r} is {meta[key]!r}; write true or false"))
    for key, wanted in KERNEL_REQUIRED_VALUES.items():
        if (
            key in meta
            and meta[key] != wanted
            and (not isinstance(wanted, bool) or isinstance(meta[key], bool))
        ):
            problems.append(
                Problem(
                    where,
                    f"field {key!r} is {json.dumps(meta[key])}; it must be {json.dumps(wanted)}",
                )
            )
    if "id" in meta:
        problems += _validate_ref(meta["id"], "id", where, KERNEL_SLUG_LENGTH, for_push)
    title = meta.get("title")
    if "title" in meta and (not isinstance(title, str) or len(title) < KERNEL_TITLE_MIN):
        problems.append(
            Problem(
                where,
                f"field 'title' is {title!r}; it needs at least {KERNEL_TITLE_MIN} characters",
            )
        )
    elif (
        isinstance(title, str)
        and split_ref(meta.get("id"))
        and slugify(title) != split_ref(meta["id"])[1]
    ):
        problems.append(
            Problem(
                where,
                f"title {title!r} makes the slug {slugify(title)!r}, not the id's "
                f"{split_ref(meta['id'])[1]!r}; Kaggle names the notebook after its title",
                blocking=False,
            )
        )
    problems += _validate_code_file(kernel_dir, meta.get("code_file"), where)
    problems += _validate_sources(meta, where, expected_dataset, for_push)
    shape = meta.get("machine_shape")
    if shape is not None and not (isinstance(shape, str) and shape):
        problems.append(
            Problem(
                where,
                f"field 'machine_shape' is {shape!r}; name a Kaggle machine shape such as NvidiaTeslaT4",
            )
        )
    return problems


def _validate_code_file(kernel_dir: Path, code_file: object, where: str) -> list[Problem]:
    if code_file is None:
        return []
    if not isinstance(code_file, str) or not code_file or "/" in code_file or "\\" in code_file:
        return [
            Problem(
                where, f"field 'code_file' is {code_file!r}; name the notebook file in this folder"
            )
        ]
    notebook = kernel_dir / code_file
    if not notebook.is_file():
        return [
            Problem(
                where,
                f"field 'code_file' names {code_file!r}, which is not in {display_path(kernel_dir)}",
            )
        ]
    return validate_notebook(notebook)


def _validate_sources(
    meta: dict, where: str, expected_dataset: str | None, for_push: bool
) -> list[Problem]:
    problems: list[Problem] = []
    competitions = meta.get("competition_sources")
    if "competition_sources" in meta and (
        not isinstance(competitions, list) or COMPETITION not in competitions
    ):
        problems.append(
            Problem(
                where,
                f"field 'competition_sources' is {competitions!r}; it must list {COMPETITION!r}",
            )
        )
    datasets = meta.get("dataset_sources", [])
    if not isinstance(datasets, list):
        problems.append(
            Problem(where, f"field 'dataset_sources' is {datasets!r}; it must be a list")
        )
        return problems
    for ref in datasets:
        problems += _validate_ref(ref, "dataset_sources", where, DATASET_SLUG_LENGTH, for_push)
    if expected_dataset is not None and expected_dataset not in datasets:
        problems.append(
            Problem(
                where,
                f"field 'dataset_sources' lacks the assets dataset {expected_dataset!r}; the notebook could not read its assets",
            )
        )
    return problems


def validate_notebook(notebook: Path) -> list[Problem]:
    try:
        nb = nbformat.read(notebook, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # nbformat raises several unrelated types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [Problem(display_path(notebook), f"is not a valid notebook ({first}); rebuild it")]
    return []


def parameter_value(notebook: Path, name: str) -> tuple[bool, object]:
    """``(found, value)`` of ``name`` in the cell tagged ``parameters``."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            return False, None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                try:
                    return True, ast.literal_eval(node.value)
                except ValueError:
                    return True, ast.unparse(node.value)
    return False, None


def validate_assets_parameter(notebook: Path, slug: str) -> list[Problem]:
    """The notebook must look for its assets where Kaggle mounts the dataset."""
    expected = kaggle_assets_dir(slug)
    try:
        found, value = parameter_value(notebook, "ASSETS_DIR")
    except Exception:
        return []  # reported by validate_notebook
    where = display_path(notebook)
    if not found:
        return [
            Problem(
                where, "has no ASSETS_DIR in its cell tagged 'parameters'; rebuild the notebook"
            )
        ]
    if value != expected:
        return [
            Problem(
                where,
                f"ASSETS_DIR is {value!r} but the assets dataset is mounted at {expected!r}; "
                "rebuild the notebook with that assets_dir",
            )
        ]
    return []


def validate_assets_folder(assets_dir: Path, for_push: bool = False) -> list[Problem]:
    """What ``kaggle datasets create`` checks, and that the folder is flat and not empty."""
    path = assets_dir / DATASET_METADATA_FILE
    where = display_path(path)
    problems: list[Problem] = []
    meta = read_json_object(path, problems)
    if meta is not None:
        for key in ("id", "title", "licenses"):
            if key not in meta:
                problems.append(Problem(where, f"required field {key!r} is missing"))
        if "id" in meta:
            problems += _validate_ref(meta["id"], "id", where, DATASET_SLUG_LENGTH, for_push)
        title = meta.get("title")
        low, high = DATASET_TITLE_LENGTH
        if "title" in meta and (not isinstance(title, str) or not low <= len(title) <= high):
            problems.append(
                Problem(where, f"field 'title' is {title!r}; it needs {low}-{high} characters")
            )
        licenses = meta.get("licenses")
        if "licenses" in meta and (
            not isinstance(licenses, list)
            or len(licenses) != 1
            or not isinstance(licenses[0], dict)
            or not licenses[0].get("name")
        ):
            problems.append(
                Problem(
                    where,
                    f'field \'licenses\' is {licenses!r}; give exactly one, e.g. [{{"name": "CC0-1.0"}}]',
                )
            )
    if assets_dir.is_dir():
        entries = sorted(assets_dir.iterdir())
        for entry in entries:
            if entry.is_dir():
                problems.append(
                    Problem(
                        display_path(entry),
                        "is a sub-folder; assets are uploaded flat, so move its files up or remove it",
                    )
                )
        if not any(e.is_file() and e.name != DATASET_METADATA_FILE for e in entries):
            problems.append(Problem(display_path(assets_dir), "holds no asset file to upload"))
    return problems


def validate_no_credentials(folder: Path) -> list[Problem]:
    """A credential file in a pushed folder would be uploaded to Kaggle."""
    if not folder.is_dir():
        return []
    return [
        Problem(
            display_path(path),
            "looks like a Kaggle credential file; delete it, credentials never belong in a submission",
        )
        for path in sorted(folder.rglob("*"))
        if path.name in CREDENTIAL_FILE_NAMES
    ]


def validate_dryrun(notebook: Path, dryrun_json: Path, blocking: bool = True) -> list[Problem]:
    """The pushed notebook must be byte-identical to one that passed a local dry-run."""
    where = display_path(dryrun_json)
    if not dryrun_json.is_file():
        return [
            Problem(
                where,
                "is missing: the notebook was never dry-run; run `make dryrun` first",
                blocking,
            )
        ]
    problems: list[Problem] = []
    record = read_json_object(dryrun_json, problems)
    if record is None:
        return [Problem(p.where, p.message, blocking) for p in problems]
    finished = record.get("finished_at", "an unknown time")
    if record.get("ok") is not True:
        return [
            Problem(
                where,
                f"the last dry-run (finished {finished}) failed; fix the notebook and dry-run it again",
                blocking,
            )
        ]
    if not notebook.is_file():
        return []  # reported with the kernel metadata
    if record.get("notebook_sha256") != sha256_of(notebook):
        return [
            Problem(
                where,
                f"is stale: {display_path(notebook)} changed after the dry-run that finished {finished}; "
                "dry-run it again",
                blocking,
            )
        ]
    return []


def ensure_valid(problems: list[Problem], subject: str) -> None:
    """Raise ``SubmissionInvalid`` listing every blocking problem, one per line."""
    blocking = [p for p in problems if p.blocking]
    if blocking:
        lines = "\n".join(f"  {p}" for p in blocking)
        raise SubmissionInvalid(
            f"{subject} is not ready for Kaggle ({len(blocking)} problem(s)); fix these and package again:\n{lines}"
        )


def validate_submission(
    kernel_dir: Path,
    assets_dir: Path | None,
    dataset_id: str | None,
    dryrun_json: Path,
    for_push: bool = False,
    require_dryrun: bool = True,
) -> list[Problem]:
    """Every check on a packaged submission: kernel folder, assets folder, dry-run."""
    problems = validate_kernel_metadata(kernel_dir, dataset_id, for_push)
    problems += validate_no_credentials(kernel_dir)
    meta_path = kernel_dir / KERNEL_METADATA_FILE
    try:
        code_file = json.loads(meta_path.read_text(encoding="utf-8")).get("code_file")
    except (OSError, ValueError, AttributeError):
        code_file = None
    notebook = kernel_dir / code_file if isinstance(code_file, str) and code_file else None
    if assets_dir is not None:
        problems += validate_assets_folder(assets_dir, for_push)
        problems += validate_no_credentials(assets_dir)
        parts = split_ref(dataset_id)
        if notebook is not None and notebook.is_file() and parts is not None:
            problems += validate_assets_parameter(notebook, parts[1])
    if notebook is not None:
        problems += validate_dryrun(notebook, dryrun_json, blocking=require_dryrun)
    return _without_repeats(problems)


def _without_repeats(problems: list[Problem]) -> list[Problem]:
    """One line per fix: the placeholder owner shows up in every id but needs saying once."""
    seen: set = set()
    kept = []
    for problem in problems:
        key = (
            problem.message
            if PLACEHOLDER_OWNER in problem.message
            else (problem.where, problem.message)
        )
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept
