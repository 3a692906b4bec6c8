"""Packaging a method into Kaggle-ready folders, offline: what is written and what is refused."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from slugify import slugify as kaggle_slugify  # the CLI's own slug function

from builder.assets import assets_slug, collect_assets, kaggle_assets_dir
from builder.dataset_metadata import dataset_metadata
from builder.errors import BuildError
from builder.kaggle_cli import CommandOutput, KaggleCommandFailed, parse_kernel_version
from builder.kaggle_names import PLACEHOLDER_OWNER, find_owner
from builder.kernel_metadata import COMPETITION, kernel_metadata, kernel_slug, kernel_title
from builder.package import package
from builder.submit import submit
from builder.validate_submission import (
    SubmissionInvalid,
    validate_assets_folder,
    validate_kernel_metadata,
    validate_submission,
)
from tests.packaging_fixtures import (
    PlainMethod,
    dry_run_notebook,
    method_producing,
    notebook_for,
    record_dryrun,
    write_notebook,
)

ASSET_BYTES = {"teacher.pt": b"\x00teacher weights\x01", "mask.bin": b"mask"}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No real account leaks in: an empty HOME and none of the CLI's variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_API_TOKEN",
        "KAGGLE_CONFIG_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def never_run(args):
    raise AssertionError(f"the kaggle CLI must not run here: {args}")


def load_method_file(path: Path, source: str):
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"method_under_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Declared


DECLARED_SOURCE = """
from methods.base import BaseMethod

class Declared(BaseMethod):
    name = "declared"
    assets = ("data/saliency_mask.pt",)
"""


# --- names and metadata --------------------------------------------------------


def test_kernel_metadata_is_private_gpu_offline_with_the_competition_attached():
    meta = kernel_metadata("alice", "finetune", "finetune.ipynb", ["alice/unlearnkit-x-assets"])
    assert meta["id"] == "alice/finetune-unlearning"
    assert meta["code_file"] == "finetune.ipynb"
    assert (meta["language"], meta["kernel_type"]) == ("python", "notebook")
    assert meta["is_private"] is True and meta["enable_gpu"] is True
    assert meta["enable_internet"] is False
    assert meta["competition_sources"] == [COMPETITION]
    assert meta["dataset_sources"] == ["alice/unlearnkit-x-assets"]
    assert meta["machine_shape"] == "NvidiaTeslaT4"


@pytest.mark.parametrize("name", ["finetune", "my_method", "SCRUB_v2", "x" * 80])
def test_kernel_title_resolves_to_the_kernel_slug_as_kaggle_computes_it(name):
    title = kernel_title(name)
    assert len(title) >= 5
    assert kaggle_slugify(title) == kernel_slug(name)
    assert 5 <= len(kernel_slug(name)) <= 50


def test_unknown_accelerator_is_refused_with_the_choices():
    with pytest.raises(BuildError, match="gpu"):
        kernel_metadata("alice", "finetune", "finetune.ipynb", [], accelerator="tpu")


@pytest.mark.parametrize("name", ["ab", "bad_teacher", "a_very_long_method_name_" * 4])
def test_dataset_metadata_fits_the_cli_limits(name):
    meta = dataset_metadata("alice", name)
    owner, slug = meta["id"].split("/")
    assert owner == "alice"
    assert 6 <= len(slug) <= 50 and kaggle_slugify(slug) == slug
    assert 6 <= len(meta["title"]) <= 50
    assert len(meta["licenses"]) == 1 and meta["licenses"][0]["name"]


def test_assets_are_read_from_the_kaggle_input_mount_of_their_slug():
    assert (
        kaggle_assets_dir(assets_slug("bad_teacher"))
        == "/kaggle/input/unlearnkit-bad-teacher-assets"
    )


def test_assets_slug_does_not_depend_on_the_owner():
    assert (
        assets_slug("bad_teacher", "alice")
        == assets_slug("bad_teacher", "bob")
        == assets_slug("bad_teacher")
    )


# --- owner ---------------------------------------------------------------------


def test_owner_option_wins_over_environment_and_kaggle_json(monkeypatch, isolated_home):
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")
    (isolated_home / ".kaggle").mkdir()
    (isolated_home / ".kaggle" / "kaggle.json").write_text('{"username": "from-file", "key": "k"}')
    assert find_owner("from-option")[0] == "from-option"


def test_owner_comes_from_kaggle_username_before_kaggle_json(monkeypatch, isolated_home):
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")
    (isolated_home / ".kaggle").mkdir()
    (isolated_home / ".kaggle" / "kaggle.json").write_text('{"username": "from-file", "key": "k"}')
    assert find_owner() == ("from-env", "KAGGLE_USERNAME")


def test_owner_comes_from_kaggle_json_username(isolated_home):
    (isolated_home / ".kaggle").mkdir()
    (isolated_home / ".kaggle" / "kaggle.json").write_text('{"username": "from-file", "key": "k"}')
    assert find_owner() == ("from-file", "kaggle.json")


def test_without_an_owner_packaging_warns_about_the_placeholder(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    result = package(
        "plain_method", notebook_path=notebook, method_cls=PlainMethod, out_root=tmp_path / "out"
    )
    assert result.owner == PLACEHOLDER_OWNER
    assert any("KAGGLE_USERNAME" in str(w) and "placeholder" in str(w) for w in result.warnings)


def test_placeholder_owner_blocks_a_push(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    with pytest.raises(SubmissionInvalid, match="placeholder"):
        package(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            out_root=tmp_path / "out",
            for_push=True,
        )


# --- assets --------------------------------------------------------------------


def test_declared_assets_are_found_relative_to_the_method_file(tmp_path):
    (tmp_path / "pkg" / "data").mkdir(parents=True)
    (tmp_path / "pkg" / "data" / "saliency_mask.pt").write_bytes(b"mask bytes")
    cls = load_method_file(tmp_path / "pkg" / "declared.py", DECLARED_SOURCE)
    written = collect_assets(cls, tmp_path / "dest")
    assert [p.name for p in written] == ["saliency_mask.pt"]
    assert written[0].read_bytes() == b"mask bytes"


def test_missing_declared_asset_names_the_class_and_the_entry(tmp_path):
    (tmp_path / "pkg").mkdir()
    cls = load_method_file(tmp_path / "pkg" / "declared_missing.py", DECLARED_SOURCE)
    with pytest.raises(BuildError, match=r"Declared\.assets lists 'data/saliency_mask\.pt'"):
        collect_assets(cls, tmp_path / "dest")


def test_produced_assets_are_packaged_flat_beside_dataset_metadata(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
    )
    files = sorted(p.name for p in result.assets_dir.iterdir())
    assert files == sorted([*ASSET_BYTES, "dataset-metadata.json"])
    assert all((result.assets_dir / n).read_bytes() == b for n, b in ASSET_BYTES.items())
    meta = json.loads((result.assets_dir / "dataset-metadata.json").read_text())
    assert meta["id"] == f"alice/{assets_slug('producing')}" == result.dataset_id


def test_kernel_attaches_the_assets_dataset(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
    )
    meta = json.loads((result.kernel_dir / "kernel-metadata.json").read_text())
    assert meta["dataset_sources"] == [result.dataset_id]


def test_two_assets_with_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "w.pt").write_bytes(b"1")
    (tmp_path / "b" / "w.pt").write_bytes(b"2")
    cls = type(
        "Clash",
        (PlainMethod,),
        {"assets": (str(tmp_path / "a" / "w.pt"), str(tmp_path / "b" / "w.pt"))},
    )
    with pytest.raises(BuildError, match="both called 'w.pt'"):
        collect_assets(cls, tmp_path / "dest")


def test_build_assets_writing_a_folder_is_refused(tmp_path):
    def build_assets(dest_dir: str) -> None:
        (Path(dest_dir) / "nested").mkdir()

    cls = type(
        "Nested",
        (PlainMethod,),
        {"assets": ("nested",), "build_assets": staticmethod(build_assets)},
    )
    with pytest.raises(BuildError, match="wrote the folder"):
        collect_assets(cls, tmp_path / "dest")


def test_build_assets_must_write_exactly_the_listed_files(tmp_path):
    cls = method_producing("producing", {"teacher.pt": b"t", "stray.tmp": b"s"})
    cls.assets = ("teacher.pt", "mask.pt")
    with pytest.raises(BuildError, match=r"missing: mask\.pt\) \(not listed: stray\.tmp\)"):
        collect_assets(cls, tmp_path / "dest")


def test_build_assets_without_listed_assets_is_refused(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    cls.assets = ()
    with pytest.raises(BuildError, match="list the file names build_assets writes"):
        collect_assets(cls, tmp_path / "dest")


def test_method_without_assets_gets_no_assets_folder_and_no_dataset(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    (tmp_path / "out" / "plain_method" / "assets").mkdir()  # left from an earlier version
    result = package(
        "plain_method",
        notebook_path=notebook,
        method_cls=PlainMethod,
        owner="alice",
        out_root=tmp_path / "out",
    )
    assert result.assets_dir is None and result.dataset_id is None
    assert not (tmp_path / "out" / "plain_method" / "assets").exists()
    meta = json.loads((result.kernel_dir / "kernel-metadata.json").read_text())
    assert meta["dataset_sources"] == []


def test_kernel_folder_holds_the_notebook_byte_for_byte(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    result = package(
        "plain_method",
        notebook_path=notebook,
        method_cls=PlainMethod,
        owner="alice",
        out_root=tmp_path / "out",
    )
    assert sorted(p.name for p in result.kernel_dir.iterdir()) == [
        "kernel-metadata.json",
        "plain_method.ipynb",
    ]
    assert (result.kernel_dir / "plain_method.ipynb").read_bytes() == notebook.read_bytes()


def test_failed_packaging_leaves_the_previous_folders_untouched(tmp_path):
    out = tmp_path / "out"
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", out, with_assets=True)
    first = package(
        "producing", notebook_path=notebook, method_cls=cls, owner="alice", out_root=out
    )
    before = {p: p.read_bytes() for p in sorted(first.assets_dir.iterdir())}

    def broken(dest_dir: str) -> None:
        (Path(dest_dir) / "teacher.pt").write_bytes(b"half")
        raise RuntimeError("disk full")

    broken_cls = type(
        "Broken",
        (PlainMethod,),
        {"name": "producing", "assets": ("teacher.pt",), "build_assets": staticmethod(broken)},
    )
    with pytest.raises(BuildError, match="disk full"):
        package(
            "producing", notebook_path=notebook, method_cls=broken_cls, owner="alice", out_root=out
        )
    assert {p: p.read_bytes() for p in sorted(first.assets_dir.iterdir())} == before
    assert not [p for p in (out / "producing").iterdir() if p.name.startswith(".")]


# --- validation ----------------------------------------------------------------


def packaged_kernel(tmp_path) -> tuple[Path, dict]:
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
    )
    meta = json.loads((result.kernel_dir / "kernel-metadata.json").read_text())
    return result.kernel_dir, meta


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("enable_internet", True, "'enable_internet' is true; it must be false"),
        ("enable_gpu", "yes", "'enable_gpu' is 'yes'; write true or false"),
        ("is_private", "true", "'is_private' is 'true'; write true or false"),
        ("title", "abc", "'title' is 'abc'; it needs at least 5 characters"),
        ("code_file", "elsewhere.ipynb", "'code_file' names 'elsewhere.ipynb'"),
        ("id", "alice-producing-unlearning", "must have the form '<owner>/<slug>'"),
        ("id", "alice/ab", "slug 'ab'"),
        ("competition_sources", [], f"it must list '{COMPETITION}'"),
        ("dataset_sources", [], "lacks the assets dataset"),
        ("language", "r", '\'language\' is "r"; it must be "python"'),
    ],
)
def test_each_kernel_metadata_problem_is_one_line_naming_the_field(
    tmp_path, field, value, expected
):
    kernel_dir, meta = packaged_kernel(tmp_path)
    meta[field] = value
    (kernel_dir / "kernel-metadata.json").write_text(json.dumps(meta))
    problems = [
        p
        for p in validate_kernel_metadata(kernel_dir, f"alice/{assets_slug('producing')}")
        if p.blocking
    ]
    assert len(problems) == 1, problems
    assert expected in str(problems[0])
    assert "kernel-metadata.json" in str(problems[0]) and "\n" not in str(problems[0])


@pytest.mark.parametrize(
    "field", ["id", "title", "code_file", "enable_internet", "competition_sources"]
)
def test_missing_required_kernel_field_is_reported(tmp_path, field):
    kernel_dir, meta = packaged_kernel(tmp_path)
    del meta[field]
    (kernel_dir / "kernel-metadata.json").write_text(json.dumps(meta))
    problems = validate_kernel_metadata(kernel_dir, None)
    assert any(f"required field {field!r} is missing" in str(p) for p in problems)


def test_invalid_notebook_is_reported(tmp_path):
    kernel_dir, meta = packaged_kernel(tmp_path)
    (kernel_dir / meta["code_file"]).write_text('{"cells": "not a list"}')
    problems = validate_kernel_metadata(kernel_dir, None)
    assert any("is not a valid notebook" in str(p) for p in problems)


def test_assets_subfolder_is_reported(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
    )
    (result.assets_dir / "extra").mkdir()
    problems = validate_assets_folder(result.assets_dir)
    assert [str(p) for p in problems] == [
        f"error: {'out/producing/assets/extra'}: is a sub-folder; assets are uploaded flat, so move its files up or remove it"
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"licenses": [{"name": "CC0-1.0"}, {"name": "MIT"}]}, "give exactly one"),
        ({"title": "tiny"}, "'title' is 'tiny'; it needs 6-50 characters"),
        ({"title": "t" * 51}, "it needs 6-50 characters"),
        ({"id": "alice/short"}, "slug 'short'"),
    ],
)
def test_dataset_metadata_problems_are_reported(tmp_path, change, expected):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
    )
    path = result.assets_dir / "dataset-metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    problems = validate_assets_folder(result.assets_dir)
    assert len(problems) == 1 and expected in str(problems[0])


def test_notebook_must_read_assets_where_kaggle_mounts_them(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = write_notebook(tmp_path / "out" / "producing" / "producing.ipynb", assets_dir="")
    record_dryrun(notebook)
    with pytest.raises(
        SubmissionInvalid,
        match="ASSETS_DIR is '' but the assets dataset is mounted at '/kaggle/input/unlearnkit-producing-assets'",
    ):
        package(
            "producing",
            notebook_path=notebook,
            method_cls=cls,
            owner="alice",
            out_root=tmp_path / "out",
        )


def test_missing_dryrun_is_reported(tmp_path):
    notebook = notebook_for("plain_method", tmp_path / "out", with_assets=False)
    with pytest.raises(
        SubmissionInvalid, match="dryrun.json: is missing: the notebook was never dry-run"
    ):
        package(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            owner="alice",
            out_root=tmp_path / "out",
        )


def test_missing_dryrun_is_only_a_warning_when_not_required(tmp_path):
    notebook = notebook_for("plain_method", tmp_path / "out", with_assets=False)
    result = package(
        "plain_method",
        notebook_path=notebook,
        method_cls=PlainMethod,
        owner="alice",
        out_root=tmp_path / "out",
        require_dryrun=False,
    )
    assert any("never dry-run" in str(w) for w in result.warnings)


def test_stale_dryrun_is_reported(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    write_notebook(notebook, assets_dir="/changed/after/the/dry-run")
    with pytest.raises(SubmissionInvalid, match="is stale: .*changed after the dry-run"):
        package(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            owner="alice",
            out_root=tmp_path / "out",
        )


def test_failed_dryrun_is_reported(tmp_path):
    notebook = notebook_for("plain_method", tmp_path / "out", with_assets=False)
    record_dryrun(notebook, ok=False)
    with pytest.raises(SubmissionInvalid, match="the last dry-run .* failed"):
        package(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            owner="alice",
            out_root=tmp_path / "out",
        )


def test_all_blocking_problems_are_listed_together(tmp_path):
    kernel_dir, meta = packaged_kernel(tmp_path)
    meta.update(enable_internet=True, title="abc")
    (kernel_dir / "kernel-metadata.json").write_text(json.dumps(meta))
    problems = validate_submission(
        kernel_dir, None, None, tmp_path / "out" / "producing" / "dryrun.json"
    )
    assert {"enable_internet", "title"} <= {
        f for p in problems for f in ("enable_internet", "title") if f in str(p)
    }


def test_credential_file_in_a_pushed_folder_is_reported(tmp_path):
    kernel_dir, _ = packaged_kernel(tmp_path)
    (kernel_dir / "kaggle.json").write_text("{}")
    problems = validate_submission(
        kernel_dir, None, None, tmp_path / "out" / "producing" / "dryrun.json"
    )
    assert any("credential file" in str(p) for p in problems)


# --- credentials never copied ----------------------------------------------------


def test_no_credential_value_or_file_appears_under_submissions(
    tmp_path, monkeypatch, isolated_home
):
    secret = "kaggle-secret-key-5f2c9d"
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", secret)
    (isolated_home / ".kaggle").mkdir()
    (isolated_home / ".kaggle" / "kaggle.json").write_text(
        json.dumps({"username": "alice", "key": secret})
    )
    out = tmp_path / "out"
    cls = method_producing("producing", ASSET_BYTES)
    submit(
        "producing",
        notebook_path=dry_run_notebook("producing", out, with_assets=True),
        method_cls=cls,
        out_root=out,
        runner=never_run,
        echo=lambda line: None,
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if p.name in ("kaggle.json", "access_token", "credentials.json")]
    assert not [p for p in files if secret.encode() in p.read_bytes()]


# --- submit without pushing ------------------------------------------------------


def test_submit_without_push_prints_the_commands_and_runs_nothing(tmp_path):
    lines: list[str] = []
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = submit(
        "producing",
        notebook_path=notebook,
        method_cls=cls,
        owner="alice",
        out_root=tmp_path / "out",
        runner=never_run,
        echo=lines.append,
        message="first try",
    )
    printed = "\n".join(lines)
    assert "kaggle datasets create -p out/producing/assets" in printed
    assert (
        "kaggle datasets version -p out/producing/assets -m 'first try: assets update'" in printed
    )
    assert "kaggle kernels push -p out/producing/kernel" in printed
    assert (
        f"kaggle competitions submit {COMPETITION} -k alice/producing-unlearning -v '<N>' -f submission.zip -m 'first try'"
        in printed
    )
    assert result.pushed is False and result.kernel_version is None


def test_push_without_credentials_names_every_way_to_provide_them(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    with pytest.raises(BuildError) as caught:
        submit(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            owner="alice",
            out_root=tmp_path / "out",
            push=True,
            runner=never_run,
        )
    message = str(caught.value)
    for needed in ("KAGGLE_USERNAME", "KAGGLE_KEY", "~/.kaggle/kaggle.json", "KAGGLE_API_TOKEN"):
        assert needed in message
    assert "\n" not in message


# --- reading the CLI's output ------------------------------------------------------


def test_kernel_version_is_parsed_from_the_push_output():
    output = "Kernel version 17 successfully pushed.  Please check progress at https://www.kaggle.com/code/a/b\n"
    assert parse_kernel_version(output) == 17


@pytest.mark.parametrize(
    "output, expected",
    [
        (
            "Kernel push error: Notebook not found\n",
            "Kaggle refused the notebook: Kernel push error: Notebook not found",
        ),
        (
            "The following are not valid dataset sources and could not be added to the kernel: ['a/b']\n"
            "Kernel version 3 successfully pushed.  Please check progress at x\n",
            "pushed without its data",
        ),
        (
            "Kernel version successfully pushed.  Please check progress at x\n",
            "did not report a version number",
        ),
    ],
)
def test_push_output_without_a_clean_version_is_a_failure(output, expected):
    with pytest.raises(KaggleCommandFailed, match=expected):
        parse_kernel_version(output)


def test_push_failure_with_exit_zero_stops_before_submitting(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    calls: list[list[str]] = []

    def runner(args):
        calls.append(list(args))
        return CommandOutput(0, "Kernel push error: Kernel slug already used by another user\n")

    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    with pytest.raises(KaggleCommandFailed, match="Kernel slug already used"):
        submit(
            "plain_method",
            notebook_path=notebook,
            method_cls=PlainMethod,
            out_root=tmp_path / "out",
            push=True,
            run_submit=True,
            runner=runner,
            echo=lambda line: None,
        )
    assert [c[:2] for c in calls] == [["kernels", "push"]]


def test_placeholder_owner_is_reported_once_for_all_ids(tmp_path):
    cls = method_producing("producing", ASSET_BYTES)
    notebook = dry_run_notebook("producing", tmp_path / "out", with_assets=True)
    result = package("producing", notebook_path=notebook, method_cls=cls, out_root=tmp_path / "out")
    assert len([w for w in result.warnings if "placeholder" in str(w)]) == 1


def test_dataset_not_listed_yet_reads_as_missing_not_as_a_failure():
    from builder.kaggle_cli import dataset_status

    def runner(args):
        return CommandOutput(1, "404 Client Error: Not Found for url: http://x\n")

    assert dataset_status(runner, "alice/unlearnkit-x-assets") == "missing"


def test_packaged_files_get_the_usual_permissions_not_the_temp_files_private_ones(tmp_path):
    notebook = dry_run_notebook("plain_method", tmp_path / "out", with_assets=False)
    result = package(
        "plain_method",
        notebook_path=notebook,
        method_cls=PlainMethod,
        owner="alice",
        out_root=tmp_path / "out",
    )
    umask = os.umask(0)
    os.umask(umask)
    assert result.kernel_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (result.kernel_dir / "kernel-metadata.json").stat().st_mode & 0o777 == 0o666 & ~umask
