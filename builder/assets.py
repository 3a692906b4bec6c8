"""Files a method reads at run time, and where the notebook finds them.

Competition notebooks run without internet, so anything a method needs beyond
its code (a saved teacher, a mask, a table) travels as a private Kaggle dataset
attached to the notebook and mounted read-only at ``/kaggle/input/<slug>/``.

A method lists its files in ``assets: tuple[str, ...]``, so every tool can tell
from the class alone that it has some. They come from one of two places:

* committed files: each entry is a path relative to the file that defines the
  attribute (or absolute);
* a producer: when the class also has ``build_assets(dest_dir: str) -> None``
  (a ``staticmethod``), each entry is the bare name of a file that the function
  writes into ``dest_dir``. Use it for generated files (e.g. a seeded network
  saved with ``torch.save``) instead of committing binaries. Being part of the
  class, it may use only torch and the standard library, like all of
  ``methods/``; the notebook never calls it.

Either way the files end up side by side in one flat folder: ``collect_assets``
fills it for packaging (``submissions/<method>/assets/``), for the dry-run and
for local evaluation, which point ``UNLEARNKIT_ASSETS_DIR`` at it.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from pathlib import Path

from builder.errors import USER_CODE_ERRORS, BuildError, describe
from builder.kaggle_names import DATASET_SLUG_LENGTH, slugify, truncate_slug

KAGGLE_INPUT_ROOT = "/kaggle/input"
DATASET_METADATA_FILE = "dataset-metadata.json"
RESERVED_NAMES = frozenset(
    {DATASET_METADATA_FILE, "datapackage.json", "kernel-metadata.json", "kaggle.json"}
)


def assets_slug(method_name: str, owner: str | None = None) -> str:
    """Slug of the assets dataset of ``method_name``.

    ``owner`` is accepted so callers can pass what they have, but the slug
    deliberately ignores it: the notebook embeds ``/kaggle/input/<slug>`` and is
    dry-run (and its hash recorded) before anyone knows whose account it goes to.
    """
    del owner
    return truncate_slug(f"unlearnkit-{slugify(method_name)}-assets", DATASET_SLUG_LENGTH[1])


def kaggle_assets_dir(slug: str) -> str:
    """Where Kaggle mounts an attached dataset: the notebook's ``ASSETS_DIR`` on Kaggle."""
    return f"{KAGGLE_INPUT_ROOT}/{slug}"


def declared_assets(method_cls: type) -> tuple[str, ...]:
    declared = getattr(method_cls, "assets", ()) or ()
    if isinstance(declared, (str, Path)):
        raise BuildError(
            f"{_owner_of(method_cls)}.assets is a single string; declare a tuple, "
            f"e.g. assets = ({str(declared)!r},)."
        )
    return tuple(str(entry) for entry in declared)


def has_assets(method_cls: type) -> bool:
    return bool(declared_assets(method_cls)) or _builder_of(method_cls) is not None


def collect_assets(method_cls: type, dest_dir: Path | str) -> list[Path]:
    """Copy (or produce) every asset of ``method_cls`` flat into ``dest_dir``.

    Returns the files written, sorted by name. Raises ``BuildError`` naming the
    class and attribute when a declared file is missing, two assets share a name,
    or ``build_assets`` does not write exactly the files ``assets`` names.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    build = _builder_of(method_cls)
    if build is not None:
        return _produce(method_cls, build, dest)
    written: dict[str, str] = {}
    for source in _declared_paths(method_cls):
        _claim(written, source.name, f"{_owner_of(method_cls)}.assets entry {str(source)!r}")
        shutil.copyfile(source, dest / source.name)
    return sorted(dest / name for name in written)


def _produce(method_cls: type, build, dest: Path) -> list[Path]:
    where = f"{method_cls.__name__}.build_assets()"
    names = declared_assets(method_cls)
    if not names:
        raise BuildError(
            f"{method_cls.__name__} defines build_assets() but its `assets` is empty; list the "
            "file names build_assets writes, e.g. assets = ('teacher.pt',)."
        )
    written: dict[str, str] = {}
    for name in names:
        if Path(name).name != name:
            raise BuildError(
                f"{_owner_of(method_cls)}.assets entry {name!r} is a path, but with build_assets() "
                "the entries are the bare names of the files it writes."
            )
        _claim(written, name, f"{_owner_of(method_cls)}.assets entry {name!r}")
    scratch = Path(tempfile.mkdtemp(prefix="unlearnkit-assets-"))
    try:
        produced = {p.name: p for p in _run_builder(method_cls, build, scratch)}
        missing = sorted(set(names) - set(produced))
        extra = sorted(set(produced) - set(names))
        if missing or extra:
            raise BuildError(
                f"{where} wrote {sorted(produced)} but {_owner_of(method_cls)}.assets lists "
                f"{sorted(names)}; make them agree"
                + (f" (missing: {', '.join(missing)})" if missing else "")
                + (f" (not listed: {', '.join(extra)})" if extra else "")
                + "."
            )
        for name in names:
            shutil.move(str(produced[name]), dest / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(dest / name for name in names)


def _claim(written: dict[str, str], name: str, origin: str) -> None:
    if name in RESERVED_NAMES:
        raise BuildError(
            f"{origin} is named {name!r}, which Kaggle or this toolkit reserves; rename the file."
        )
    if name in written:
        raise BuildError(
            f"{origin} and {written[name]} are both called {name!r}; assets are copied into one "
            "flat folder, so give them distinct file names."
        )
    written[name] = origin


def _owner_of(method_cls: type) -> str:
    """The class whose body sets ``assets``: relative paths are relative to its file."""
    for klass in method_cls.__mro__:
        if "assets" in vars(klass):
            return klass.__name__
    return method_cls.__name__


def _declared_paths(method_cls: type) -> list[Path]:
    declared = declared_assets(method_cls)
    defining = next((k for k in method_cls.__mro__ if "assets" in vars(k)), method_cls)
    base_dir = Path(inspect.getsourcefile(defining) or ".").resolve().parent
    paths = []
    for entry in declared:
        path = Path(entry)
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise BuildError(
                f"{defining.__name__}.assets lists {str(entry)!r}, but {path} is not a file; "
                "asset paths are relative to the method's .py file (or absolute). Create the "
                "file or fix the entry."
            )
        paths.append(path)
    return paths


def _builder_of(method_cls: type):
    build = getattr(method_cls, "build_assets", None)
    return build if callable(build) else None


def _run_builder(method_cls: type, build, scratch: Path) -> list[Path]:
    """Run ``build_assets`` in a scratch folder so a failure leaves nothing in the output."""
    try:
        build(str(scratch))
    except USER_CODE_ERRORS as error:
        raise BuildError(
            f"{method_cls.__name__}.build_assets() failed with {describe(error)}. "
            "Fix the function; it must write its files into the folder it is given."
        ) from error
    entries = sorted(scratch.iterdir())
    folders = [p.name for p in entries if p.is_dir()]
    if folders:
        raise BuildError(
            f"{method_cls.__name__}.build_assets() wrote the folder(s) {', '.join(folders)}; "
            "Kaggle datasets for notebooks are flat here, so write files directly into dest_dir."
        )
    return entries
