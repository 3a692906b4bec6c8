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
a file whose path is put in the environment variable
``methods.ftsu.SERVER_STATE_ENV`` (``UNLEARNKIT_SERVER_STATE``) while the method
runs; its content is described by ``methods.ftsu.load_server_state``. Methods
that do not look for it run as in the standard setting.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import json
import math
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from local_eval import evaluate as scoring
from local_eval.cache import (
    atomic_torch_save,
    atomic_write_json,
    cache_dir,
    options_key,
    repo_root,
)
from local_eval.cache_integrity import cache_folder, entry_lock
from local_eval.devices import default_device
from local_eval.errors import EvalError
from local_eval.evaluate import (
    evaluate_method,
    resolve_hyperparameters,
    resolve_method,
    resolve_preset,
    score_models,
)
from local_eval.leaderboard import (
    CEILING_LABEL,
    board_notes,
    choose_methods,
    gather_results,
    reusable_result,
    say,
    stored_if_current,
    write_board,
)
from local_eval.leaderboard_plots import plot_federated_leaderboard
from local_eval.models import build_model
from local_eval.presets import Preset, model_options
from local_eval.references import (
    CACHE_FORMAT,
    EvalData,
    References,
    build_once,
    entry_ready,
    load_eval_data,
    load_model,
    load_record,
    measure_model,
    metrics_path,
    retrained_seed,
    weights_path,
)
from local_eval.report import score_table
from local_eval.training import Recipe, train_model
from methods.base import BaseMethod
from methods.ftsu import SERVER_STATE_ENV, SERVER_STATE_FORMAT

MODE = "federated"
RESULT_FORMAT = 1
DEFAULT_CLIENTS = 4
SERVER_STATE_FILE = "server_state.pt"
FORGET_CLIENT = 0


@dataclasses.dataclass(frozen=True)
class FederatedSetup:
    """How FedAvg is run; ``rounds=None`` means as many rounds as the preset's training epochs."""

    clients: int = DEFAULT_CLIENTS
    rounds: int | None = None
    local_epochs: int = 1
    kept_rounds: int = 3

    def resolved_rounds(self, preset: Preset) -> int:
        return self.rounds if self.rounds is not None else preset.retrain_recipe.epochs


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

    The returned dict is the server-state content ``methods.ftsu.load_server_state``
    reads (empty update lists when ``kept_rounds`` is 0).
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
            local = _copy_model(model, device)
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
    setup: FederatedSetup
    server_state: Path


def federated_references(
    preset: Preset,
    setup: FederatedSetup,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
) -> FederatedReferences:
    """Train whatever is missing (cached one file per model, like the standard references) and load all."""
    device = device or default_device()
    data = data or load_eval_data(preset)
    rounds = setup.resolved_rounds(preset)
    if rounds < 1 or setup.local_epochs < 1 or setup.kept_rounds < 0:
        raise EvalError(
            f"Federated setting rounds={rounds}, local_epochs={setup.local_epochs}, "
            f"kept_rounds={setup.kept_rounds}: rounds and local epochs must be at least 1 and "
            "kept rounds at least 0."
        )
    options = {
        "cache_format": CACHE_FORMAT,
        **model_options(preset),
        "mode": MODE,
        "clients": setup.clients,
        "rounds": rounds,
        "local_epochs": setup.local_epochs,
        "kept_rounds": setup.kept_rounds,
    }
    directory = Path(cache_dir()) / MODE / options_key(options)
    cache_folder(directory)
    if not (directory / "manifest.json").exists():
        atomic_write_json(directory / "manifest.json", options)
    jobs = [("original", 0, preset.seed, True)]
    jobs += [("retrained", i, retrained_seed(preset, i), False) for i in range(2 * preset.n_models)]
    missing = [job for job in jobs if not entry_ready(directory, job[0], job[1])]
    if not (directory / SERVER_STATE_FILE).exists() and jobs[0] not in missing:
        missing.insert(0, jobs[0])
    started = time.perf_counter()
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(missing),
        desc=f"federated models ({preset.name}, {setup.clients} clients)",
        unit="model",
        disable=not progress,
    )
    with bar:
        for role, index, seed, with_forget in missing:
            shards = client_shards(data, setup.clients, preset.seed, with_forget)
            build = partial(
                _build_federated,
                preset, setup, data, directory, role, index, seed, shards, rounds, device,
            )  # fmt: skip
            if entry_ready(directory, role, index):  # only the server state is missing
                with entry_lock(metrics_path(directory, role, index)):
                    build()
            else:
                build_once(directory, role, index, build)
            bar.update(1)
    refs = References(
        preset=preset,
        key=directory.name,
        directory=directory,
        data=data,
        original=load_record(directory, "original", 0),
        retrained=tuple(load_record(directory, *job[:2]) for job in jobs[1:]),
        seconds_this_build=time.perf_counter() - started,
    )
    return FederatedReferences(refs=refs, setup=setup, server_state=directory / SERVER_STATE_FILE)


@contextlib.contextmanager
def server_state_given(path: Path) -> Iterator[None]:
    """Point ``UNLEARNKIT_SERVER_STATE`` at the server's file while methods run, then restore it."""
    previous = os.environ.get(SERVER_STATE_ENV)
    os.environ[SERVER_STATE_ENV] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SERVER_STATE_ENV, None)
        else:
            os.environ[SERVER_STATE_ENV] = previous


def evaluate_federated(
    method: str | type[BaseMethod],
    preset: str | Preset = "cpu",
    k: int = DEFAULT_CLIENTS,
    overrides: dict[str, Any] | None = None,
    *,
    rounds: int | None = None,
    local_epochs: int = 1,
    kept_rounds: int = 3,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    progress: bool = True,
    echo: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Score ``method`` run on the server of a ``k``-client FedAvg federation.

    ``overrides`` are the method's hyperparameters (the CLI's ``--set``);
    ``options`` are preset fields (``n_models``, ...). Writes
    ``results/<preset>-federated/<method>.json`` and returns its content.
    """
    method_cls = resolve_method(method)
    preset = resolve_preset(preset, options, None)
    device = torch.device(device) if device is not None else default_device()
    params = resolve_hyperparameters(method_cls, overrides)
    setup = FederatedSetup(
        clients=k, rounds=rounds, local_epochs=local_epochs, kept_rounds=kept_rounds
    )
    started = time.perf_counter()
    federation = federated_references(preset, setup, device=device, progress=progress)
    refs = federation.refs
    with server_state_given(federation.server_state):
        runs, confidences = scoring.run_method(method_cls, params, refs, device, progress)
    row = scoring.score_runs(
        confidences,
        scoring.stack_confidences(refs.reference),
        [r["retain_accuracy"] for r in runs],
        [r["test_accuracy"] for r in runs],
        [r["forget_accuracy"] for r in runs],
        refs,
    )
    seconds_per_run = sum(r["seconds"] for r in runs) / len(runs)
    json_path = result_path(results_dir, preset.name, method_cls.name)
    result = {
        "format": RESULT_FORMAT,
        "mode": MODE,
        **scoring.method_identity(method_cls, params, preset),
        "federation": {
            **dataclasses.asdict(setup),
            "rounds": setup.resolved_rounds(preset),
            "forget_client": FORGET_CLIENT,
        },
        "references_key": refs.key,
        "n_models": preset.n_models,
        **row,
        "seconds_per_run": seconds_per_run,
        "retrain_seconds": refs.retrain_seconds,
        "time_fraction": seconds_per_run / refs.retrain_seconds,
        "ceiling": score_models(refs.ceiling, refs),
        "retrained": scoring.mean_accuracies(refs.reference),
        "original": scoring.record_accuracies(refs.original),
        "runs": runs,
        **scoring.provenance(device, started),
        "json_path": str(json_path),
    }
    atomic_write_json(json_path, result)
    if echo:
        print(format_federated_summary(result))
    return result


def result_path(results_dir: Path | str | None, preset: str, method: str) -> Path:
    """``results/<preset>-federated/<method>.json``."""
    folder = Path(results_dir) if results_dir is not None else scoring.default_results_dir()
    return folder / f"{preset}-{MODE}" / f"{method}.json"


def format_federated_summary(result: dict[str, Any]) -> str:
    fed, opts = result["federation"], result["options"]
    lines = [
        f"{result['method']} on preset {result['preset']}, federated: {fed['clients']} clients, "
        f"{fed['rounds']} FedAvg rounds of {fed['local_epochs']} local epoch(s), forget set on client "
        f"{fed['forget_client']}; {opts['dataset']}, {opts['arch']}, N={result['n_models']}, {result['device']}",
        "",
        *score_table(result),
        "",
        f"  time per run {result['seconds_per_run']:.2f} s = {result['time_fraction']:.3f} of one "
        f"FedAvg retraining ({result['retrain_seconds']:.1f} s)",
        f"  wrote {result['json_path']}",
    ]
    return "\n".join(lines)


def leaderboard_federated(
    preset: str | Preset = "cpu",
    k: int = DEFAULT_CLIENTS,
    *,
    method_names: list[str] | None = None,
    with_standard: bool = True,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    progress: bool = True,
    echo: bool = True,
    **options: Any,
) -> Path:
    """Score (or reuse) methods in the federated setting and write ``docs/leaderboard-<preset>-federated.md``.

    With ``with_standard`` each method's standard-setting score at the same N sits
    beside it: reused from ``results/<preset>/`` when that result is current,
    otherwise scored into ``results/<preset>-federated/standard/`` (so the
    standard leaderboard's own results are never overwritten at another N).
    """
    preset = resolve_preset(preset, options, None)
    device = torch.device(device) if device is not None else default_device()
    chosen, left_out = choose_methods(method_names)
    setup = FederatedSetup(clients=k)
    federation = federated_references(preset, setup, device=device, progress=progress)
    results_root = Path(results_dir) if results_dir is not None else scoring.default_results_dir()
    standard_dir = results_root / f"{preset.name}-{MODE}" / "standard"
    rows, failures = gather_results(
        chosen,
        lambda method_cls: (
            None if rerun else reusable_federated_result(method_cls, preset, federation, results_root)
        ),
        lambda method_cls: evaluate_federated(
            method_cls, preset, k, device=device, results_dir=results_root, progress=progress, echo=echo
        ),
        lambda name: result_path(results_root, preset.name, name),
        f"scoring federated ({k} clients) on preset {preset.name} (N={preset.n_models})",
        echo,
    )
    standard = {}
    for name in [row["method"] for row in rows] if with_standard else []:
        try:
            standard[name] = _standard_result(
                chosen[name], preset, results_root, standard_dir, device, rerun, progress, echo
            )
        except EvalError as exc:
            say(echo, f"{name}: failed: {exc}")
            failures[name] = str(exc)
    refs = federation.refs
    ceiling = score_models(refs.ceiling, refs)
    text = render_federated_leaderboard(
        preset, setup, rows, standard, ceiling, failures, refs, left_out
    )
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{preset.name}-{MODE}"
    plot_federated_leaderboard(
        docs / f"{stem}.png",
        f"Federated ({k} clients): preset {preset.name}, N = {preset.n_models}",
        rows,
        standard,
        ceiling["score"],
    )
    return write_board(
        docs, stem, text, preset, f"FEDERATED={k}", list(chosen) if left_out else None, echo
    )


def reusable_federated_result(
    method_cls: type[BaseMethod], preset: Preset, federation: FederatedReferences, results_dir: Path
) -> dict[str, Any] | None:
    """A stored federated result computed exactly as a fresh run would be, else None."""
    return stored_if_current(
        result_path(results_dir, preset.name, method_cls.name),
        method_cls,
        preset,
        format=RESULT_FORMAT,
        references_key=federation.refs.key,
    )


def render_federated_leaderboard(
    preset: Preset,
    setup: FederatedSetup,
    results: list[dict[str, Any]],
    standard: dict[str, dict[str, Any]],
    ceiling: dict[str, Any],
    failures: dict[str, str],
    refs: References,
    left_out: list[str] | None = None,
) -> str:
    """Markdown: the federation, then methods by federated score with their standard score beside it."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    data = refs.data
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    lines = [
        f"# Leaderboard: preset `{preset.name}`, federated ({setup.clients} clients)",
        "",
        f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} unlearned models per "
        f"method against N retrained ones. {setup.clients} clients hold disjoint shards of the "
        f"{len(data.retain) + len(data.forget)} training images; client {FORGET_CLIENT} also holds the "
        f"whole forget set ({len(data.forget)} images, {preset.forget_mode}). The original and the "
        f"retrained models are trained with FedAvg ({setup.resolved_rounds(preset)} rounds of "
        f"{setup.local_epochs} local epoch(s)); methods run on the server, and those that ask for it "
        f"(`ftsu`) get the last {setup.kept_rounds} rounds' aggregated updates and client "
        f"{FORGET_CLIENT}'s contributions. Generated {today} on {', '.join(devices)}; one FedAvg "
        f"retraining takes {refs.retrain_seconds:.1f} s.",
        "",
        "Score = F x retain ratio x test ratio (the competition's metric) against the FedAvg retrained "
        "models; *standard* is the same method's score in the ordinary centralised setting at the "
        "same N (blank when not scored). The retrain ceiling scores the other N FedAvg retrained "
        "models as if they were a method.",
        "",
        "| rank | method | score | F | retain ratio | test ratio | time fraction | standard score |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    ceiling_row = {**ceiling, "method": CEILING_LABEL, "time_fraction": 1.0}
    rank = 0
    for row in sorted([*results, ceiling_row], key=lambda r: r["score"], reverse=True):
        is_ceiling = row["method"] == CEILING_LABEL
        rank += 0 if is_ceiling else 1
        other = standard.get(row["method"])
        lines.append(
            f"| {'' if is_ceiling else rank} | {row['method']} | {row['score']:.4f} | "
            f"{row['forget_quality']:.4f} | {row['retain_ratio']:.3f} | {row['test_ratio']:.3f} | "
            f"{row['time_fraction']:.3f} | {'' if other is None else format(other['score'], '.4f')} |"
        )
    lines += board_notes(
        failures, left_out, "Registered but not scored in this mode (left out with `--methods`)"
    )
    return "\n".join(lines) + "\n"


def _standard_result(
    method_cls: type[BaseMethod],
    preset: Preset,
    results_root: Path,
    standard_dir: Path,
    device: torch.device,
    rerun: bool,
    progress: bool,
    echo: bool,
) -> dict[str, Any]:
    if not rerun:
        for folder in (results_root, standard_dir):
            stored = reusable_result(method_cls, preset, folder)
            if stored is not None:
                return stored
    return evaluate_method(
        method_cls, preset, device=device, results_dir=standard_dir, progress=progress, echo=echo
    )


def _build_federated(
    preset: Preset,
    setup: FederatedSetup,
    data: EvalData,
    directory: Path,
    role: str,
    index: int,
    seed: int,
    shards: list[torch.Tensor],
    rounds: int,
    device: torch.device,
) -> None:
    """Train (or finish measuring) one FedAvg model; files in the standard references' layout."""
    weights = weights_path(directory, role, index)
    timing = directory / f"{weights.stem}.timing.json"
    state_path = directory / SERVER_STATE_FILE
    needs_state = role == "original" and not state_path.exists()
    if weights.exists() and not needs_state:
        model = load_model(preset.arch, weights, device)
        train_seconds = (
            json.loads(timing.read_text())["train_seconds"] if timing.exists() else float("nan")
        )
    else:
        torch.manual_seed(seed)
        model = build_model(preset.arch).to(device)
        started = time.perf_counter()
        server = fedavg_train(
            model,
            data.train.images,
            data.train.labels,
            shards,
            preset.retrain_recipe if role == "retrained" else preset.original_recipe,
            rounds,
            setup.local_epochs,
            seed,
            device,
            kept_rounds=setup.kept_rounds if role == "original" else 0,
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - started
        atomic_write_json(timing, {"train_seconds": train_seconds})
        if role == "original":
            atomic_torch_save(server, state_path)
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    measured = measure_model(model, data, device)
    atomic_write_json(
        metrics_path(directory, role, index),
        {
            "role": role,
            "index": index,
            "seed": seed,
            "weights": weights.name,
            "forget_confidences": measured["forget_confidences"].tolist(),
            "retain_accuracy": measured["retain_accuracy"],
            "test_accuracy": measured["test_accuracy"],
            "forget_accuracy": measured["forget_accuracy"],
            "train_seconds": train_seconds,
            "device": str(device),
        },
    )


def _copy_model(model: nn.Module, device: torch.device) -> nn.Module:
    """A client's copy of the global model: same class, same weights, its own parameters."""
    return copy.deepcopy(model).to(device)


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

