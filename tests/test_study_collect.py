"""sparsebert.experiment.collect: the study collectors' shared archived-rows logic and atomic outputs."""

from __future__ import annotations

import json

import pytest

from sparsebert.experiment.collect import archived_rows, read_committed, read_summary, write_outputs


def test_archived_rows_keeps_the_cells_no_live_run_has(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"rows": [{"task": "mrpc", "v": "a", "x": 1}, {"task": "mrpc", "v": "b", "x": 2}]}))
    kept = archived_rows(path, "studies/t/collect.py", {("mrpc", "a")}, lambda r: (r["task"], r["v"]))
    assert kept == [{"task": "mrpc", "v": "b", "x": 2, "archived": True}]


def test_archived_rows_without_a_committed_file_is_empty(tmp_path):
    assert archived_rows(tmp_path / "none.json", "c", set(), lambda r: r["k"]) == []


def test_archived_rows_of_a_top_level_list(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"seed": "seed42", "cell": "x"}]))
    assert archived_rows(path, "c", set(), lambda r: (r["seed"], r["cell"]), rows=lambda d: d) == [
        {"seed": "seed42", "cell": "x", "archived": True}]


@pytest.mark.parametrize("content", ["{not json", '{"other": 1}', '{"rows": [{"no_key": 1}]}'])
def test_a_file_of_another_shape_is_a_one_line_error_naming_it(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        archived_rows(path, "studies/t/collect.py", set(), lambda r: r["task"])
    assert str(path) in str(e.value) and "studies/t/collect.py" in str(e.value) and "restore it from git" in str(e.value)


def test_read_committed_and_summary(tmp_path):
    assert read_committed(tmp_path / "none.json", "c") is None
    (tmp_path / "c.json").write_text('{"a": 1}')
    assert read_committed(tmp_path / "c.json", "c", lambda d: d["a"]) == 1
    assert read_summary(tmp_path / "run") is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"steps": 3}')
    assert read_summary(tmp_path / "run") == {"steps": 3}


def test_write_outputs_writes_both_files(tmp_path, capsys):
    write_outputs(tmp_path / "sub" / "name", {"rows": []}, "# t\n")
    assert json.loads((tmp_path / "sub" / "name.json").read_text()) == {"rows": []}
    assert (tmp_path / "sub" / "name.md").read_text() == "# t\n"
    assert capsys.readouterr().out == "# t\n"
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]  # no temporary file left
