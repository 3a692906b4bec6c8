"""Train several small reference models at once, as one vectorised ensemble.

One small model per task leaves a GPU (or a wide CPU) mostly idle: each step is
a few tiny kernels. Stacking M models' weights (``torch.func.stack_module_state``)
and mapping one functional forward over them (``vmap`` of ``functional_call``)
turns M small steps into one M-times-wider step.

What stays the same as :func:`local_eval.scoring.training.train_model` with the member's
seed: the initial weights (``torch.manual_seed(seed)`` then ``build_model``), the
shuffling and augmentation (each member draws from its own generator, in the
same order), the batches, the loss, SGD with momentum, weight decay and the
one-cycle schedule (all elementwise, so stacking changes nothing), and
BatchNorm's batch statistics and running averages (buffers are mapped with the
weights and updated in place, per member). What differs: the batched kernels
(a convolution over M stacked weights) add and multiply in another order, so a
member matches the single-model training up to float rounding after a few steps
(a test checks 1e-4), not bit for bit. Over a whole recipe that rounding grows as
any does in SGD on unnormalised 0..255 inputs: on the smoke preset a member ends
as far from its single-model twin as the single trainer ends from itself with one
first-layer weight scaled by 1 + 1e-7, i.e. it is another draw of the same
retrained-model distribution, which is all the metric uses. Per-model checkpoints and records
are written exactly as for single models (``trainer`` says which made them).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from local_eval.devices import synchronize
from local_eval.errors import EvalError
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import EvalData, ModelSpec, cpu_state, model_output, recipe_for
from local_eval.scoring.training import Recipe, _as_index, _batches, augment_batch


def train_ensemble_task(
    preset: Preset,
    data: EvalData,
    specs: tuple[ModelSpec, ...],
    indices: torch.Tensor,
    progress: bool,
    *,
    device: torch.device,
) -> list[dict[str, Any]]:
    """The task behind ``--ensemble M``: train ``specs`` together, return one output each.

    ``train_seconds`` of each model is its share of the ensemble's time, so the
    retrain time a method is compared with stays a per-model figure.
    """
    roles = {spec.role for spec in specs}
    if len(roles) != 1:
        raise EvalError(f"An ensemble trains models of one role, got {sorted(roles)}.")
    models = []
    for spec in specs:
        torch.manual_seed(spec.seed)
        models.append(build_model(preset.arch).to(device))
    started = time.perf_counter()
    train_ensemble(
        models,
        data.train.images,
        data.train.labels,
        indices,
        recipe_for(preset, specs[0].role),
        [spec.seed for spec in specs],
        device,
        progress,
    )
    synchronize(device)
    share = (time.perf_counter() - started) / len(models)
    trainer = f"ensemble of {len(models)}"
    return [
        model_output(model, data, device, cpu_state(model), share, trainer) for model in models
    ]


def ensemble_problems(recipe: Recipe) -> list[str]:
    """What in ``recipe`` an ensemble cannot train as ``train_model`` would; empty if nothing.

    The vmapped step reproduces the project's recipe only (SGD, one-cycle, no class
    weights, last epoch kept); the organisers' Adam and best-validation checkpoint
    are not vectorised.
    """
    expected = {"optimizer": "sgd", "schedule": "onecycle", "class_weights": None, "checkpoint": "last"}
    return [
        f"{name}={getattr(recipe, name)!r} (an ensemble trains {name}={value!r} only)"
        for name, value in expected.items()
        if getattr(recipe, name) != value
    ]


def train_ensemble(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    indices,
    recipe: Recipe,
    seeds: Sequence[int],
    device: torch.device | str,
    progress: bool = False,
) -> list[nn.Module]:
    """Train each of ``models`` as ``train_model`` would with its seed, all in one vmapped step.

    The models must share one architecture. They are changed in place and
    returned on ``device`` in eval mode.
    """
    device = torch.device(device)
    if len(models) != len(seeds):
        raise EvalError(f"An ensemble needs one seed per model: {len(models)} models, {len(seeds)} seeds.")
    problems = ensemble_problems(recipe)
    if problems:
        raise EvalError(f"Cannot train this recipe as an ensemble: {'; '.join(problems)}.")
    index = _as_index(indices, len(labels))
    if recipe.epochs < 1:
        raise EvalError(f"Training needs at least one epoch, got epochs={recipe.epochs}.")
    if len(index) < 2:
        raise EvalError(f"Training needs at least 2 images (BatchNorm), got {len(index)}.")
    for model in models:
        model.to(device).train()
    params, buffers = stack_module_state(list(models))
    template = copy.deepcopy(models[0]).to("meta").train()

    def forward(p, b, x):
        return functional_call(template, (p, b), (x,))

    batched_forward = vmap(forward)
    optimizer = torch.optim.SGD(
        params.values(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.momentum > 0,
    )
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    steps_per_epoch = len(_batches(index, recipe.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
    )
    epochs = tqdm(range(recipe.epochs), desc="ensemble training", unit="epoch", disable=not progress)
    for _ in epochs:
        orders = [index[torch.randperm(len(index), generator=g)] for g in generators]
        member_batches = [_batches(order, recipe.batch_size) for order in orders]
        for step in range(steps_per_epoch):
            inputs, targets = [], []
            for batches, generator in zip(member_batches, generators):
                batch = batches[step]
                x = images[batch].to(device).float()
                inputs.append(augment_batch(x, generator) if recipe.augment else x)
                targets.append(labels[batch].to(device))
            logits = batched_forward(params, buffers, torch.stack(inputs))
            stacked_targets = torch.stack(targets)
            # Each member's own mean loss, summed: member i's gradient is exactly its own.
            loss = (
                F.cross_entropy(logits.flatten(0, 1), stacked_targets.flatten(), reduction="none")
                .view(stacked_targets.shape)
                .mean(dim=1)
                .sum()
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        epochs.set_postfix(loss=f"{float(loss.detach()) / len(models):.3f}")
    with torch.no_grad():
        for i, model in enumerate(models):
            state = {name: value[i] for name, value in {**params, **buffers}.items()}
            model.load_state_dict(state)
    return [model.eval() for model in models]
