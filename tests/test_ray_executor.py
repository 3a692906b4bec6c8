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
from local_eval.evaluate import resolve_hyperparameters, run_method, unlearning_run_task
from local_eval.models import build_model
from local_eval.presets import get_preset
from local_eval.references import build_references, measure_model
from local_eval.scoring.executors import (
    LocalExecutor,
    RayExecutor,
    Task,
    TaskLabel,
    TasksFailed,
    make_executor,
    run_tasks,
)
from local_eval.training import Recipe
from methods import all_method_handlers

CPU = torch.device("cpu")
SHORT = Recipe(epochs=2, lr=0.05, batch_size=32, augment=False)
# The smoke preset at its smallest N, with two epochs: seven models in seconds.
PRESET = dataclasses.replace(
    get_preset("smoke", {"n_models": 3}), original_recipe=SHORT, retrain_recipe=SHORT
)
NODE_STORE_BYTES = 100 * 1024 * 1024


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
    """The same reference build with each executor, each in its own cache."""
    out = {}
    for name, executor in (("local", LocalExecutor(CPU)), ("ray", RayExecutor())):
        patcher = pytest.MonkeyPatch()
        patcher.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.mktemp(f"cache-{name}")))
        try:
            out[name] = (build_references(PRESET, progress=False, executor=executor), executor)
        finally:
            patcher.undo()
    return out


@pytest.fixture(scope="module")
def finetune_runs(built):
    """finetune's N runs from the same original, with each executor."""
    refs = built["local"][0]
    finetune = all_method_handlers()["finetune"]
    params = resolve_hyperparameters(finetune, None)
    out = {}
    for name, executor in (("local", LocalExecutor(CPU)), ("ray", RayExecutor())):
        out[name] = (run_method(finetune, params, refs, CPU, False, executor), executor)
    return out


def test_reference_build_on_the_cluster_spreads_over_more_than_one_node(built):
    refs, executor = built["ray"]
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
    assert torch.equal(local_confidences, ray_confidences)
    drop_time = [{k: v for k, v in run.items() if k != "seconds"} for run in local_runs]
    assert drop_time == [{k: v for k, v in run.items() if k != "seconds"} for run in ray_runs]


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
    original = torch.load(refs.original.path, weights_only=True)
    run = unlearning_run_task(
        finetune, resolve_hyperparameters(finetune, None), PRESET, refs.data, original, {}, 0, True,
        device=CPU,
    )
    model = build_model(PRESET.arch)
    model.load_state_dict(run["state"])
    measured = measure_model(model, refs.data, CPU)
    assert torch.equal(measured["forget_confidences"], run["forget_confidences"])


def test_an_unknown_executor_names_the_valid_ones():
    with pytest.raises(EvalError, match="local, ray"):
        make_executor("dask")


def test_a_ray_address_without_the_ray_executor_is_refused():
    with pytest.raises(EvalError, match="--executor ray"):
        make_executor("local", address="10.0.0.1:6379")
