"""Sequential forget requests: the forget set arrives in K parts and the model carries over.

A deployment does not unlearn once: requests arrive one after another and each
is served on the model the previous one produced. Here the forget set is cut
into K requests (whole persons when there are at least K of them, otherwise
examples), each of N runs serves them in order on one model, and after request
j the model is scored on everything served so far against models retrained
without it (the training set minus requests 1..j). After the last request those
are the preset's ordinary reference models, so only the intermediate ones are
trained here, cached like the others.

At request j the method gets, as the competition interface would: the retain
loader over the data still held (the retain set plus requests not yet served),
the forget loader over request j alone, and the usual validation loader. Retain
accuracy is always measured on the retain set proper, so the K scores compare.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from local_eval.data.roles import EvalData, load_eval_data
from local_eval.errors import EvalError
from local_eval.scoring.context import Context
from local_eval.scoring.executors import Executor, LocalExecutor
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import (
    ModelRecord,
    References,
    build_reference_set,
    build_references,
    model_specs,
    reference_options,
    reference_task,
)
from local_eval.scoring.scenarios import Prepared, Step

MODE = "requests"
DEFAULT_REQUESTS = 3


@dataclasses.dataclass(frozen=True)
class RequestPlan:
    """Which forget examples each request carries, and how they were grouped."""

    requests: tuple[torch.Tensor, ...]
    grouping: str

    def served(self, j: int) -> torch.Tensor:
        """Training indices of requests 0..j, sorted: the columns scored after request j."""
        return torch.cat(self.requests[: j + 1]).sort().values

    def unserved(self, j: int) -> torch.Tensor:
        """Forget examples still held after request j (part of the retain data until requested)."""
        rest = self.requests[j + 1 :]
        return torch.cat(rest).sort().values if rest else torch.zeros(0, dtype=torch.int64)


def plan_requests(data: EvalData, k: int, seed: int) -> RequestPlan:
    """Cut the forget set into ``k`` requests of similar size, whole persons when possible.

    Persons are shuffled with ``seed`` and each goes to the request with the
    fewest examples so far, since a deletion request is usually one person's.
    With fewer forget persons than requests the examples themselves are shuffled
    and dealt out.
    """
    forget = data.forget
    if k < 1:
        raise EvalError(f"--requests {k}: the number of requests must be at least 1.")
    if k > len(forget):
        raise EvalError(
            f"--requests {k}: the forget set has only {len(forget)} examples, so it cannot be "
            f"served as {k} requests; choose at most {len(forget)}."
        )
    generator = torch.Generator().manual_seed(seed)
    persons = np.asarray(data.split.person_ids)[forget.numpy()]
    unique = np.unique(persons)
    if len(unique) >= k:
        order = torch.randperm(len(unique), generator=generator).tolist()
        buckets: list[list[int]] = [[] for _ in range(k)]
        for position in order:
            members = forget[torch.as_tensor(persons == unique[position])].tolist()
            smallest = min(range(k), key=lambda b: (len(buckets[b]), b))
            buckets[smallest].extend(members)
        grouping = "persons"
    else:
        shuffled = forget[torch.randperm(len(forget), generator=generator)].tolist()
        buckets = [shuffled[b::k] for b in range(k)]
        grouping = "examples"
    requests = tuple(torch.as_tensor(sorted(b), dtype=torch.int64) for b in buckets)
    return RequestPlan(requests=requests, grouping=grouping)


def request_references(
    preset: Preset,
    k: int,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> tuple[RequestPlan, list[References]]:
    """The reference models after each request, training whatever is missing.

    ``References`` number j holds models retrained without requests 0..j, whose
    forget confidences are on ``plan.served(j)`` in that order. The last one is
    the preset's standard references, reordered to those columns. Every missing
    model is a task of ``executor`` (default: here, on ``device``).
    """
    executor = executor or LocalExecutor(device)
    data = data or load_eval_data(preset)
    plan = plan_requests(data, k, preset.seed)
    standard = build_references(preset, data=data, progress=progress, executor=executor)
    result = []
    for j in range(k - 1):
        result.append(_intermediate_references(preset, data, plan, j, standard, executor, progress))
    result.append(_reordered(standard, plan.served(k - 1)))
    return plan, result


@dataclasses.dataclass(frozen=True)
class Requests:
    """The forget set served as ``k`` requests in order on one model per run, scored after each."""

    k: int = DEFAULT_REQUESTS
    name = MODE
    companion = None

    @property
    def make_argument(self) -> str:
        return f"REQUESTS={self.k}"

    def prepare(self, preset: Preset, context: Context) -> Prepared:
        plan, refs = request_references(
            preset,
            self.k,
            device=context.device,
            progress=context.progress,
            executor=context.executor,
        )
        data = refs[-1].data
        steps = []
        for j, step_refs in enumerate(refs):
            held = torch.cat([data.retain, plan.unserved(j)]).sort().values
            steps.append(
                Step(
                    refs=step_refs,
                    given=dataclasses.replace(data, retain=held, forget=plan.requests[j]),
                    offered={"scenario": MODE, "request": j + 1, "requests": self.k},
                    label=f", request {j + 1} of {self.k}",
                    record={
                        "request": j + 1,
                        "request_size": len(plan.requests[j]),
                        "served": len(plan.served(j)),
                    },
                )
            )
        keys = [r.key for r in refs]
        return Prepared(
            steps=tuple(steps),
            record={
                "k": self.k,
                "grouping": plan.grouping,
                "request_sizes": [len(r) for r in plan.requests],
                "references_keys": keys,
            },
            reuse={"k": self.k, "references_keys": keys},
            keep_net_because=(
                "requests carry the `net` they passed in over to the next one, so modify `net` "
                "in place"
            ),
        )


def _intermediate_references(
    preset: Preset,
    data: EvalData,
    plan: RequestPlan,
    j: int,
    standard: References,
    executor: Executor,
    progress: bool,
) -> References:
    served = plan.served(j)
    train_indices = torch.cat([data.retain, plan.unserved(j)]).sort().values
    options = {**reference_options(preset), "mode": MODE, "served": served.tolist()}
    step_data = dataclasses.replace(data, forget=served)
    local_progress = progress and executor.name == "local"
    return build_reference_set(
        preset,
        step_data,
        MODE,
        options,
        model_specs(preset, original=False),
        lambda directory, spec: reference_task(
            preset, step_data, spec, train_indices, directory, local_progress
        ),
        f"request {j + 1} references ({preset.name})",
        executor,
        progress,
        original=standard.original,
    )


def _reordered(refs: References, served: torch.Tensor) -> References:
    """The standard references with forget confidences in ``served`` order (all of the forget set)."""
    position = {int(index): p for p, index in enumerate(refs.data.forget.tolist())}
    columns = torch.as_tensor(
        [position[int(index)] for index in served.tolist()], dtype=torch.int64
    )

    def pick(record: ModelRecord) -> ModelRecord:
        return dataclasses.replace(record, forget_confidences=record.forget_confidences[columns])

    return dataclasses.replace(
        refs,
        data=dataclasses.replace(refs.data, forget=served),
        original=pick(refs.original),
        retrained=tuple(pick(r) for r in refs.retrained),
    )


SCENARIO = Requests
