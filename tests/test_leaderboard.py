"""Specification of the leaderboard: every registered method scored, ranked, written as Markdown."""

from __future__ import annotations

import json
import re
import shutil

import pytest

import methods
from local_eval.boards import leaderboard
from local_eval.boards.leaderboard import build_leaderboard
from local_eval.errors import EvalError
from local_eval.scoring import board_scores
from local_eval.scoring.context import make_context
from methods.base import BaseMethod
from methods.finetune import Finetune


class Untouched(BaseMethod):
    """Leaves the original as it is: the natural last place."""

    name = "untouched"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        net.eval()


class Broken(BaseMethod):
    name = "broken"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        raise RuntimeError("shape mismatch in my head")


@pytest.fixture(scope="module", autouse=True)
def cache(smoke_references):
    """Every board here scores against the smoke references the other scoring tests share."""
    return smoke_references


@pytest.fixture(scope="module")
def two_methods():
    """Two registered methods instead of the whole collection, to stay fast."""
    patcher = pytest.MonkeyPatch()
    register(patcher, Finetune, Untouched)
    yield
    patcher.undo()


@pytest.fixture(scope="module")
def built(tmp_path_factory, two_methods):
    """One leaderboard built from scratch, read by the tests that only inspect it."""
    folder = tmp_path_factory.mktemp("board")
    return folder, board(folder)


@pytest.fixture
def rebuild(built, tmp_path):
    """A copy of the built board's folders, so a test can change them and build again."""
    shutil.copytree(built[0], tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.fixture
def scoring_calls(monkeypatch):
    calls = []
    real = board_scores.score_method

    def counting(method_cls, *args, **kwargs):
        calls.append(method_cls.name)
        return real(method_cls, *args, **kwargs)

    monkeypatch.setattr(board_scores, "score_method", counting)
    return calls


def register(patcher, *classes):
    patcher.setattr(methods, "all_method_handlers", lambda: {c.name: c for c in classes})


def board(folder, n_models=3):
    return build_leaderboard(
        "smoke",
        n_models=n_models,
        context=make_context(results_dir=folder / "results", progress=False, echo=False),
        docs_dir=folder / "docs",
    )


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def table_columns(text: str) -> list[str]:
    header = next(line for line in text.splitlines() if line.startswith("| rank"))
    return [cell.strip() for cell in header.strip("|").split("|")]


def cell(text: str, method: str, column: str) -> str:
    """The cell of ``method``'s row under the header ``column``."""
    row = next(row for row in table_rows(text) if row[1] == method)
    return row[table_columns(text).index(column)]


def number(cell_text: str) -> float:
    """A cell's leading number (a score cell reads ``0.1234 [lo, hi]``)."""
    return float(cell_text.split()[0])


def test_table_is_written_to_docs_leaderboard_preset(built):
    folder, path = built
    assert path == folder / "docs" / "leaderboard-smoke.md"


def test_table_has_a_row_per_registered_method_and_the_ceiling(built):
    names = [row[1] for row in table_rows(built[1].read_text())]
    assert sorted(names) == sorted(["finetune", "untouched", leaderboard.CEILING_LABEL])


def test_rows_are_sorted_by_score(built):
    scores = [number(row[2]) for row in table_rows(built[1].read_text())]
    assert scores == sorted(scores, reverse=True)


def test_rows_show_score_f_ratios_and_time_fraction(built):
    header = next(line for line in built[1].read_text().splitlines() if line.startswith("| rank"))
    for column in ("score [lo, hi]", "F", "retain ratio", "test ratio", "time fraction"):
        assert f"| {column} |" in header


def test_rows_match_the_result_files(built):
    folder, path = built
    stored = json.loads((folder / "results" / "smoke" / "finetune.json").read_text())
    assert number(cell(path.read_text(), "finetune", "score [lo, hi]")) == pytest.approx(
        stored["score"], abs=5e-5
    )


def test_fastest_run_column_is_the_quickest_stored_run(built):
    folder, path = built
    stored = json.loads((folder / "results" / "smoke" / "finetune.json").read_text())
    fastest = number(cell(path.read_text(), "finetune", "fastest run (s)"))
    assert fastest == pytest.approx(min(run["seconds"] for run in stored["runs"]), abs=5e-3)


def test_picture_is_written_beside_the_table_and_linked_from_it(built):
    folder, path = built
    picture = folder / "docs" / "leaderboard-smoke.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert "](leaderboard-smoke.png)" in path.read_text()


def test_table_ends_with_the_command_that_makes_it_again(built):
    assert "Made with `make leaderboard PRESET=smoke N=3`" in built[1].read_text()


def test_header_names_preset_models_and_dataset(built):
    text = built[1].read_text()
    assert "`smoke`" in text and "N = 3" in text and "`synthetic`" in text
    assert re.search(r"Generated \d{4}-\d{2}-\d{2}", text)


def test_current_results_are_reused_without_scoring_again(rebuild, scoring_calls):
    board(rebuild)
    assert scoring_calls == []


def test_results_of_an_edited_method_are_scored_again(rebuild, scoring_calls):
    path = rebuild / "results" / "smoke" / "finetune.json"
    stale = json.loads(path.read_text())
    stale["source_sha256"] = "an older version of finetune.py"
    path.write_text(json.dumps(stale))
    board(rebuild)
    assert scoring_calls == ["finetune"]


def test_results_for_other_options_are_scored_again(rebuild, scoring_calls):
    board(rebuild, n_models=4)
    assert sorted(scoring_calls) == ["finetune", "untouched"]


def test_a_failing_method_is_listed_without_stopping_the_others(rebuild, monkeypatch):
    register(monkeypatch, Finetune, Broken)
    text = board(rebuild).read_text()
    assert "finetune" in [row[1] for row in table_rows(text)]
    assert re.search(r"- `broken`: .*RuntimeError: shape mismatch in my head", text)


def test_a_board_restricted_to_some_methods_names_the_ones_left_out(rebuild):
    path = build_leaderboard(
        "smoke",
        n_models=3,
        only=["finetune"],
        context=make_context(results_dir=rebuild / "results", progress=False, echo=False),
        docs_dir=rebuild / "docs",
    )
    text = path.read_text()
    assert "untouched" not in [row[1] for row in table_rows(text)]
    assert "not scored in this run: `untouched`" in text


def test_restricting_to_an_unregistered_method_is_an_error(rebuild):
    with pytest.raises(EvalError, match="'nope': not registered"):
        build_leaderboard(
            "smoke", only=["nope"], context=make_context(results_dir=rebuild), docs_dir=rebuild
        )


def test_a_stored_result_without_intervals_gets_them_on_render_without_rescoring(
    rebuild, scoring_calls
):
    path = rebuild / "results" / "smoke" / "finetune.json"
    older = json.loads(path.read_text())
    del older["intervals"], older["ceiling"]["intervals"]
    path.write_text(json.dumps(older))
    text = board(rebuild).read_text()
    completed = json.loads(path.read_text())
    assert scoring_calls == []
    assert completed["finished_at"] == older["finished_at"]
    low, high = completed["intervals"]["score"]
    assert cell(text, "finetune", "score [lo, hi]").endswith(f"[{low:.4f}, {high:.4f}]")


def test_board_gives_each_method_but_the_leader_a_paired_interval_against_it(built):
    text = built[1].read_text()
    names = [row[1] for row in table_rows(text) if row[1] != leaderboard.CEILING_LABEL]
    paired = r"[+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]"
    assert cell(text, names[0], "Δ vs leader [lo, hi]") == ""
    assert all(re.fullmatch(paired, cell(text, name, "Δ vs leader [lo, hi]")) for name in names[1:])


def test_board_header_says_how_the_time_fraction_was_measured(built):
    text = built[1].read_text()
    assert "process CPU time of each run over that of one retraining timed in the same scoring process" in text


def test_splits_board_aggregates_each_method_over_k_splits(rebuild):
    from local_eval.boards.board_orders import read_board
    from local_eval.boards.split_board import build_split_leaderboard

    path = build_split_leaderboard(
        "smoke", 2, n_models=3, docs_dir=rebuild / "docs",
        context=make_context(results_dir=rebuild / "results", progress=False, echo=False),
    )
    text = path.read_text()
    scores = [
        json.loads((rebuild / "results" / folder / "finetune.json").read_text())["score"]
        for folder in ("smoke", "smoke-split1")
    ]
    assert path.name == "leaderboard-smoke-splits2.md"
    assert number(cell(text, "finetune", "mean score")) == pytest.approx(sum(scores) / 2, abs=5e-5)
    assert read_board(path).scores["finetune"] == pytest.approx(sum(scores) / 2)
    assert len(cell(text, "finetune", "ranks").split(",")) == 2
    assert "Made with `make leaderboard PRESET=smoke SPLITS=2 N=3`" in text



def test_a_standard_board_with_three_competition_entries_says_how_it_orders_them(tmp_path):
    """Stand-ins carrying three winners' names: the board compares their order with Kaggle's."""
    stand_ins = [type(name.title(), (Untouched,), {"name": name}) for name in ("fanchuan", "kookmin", "seif")]
    patcher = pytest.MonkeyPatch()
    register(patcher, Finetune, *stand_ins)
    try:
        text = board(tmp_path).read_text()
    finally:
        patcher.undo()
    assert "**Against Kaggle's order.** Of the 3 competition entries" in text
    assert "score above `finetune`" in text


def test_a_written_board_reads_back_as_the_scores_it_ranked(built):
    """`agree` reads what this writer writes: the board's data beside its table, unrounded."""
    from local_eval.boards.board_orders import read_board

    folder, path = built
    stored = json.loads((folder / "results" / "smoke" / "finetune.json").read_text())
    scores = read_board(path).scores
    assert set(scores) == {"finetune", "untouched"}
    assert scores["finetune"] == stored["score"]


def test_the_boards_data_is_written_beside_its_table(built):
    data = json.loads(built[1].with_suffix(".json").read_text())
    assert (data["preset"], data["n_models"], data["scenario"]) == ("smoke", 3, "standard")
    assert [entry["rank"] for entry in data["methods"]] == [1, 2]
    assert data["ceiling"]["method"] == leaderboard.CEILING_LABEL
    assert data["command"] == "make leaderboard PRESET=smoke N=3"
