"""benchmarks.report: output paths checked before a benchmark runs, tables formatted,
ratios taken, files written."""

import argparse
import json
import math

import pytest

from benchmarks.report import (
    add_ratios,
    check_out_paths,
    fact_lines,
    fmt_ratio,
    fmt_spread,
    json_path,
    relative,
    table,
    to_json,
    write_report,
    write_text,
)


def test_a_missing_directory_is_refused_naming_the_flag(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    check_out_paths(parser, out=str(tmp_path / "ok.md"), markdown=None)  # fine: no error
    with pytest.raises(SystemExit):
        check_out_paths(parser, out=str(tmp_path / "ok.md"), markdown="/nonexistent_dir/t.md")
    err = capsys.readouterr().err
    assert "--markdown /nonexistent_dir/t.md" in err
    assert "found no /nonexistent_dir" in err


def test_write_text_writes_and_skips_without_a_path(tmp_path):
    path = tmp_path / "table.md"
    write_text(str(path), "| a |\n")
    assert path.read_text() == "| a |\n"
    write_text(None, "ignored")
    write_text("", "ignored")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_write_text_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "table.md"
    path.write_text("old, complete\n")
    real_open = open

    class Interrupted(Exception):
        pass

    def half_then_die(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode:
            f.write("half a ta")
            f.close()
            raise Interrupted
        return f

    monkeypatch.setattr("builtins.open", half_then_die)
    with pytest.raises(Interrupted):
        write_text(str(path), "new table\n")
    monkeypatch.undo()
    assert path.read_text() == "old, complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    write_text(str(path), "new table\n")
    assert path.read_text() == "new table\n"


def test_a_table_has_its_rule_and_writes_empty_cells_as_blanks():
    lines = table(("name", "ms", "note"), [("a", "1.0", "fast"), ("b", "", "")], "lrl")
    assert lines == [
        "| name | ms | note |",
        "|---|---:|---|",
        "| a | 1.0 | fast |",
        "| b | | |",
    ]
    with pytest.raises(ValueError, match="align"):
        table(("a", "b"), [], "l")
    with pytest.raises(ValueError, match="align"):
        table(("a",), [], "c")


def test_ratios_against_the_reference_row_or_none_without_it():
    rows = [{"key": "ours", "rate": 6.0}, {"key": "ref", "rate": 3.0}]
    assert add_ratios(rows, "ref", {"speedup": "rate"}) is rows[1]
    assert [r["speedup"] for r in rows] == [2.0, 1.0]
    alone = [{"key": "ours", "rate": 6.0}]
    assert add_ratios(alone, "ref", {"speedup": "rate"}) is None
    assert alone[0]["speedup"] is None
    assert (fmt_ratio(2.0), fmt_ratio(None)) == ("2.00x", "n/a")
    assert fmt_spread([2.5, 1.25, 3.0], 2) == "1.25-3.00"
    assert relative(1.0, 1.1) == pytest.approx(0.1 / 1.1)
    assert relative(0.0, 0.0) == 0.0


def test_facts_follow_a_blank_line():
    assert fact_lines(["one", "two"]) == ["", "- one", "- two"]


def test_the_json_is_written_beside_the_markdown(tmp_path):
    assert json_path("docs/bench/synthesis_cpu.md") == "docs/bench/synthesis_cpu.json"
    assert json_path("out") == "out.json"
    md = tmp_path / "result.md"
    write_report(str(md), "| a |\n", {"rows": [1.5, float("nan")]})
    assert md.read_text() == "| a |\n"
    saved = (tmp_path / "result.json").read_text()
    assert saved == to_json({"rows": [1.5, float("nan")]}) and saved.endswith("]\n}\n")
    assert math.isnan(json.loads(saved)["rows"][1])
    write_report(None, "ignored", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "result.md"]
