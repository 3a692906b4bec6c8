"""How the evaluator reaches a method: find it, set its hyperparameters, call it, say what it was.

Every scenario calls a method through ``call_method``, so timing, the error a
researcher sees when their method raises, the in-place rule and what the
scenario offers (``methods.common.scenario_context()``) are the same everywhere;
every result starts with ``method_identity`` and ends with ``provenance``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import methods
from local_eval.data.loaders import make_loader
from local_eval.data.roles import EvalData
from local_eval.devices import device_name
from local_eval.errors import EvalError
from local_eval.scoring.cost import PassCount, count_passes, time_run
from local_eval.scoring.presets import Preset, preset_options
from local_eval.store.files import repo_root
from methods.base import BaseMethod, new_method
from methods.common import ASSETS_ENV, SCENARIO_ENV


def resolve_method(method: str | type[BaseMethod]) -> type[BaseMethod]:
    """A registered name, a method file's path or a ``BaseMethod`` subclass.

    Paths let a researcher score a method before registering it, as the builder
    lets them build its notebook.
    """
    if isinstance(method, str) and (method.endswith(".py") or "/" in method or "\\" in method):
        from builder.discover import resolve_target
        from builder.errors import BuildError

        try:
            method = resolve_target(method).cls
        except BuildError as exc:
            raise EvalError(str(exc)) from exc
    if isinstance(method, type) and issubclass(method, BaseMethod):
        if not method.name:
            raise EvalError(
                f"{method.__module__}.{method.__qualname__} has no `name`: set the class "
                'attribute `name = "..."` so results can be filed under it.'
            )
        return method
    handlers = methods.all_method_handlers()
    if method not in handlers:
        raise EvalError(
            f"No method named {method!r} is registered: choose one of {', '.join(sorted(handlers))}, "
            "add yours to _METHODS in methods/__init__.py, or pass the path of its file."
        )
    return handlers[method]


def resolve_hyperparameters(
    method_cls: type[BaseMethod], values: dict[str, Any] | None
) -> dict[str, Any]:
    """The method's defaults with ``values`` applied; strings are converted to the default's type."""
    try:
        defaults = new_method(method_cls).hyperparameters()
    except Exception as exc:
        raise EvalError(
            f"{method_location(method_cls)}: {method_cls.__name__}() failed with default arguments "
            f"({type(exc).__name__}: {exc}); every hyperparameter needs a default."
        ) from exc
    unknown = sorted(set(values or {}) - set(defaults))
    if unknown:
        raise EvalError(
            f"{method_location(method_cls)}: method {method_cls.name!r} has no hyperparameter "
            f"{', '.join(map(repr, unknown))}; its hyperparameters are "
            f"{', '.join(sorted(defaults)) or '(none)'}."
        )
    params = dict(defaults)
    for key, value in (values or {}).items():
        params[key] = _coerce_like(key, value, defaults[key], method_cls)
    return params


_NOT_COMPUTING = ("methods", "methods.base", "methods.search_space")


def method_source_files(method_cls: type[BaseMethod]) -> list[Path]:
    """The files whose code a method runs: its classes' modules and the ``methods.*`` helpers they use.

    Followed transitively through each module's globals (a helper module, or a
    function or class taken from one). Left out: ``methods/base.py``, the contract
    every method shares, ``methods/search_space.py``, what ``make tune`` may try,
    and the ``methods`` package itself (the registry): none of them computes.
    """
    queue = [inspect.getmodule(cls) for cls in method_cls.__mro__ if cls not in (object, BaseMethod)]
    seen: dict[str, Path] = {}
    while queue:
        module = queue.pop()
        if module is None or module.__name__ in _NOT_COMPUTING or module.__name__ in seen:
            continue
        source = inspect.getsourcefile(module)
        if source is None:
            continue
        seen[module.__name__] = Path(source)
        for value in vars(module).values():
            found = value if inspect.ismodule(value) else inspect.getmodule(value)
            if found is not None and found.__name__.startswith("methods."):
                queue.append(found)
    return sorted(set(seen.values()))


def method_source_hash(method_cls: type[BaseMethod]) -> str:
    """Hash of the code the method runs (``method_source_files``).

    The leaderboard reuses a result only while this is unchanged, so an edited
    method, or an edited helper it calls, is re-scored even when its name and
    hyperparameters stay the same.
    """
    digest = hashlib.sha256()
    for source in method_source_files(method_cls):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "numpy", "unlearnkit"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def call_method(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    net: torch.nn.Module,
    loaders: tuple[Any, Any, Any],
    device: torch.device,
    context: str,
    keep_net_because: str,
    offered: dict[str, Any] | None = None,
) -> dict[str, float]:
    """One ``run()`` of a fresh instance on ``net``; what it cost.

    The cost is the call's wall ``seconds``, this process's ``cpu_seconds``,
    ``calibrated_seconds`` (wall over a fixed workload timed just before and just
    after, so that calls timed under other loads compare) and the examples it
    pushed through ``net`` ``forward`` and ``backward`` (``scoring.cost``).

    A method's own exception becomes an EvalError naming its file and line and
    ``context`` (which run, which request); returning another model instead of
    changing ``net`` is refused with ``keep_net_because`` as the reason. During
    the call ``methods.common.scenario_context()`` returns ``offered``.
    """
    method = new_method(method_cls, **params)

    def call() -> tuple[Any, PassCount]:
        try:
            with (
                _environment(SCENARIO_ENV, None if offered is None else json.dumps(offered)),
                count_passes(net) as passes,
            ):
                return method.run(net, *loaders), passes
        except EvalError:
            raise
        except Exception as exc:
            raise EvalError(
                f"{failure_location(exc, method_cls)}: method {method_cls.name!r} raised "
                f"{type(exc).__name__}: {exc} ({context}). Fix the method and score it again."
            ) from exc

    (returned, passes), timing = time_run(call, device=device)
    if isinstance(returned, torch.nn.Module) and returned is not net:
        raise EvalError(
            f"{method_location(method_cls)}: {method_cls.__name__}.run() returned a new model; "
            f"{keep_net_because} and return None."
        )
    return {
        "seconds": timing.wall_seconds,
        "cpu_seconds": timing.process_seconds,
        "calibrated_seconds": timing.wall_seconds / timing.calibration_seconds,
        "forward": passes.forward,
        "backward": passes.backward,
    }


def method_identity(
    method_cls: type[BaseMethod], params: dict[str, Any], preset: Preset
) -> dict[str, Any]:
    """What a result is of: the method, its exact source and settings, the preset's options.

    Leaderboards reuse a stored result only while these still match a fresh run.
    """
    return {
        "method": method_cls.name,
        "method_class": f"{method_cls.__module__}.{method_cls.__qualname__}",
        "source_sha256": method_source_hash(method_cls),
        "hyperparameters": params,
        "preset": preset.name,
        "options": preset_options(preset),
    }


def provenance(device: torch.device, started: float) -> dict[str, Any]:
    """Where and when a result was made, and with what: every result file ends with these."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "versions": package_versions(),
        "seconds_total": time.perf_counter() - started,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def method_loaders(preset: Preset, data: EvalData, seed: int) -> tuple[Any, Any, Any]:
    """Retain, forget and validation loaders as the competition gives them: shuffled, batch 64."""

    def loader(images, labels, indices, offset):
        return make_loader(
            images,
            labels,
            indices,
            batch_size=preset.batch_size,
            shuffle=True,
            seed=seed * 3 + offset,
            batch_format=preset.batch_format,
        )

    return (
        loader(data.train.images, data.train.labels, data.retain, 0),
        loader(data.train.images, data.train.labels, data.forget, 1),
        loader(data.heldout.images, data.heldout.labels, data.val, 2),
    )


def asset_files(method_cls: type[BaseMethod]) -> dict[str, bytes]:
    """The method's assets by file name ({} without any), produced once on the driver.

    As bytes they travel inside a run's task, so a worker needs no copy of the
    checkout's files; ``installed_files`` gives them back a folder.
    """
    try:
        from builder.assets import collect_assets, has_assets
        from builder.errors import BuildError
    except ImportError:  # a checkout without the builder can still score asset-free methods
        return {}
    if not has_assets(method_cls):
        return {}
    with tempfile.TemporaryDirectory(prefix="unlearnkit-assets-") as folder:
        try:
            collect_assets(method_cls, Path(folder))
        except BuildError as exc:
            raise EvalError(str(exc)) from exc
        return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@contextlib.contextmanager
def installed_files(files: dict[str, bytes], prefix: str) -> Iterator[Path | None]:
    """``files`` written to a temporary folder for the block (None when there are none)."""
    if not files:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        yield Path(folder)


@contextlib.contextmanager
def installed_assets(files: dict[str, bytes]) -> Iterator[None]:
    """Give a method that has assets (``files``, from ``asset_files``) the folder the notebook would."""
    with installed_files(files, "unlearnkit-assets-") as folder:
        if folder is None:
            yield
            return
        with _environment(ASSETS_ENV, str(folder)):
            yield


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` (unset when None) for the block, then as it was."""
    previous = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _coerce_like(key: str, value: Any, default: Any, method_cls: type[BaseMethod]) -> Any:
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        return type(default)(value)
    except (TypeError, ValueError):
        raise EvalError(
            f"{method_location(method_cls)}: hyperparameter {key}={value!r} cannot be read as "
            f"{type(default).__name__} like its default {default!r}; pass e.g. {key}={default!r}."
        ) from None


def method_location(method_cls: type[BaseMethod]) -> str:
    try:
        path = Path(inspect.getsourcefile(method_cls) or "")
        line = inspect.getsourcelines(method_cls)[1]
    except (OSError, TypeError):
        return f"{method_cls.__module__}.{method_cls.__qualname__}"
    return f"{_relative(path)} line {line}"


def failure_location(exc: BaseException, method_cls: type[BaseMethod]) -> str:
    """The deepest frame in the method's own file, where the researcher will look first."""
    source = inspect.getsourcefile(method_cls)
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if source and Path(f.filename) == Path(source)]
    if not inside:
        return method_location(method_cls)
    frame = inside[-1]
    return f"{_relative(Path(frame.filename))} line {frame.lineno}"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)
