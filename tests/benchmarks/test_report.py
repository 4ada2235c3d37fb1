"""benchmarks.report: output paths checked before a benchmark runs, tables written."""

import argparse

import pytest

from benchmarks.report import check_out_paths, write_text


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
