"""Federated simulation: FedAvg-trained models, a forget set held by one client, a server-side method.

K clients hold disjoint shards of the training data: the retain set is dealt out
evenly (seeded shuffle) and client 0 also holds the whole forget set. The
original model is trained with FedAvg on all shards; the 2N reference models
with FedAvg on the same shards without the forget set (client 0 keeps its retain
share), each with its own seed. Every round, each client trains
``local_epochs`` epochs from the global model with the preset's recipe at a
learning rate that decays (cosine) over the rounds, and the server averages the
clients' weights and BatchNorm statistics weighted by shard size. With one local
epoch per round and as many rounds as the preset's epochs, a model costs about
what a centrally trained one does.

The method runs on the server, on the competition interface as usual. What the
server kept from training the original (the last ``kept_rounds`` rounds'
aggregated updates and client 0's weighted contribution to each) is written to
a file whose path the method is offered while it runs: ``methods.common.scenario_context()``
returns ``{"scenario": "federated", "server_state": <path>}`` (the file's content is
described by ``fedavg_train``). Methods that do not look for it run as in the
standard setting.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from local_eval.data.roles import EvalData, load_eval_data
from local_eval.devices import synchronize
from local_eval.errors import EvalError
from local_eval.scoring.context import Context
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel
from local_eval.scoring.models import build_model, model_from_state
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import (
    ModelSpec,
    References,
    build_reference_set,
    cached_state,
    cpu_state,
    model_output,
    model_specs,
    reference_options,
    reference_set_dir,
)
from local_eval.scoring.scenarios import Prepared, Step
from local_eval.scoring.training import Recipe, train_model
from local_eval.store.files import atomic_torch_save

MODE = "federated"
DEFAULT_CLIENTS = 4
SERVER_STATE_FILE = "server_state.pt"
# What ``fedavg_train`` keeps; a method checks it before trusting the file's layout.
SERVER_STATE_FORMAT = 1
FORGET_CLIENT = 0
# What the cached records of FedAvg models say made them.
TRAINER = "fedavg"


@dataclasses.dataclass(frozen=True)
class Federated:
    """A FedAvg federation of ``clients``, the method run on its server (see the module's doc).

    ``rounds=None`` means as many rounds as the preset's training epochs. Its
    board shows each method's standard score beside the federated one.
    """

    clients: int = DEFAULT_CLIENTS
    rounds: int | None = None
    local_epochs: int = 1
    kept_rounds: int = 3
    name = MODE
    companion = "standard"

    def resolved_rounds(self, preset: Preset) -> int:
        return self.rounds if self.rounds is not None else preset.retrain_recipe.epochs

    @property
    def make_argument(self) -> str:
        return f"FEDERATED={self.clients}"

    def prepare(self, preset: Preset, context: Context) -> Prepared:
        federation = federated_references(
            preset,
            self,
            device=context.device,
            progress=context.progress,
            executor=context.executor,
        )
        refs = federation.refs
        offered = {"scenario": MODE, "server_state": str(federation.server_state)}
        return Prepared(
            steps=(Step(refs=refs, given=refs.data, offered=offered, files=("server_state",)),),
            record={
                "federation": {
                    **dataclasses.asdict(self),
                    "rounds": self.resolved_rounds(preset),
                    "forget_client": FORGET_CLIENT,
                }
            },
            reuse={"references_key": refs.key},
        )


def client_shards(data: EvalData, clients: int, seed: int, with_forget: bool) -> list[torch.Tensor]:
    """Each client's training indices: retain dealt out evenly, the forget set to client 0."""
    if clients < 1:
        raise EvalError(f"--federated {clients}: a federation needs at least 1 client.")
    if clients * 2 > len(data.retain):
        raise EvalError(
            f"--federated {clients}: the retain set has {len(data.retain)} images, too few for "
            f"{clients} clients of at least 2 images each; choose at most {len(data.retain) // 2}."
        )
    order = data.retain[
        torch.randperm(len(data.retain), generator=torch.Generator().manual_seed(seed))
    ]
    shards = [order[c::clients] for c in range(clients)]
    if with_forget:
        shards[FORGET_CLIENT] = torch.cat([shards[FORGET_CLIENT], data.forget])
    return [shard.sort().values for shard in shards]


def fedavg_train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    shards: list[torch.Tensor],
    recipe: Recipe,
    rounds: int,
    local_epochs: int,
    seed: int,
    device: torch.device,
    kept_rounds: int = 0,
) -> dict[str, Any]:
    """Train ``model`` in place with FedAvg; return what the server kept of the last rounds.

    The returned dict is what is saved as the server-state file: ``format``
    (``SERVER_STATE_FORMAT``), ``parameter_names`` (the order of
    ``model.named_parameters()``), ``client_updates`` and ``aggregate_updates``
    (one list of tensors per kept round, oldest first: client 0's weighted
    contribution ``w_0 (theta_0 - theta)`` and the global update ``theta' - theta``;
    empty when ``kept_rounds`` is 0), plus ``forget_client``, ``n_clients`` and
    ``client_weight``.
    """
    model.to(device)
    sizes = torch.tensor([len(s) for s in shards], dtype=torch.float64)
    weights = (sizes / sizes.sum()).tolist()
    names = [name for name, _ in model.named_parameters()]
    client_updates, aggregate_updates = [], []
    for t in range(rounds):
        lr = recipe.lr * 0.5 * (1 + math.cos(math.pi * t / rounds))
        local_recipe = dataclasses.replace(
            recipe, epochs=local_epochs, lr=max(lr, recipe.lr * 1e-3)
        )
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        states = []
        for c, shard in enumerate(shards):
            local = copy.deepcopy(model).to(device)
            train_model(
                local,
                images,
                labels,
                shard,
                local_recipe,
                seed=seed * 100_003 + t * len(shards) + c,
                device=device,
            )
            states.append({k: v.detach() for k, v in local.state_dict().items()})
        averaged = _average_states(states, weights, before)
        model.load_state_dict(averaged)
        if rounds - t <= kept_rounds:
            params = dict(model.named_parameters())
            aggregate_updates.append([(params[n].detach() - before[n]).cpu() for n in names])
            client_updates.append(
                [
                    (weights[FORGET_CLIENT] * (states[FORGET_CLIENT][n] - before[n])).cpu()
                    for n in names
                ]
            )
    model.eval()
    return {
        "format": SERVER_STATE_FORMAT,
        "parameter_names": names,
        "client_updates": client_updates,
        "aggregate_updates": aggregate_updates,
        "forget_client": FORGET_CLIENT,
        "n_clients": len(shards),
        "client_weight": weights[FORGET_CLIENT],
    }


@dataclasses.dataclass(frozen=True)
class FederatedReferences:
    """The FedAvg original, its server state, and 2N FedAvg models retrained without the forget set."""

    refs: References
    server_state: Path


def federated_references(
    preset: Preset,
    setup: Federated,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> FederatedReferences:
    """Train whatever is missing and load all, cached as the standard references are.

    Each missing model is one task of ``executor`` (default: here, on ``device``);
    how the cache is claimed and written: :func:`~local_eval.scoring.references.build_reference_set`.
    """
    if "best_val" in (preset.original_recipe.checkpoint, preset.retrain_recipe.checkpoint):
        raise EvalError(
            f"Preset {preset.name!r} keeps the best-validation checkpoint, which FedAvg rounds do "
            "not have here: score federated on a preset whose recipes keep the last epoch "
            "(cpu, smoke, gpu)."
        )
    data = data or load_eval_data(preset)
    rounds = setup.resolved_rounds(preset)
    if rounds < 1 or setup.local_epochs < 1 or setup.kept_rounds < 0:
        raise EvalError(
            f"Federated setting rounds={rounds}, local_epochs={setup.local_epochs}, "
            f"kept_rounds={setup.kept_rounds}: rounds and local epochs must be at least 1 and "
            "kept rounds at least 0."
        )
    options = {
        **reference_options(preset),
        "mode": MODE,
        "clients": setup.clients,
        "rounds": rounds,
        "local_epochs": setup.local_epochs,
        "kept_rounds": setup.kept_rounds,
    }
    state_path = reference_set_dir(MODE, options) / SERVER_STATE_FILE

    def task(directory: Path, spec: ModelSpec) -> Task:
        """A cached model travels with its task (to be measured) unless the server state is missing."""
        needs_state = spec.role == "original" and not state_path.exists()
        state = None if needs_state else cached_state(directory, spec)
        shards = client_shards(data, setup.clients, preset.seed, spec.role == "original")
        return Task(
            TaskLabel(f"federated {spec.role}", (spec.index,), (spec.seed,)),
            train_federated_task,
            (preset, setup, data, spec, tuple(shards), rounds, state),
        )

    def keep_server_state(spec: ModelSpec, output: dict[str, Any]) -> None:
        if output["server"] is not None:
            atomic_torch_save(output["server"], state_path)

    refs = build_reference_set(
        preset,
        data,
        MODE,
        options,
        model_specs(preset),
        task,
        f"federated models ({preset.name}, {setup.clients} clients)",
        executor or LocalExecutor(device),
        progress,
        # The original is missing too when only the server state is: it is trained again.
        rebuild=lambda spec: spec.role == "original" and not state_path.exists(),
        on_output=keep_server_state,
    )
    return FederatedReferences(refs=refs, server_state=state_path)


def train_federated_task(
    preset: Preset,
    setup: Federated,
    data: EvalData,
    spec: ModelSpec,
    shards: tuple[torch.Tensor, ...],
    rounds: int,
    state: dict[str, torch.Tensor] | None,
    *,
    device: torch.device,
) -> dict[str, Any]:
    """Train one FedAvg model (or, given its weights, only measure it); what the driver stores.

    Touches no file, so it runs the same here or on a worker: the original's
    server state comes back under ``server`` (None for the others), the rest as
    ``references.write_reference_model`` stores it.
    """
    if state is not None:
        model = model_from_state(preset.arch, state, device)
        return {**model_output(model, data, device, None, None, trainer=TRAINER), "server": None}
    torch.manual_seed(spec.seed)
    model = build_model(preset.arch).to(device)
    started = time.perf_counter()
    server = fedavg_train(
        model,
        data.train.images,
        data.train.labels,
        list(shards),
        preset.retrain_recipe if spec.role == "retrained" else preset.original_recipe,
        rounds,
        setup.local_epochs,
        spec.seed,
        device,
        kept_rounds=setup.kept_rounds if spec.role == "original" else 0,
    )
    synchronize(device)
    seconds = time.perf_counter() - started
    output = model_output(model, data, device, cpu_state(model), seconds, trainer=TRAINER)
    return {**output, "server": server if spec.role == "original" else None}


def _average_states(
    states: list[dict[str, torch.Tensor]], weights: list[float], before: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Shard-size weighted mean of floating tensors; integer buffers (batch counters) from the largest client."""
    largest = max(range(len(weights)), key=lambda c: weights[c])
    averaged = {}
    for name, reference in before.items():
        if reference.is_floating_point():
            total = torch.zeros_like(reference, dtype=torch.float64)
            for state, weight in zip(states, weights):
                total += weight * state[name].to(torch.float64)
            averaged[name] = total.to(reference.dtype)
        else:
            averaged[name] = states[largest][name].clone()
    return averaged


SCENARIO = Federated
