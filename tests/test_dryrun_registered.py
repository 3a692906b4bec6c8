"""Every registered method's notebook runs, unmodified, on a mock competition input.

This is the check a researcher would otherwise make on Kaggle after an hour in the
queue: the built notebook executes end to end and leaves a submission.zip that
Kaggle accepts (checked inside ``dry_run``).
"""

import json

import pytest

from builder.assets import collect_assets, has_assets
from builder.notebook import build_notebook
from builder.render import NotebookParameters
from local_eval.replica.dryrun import dry_run
from methods import all_method_handlers


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(all_method_handlers()))
def test_registered_method_notebook_passes_the_dry_run(name, dryrun_mock, tmp_path):
    built = build_notebook(name, parameters=NotebookParameters(), out_root=tmp_path)
    assets = None
    if has_assets(all_method_handlers()[name]):
        assets = tmp_path / name / "assets"
        collect_assets(all_method_handlers()[name], assets)
    result = dry_run(built.path, data_dir=dryrun_mock, n_checkpoints=1, assets_dir=assets)
    record = json.loads((built.path.parent / "dryrun.json").read_text())
    assert record["ok"] is True and record["n_checkpoints"] == 1
    assert record["seconds_per_call"] > 0
    assert result is not None


STARTER_KIT_CORPUS = ("starter_kit_finetune", "name_with_default", "only_name")


@pytest.mark.slow
@pytest.mark.parametrize("stem", STARTER_KIT_CORPUS)
def test_starter_kit_style_method_file_passes_the_dry_run(stem, dryrun_mock, tmp_path):
    from pathlib import Path

    path = Path(__file__).parent / "method_corpus" / f"{stem}.py"
    built = build_notebook(str(path), parameters=NotebookParameters(), out_root=tmp_path)
    assert dry_run(built.path, data_dir=dryrun_mock, n_checkpoints=2).ok
