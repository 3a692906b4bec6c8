"""Score an unlearning method locally the way the competition does.

The method runs N times, each time on a fresh copy of the original model with its
own seed and freshly shuffled competition-style loaders; the N unlearned models
are then compared with N models retrained without the forget set. The other N
retrained models are scored the same way (the retrain ceiling), so a score can be
read against the best one reachable with this many models.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
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
from local_eval.cache import repo_root
from local_eval.devices import default_device, device_name, synchronize
from local_eval.errors import EvalError
from local_eval.loaders import make_loader
from local_eval.metric import epsilon_points, example_epsilons, final_score
from local_eval.models import build_model
from local_eval.presets import Preset, apply_overrides, get_preset, preset_options
from local_eval.references import (
    EvalData,
    ModelRecord,
    References,
    build_references,
    cpu_state,
    measure_model,
)
from local_eval.report import format_summary, plot_result, result_paths, write_result
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel, run_tasks
from methods.base import BaseMethod
from methods.common import ASSETS_ENV

RESULT_FORMAT = 1


def default_results_dir() -> Path:
    return repo_root() / "results"


def evaluate_method(
    method: str | type[BaseMethod],
    preset: str | Preset = "cpu",
    overrides: dict[str, Any] | None = None,
    n_models: int | None = None,
    *,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    progress: bool = True,
    echo: bool = True,
    executor: Executor | None = None,
    ensemble: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """Run ``method`` N times, score it against the reference models, write and print the result.

    ``overrides`` are the method's hyperparameters (the CLI's ``--set``; strings are
    read as the default's type); ``options`` are preset fields (``data_root``,
    ``batch_format``, ``forget_mode``, ...). Builds (or resumes) the preset's
    reference models first (``ensemble`` retrained models per task). Reference
    models and runs are tasks of ``executor`` (default: one after the other in this
    process). Writes ``results/<preset>/<method>.json`` and ``.png`` and returns the
    JSON's content.
    """
    method_cls = resolve_method(method)
    preset = resolve_preset(preset, options, n_models)
    device = torch.device(device) if device is not None else default_device()
    params = resolve_hyperparameters(method_cls, overrides)
    started = time.perf_counter()

    executor = executor or LocalExecutor(device)
    refs = build_references(
        preset, device=device, progress=progress, executor=executor, ensemble=ensemble
    )
    runs, unlearned_confidences = run_method(method_cls, params, refs, device, progress, executor)
    reference_confidences = stack_confidences(refs.reference)
    ceiling = score_models(refs.ceiling, refs)
    method_row = score_runs(
        unlearned_confidences,
        reference_confidences,
        [r["retain_accuracy"] for r in runs],
        [r["test_accuracy"] for r in runs],
        [r["forget_accuracy"] for r in runs],
        refs,
    )
    seconds_per_run = sum(r["seconds"] for r in runs) / len(runs)
    json_path, plot_path = result_paths(
        results_dir or default_results_dir(), preset.name, method_cls.name
    )
    result = {
        "format": RESULT_FORMAT,
        **method_identity(method_cls, params, preset),
        "references_key": refs.key,
        "n_models": preset.n_models,
        "sizes": {
            "retain": len(refs.data.retain),
            "forget": len(refs.data.forget),
            "val": len(refs.data.val),
            "test": len(refs.data.test),
        },
        **method_row,
        "seconds_per_run": seconds_per_run,
        "retrain_seconds": refs.retrain_seconds,
        "time_fraction": seconds_per_run / refs.retrain_seconds,
        "ceiling": ceiling,
        "retrained": mean_accuracies(refs.reference),
        "original": record_accuracies(refs.original),
        "runs": runs,
        **provenance(device, started),
        "json_path": str(json_path),
        "plot_path": str(plot_path),
    }
    plot_result(
        plot_path,
        f"{method_cls.name} on {preset.name} (N={preset.n_models}): score {result['score']:.3f}, "
        f"ceiling {ceiling['score']:.3f}",
        torch.tensor(result["epsilons"]),
        torch.tensor(ceiling["epsilons"]),
        unlearned_confidences,
        reference_confidences,
    )
    write_result(result, json_path)
    if echo:
        print(format_summary(result))
    return result


def score_models(records: tuple[ModelRecord, ...], refs: References) -> dict[str, Any]:
    """Score already-measured models (the retrain ceiling) as if a method had produced them."""
    return score_runs(
        stack_confidences(records),
        stack_confidences(refs.reference),
        [r.retain_accuracy for r in records],
        [r.test_accuracy for r in records],
        [r.forget_accuracy for r in records],
        refs,
    )


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


def resolve_preset(
    preset: str | Preset, overrides: dict[str, Any] | None, n_models: int | None
) -> Preset:
    overrides = dict(overrides or {})
    if n_models is not None:
        overrides["n_models"] = n_models
    if isinstance(preset, Preset):
        return apply_overrides(preset, overrides)
    return get_preset(preset, overrides)


def resolve_hyperparameters(
    method_cls: type[BaseMethod], values: dict[str, Any] | None
) -> dict[str, Any]:
    """The method's defaults with ``values`` applied; strings are converted to the default's type."""
    try:
        defaults = method_cls().hyperparameters()
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


def method_source_hash(method_cls: type[BaseMethod]) -> str:
    """Hash of the source files the method's class hierarchy lives in.

    The leaderboard reuses a result only while this is unchanged, so an edited
    method is re-scored even when its name and hyperparameters stay the same.
    """
    digest = hashlib.sha256()
    files = []
    for cls in method_cls.__mro__:
        if cls is object:
            continue
        source = inspect.getsourcefile(cls)
        if source and source not in files:
            files.append(source)
    for source in sorted(files):
        digest.update(Path(source).name.encode())
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "numpy", "unlearnkit"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_method(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    refs: References,
    device: torch.device,
    progress: bool,
    executor: Executor | None = None,
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """The N runs of a method, each one task of ``executor`` (default: here, on ``device``).

    Runs come back in index order whatever order they finished in; if some fail,
    :class:`~local_eval.scoring.executors.TasksFailed` names them after the
    others finished.
    """
    executor = executor or LocalExecutor(device)
    preset = refs.preset
    original = torch.load(refs.original.path, map_location="cpu", weights_only=True)
    assets = asset_files(method_cls)
    tasks = [
        Task(
            TaskLabel(f"{method_cls.name} run", (i,), (preset.seed + i,)),
            unlearning_run_task,
            (method_cls, params, preset, refs.data, original, assets, i, False),
        )
        for i in range(preset.n_models)
    ]
    done: dict[int, dict[str, Any]] = {}
    run_tasks(
        executor,
        tasks,
        lambda task, run: done.__setitem__(task.label.indices[0], run),
        f"{method_cls.name} runs",
        progress=progress,
    )
    runs = [done[i] for i in range(preset.n_models)]
    confidences = torch.stack([run.pop("forget_confidences") for run in runs])
    return runs, confidences


def unlearning_run_task(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    preset: Preset,
    data: EvalData,
    original: dict[str, torch.Tensor],
    assets: dict[str, bytes],
    index: int,
    keep_state: bool,
    *,
    device: torch.device,
) -> dict[str, Any]:
    """Run ``index`` of a method: a fresh copy of ``original``, its seed, its loaders.

    Everything the run needs comes in the arguments (the assets as bytes), so it
    runs the same in this process or on a worker without the checkout's files.
    Returns the seed, seconds, accuracies, forget confidences and, with
    ``keep_state``, the unlearned weights on the CPU.
    """
    seed = preset.seed + index
    net = build_model(preset.arch)
    net.load_state_dict(original)
    net.to(device).eval()
    loaders = method_loaders(preset, data, seed)
    torch.manual_seed(seed)
    with installed_assets(assets):
        seconds = call_method(
            method_cls,
            params,
            net,
            loaders,
            device,
            f"run {index + 1} of {preset.n_models}, preset {preset.name}",
            "the competition notebook saves the `net` it passed in, so modify `net` in place "
            "(e.g. net.load_state_dict(other.state_dict()))",
        )
    measured = measure_model(net, data, device)
    run = {"seed": seed, "seconds": seconds, **measured}
    if keep_state:
        run["state"] = cpu_state(net)
    return run


def call_method(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    net: torch.nn.Module,
    loaders: tuple[Any, Any, Any],
    device: torch.device,
    context: str,
    keep_net_because: str,
) -> float:
    """One ``run()`` of a fresh instance on ``net``; the seconds it took.

    A method's own exception becomes an EvalError naming its file and line and
    ``context`` (which run, which request); returning another model instead of
    changing ``net`` is refused with ``keep_net_because`` as the reason.
    """
    method = method_cls(**params)
    started = time.perf_counter()
    try:
        returned = method.run(net, *loaders)
    except EvalError:
        raise
    except Exception as exc:
        raise EvalError(
            f"{failure_location(exc, method_cls)}: method {method_cls.name!r} raised "
            f"{type(exc).__name__}: {exc} ({context}). Fix the method and score it again."
        ) from exc
    synchronize(device)
    seconds = time.perf_counter() - started
    if isinstance(returned, torch.nn.Module) and returned is not net:
        raise EvalError(
            f"{method_location(method_cls)}: {method_cls.__name__}.run() returned a new model; "
            f"{keep_net_because} and return None."
        )
    return seconds


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


def score_runs(
    confidences: torch.Tensor,
    reference: torch.Tensor,
    retain: list[float],
    test: list[float],
    forget: list[float],
    refs: References,
) -> dict[str, Any]:
    ra_u, ta_u, fa_u = _mean(retain), _mean(test), _mean(forget)
    ra_r = _mean([r.retain_accuracy for r in refs.reference])
    ta_r = _mean([r.test_accuracy for r in refs.reference])
    # forget_quality() is the mean of these points; computing the epsilons once halves the cost.
    epsilons = torch.as_tensor(example_epsilons(confidences, reference))
    quality = float(epsilon_points(epsilons.numpy(), len(confidences)).mean())
    return {
        "score": float(final_score(quality, ra_u, ra_r, ta_u, ta_r)),
        "forget_quality": quality,
        "retain_ratio": ra_u / ra_r,
        "test_ratio": ta_u / ta_r,
        "retain_accuracy": ra_u,
        "test_accuracy": ta_u,
        "forget_accuracy": fa_u,
        "epsilons": epsilons.tolist(),
    }


def stack_confidences(records: tuple[ModelRecord, ...]) -> torch.Tensor:
    return torch.stack([r.forget_confidences for r in records])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def record_accuracies(record: ModelRecord) -> dict[str, float]:
    return {
        "retain_accuracy": record.retain_accuracy,
        "test_accuracy": record.test_accuracy,
        "forget_accuracy": record.forget_accuracy,
    }


def mean_accuracies(records: tuple[ModelRecord, ...]) -> dict[str, float]:
    return {
        key: _mean([getattr(r, key) for r in records])
        for key in ("retain_accuracy", "test_accuracy", "forget_accuracy")
    }


def assets_folder(method_cls: type[BaseMethod]) -> contextlib.AbstractContextManager[None]:
    """Give a method that has assets the folder the notebook would give it, as the dry-run does."""
    return installed_assets(asset_files(method_cls))


def asset_files(method_cls: type[BaseMethod]) -> dict[str, bytes]:
    """The method's assets by file name ({} without any), produced once on the driver.

    As bytes they travel inside a run's task, so a worker needs no copy of them.
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
def installed_assets(files: dict[str, bytes]) -> Iterator[None]:
    """Write ``files`` to a temporary folder and point the method's asset lookup at it."""
    if not files:
        yield
        return
    previous = os.environ.get(ASSETS_ENV)
    with tempfile.TemporaryDirectory(prefix="unlearnkit-assets-") as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        os.environ[ASSETS_ENV] = folder
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ASSETS_ENV, None)
            else:
                os.environ[ASSETS_ENV] = previous


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


__all__ = ["evaluate_method", "score_models", "resolve_method", "method_source_hash"]
