"""Where scoring's independent units of work run: in this process, or as Ray tasks.

Training a reference model and one unlearning run of a method are independent of
each other, and there are hundreds of them for a faithful score, so they are
described as :class:`Task` values and handed to an executor. The driver keeps
every side effect (cache files, results): a task only computes and returns, so
workers need no shared disk and a task that fails costs nothing but itself.

``local`` runs tasks one after the other in this process (the default; tests and
the smoke preset use it). ``ray`` runs each task as a Ray task with explicit
resources. A task's result depends only on its arguments and on torch's thread
count (CPU kernels split their sums by thread), so both executors run every task
at the same count, one thread per CPU a task reserves (``--task-cpus``, 1 by
default): with the same seeds they give bit-identical results on CPU.

Both have ``run(tasks, on_done, desc, progress, initial)``: it hands each result
to ``on_done`` as it arrives and returns the failures. ``on_done`` runs on the
driver, so it may write files; ``nodes`` maps each finished task's label to the
node that ran it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from local_eval.devices import default_device
from local_eval.errors import EvalError
from local_eval.store.files import repo_root

EXECUTORS = ("local", "ray")
ADDRESS_ENV = "RAY_ADDRESS"
# Small models leave most of a GPU idle: by default four tasks share one.
DEFAULT_GPU_FRACTION = 0.25
# Never shipped to a cluster: caches, results and the virtual environment are large
# and rebuilt (or installed) where they are needed.
_NOT_SHIPPED = [".git", ".venv", ".cache", "results", "submissions", "*.pt", "*.pth"]


@dataclass(frozen=True)
class TaskLabel:
    """What a task makes, in the words a failure report needs: role, index and seed."""

    role: str
    indices: tuple[int, ...]
    seeds: tuple[int, ...]

    def __str__(self) -> str:
        if len(self.indices) == 1:
            return f"{self.role} {self.indices[0]} (seed {self.seeds[0]})"
        return (
            f"{self.role} {self.indices[0]}..{self.indices[-1]} "
            f"(seeds {self.seeds[0]}..{self.seeds[-1]})"
        )


@dataclass(frozen=True)
class Task:
    """``fn(*args, device=...)``: a module-level function, so Ray can ship it by reference.

    ``size`` is how many ``unit`` the task makes, which is what the progress bar
    counts.
    """

    label: TaskLabel
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    size: int = 1
    unit: str = "model"


@dataclass(frozen=True)
class TaskFailure:
    label: TaskLabel
    message: str


class TasksFailed(EvalError):
    """Some tasks failed; the results of the others were kept (handed to ``on_done``)."""

    def __init__(self, what: str, total: int, failures: Sequence[TaskFailure]) -> None:
        self.failures = tuple(failures)
        first = self.failures[0]
        others = ", ".join(str(f.label) for f in self.failures[1:])
        super().__init__(
            f"{len(self.failures)} of {total} {what} failed (the others were kept); "
            f"{first.label}: {' '.join(first.message.split())}"
            + (f"; also failed: {others}" if others else "")
        )


def run_tasks(
    executor: Executor,
    tasks: Sequence[Task],
    on_done: Callable[[Task, Any], None],
    what: str,
    progress: bool = True,
    initial: int = 0,
) -> None:
    """Run every task; raise :class:`TasksFailed` after all have finished if any failed."""
    failures = executor.run(tasks, on_done, what, progress, initial)
    if failures:
        raise TasksFailed(what, len(tasks), failures)


def failure_message(exc: BaseException) -> str:
    """One line: an EvalError's own message (it already says what to fix), else type and text."""
    cause = getattr(exc, "cause", None)  # Ray wraps a task's exception; report the original
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, EvalError):
        return " ".join(str(exc).split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _settle(
    task: Task,
    outcome: Callable[[], tuple[Any, str]],
    on_done: Callable[[Task, Any], None],
    failures: list[TaskFailure],
    nodes: dict[TaskLabel, str],
) -> None:
    """One finished task, the same on every executor: a failure kept by label, or its result handed on.

    ``outcome`` returns (result, node) or raises the task's error; ``on_done``
    runs outside the ``try``, so a driver-side error is never taken for the task's.
    """
    try:
        result, node = outcome()
    except Exception as exc:
        failures.append(TaskFailure(task.label, failure_message(exc)))
    else:
        nodes[task.label] = node
        on_done(task, result)


def _progress_bar(tasks: Sequence[Task], desc: str, progress: bool, initial: int) -> tqdm:
    return tqdm(
        total=initial + sum(task.size for task in tasks),
        initial=initial,
        desc=desc,
        unit=tasks[0].unit if tasks else "model",
        disable=not progress,
    )


@dataclass
class LocalExecutor:
    """In this process, one task after the other, on ``device`` (default: CUDA if present).

    Each task runs at ``threads`` torch threads, as a Ray task reserving that many
    CPUs does, so a local figure equals the Ray one; the caller's own thread
    count is restored afterwards. Interrupts (Ctrl-C) are not failures: they
    stop the run at once, and what ``on_done`` wrote before stays, so the next
    run resumes.
    """

    device: torch.device | None = None
    threads: int = 1
    name: str = "local"
    nodes: dict[TaskLabel, str] = field(default_factory=dict)

    def run(
        self,
        tasks: Sequence[Task],
        on_done: Callable[[Task, Any], None],
        desc: str,
        progress: bool = True,
        initial: int = 0,
    ) -> list[TaskFailure]:
        device = self.device or default_device()
        failures = []
        callers_threads = torch.get_num_threads()
        with _progress_bar(tasks, desc, progress, initial) as bar:
            for task in tasks:
                torch.set_num_threads(self.threads)
                try:
                    _settle(
                        task, lambda task=task: (task.fn(*task.args, device=device), "local"),
                        on_done, failures, self.nodes,
                    )
                finally:
                    torch.set_num_threads(callers_threads)
                bar.update(task.size)
        return failures

    def close(self) -> None:
        """Nothing to release: present so callers treat both executors alike."""


def _run_remote(fn: Callable[..., Any], threads: int, *args: Any) -> tuple[Any, str]:
    """The body of every Ray task: one thread per CPU it reserved, the device Ray gave it.

    ``args`` are spread as the task's own arguments because Ray resolves object
    references only at the top level.
    """
    import ray

    torch.set_num_threads(threads)
    return fn(*args, device=default_device()), ray.get_runtime_context().get_node_id()


@dataclass
class RayExecutor:
    """Each task a Ray task reserving ``cpus`` CPUs and, where the cluster has GPUs, ``gpus``.

    ``address`` (or ``$RAY_ADDRESS``) joins an existing cluster and ships this
    checkout to it as the job's working directory; without one a local Ray
    instance sized to this machine is started. A process already connected to Ray
    (``ray.init`` done by the caller) is used as it is and left connected.
    Arguments shared by several tasks (the data, the original model) go to the
    object store once.
    """

    address: str | None = None
    cpus: float = 1
    gpus: float = DEFAULT_GPU_FRACTION
    name: str = "ray"
    nodes: dict[TaskLabel, str] = field(default_factory=dict)
    _started: bool = False

    def _connect(self):
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a declared dependency
            raise EvalError(
                "--executor ray needs the `ray` package: run `make setup` (it is in pyproject.toml)."
            ) from exc
        if ray.is_initialized():
            return ray
        address = self.address or os.environ.get(ADDRESS_ENV) or None
        try:
            if address:
                ray.init(
                    address=address,
                    runtime_env={"working_dir": str(repo_root()), "excludes": _NOT_SHIPPED},
                    log_to_driver=False,
                )
            else:
                ray.init(
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": _python_path()}},
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise EvalError(
                f"Could not start or join {where} ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())}); check --ray-address / RAY_ADDRESS, or use "
                "--executor local."
            ) from exc
        self._started = True
        return ray

    def run(
        self,
        tasks: Sequence[Task],
        on_done: Callable[[Task, Any], None],
        desc: str,
        progress: bool = True,
        initial: int = 0,
    ) -> list[TaskFailure]:
        if not tasks:
            return []
        ray = self._connect()
        gpus = self.gpus if ray.cluster_resources().get("GPU", 0) > 0 else 0
        # Ray retries a task whose worker or node died (not one that raised): spot nodes may vanish.
        remote = ray.remote(num_cpus=self.cpus, num_gpus=gpus)(_run_remote)
        threads = task_threads(self.cpus)
        shared: dict[int, Any] = {}
        pending = {
            remote.remote(task.fn, threads, *_shared_args(ray, task.args, shared)): task
            for task in tasks
        }
        failures = []
        with _progress_bar(tasks, desc, progress, initial) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready[0])
                _settle(task, lambda ready=ready: ray.get(ready[0]), on_done, failures, self.nodes)
                bar.update(task.size)
        return failures

    def close(self) -> None:
        """Shut down the Ray instance or connection this executor opened, not the caller's."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


Executor = LocalExecutor | RayExecutor


def _shared_args(ray, args: tuple[Any, ...], shared: dict[int, Any]) -> tuple[Any, ...]:
    """Replace large arguments by object-store references, one ``ray.put`` per object.

    Ray resolves top-level references before the task runs, so task functions see
    plain values either way.
    """
    out = []
    for arg in args:
        if isinstance(arg, (int, float, str, bool, type(None), type)):
            out.append(arg)
            continue
        if id(arg) not in shared:
            shared[id(arg)] = (arg, ray.put(arg))  # keep arg alive so its id is not reused
        out.append(shared[id(arg)][1])
    return tuple(out)


def task_threads(cpus: float) -> int:
    """Torch threads of a task reserving ``cpus`` CPUs: the same rule on both executors."""
    return max(1, int(cpus))


def _python_path() -> str:
    """The workers of a local instance import this checkout, installed or not."""
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(repo_root()), *([existing] if existing else [])])


def make_executor(
    name: str = "local",
    *,
    address: str | None = None,
    device: torch.device | str | None = None,
    cpus: float = 1,
    gpus: float = DEFAULT_GPU_FRACTION,
) -> Executor:
    """The executor the command line's ``--executor``/``--ray-address``/``--task-cpus`` ask for.

    ``cpus`` is each task's CPU reservation on Ray and its torch thread count on
    both executors, so the two give the same figures at the same ``cpus``. An address (or ``$RAY_ADDRESS``) alone does not switch executors: ``local`` stays
    the default, so an exported variable never sends a laptop run to a cluster.
    """
    if name == "local":
        if address:
            raise EvalError(
                f"--ray-address {address!r} needs --executor ray (EXECUTOR=ray on make)."
            )
        if cpus <= 0:
            raise EvalError(f"--task-cpus {cpus}: give a positive number of CPUs per task.")
        return LocalExecutor(
            torch.device(device) if device is not None else None, threads=task_threads(cpus)
        )
    if name == "ray":
        if cpus <= 0 or gpus < 0:
            raise EvalError(
                f"Ray tasks need a positive CPU count and a non-negative GPU fraction, got "
                f"cpus={cpus}, gpus={gpus}."
            )
        return RayExecutor(address=address, cpus=cpus, gpus=gpus)
    raise EvalError(
        f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)} "
        "(EXECUTOR=... on make, --executor on the command line)."
    )
