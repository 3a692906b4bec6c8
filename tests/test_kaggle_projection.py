"""The Kaggle time projection: one call's FLOPs, charged per loader, scaled, divided by peak throughput."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from local_eval.errors import EvalError
from local_eval.replica.kaggle_projection import (
    BUDGET_SECONDS,
    KAGGLE_CALLS,
    KAGGLE_GPUS,
    CallFlops,
    count_call_flops,
    parse_sizes,
    project,
    summary,
)
from tests.equivalence import tiny_model


def loaders():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(24, 3, 32, 32, generator=generator) * 255
    labels = torch.randint(0, 10, (24,), generator=generator)
    return {
        "retain": DataLoader(TensorDataset(images[:16], labels[:16]), batch_size=8),
        "forget": DataLoader(TensorDataset(images[16:20], labels[16:20]), batch_size=4),
        "validation": DataLoader(TensorDataset(images[20:], labels[20:]), batch_size=4),
    }


def forward_on_forget_only(net, retain_loader, forget_loader, val_loader):
    with torch.no_grad():
        for inputs, _ in forget_loader:
            net(inputs)


def test_work_is_charged_to_the_loader_whose_batches_were_processed():
    net = tiny_model()
    record = count_call_flops(forward_on_forget_only, net, loaders(), net.state_dict())
    assert record["by_split"]["forget"] > 0
    assert record["by_split"]["retain"] == record["by_split"]["validation"] == record["by_split"]["other"] == 0


def test_counting_leaves_the_loaders_classes_as_they_were():
    net, given = tiny_model(), loaders()
    count_call_flops(forward_on_forget_only, net, given, net.state_dict())
    assert {type(loader) for loader in given.values()} == {DataLoader}


def test_scaling_multiplies_each_loaders_work_by_its_size_ratio():
    flops = CallFlops({"retain": 100.0, "forget": 10.0, "validation": 0.0, "other": 5.0},
                      {"retain": 10, "forget": 2, "validation": 4})
    assert flops.scaled({"retain": 30, "forget": 2, "validation": 400}) == 300.0 + 10.0 + 5.0


def test_projection_divides_by_peak_throughput_at_the_stated_efficiency():
    flops = CallFlops({"retain": 1e12}, {"retain": 1, "forget": 1, "validation": 1})
    by_gpu = {p.gpu: p.seconds_per_call for p in project(flops, None, 0.5)}
    assert by_gpu == {gpu: 1e12 / (peak * 0.5) for gpu, peak in KAGGLE_GPUS.items()}


def test_projection_past_eight_hours_warns_with_the_per_call_figure():
    per_call = 2 * BUDGET_SECONDS / KAGGLE_CALLS  # twice the budget on either GPU
    flops = CallFlops({"retain": per_call * KAGGLE_GPUS["P100"] * 0.3}, {"retain": 1, "forget": 1, "validation": 1})
    warnings = [line for line in summary(flops, None, 0.3).splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert f"{per_call:.3g} s per call against a budget of about 56 s" in warnings[0]


def test_projection_within_budget_does_not_warn():
    flops = CallFlops({"retain": 1e12}, {"retain": 1, "forget": 1, "validation": 1})
    assert "warning" not in summary(flops, None, 0.3)


def test_sizes_option_rejects_anything_but_three_positive_numbers():
    assert parse_sizes("28000,600,3500") == {"retain": 28000, "forget": 600, "validation": 3500}
    with pytest.raises(EvalError, match="RETAIN,FORGET,VALIDATION"):
        parse_sizes("28000,600")
