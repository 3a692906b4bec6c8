"""The installed ``kaggle`` CLI, driven by ``submit``, against a loopback stub of Kaggle's API.

These tests check what actually goes over the wire -- metadata fields, uploaded
bytes, the version passed to the submission -- and that the CLI's misleading
exit status 0 on a server-side refusal is still reported as a failure.
"""

from __future__ import annotations

import json
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.assets import assets_slug
from builder.errors import BuildError
from builder.kaggle_cli import CommandOutput, KaggleCommandFailed, kaggle_executable, push_kernel
from builder.kernel_metadata import COMPETITION, kernel_slug
from builder.submit import Waits, submit
from tests.kaggle_stub_server import (
    CLEARED_VARIABLES,
    STUB_KEY,
    STUB_USERNAME,
    Reply,
    StubKaggle,
    basic_auth,
    error_reply,
)
from tests.packaging_fixtures import PlainMethod, dry_run_notebook, method_producing

ASSET_BYTES = {"teacher.pt": b"\x00\x01teacher-weights\xff", "mask.bin": b"saliency mask"}
NO_WAIT = Waits(poll_s=0.0, sleep=lambda seconds: None)


def _require_cli() -> None:
    try:
        kaggle_executable()
    except BuildError as missing:
        pytest.skip(str(missing))


@contextmanager
def running_stub(home: Path, workdir: Path):
    """A stub, with this process's environment pointing the CLI at it for the block."""
    _require_cli()
    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch, StubKaggle() as server:
        for name in CLEARED_VARIABLES:
            patch.delenv(name, raising=False)
        for name, value in server.cli_environment(home).items():
            patch.setenv(name, value)
        patch.chdir(workdir)
        yield server
    assert not [r for r in server.requests if r.method == "CONNECT"], (
        "the CLI tried to leave loopback"
    )


@pytest.fixture
def stub(tmp_path):
    with running_stub(tmp_path / "home", tmp_path) as server:
        yield server


def push(method_name, cls, root: Path, with_assets, **options):
    notebook = dry_run_notebook(method_name, root / "subs", with_assets=with_assets)
    lines: list[str] = []
    result = submit(
        method_name,
        notebook_path=notebook,
        method_cls=cls,
        out_root=root / "subs",
        push=True,
        echo=lines.append,
        waits=NO_WAIT,
        **options,
    )
    return result, lines


@dataclass
class FirstPush:
    """One push of a method with assets to an account that has never seen it."""

    stub: StubKaggle
    result: object
    lines: list[str]
    root: Path


@pytest.fixture(scope="module")
def first_push(tmp_path_factory):
    """Shared by the tests that only read what one push sent: each CLI call takes seconds."""
    root = tmp_path_factory.mktemp("first_push")
    with running_stub(root / "home", root) as server:
        server.kernel_version = 37
        cls = method_producing("producing", ASSET_BYTES)
        result, lines = push("producing", cls, root, with_assets=True, message="v37")
    return FirstPush(server, result, lines, root)


def test_dataset_create_sends_the_metadata(first_push):
    assert first_push.result.dataset_action == "create"
    (create,) = first_push.stub.calls("CreateDataset")
    assert create["ownerSlug"] == STUB_USERNAME
    assert create["slug"] == assets_slug("producing")
    assert create["title"] == "unlearnkit producing assets"
    assert create["licenseName"] == "CC0-1.0"
    assert create["isPrivate"] is True


def test_dataset_create_uploads_every_asset_file_and_nothing_else(first_push):
    stub = first_push.stub
    started = {c["name"]: c["contentLength"] for c in stub.calls("StartBlobUpload")}
    assert started == {name: len(data) for name, data in ASSET_BYTES.items()}
    assert sorted(stub.uploads.values()) == sorted(ASSET_BYTES.values())
    (create,) = stub.calls("CreateDataset")
    assert sorted(f["token"] for f in create["files"]) == sorted(stub.uploads)


def test_kernel_push_sends_its_metadata(first_push):
    (save,) = first_push.stub.calls("SaveKernel")
    assert save["slug"] == f"{STUB_USERNAME}/{kernel_slug('producing')}"
    assert save["newTitle"] == "producing unlearning"
    assert (save["language"], save["kernelType"]) == ("python", "notebook")
    assert save["isPrivate"] is True and save["enableGpu"] is True
    assert save["enableInternet"] is False
    assert save["competitionDataSources"] == [COMPETITION]
    assert save["datasetDataSources"] == [f"{STUB_USERNAME}/{assets_slug('producing')}"]
    assert save["machineShape"] == "NvidiaTeslaT4"


def test_kernel_push_sends_the_packaged_notebook(first_push):
    (save,) = first_push.stub.calls("SaveKernel")
    pushed = json.loads(save["text"])
    local = json.loads((first_push.root / "subs" / "producing" / "producing.ipynb").read_text())
    assert [c["source"] for c in pushed["cells"]] == ["".join(c["source"]) for c in local["cells"]]
    assert (
        "ASSETS_DIR = '/kaggle/input/unlearnkit-producing-assets'" in pushed["cells"][0]["source"]
    )


def test_kernel_title_matches_its_id_for_the_cli(first_push):
    assert any("Kernel version 37 successfully pushed" in line for line in first_push.lines)
    assert not [line for line in first_push.lines if "does not resolve to the specified id" in line]


def test_the_cli_authenticates_with_the_given_fake_credentials(first_push):
    api_calls = [r for r in first_push.stub.requests if r.method == "POST"]
    assert api_calls
    assert {r.headers.get("Authorization") for r in api_calls} == {
        basic_auth(STUB_USERNAME, STUB_KEY)
    }


def test_version_number_is_read_from_the_cli_output(first_push):
    result = first_push.result
    assert result.kernel_version == 37
    assert shlex.split(result.submit_command)[1:] == [
        "competitions", "submit", COMPETITION, "-k", f"{STUB_USERNAME}/producing-unlearning",
        "-v", "37", "-f", "submission.zip", "-m", "v37",
    ]  # fmt: skip
    assert any(result.submit_command in line for line in first_push.lines)
    assert first_push.stub.calls("CreateCodeSubmission") == []


def test_no_credential_reaches_the_pushed_folders_or_the_uploads(first_push):
    files = [p for p in (first_push.root / "subs").rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if STUB_KEY.encode() in p.read_bytes()]
    assert not [p for p in files if p.name == "kaggle.json"]
    sent = b"".join(first_push.stub.uploads.values()) + b"".join(
        r.body for r in first_push.stub.requests
    )
    assert STUB_KEY.encode() not in sent


def test_existing_dataset_gets_a_new_version_instead(stub, tmp_path):
    stub.existing_datasets.add(f"{STUB_USERNAME}/{assets_slug('producing')}")
    cls = method_producing("producing", ASSET_BYTES)
    result, _ = push("producing", cls, tmp_path, with_assets=True, message="second try")
    assert result.dataset_action == "version"
    assert stub.calls("CreateDataset") == []
    (version,) = stub.calls("CreateDatasetVersion")
    assert (version["ownerSlug"], version["datasetSlug"]) == (
        STUB_USERNAME,
        assets_slug("producing"),
    )
    assert version["body"]["versionNotes"] == "second try: assets update"
    assert len(version["body"]["files"]) == len(ASSET_BYTES)


def test_kernel_is_pushed_only_after_the_dataset_is_ready(stub, tmp_path):
    stub.existing_datasets.add(f"{STUB_USERNAME}/{assets_slug('producing')}")
    stub.dataset_statuses = ["READY", "BLOBS_RECEIVED", "READY"]
    cls = method_producing("producing", ASSET_BYTES)
    push("producing", cls, tmp_path, with_assets=True)
    names = stub.rpc_names()
    assert names.count("GetDatasetStatus") == 3
    last_status = max(i for i, n in enumerate(names) if n == "GetDatasetStatus")
    assert names.index("SaveKernel") > last_status


def test_server_push_error_is_a_failure_although_the_cli_exits_zero(stub, tmp_path):
    stub.push_error = "Notebook slug is already taken"
    with pytest.raises(
        KaggleCommandFailed, match="Kernel push error: Notebook slug is already taken"
    ):
        push("plain_method", PlainMethod, tmp_path, with_assets=False, run_submit=True)
    assert stub.rpc_names() == ["SaveKernel"]


def test_run_submit_waits_for_the_run_then_submits_the_pushed_version(stub, tmp_path):
    stub.kernel_version = 5
    stub.kernel_statuses = ["RUNNING", "COMPLETE"]
    result, _ = push(
        "plain_method", PlainMethod, tmp_path, with_assets=False, run_submit=True, message="final"
    )
    assert result.submitted is True
    assert stub.rpc_names().count("GetKernelSessionStatus") == 2
    (submission,) = stub.calls("CreateCodeSubmission")
    assert submission["competitionName"] == COMPETITION
    assert (submission["kernelOwner"], submission["kernelSlug"]) == (
        STUB_USERNAME,
        "plain-method-unlearning",
    )
    assert submission["kernelVersion"] == 5
    assert submission["fileName"] == "submission.zip"
    assert submission["submissionDescription"] == "final"


def test_failed_run_is_not_submitted(stub, tmp_path):
    stub.kernel_statuses = ["ERROR"]
    with pytest.raises(KaggleCommandFailed, match="ended with status 'error'"):
        push("plain_method", PlainMethod, tmp_path, with_assets=False, run_submit=True)
    assert stub.calls("CreateCodeSubmission") == []


def test_missing_credentials_stop_before_any_request(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(BuildError, match="KAGGLE_USERNAME and KAGGLE_KEY"):
        push("plain_method", PlainMethod, tmp_path, with_assets=False, owner="alice")
    assert stub.requests == []


# --- the server refuses, fails or does not answer: one line each, nothing lost -------------

RULES = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"


class Sleeps(list):
    """A ``Waits.sleep`` that records the pauses instead of taking them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def refused(root: Path, with_assets: bool = False, **options) -> tuple[str, list[str]]:
    """Push and return the one-line failure and the lines shown before it."""
    lines: list[str] = []
    name, cls = ("producing", method_producing("producing", ASSET_BYTES)) if with_assets else (
        "plain_method", PlainMethod
    )
    notebook = dry_run_notebook(name, root / "subs", with_assets=with_assets)
    with pytest.raises(KaggleCommandFailed) as caught:
        submit(
            name, notebook_path=notebook, method_cls=cls, out_root=root / "subs", push=True,
            echo=lines.append, waits=options.pop("waits", NO_WAIT), **options,
        )  # fmt: skip
    message = str(caught.value)
    assert "\n" not in message, message
    assert (root / "subs" / name / "kernel" / f"{name}.ipynb").is_file()  # nothing lost
    assert not [p for p in (root / "subs").rglob("*") if p.name.endswith((".tmp", ".old"))]
    return message, lines


def test_rejected_credentials_are_one_line_naming_the_fix(stub, tmp_path):
    stub.script("SaveKernel", error_reply(401, "Unauthenticated"))
    message, lines = refused(tmp_path)
    assert "did not accept your credentials" in message and "KAGGLE_USERNAME" in message
    assert not [line for line in lines if "Authentication required" in line]


def test_forbidden_push_points_at_the_competition_rules(stub, tmp_path):
    stub.script("SaveKernel", error_reply(403, "Permission denied"))
    message, _ = refused(tmp_path)
    assert "(403: Permission denied)" in message and RULES in message


def test_push_naming_an_unknown_source_is_a_404_naming_the_competition(stub, tmp_path):
    stub.script("SaveKernel", error_reply(404, "Competition not found"))
    message, _ = refused(tmp_path)
    assert "(404: Competition not found)" in message and COMPETITION in message


def test_submission_to_a_competition_whose_rules_are_not_accepted_is_one_line(stub, tmp_path):
    stub.script("CreateCodeSubmission", error_reply(404, "Competition not found"))
    message, _ = refused(tmp_path, run_submit=True)
    assert "competitions submit" in message and RULES in message


def test_status_of_an_unknown_kernel_says_to_push_it_first(stub, tmp_path):
    stub.script("GetKernelSessionStatus", error_reply(404, "Notebook not found"))
    message, _ = refused(tmp_path, run_submit=True)
    assert "has no notebook" in message and "make submit PUSH=1" in message


def test_conflicting_push_is_one_line_with_the_servers_reason(stub, tmp_path):
    stub.script("SaveKernel", error_reply(409, "The notebook is being saved by another request"))
    message, _ = refused(tmp_path)
    assert "kernels push" in message and "being saved by another request" in message


def test_dataset_created_but_not_yet_listed_is_versioned_not_created_twice(stub, tmp_path):
    ref = f"{STUB_USERNAME}/{assets_slug('producing')}"
    stub.existing_datasets.add(ref)
    stub.script("GetDatasetStatus", error_reply(404, f"dataset {ref} not found"))
    stub.script("CreateDataset", error_reply(409, "The dataset slug is already in use"))
    result, _ = push("producing", method_producing("producing", ASSET_BYTES), tmp_path, True)
    assert result.dataset_action == "version"
    assert len(stub.calls("CreateDatasetVersion")) == 1
    assert result.kernel_version == 1


def test_rate_limited_call_is_retried_with_growing_pauses(stub, tmp_path):
    stub.script("SaveKernel", error_reply(429, "Too many requests"), error_reply(429, "Too many"))
    sleeps = Sleeps()
    notebook = dry_run_notebook("plain_method", tmp_path / "subs", with_assets=False)
    result = submit(
        "plain_method", notebook_path=notebook, method_cls=PlainMethod, out_root=tmp_path / "subs",
        push=True, echo=lambda line: None, waits=Waits(poll_s=0.0, sleep=sleeps),
    )  # fmt: skip
    assert result.kernel_version == 1
    assert stub.rpc_names().count("SaveKernel") == 3
    assert sleeps == [5.0, 10.0]


def test_rate_limiting_that_does_not_stop_gives_up_after_bounded_retries(stub, tmp_path):
    stub.script("SaveKernel", *[error_reply(429, "Too many requests")] * 6)
    sleeps = Sleeps()
    message, _ = refused(tmp_path, waits=Waits(poll_s=0.0, sleep=sleeps))
    assert "rate limited (429) after 4 tries" in message
    assert sleeps == [5.0, 10.0, 20.0]
    assert stub.rpc_names().count("SaveKernel") == 4


def test_server_error_says_it_is_kaggles_side_and_that_a_rerun_resumes(stub, tmp_path):
    stub.script("SaveKernel", error_reply(503, "Service unavailable"))
    message, _ = refused(tmp_path)
    assert "Kaggle's servers failed" in message and "resumes" in message


def test_outage_page_instead_of_json_is_one_line(stub, tmp_path):
    page = Reply(200, body=b"<html><body>Service unavailable</body></html>", content_type="text/html")
    stub.script("GetDatasetStatus", page)
    message, _ = refused(tmp_path, with_assets=True)
    assert "was not JSON" in message and "datasets status" in message


def test_server_that_does_not_answer_is_a_timeout_not_a_hang(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_KAGGLE_TIMEOUT", "3")
    stub.script("SaveKernel", Reply(200, {}, delay_s=60))
    message, _ = refused(tmp_path)
    assert "no answer from Kaggle within 3 s" in message and "UNLEARNKIT_KAGGLE_TIMEOUT" in message


def test_cli_missing_from_path_is_one_line_before_any_request(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    notebook = dry_run_notebook("plain_method", tmp_path / "subs", with_assets=False)
    with pytest.raises(BuildError) as caught:
        submit(
            "plain_method", notebook_path=notebook, method_cls=PlainMethod,
            out_root=tmp_path / "subs", push=True, echo=lambda line: None, waits=NO_WAIT,
        )  # fmt: skip
    assert "\n" not in str(caught.value) and "pip install kaggle" in str(caught.value)
    assert stub.requests == []


def test_push_that_failed_after_the_dataset_was_created_resumes_with_a_version(stub, tmp_path):
    stub.script("SaveKernel", error_reply(500, "Internal error"))
    message, _ = refused(tmp_path, with_assets=True)
    assert "Kaggle's servers failed" in message
    assert len(stub.calls("CreateDataset")) == 1
    result, _ = push("producing", method_producing("producing", ASSET_BYTES), tmp_path, True)
    assert result.dataset_action == "version" and result.kernel_version == 1
    assert len(stub.calls("CreateDataset")) == 1  # not created twice
    assert len(stub.calls("CreateDatasetVersion")) == 1


def test_push_output_reporting_a_server_error_fails_even_with_exit_status_zero():
    said = "Internal error\n\nThis is a problem on Kaggle's side, not with your command."
    with pytest.raises(KaggleCommandFailed, match="Kaggle's servers failed"):
        push_kernel(lambda args: CommandOutput(0, said), Path("kernel"))
