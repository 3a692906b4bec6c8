"""Specification of the executors: the same tasks give the same models locally and on a Ray cluster.

The cluster is simulated on this machine (``ray.cluster_utils.Cluster``: a head
and two worker nodes, one CPU each), started once for the tests that ask for it
and never connected to any other host.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from local_eval.errors import EvalError
from local_eval.scoring.context import make_context
from local_eval.scoring.executors import (
    LocalExecutor,
    RayExecutor,
    Task,
    TaskLabel,
    TasksFailed,
    make_executor,
    run_tasks,
)
from local_eval.scoring.method_calls import resolve_hyperparameters
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import build_references, measure_model
from local_eval.scoring.runner import run_plan, serve, unlearning_run_task
from local_eval.scoring.scenarios import Prepared, Step
from local_eval.scoring.scenarios.federated import Federated
from local_eval.scoring.scenarios.requests import Requests
from local_eval.scoring.training import Recipe
from local_eval.store.files import CACHE_ENV
from methods import all_method_handlers
from methods.base import BaseMethod
from methods.common import scenario_context

CPU = torch.device("cpu")
SHORT = Recipe(epochs=2, lr=0.05, batch_size=32, augment=False)
# The smoke preset at its smallest N, with two epochs: seven models in seconds.
PRESET = dataclasses.replace(
    get_preset("smoke", {"n_models": 3}), original_recipe=SHORT, retrain_recipe=SHORT
)
NODE_STORE_BYTES = 100 * 1024 * 1024
# What differs between two runs of the same call: the clocks.
TIMINGS = {"seconds", "cpu_seconds", "calibrated_seconds"}


@pytest.fixture(scope="session")
def ray_cluster():
    """A head and two worker nodes on this machine, for the whole session; shut down at the end."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "object_store_memory": NODE_STORE_BYTES,
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE_BYTES)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_cluster):
    """The same reference build with each executor, each in its own cache (kept for later steps)."""
    out = {}
    for name, executor in (("local", LocalExecutor(CPU)), ("ray", RayExecutor())):
        cache = tmp_path_factory.mktemp(f"cache-{name}")
        with pytest.MonkeyPatch.context() as patcher:
            patcher.setenv(CACHE_ENV, str(cache))
            out[name] = (build_references(PRESET, progress=False, executor=executor), executor, cache)
    return out


def standard_steps(refs) -> Prepared:
    return Prepared(steps=(Step(refs=refs, given=refs.data),), record={}, reuse={})


def serve_both(method_cls, prepared):
    """``serve`` on the local executor and on the cluster: ((runs, confidences), executor) each."""
    params = resolve_hyperparameters(method_cls, None)
    out = {}
    for name, executor in (("local", LocalExecutor(CPU)), ("ray", RayExecutor())):
        context = make_context(device=CPU, executor=executor, progress=False)
        runs, confidences, _ = serve(method_cls, params, PRESET, prepared, context)
        out[name] = ((runs, confidences), executor)
    return out


def without_timings(runs):
    """Every run's row with its clocks dropped, per-step rows included."""
    def clean(row):
        return {k: clean_steps(v) if k == "steps" else v for k, v in row.items() if k not in TIMINGS}

    def clean_steps(steps):
        return [clean(step) for step in steps]

    return [clean(run) for run in runs]


@pytest.fixture(scope="module")
def finetune_runs(built):
    """finetune's N runs from the same original, with each executor."""
    return serve_both(all_method_handlers()["finetune"], standard_steps(built["local"][0]))


def test_reference_build_on_the_cluster_spreads_over_more_than_one_node(built):
    _, executor, _ = built["ray"]
    assert len(executor.nodes) == 1 + 2 * PRESET.n_models
    assert len(set(executor.nodes.values())) > 1


def test_reference_models_from_the_cluster_are_bit_identical_to_local_ones(built):
    local, remote = built["local"][0], built["ray"][0]
    for mine, theirs in zip((local.original, *local.retrained), (remote.original, *remote.retrained)):
        a = torch.load(mine.path, weights_only=True)
        b = torch.load(theirs.path, weights_only=True)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert torch.equal(mine.forget_confidences, theirs.forget_confidences)
        assert (mine.retain_accuracy, mine.test_accuracy) == (
            theirs.retain_accuracy,
            theirs.test_accuracy,
        )


def test_method_runs_on_the_cluster_spread_over_more_than_one_node(finetune_runs):
    _, executor = finetune_runs["ray"]
    assert len(executor.nodes) == PRESET.n_models
    assert len(set(executor.nodes.values())) > 1


def test_method_runs_on_the_cluster_equal_local_runs(finetune_runs):
    (local_runs, local_confidences), _ = finetune_runs["local"]
    (ray_runs, ray_confidences), _ = finetune_runs["ray"]
    assert all(torch.equal(a, b) for a, b in zip(local_confidences, ray_confidences, strict=True))
    assert without_timings(local_runs) == without_timings(ray_runs)


def test_sequential_requests_on_the_cluster_equal_local_ones(built, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(built["local"][2]))
    # The intermediate references are built on the cluster; the standard ones are reused.
    prepared = Requests(k=2).prepare(
        PRESET, make_context(device=CPU, executor=RayExecutor(), progress=False)
    )
    served = serve_both(all_method_handlers()["finetune"], prepared)
    (local_runs, local_confidences), _ = served["local"]
    (ray_runs, ray_confidences), executor = served["ray"]
    assert len(local_confidences) == 2 and len(local_runs[0]["steps"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(local_confidences, ray_confidences, strict=True))
    assert without_timings(local_runs) == without_timings(ray_runs)
    assert len(set(executor.nodes.values())) > 1


class ReadsServerState(BaseMethod):
    """Fails unless the federated server-state file it is offered can be read where it runs."""

    name = "reads_server_state"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        state = torch.load(scenario_context()["server_state"], weights_only=True)
        with torch.no_grad():
            net.fc.bias.add_(state["client_weight"])


def test_federated_runs_on_the_cluster_read_the_server_state_and_equal_local_ones(
    built, monkeypatch
):
    monkeypatch.setenv(CACHE_ENV, str(built["local"][2]))
    prepared = Federated(clients=2).prepare(
        PRESET, make_context(device=CPU, executor=RayExecutor(), progress=False)
    )
    served = serve_both(ReadsServerState, prepared)
    (local_runs, local_confidences), _ = served["local"]
    (ray_runs, ray_confidences), _ = served["ray"]
    assert torch.equal(local_confidences[0], ray_confidences[0])
    assert without_timings(local_runs) == without_timings(ray_runs)


def fails_on_index_two(index: int, *, device: torch.device) -> int:
    """A task that fails for one index only, importable by the Ray workers."""
    if index == 2:
        raise RuntimeError("out of memory")
    return index * index


@pytest.mark.parametrize("executor_name", ["local", "ray"])
def test_a_failed_task_is_reported_by_role_index_and_seed_and_the_others_are_kept(
    executor_name, request
):
    if executor_name == "ray":
        request.getfixturevalue("ray_cluster")
    executor = LocalExecutor(CPU) if executor_name == "local" else RayExecutor()
    tasks = [Task(TaskLabel("retrained", (i,), (i + 1,)), fails_on_index_two, (i,)) for i in range(4)]
    kept = {}
    with pytest.raises(TasksFailed, match=r"1 of 4 .*retrained 2 \(seed 3\): RuntimeError: out of memory"):
        run_tasks(executor, tasks, lambda task, value: kept.update({task.label.indices[0]: value}), "models", progress=False)
    assert kept == {0: 0, 1: 1, 3: 9}


def test_failed_tasks_are_a_one_line_eval_error():
    failure = TasksFailed("models", 2, [_failure("retrained", 0), _failure("retrained", 1)])
    assert isinstance(failure, EvalError)
    assert "\n" not in str(failure)


def _failure(role, index):
    from local_eval.scoring.executors import TaskFailure

    return TaskFailure(TaskLabel(role, (index,), (index + 1,)), "ValueError:\nbad\nvalue")


def test_a_run_task_can_return_the_unlearned_weights_it_measured(built):
    refs = built["local"][0]
    finetune = all_method_handlers()["finetune"]
    plan = run_plan(finetune, resolve_hyperparameters(finetune, None), PRESET, standard_steps(refs))
    run = unlearning_run_task(plan, 0, True, device=CPU)
    model = build_model(PRESET.arch)
    model.load_state_dict(run["state"])
    measured = measure_model(model, refs.data, CPU)
    assert torch.equal(measured["forget_confidences"], run["step_confidences"][-1])


def test_an_unknown_executor_names_the_valid_ones():
    with pytest.raises(EvalError, match="local, ray"):
        make_executor("dask")


def test_a_ray_address_without_the_ray_executor_is_refused():
    with pytest.raises(EvalError, match="--executor ray"):
        make_executor("local", address="10.0.0.1:6379")


def _thread_count(device=None) -> int:
    return torch.get_num_threads()


def test_the_local_executor_runs_each_task_at_the_thread_count_of_a_ray_task():
    label = TaskLabel("probe", (0,), (0,))
    seen = []
    callers = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_tasks(
            make_executor("local", cpus=1), [Task(label, _thread_count, ())],
            lambda task, result: seen.append(result), "probes", progress=False,
        )
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(callers)


def test_a_non_positive_task_cpu_count_is_refused_on_the_local_executor():
    with pytest.raises(EvalError, match="--task-cpus"):
        make_executor("local", cpus=0)


def _tune_trials(executor_name: str, out, cache) -> list[tuple[dict, float]]:
    """Two trials of `tune finetune --preset smoke --no-report` on one executor: (params, value)."""
    import optuna

    from local_eval.tuning.tune import TuneRequest, tune

    with pytest.MonkeyPatch.context() as patcher:
        patcher.setenv(CACHE_ENV, str(cache))
        tune(TuneRequest(
            method="finetune", preset="smoke", trials=2, report=False, progress=False,
            results_dir=str(out), executor=executor_name,
        ))
    study = optuna.load_study(
        study_name="finetune-smoke", storage=f"sqlite:///{out / 'smoke' / 'tune' / 'finetune.db'}"
    )
    return [(t.params, t.value) for t in sorted(study.trials, key=lambda t: t.number)]


def test_tune_trials_on_the_cluster_equal_the_local_trials(ray_cluster, built, tmp_path):
    cache = built["local"][2]  # the smoke references, already built
    local = _tune_trials("local", tmp_path / "local", cache)
    on_ray = _tune_trials("ray", tmp_path / "ray", cache)
    assert len(on_ray) == 2 and on_ray == local


def test_a_two_split_board_on_the_cluster_equals_the_local_one(built, tmp_path):
    from local_eval.boards.board_orders import read_board
    from local_eval.boards.split_board import build_split_leaderboard

    scores, cluster = {}, RayExecutor()
    for name in ("local", "ray"):
        _, executor, cache = built[name]
        executor = cluster if name == "ray" else executor
        with pytest.MonkeyPatch.context() as patcher:
            patcher.setenv(CACHE_ENV, str(cache))
            board = build_split_leaderboard(
                PRESET, 2, only=["finetune", "forget", "salun"], docs_dir=tmp_path / name / "docs",
                context=make_context(
                    device=CPU, executor=executor, progress=False, echo=False, bootstrap=50,
                    results_dir=tmp_path / name / "results",
                ),
            )  # fmt: skip
        scores[name] = [read_board(board, split=j).scores for j in (0, 1)]
    assert scores["ray"] == scores["local"]
    assert scores["local"][0] != scores["local"][1]
    # split 1's references and both splits' runs were cluster tasks, on more than one node
    assert len(cluster.nodes) > 1 + 2 * PRESET.n_models
    assert len(set(cluster.nodes.values())) > 1
