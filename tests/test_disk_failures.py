"""An unwritable folder or a full disk: one clear line, and nothing lost or half-written."""

from __future__ import annotations

import pytest

import builder.notebook
from builder import atomic_files
from builder.errors import BuildError
from builder.notebook import build_notebook
from builder.submit import package
from cli.main import main
from tests.disk_faults import disk_full_after, leftovers, refuse_under
from tests.packaging_fixtures import PlainMethod, dry_run_notebook


@pytest.fixture
def built(tmp_path):
    """A notebook already in ``submissions/``: what a failed rebuild must not destroy."""
    result = build_notebook("finetune", out_root=tmp_path / "submissions")
    return result.path, result.path.read_bytes()


def test_unwritable_submissions_folder_is_one_line_and_keeps_the_notebook(
    built, tmp_path, monkeypatch
):
    path, before = built
    refuse_under(tmp_path / "submissions", monkeypatch)
    with pytest.raises(BuildError) as caught:
        build_notebook("finetune", out_root=tmp_path / "submissions")
    message = str(caught.value)
    assert "\n" not in message
    assert "Permission denied" in message and str(path.parent) in message
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_full_disk_while_writing_a_notebook_keeps_the_previous_one(built, tmp_path, monkeypatch):
    path, before = built
    real_fdopen = atomic_files.os.fdopen

    class FillsUp:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fdopen", lambda *a, **k: FillsUp(real_fdopen(*a, **k)))
    with pytest.raises(BuildError) as caught:
        build_notebook("finetune", out_root=tmp_path / "submissions")
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "No space left on device" in message
    assert "free some disk space" in message
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_full_disk_while_packaging_keeps_the_previous_kernel_folder(tmp_path, monkeypatch):
    root = tmp_path / "subs"
    notebook = dry_run_notebook("plain_method", root, with_assets=False)
    first = package(
        "plain_method", notebook_path=notebook, method_cls=PlainMethod, out_root=root,
        echo=lambda line: None,
    )  # fmt: skip
    kept = {p.name: p.read_bytes() for p in first.kernel_dir.iterdir()}
    monkeypatch.setattr(atomic_files.shutil, "copyfile", disk_full_after(b"{half"))
    with pytest.raises(BuildError) as caught:
        package(
            "plain_method", notebook_path=notebook, method_cls=PlainMethod, out_root=root,
            echo=lambda line: None,
        )  # fmt: skip
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message
    assert {p.name: p.read_bytes() for p in first.kernel_dir.iterdir()} == kept
    assert leftovers(root) == []


def test_command_line_reports_an_unwritable_submissions_folder_in_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(builder.notebook, "SUBMISSIONS_DIR", tmp_path / "submissions")
    refuse_under(tmp_path / "submissions", monkeypatch)
    code = main(["notebook", "finetune"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: cannot write")
    assert "Traceback" not in err
    assert not (tmp_path / "submissions").exists()


def test_command_line_reports_a_full_disk_while_writing_the_mock_model_in_one_line(
    tmp_path, monkeypatch, capsys
):
    import torch

    monkeypatch.setattr(torch, "save", disk_full_after(b"PK\x03\x04 half"))
    out = tmp_path / "mock"
    code = main(
        ["mock", "--out", str(out), "--dataset", "synthetic", "--n-train", "20", "--n-val", "2",
         "--mock-epochs", "1"]
    )  # fmt: skip
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line.lower()]  # beside tqdm's bar
    assert line.startswith("error: cannot write") and "No space left on device" in line
    assert list(tmp_path.iterdir()) == []  # neither the mock nor its temporary sibling
