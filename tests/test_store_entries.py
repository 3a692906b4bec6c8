"""A broken reference cache is reported in one line, kept aside and rebuilt; one builder per entry."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from local_eval.errors import EvalError
from local_eval.scoring import references
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import build_references, references_dir
from local_eval.scoring.training import Recipe
from local_eval.store import entries, files
from local_eval.store.entries import HASH_KEY, entry_lock, file_sha256
from tests.disk_faults import disk_full_after, refuse_under

ONE_EPOCH = Recipe(epochs=1, lr=0.05, batch_size=32, augment=False)
CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_preset():
    """Seven one-epoch models on synthetic data."""
    return dataclasses.replace(
        get_preset("smoke", {"n_models": 3, "train_size": 120, "val_size": 16, "test_size": 32}),
        original_recipe=ONE_EPOCH,
        retrain_recipe=ONE_EPOCH,
    )


@pytest.fixture(scope="module")
def built_cache(tiny_preset, tmp_path_factory):
    """One finished cache, copied into each test's own cache folder."""
    folder = tmp_path_factory.mktemp("built-references")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(files.CACHE_ENV, str(folder))
        build_references(tiny_preset, device=CPU, progress=False)
        return folder, references_dir(tiny_preset).relative_to(folder)


@pytest.fixture
def refs_dir(built_cache, tmp_path, monkeypatch):
    """This test's copy of the finished cache: the entry folder."""
    source, relative = built_cache
    monkeypatch.setenv(files.CACHE_ENV, str(tmp_path / "cache"))
    shutil.copytree(source, tmp_path / "cache")
    return tmp_path / "cache" / relative


@pytest.fixture
def trained(monkeypatch):
    """Seeds of the models trained during the test."""
    seeds = []
    real = references.train_model

    def counting(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "train_model", counting)
    return seeds


def cache_lines(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.startswith("cache:")]


def aside(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.corrupt-*"))


def test_records_carry_the_sha256_of_their_weights(refs_dir):
    for record in refs_dir.glob("*_*.json"):
        if record.name.endswith(".timing.json"):
            continue
        stored = json.loads(record.read_text())
        assert stored[HASH_KEY] == file_sha256(refs_dir / stored["weights"])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="cut-mid-write"),
        pytest.param(lambda text: "\udcff\x00garbage", id="binary"),
        pytest.param(lambda text: "[1, 2]", id="not-an-object"),
        pytest.param(
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "seed"}),
            id="missing-key",
        ),
    ],
)
def test_broken_record_is_reported_in_one_line_kept_aside_and_rebuilt_from_its_weights(
    refs_dir, tiny_preset, trained, capsys, damage
):
    record = refs_dir / "retrained_0001.json"
    before = json.loads(record.read_text())
    broken = damage(record.read_text())
    record.write_bytes(broken.encode("utf-8", "surrogateescape"))
    refs = build_references(tiny_preset, device=CPU, progress=False)
    lines = cache_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(record) in lines[0], lines
    (kept,) = aside(refs_dir, record.name)
    assert kept.read_bytes() == broken.encode("utf-8", "surrogateescape")
    assert trained == []  # the weights were intact: measured again, not retrained
    assert refs.retrained[1].forget_confidences.tolist() == before["forget_confidences"]


def test_truncated_weights_beside_an_intact_record_are_kept_aside_and_retrained(
    refs_dir, tiny_preset, trained, capsys
):
    weights = refs_dir / "retrained_0002.pt"
    data = weights.read_bytes()
    state = torch.load(weights, weights_only=True)
    weights.write_bytes(data[: len(data) // 3])
    refs = build_references(tiny_preset, device=CPU, progress=False)
    lines = cache_lines(capsys.readouterr().err)
    assert any(str(weights) in line and "sha256" in line for line in lines), lines
    assert all("\n" not in line for line in lines)
    (kept,) = aside(refs_dir, weights.name)
    assert kept.read_bytes() == data[: len(data) // 3]
    assert trained == [references.retrained_seed(tiny_preset, 2)]
    rebuilt = torch.load(refs.retrained[2].path, weights_only=True)
    assert all(torch.equal(rebuilt[k], state[k]) for k in state)  # deterministic on the CPU


def test_record_without_a_hash_gets_one_on_first_load_instead_of_a_rebuild(
    refs_dir, tiny_preset, trained, capsys
):
    record = refs_dir / "retrained_0000.json"
    legacy = json.loads(record.read_text())
    del legacy[HASH_KEY]
    record.write_text(json.dumps(legacy))
    build_references(tiny_preset, device=CPU, progress=False)
    assert trained == []
    assert cache_lines(capsys.readouterr().err) == []
    assert json.loads(record.read_text())[HASH_KEY] == file_sha256(refs_dir / "retrained_0000.pt")


def test_record_without_a_hash_and_truncated_weights_is_rebuilt(
    refs_dir, tiny_preset, trained, capsys
):
    record, weights = refs_dir / "original.json", refs_dir / "original.pt"
    legacy = json.loads(record.read_text())
    del legacy[HASH_KEY]
    record.write_text(json.dumps(legacy))
    weights.write_bytes(weights.read_bytes()[:1000])
    build_references(tiny_preset, device=CPU, progress=False)
    assert trained == [tiny_preset.seed]
    assert aside(refs_dir, weights.name) and aside(refs_dir, record.name)
    assert any(str(weights) in line for line in cache_lines(capsys.readouterr().err))


def test_full_disk_during_a_checkpoint_write_leaves_no_partial_file_and_the_next_run_resumes(
    refs_dir, tiny_preset, monkeypatch
):
    target = refs_dir / "retrained_0003.pt"
    target.unlink()
    (refs_dir / "retrained_0003.json").unlink()
    real_save = torch.save
    monkeypatch.setattr(files.torch, "save", disk_full_after(b"PK\x03\x04 half"))
    with pytest.raises(EvalError) as caught:
        build_references(tiny_preset, device=CPU, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert str(target) in message and "No space left on device" in message
    assert "free some disk space" in message
    assert not target.exists()
    assert [p.name for p in refs_dir.glob(".*.tmp")] == []
    monkeypatch.setattr(files.torch, "save", real_save)
    refs = build_references(tiny_preset, device=CPU, progress=False)  # the lock was released
    assert refs.retrained[3].path == target and target.exists()


def test_unwritable_cache_folder_is_one_line_naming_it(tiny_preset, tmp_path, monkeypatch):
    locked = tmp_path / "readonly-cache"
    monkeypatch.setenv(files.CACHE_ENV, str(locked))
    refuse_under(locked, monkeypatch)
    with pytest.raises(EvalError) as caught:
        build_references(tiny_preset, device=CPU, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert str(locked) in message and "Permission denied" in message
    assert files.CACHE_ENV in message
    assert not locked.exists()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from local_eval.store.entries import entry_lock
    with entry_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(600)
    """
)

def build_once(record: Path, weights: Path, build) -> dict:
    """An entry built the way reference builds do it: claimed if missing, written with its hash,
    checked, released; then its verified record, whichever process built it."""
    with ExitStack() as stack:
        claims = entries.claim_missing([("m", record, weights)], ("seed",), stack)
        if claims:
            build()
            stored = {**json.loads(record.read_text()), HASH_KEY: file_sha256(weights)}
            files.atomic_write_json(record, stored)
            entries.finish_entry(record, weights, ("seed",))
            claims["m"].close()
    return entries.load_verified(record, weights, ("seed",))


BUILDER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import torch
    from local_eval.store.files import atomic_torch_save, atomic_write_json
    from tests.test_store_entries import build_once
    record, weights, log, go = map(Path, sys.argv[1:5])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)

    def build():
        with log.open("a") as handle:
            handle.write(f"{os.getpid()}\\n")
        time.sleep(2.0)
        atomic_torch_save({"w": torch.arange(4.0)}, weights)
        atomic_write_json(record, {"seed": 7, "weights": weights.name})

    print(json.dumps(build_once(record, weights, build)), flush=True)
    """
)


def python(code: str, *args: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_asking_for_one_entry_build_it_once_and_read_the_same_record(tmp_path):
    record, weights, log, go = (tmp_path / n for n in ("m.json", "m.pt", "builds.log", "go"))
    workers = [python(BUILDER, record, weights, log, go) for _ in range(2)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    go.touch()
    answers = [json.loads(worker.communicate(timeout=120)[0].strip()) for worker in workers]
    assert len(log.read_text().split()) == 1
    assert answers[0] == answers[1]
    assert answers[0][HASH_KEY] == file_sha256(weights)
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == []


def test_a_driver_waits_for_an_entry_another_driver_claimed_and_does_not_train_it_again(
    refs_dir, tiny_preset, trained, monkeypatch
):
    record, weights = refs_dir / "retrained_0001.json", refs_dir / "retrained_0001.pt"
    finished = {path: path.read_bytes() for path in (record, weights)}
    record.unlink()
    weights.unlink()
    other = ExitStack()
    other.enter_context(entry_lock(record))  # another driver claimed it and is training it
    said = []

    def other_driver_writes_it(message):
        said.append(message)
        for path, data in finished.items():
            path.write_bytes(data)
        other.close()

    monkeypatch.setattr(entries, "report", other_driver_writes_it)
    refs = build_references(tiny_preset, device=CPU, progress=False)
    assert len(said) == 1 and "waiting for" in said[0]
    assert trained == []
    assert refs.retrained[1].forget_confidences.tolist() == json.loads(finished[record])[
        "forget_confidences"
    ]


def test_a_killed_builder_leaves_no_claim_behind(tmp_path):
    record, weights = tmp_path / "m.json", tmp_path / "m.pt"
    holder = python(HOLDER, record)
    assert holder.stdout.readline().strip() == "locked"
    import fcntl

    probe = os.open(entries.lock_path(record), os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel with its holder
    os.close(probe)

    def build():
        files.atomic_torch_save({"w": torch.zeros(1)}, weights)
        files.atomic_write_json(record, {"seed": 1})

    started = time.monotonic()
    assert build_once(record, weights, build)["seed"] == 1
    assert time.monotonic() - started < 30


def test_waiting_for_another_builder_is_said_in_one_line(tmp_path, capsys, monkeypatch):
    record = tmp_path / "m.json"
    holder = python(HOLDER, record)
    assert holder.stdout.readline().strip() == "locked"
    try:
        monkeypatch.setattr(entries.fcntl, "flock", _flock_that_kills(holder))
        with entry_lock(record):
            pass
    finally:
        holder.kill()
        holder.wait()
    (line,) = cache_lines(capsys.readouterr().err)
    assert f"process {holder.pid}" in line and "m" in line


def _flock_that_kills(holder: subprocess.Popen):
    """The real flock, except that blocking on the holder first ends the holder."""
    import fcntl

    real = fcntl.flock

    def flock(fd, operation):
        if not operation & fcntl.LOCK_NB:
            holder.kill()
            holder.wait()
        return real(fd, operation)

    return flock
