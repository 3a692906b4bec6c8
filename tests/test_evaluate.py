"""Specification of scoring a method: N runs from the original, the metric, the files it leaves."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from local_eval.boards.report import evaluate_method
from local_eval.errors import EvalError
from local_eval.scoring.context import make_context
from local_eval.scoring.metric import final_score
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import build_references
from local_eval.scoring.runner import score_models
from methods.base import BaseMethod
from methods.common import unpack_batch

SMOKE = get_preset("smoke")


def quiet(folder, echo=False):
    """Results under ``folder``, no progress bars and, unless ``echo``, no summary."""
    return make_context(results_dir=folder, progress=False, echo=echo)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def finetune_result(smoke_references, results_dir):
    return evaluate_method("finetune", "smoke", context=quiet(results_dir))


class StartRecorder(BaseMethod):
    """Records what each run starts from, then damages the model so a shared copy would show."""

    name = "start_recorder"
    starts: list[tuple[float, int]] = []

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        checksum = float(sum(p.detach().double().sum() for p in net.parameters()))
        StartRecorder.starts.append((checksum, torch.initial_seed()))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        net.eval()


class Failing(BaseMethod):
    name = "failing"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        raise ValueError("lr schedule is empty")


class ReturnsNewModel(BaseMethod):
    name = "returns_new_model"

    def run(self, net, retain_loader, forget_loader, val_loader):
        return torch.nn.Linear(1, 1)


class BatchFormatProbe(BaseMethod):
    name = "batch_format_probe"
    seen: list[type] = []

    def __init__(self, lr: float = 0.1, steps: int = 1) -> None:
        self.lr = lr
        self.steps = steps

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        batch = next(iter(retain_loader))
        BatchFormatProbe.seen.append(type(batch))
        inputs, _ = unpack_batch(batch, torch.device("cpu"))
        assert inputs.shape[0] <= SMOKE.batch_size
        net.eval()


def test_result_json_holds_every_figure(finetune_result, results_dir):
    stored = json.loads((results_dir / "smoke" / "finetune.json").read_text())
    for key in (
        "score",
        "forget_quality",
        "retain_ratio",
        "test_ratio",
        "time_fraction",
        "seconds_per_run",
        "retrain_seconds",
        "ceiling",
        "retrained",
        "original",
        "runs",
        "epsilons",
        "options",
        "hyperparameters",
        "versions",
        "device",
        "source_sha256",
    ):
        assert key in stored, key
    assert stored["score"] == finetune_result["score"]


def test_result_records_one_run_per_model(finetune_result):
    assert len(finetune_result["runs"]) == SMOKE.n_models
    assert len({run["seed"] for run in finetune_result["runs"]}) == SMOKE.n_models


def test_result_records_one_epsilon_per_forget_example(finetune_result):
    assert len(finetune_result["epsilons"]) == finetune_result["sizes"]["forget"]


def test_result_records_package_versions_and_options(finetune_result):
    assert torch.__version__.startswith(finetune_result["versions"]["torch"].split("+")[0])
    assert finetune_result["options"]["n_models"] == SMOKE.n_models
    assert finetune_result["options"]["dataset"] == SMOKE.dataset


def test_plot_is_written_as_png(finetune_result, results_dir):
    png = (results_dir / "smoke" / "finetune.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_score_is_the_metric_of_the_reported_figures(finetune_result):
    ratios = finetune_result["retain_ratio"] * finetune_result["test_ratio"]
    assert finetune_result["score"] == pytest.approx(finetune_result["forget_quality"] * ratios)


def test_retrain_ceiling_scores_the_second_half_of_retrained_models(finetune_result, smoke_references):
    refs = build_references(SMOKE, device=torch.device("cpu"), progress=False)
    ceiling = finetune_result["ceiling"]
    ra = statistics.mean(r.retain_accuracy for r in refs.ceiling)
    ta = statistics.mean(r.test_accuracy for r in refs.ceiling)
    ra_ref = statistics.mean(r.retain_accuracy for r in refs.reference)
    ta_ref = statistics.mean(r.test_accuracy for r in refs.reference)
    assert ceiling["retain_accuracy"] == pytest.approx(ra)
    assert ceiling["score"] == pytest.approx(
        final_score(ceiling["forget_quality"], ra, ra_ref, ta, ta_ref)
    )
    assert score_models(refs.ceiling, refs)["score"] == pytest.approx(ceiling["score"])


def test_time_fraction_is_run_cpu_time_over_a_retraining_timed_in_the_same_process(finetune_result):
    mean_run = statistics.mean(run["cpu_seconds"] for run in finetune_result["runs"])
    retraining = finetune_result["cost"]["retraining"]["process_seconds"]
    assert finetune_result["time_fraction_basis"] == "cpu"
    assert finetune_result["time_fraction"] == pytest.approx(mean_run / retraining)


def test_passes_are_counted_per_run_against_one_retraining(finetune_result):
    runs = finetune_result["runs"]
    retain = finetune_result["sizes"]["retain"]
    # finetune's default: whole epochs over the retain loader, one backward per batch.
    assert all(run["forward"] == run["backward"] > 0 for run in runs)
    assert all(run["forward"] % retain == 0 for run in runs)
    assert 0 < finetune_result["cost"]["passes_fraction"] < 1


def test_each_run_keeps_its_forget_confidences_for_intervals(finetune_result):
    n_forget = finetune_result["sizes"]["forget"]
    assert all(len(run["forget_confidences"]) == n_forget for run in finetune_result["runs"])


def test_summary_is_printed_on_one_screen(smoke_references, tmp_path, capsys):
    evaluate_method("finetune", "smoke", n_models=3, context=quiet(tmp_path, echo=True))
    printed = capsys.readouterr().out
    assert "finetune" in printed and "retrain ceiling" in printed
    assert len(printed.splitlines()) <= 25


def test_every_run_starts_from_a_fresh_original_with_its_own_seed(smoke_references, results_dir):
    StartRecorder.starts.clear()
    evaluate_method(StartRecorder, "smoke", context=quiet(results_dir))
    checksums = {round(checksum, 3) for checksum, _ in StartRecorder.starts}
    seeds = {seed for _, seed in StartRecorder.starts}
    assert len(StartRecorder.starts) == SMOKE.n_models
    assert len(checksums) == 1
    assert len(seeds) == SMOKE.n_models


def test_tuple_batch_format_gives_methods_tuples(smoke_references, results_dir):
    BatchFormatProbe.seen.clear()
    evaluate_method(
        BatchFormatProbe,
        "smoke",
        batch_format="tuple",
        n_models=3,
        context=quiet(results_dir),
    )
    assert set(BatchFormatProbe.seen) <= {tuple, list}


def test_competition_batches_are_dicts_by_default(smoke_references, results_dir):
    BatchFormatProbe.seen.clear()
    evaluate_method(
        BatchFormatProbe, "smoke", n_models=3, context=quiet(results_dir)
    )
    assert set(BatchFormatProbe.seen) == {dict}


def test_hyperparameters_from_the_command_line_take_the_default_type(smoke_references, results_dir):
    result = evaluate_method(
        BatchFormatProbe,
        "smoke",
        n_models=3,
        overrides={"lr": "0.01", "steps": "3"},
        context=quiet(results_dir),
    )
    assert result["hyperparameters"] == {"lr": 0.01, "steps": 3}


def test_unknown_hyperparameter_names_the_valid_ones(smoke_references, results_dir):
    with pytest.raises(EvalError, match="no hyperparameter 'momentum'.*lr, steps"):
        evaluate_method(BatchFormatProbe, "smoke", overrides={"momentum": 0.9})


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(EvalError, match="No method named 'nope'.*finetune"):
        evaluate_method("nope", "smoke")


def test_a_failing_method_is_reported_with_its_file_and_line(smoke_references, results_dir):
    with pytest.raises(
        EvalError, match=r"test_evaluate\.py line \d+.*ValueError: lr schedule is empty"
    ):
        evaluate_method(Failing, "smoke", n_models=3, context=quiet(results_dir, echo=True))


def test_a_method_returning_a_new_model_is_told_to_modify_net_in_place(smoke_references, results_dir):
    with pytest.raises(EvalError, match="in place"):
        evaluate_method(
            ReturnsNewModel, "smoke", n_models=3, context=quiet(results_dir, echo=True)
        )


def test_a_method_file_can_be_scored_before_it_is_registered(smoke_references, tmp_path):
    source = tmp_path / "idea.py"
    source.write_text(
        "from methods.base import BaseMethod\n\n\n"
        "class Idea(BaseMethod):\n"
        '    name = "idea"\n\n'
        "    def run(self, net, retain_loader, forget_loader, val_loader):\n"
        "        net.eval()\n"
    )
    result = evaluate_method(
        str(source), "smoke", n_models=3, context=quiet(tmp_path)
    )
    assert result["method"] == "idea"
    assert (tmp_path / "smoke" / "idea.json").exists()
