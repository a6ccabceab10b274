"""The results store: nothing finished is lost or corrupted, and every reader refuses bad results with exit 2.

Folders are built by hand (the synthetic records of :mod:`synthetic_runs`, then
damaged on purpose); the CLI runs in-process, so a traceback fails the test itself.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import ROOT, odebench
from synthetic_runs import synthetic_records, write_synthetic_run

from odebench import load_results, load_run_info
from odebench._records import Record
from odebench._results import (
    RECORDS_JOURNAL,
    RECORDS_PARQUET,
    RUN_INFO,
    ResultsError,
    ResultsWarning,
    append_journal,
    read_journal,
    write_parquet_atomic,
)


def _records(n: int = 3) -> list[Record]:
    return synthetic_records(failures=False)[:n]


def _write_journal(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def _line(record: Record, **changes) -> str:
    return json.dumps({**record.to_dict(), **changes})


# ---------------------------------------------------------------- 1. journal lines that are not records


@pytest.mark.parametrize("bad", ["[1, 2]", "3", '"text"', "null", "true"])
def test_journal_line_that_is_not_an_object_names_file_and_line(tmp_path, bad):
    a, b = _records(2)
    journal = _write_journal(tmp_path / RECORDS_JOURNAL, [_line(a), bad, _line(b)])
    with pytest.raises(ResultsError, match=r"records\.jsonl line 2: expected a JSON object") as info:
        load_results(tmp_path)
    assert str(journal) in str(info.value)


# ---------------------------------------------------------------- 2. integer columns


def test_fraction_in_an_integer_column_of_the_journal_names_line_and_column(tmp_path):
    (a,) = _records(1)
    _write_journal(tmp_path / RECORDS_JOURNAL, [_line(a, nfe_forward=20.5)])
    with pytest.raises(
        ResultsError, match=r"records\.jsonl line 1: column nfe_forward: expected an integer, got 20\.5"
    ):
        load_results(tmp_path)


@pytest.mark.parametrize(
    ("value", "why"),
    [(20.5, r"20\.5"), (float("inf"), r"inf \(not finite\)"), (-float("inf"), r"-inf \(not finite\)")],
)
def test_fraction_or_infinity_in_an_integer_column_of_the_parquet(tmp_path, value, why):
    frame = pd.DataFrame([r.to_dict() for r in _records(3)])
    frame["nfe_forward"] = frame["nfe_forward"].astype("float64")
    frame.loc[1, "nfe_forward"] = value
    frame.to_parquet(tmp_path / RECORDS_PARQUET)
    with pytest.raises(
        ResultsError,
        match=rf"records\.parquet: record 2 \(case \w+\): column nfe_forward: expected an integer, got {why}",
    ):
        load_results(tmp_path)


def test_whole_floats_and_missing_values_are_integers(tmp_path):
    frame = pd.DataFrame([r.to_dict() for r in _records(3)])
    frame["nfe_forward"] = [20.0, None, 7.0]
    frame.to_parquet(tmp_path / RECORDS_PARQUET)
    loaded = load_results(tmp_path)
    assert str(loaded["nfe_forward"].dtype) == "Int64"
    assert loaded["nfe_forward"].tolist() == [20, pd.NA, 7]


def test_large_seeds_survive_exactly_beside_missing_ones(tmp_path):
    # A column of Python ints with a None went through float64, which cannot hold 2**62 + 1.
    a, b = _records(2)
    seed = 2**62 + 1
    journal = tmp_path / RECORDS_JOURNAL
    append_journal(dataclasses.replace(a, seed=seed), journal)
    append_journal(dataclasses.replace(b, seed=None), journal)
    assert load_results(tmp_path)["seed"].tolist() == [seed, pd.NA]
    write_parquet_atomic(read_journal(journal), tmp_path / RECORDS_PARQUET)
    assert load_results(tmp_path / RECORDS_PARQUET)["seed"].tolist() == [seed, pd.NA]


def test_a_string_in_a_number_column_is_refused(tmp_path):
    (a,) = _records(1)
    _write_journal(tmp_path / RECORDS_JOURNAL, [_line(a, grad_rel_err="small")])
    with pytest.raises(ResultsError, match="line 1: column grad_rel_err: expected a number"):
        load_results(tmp_path)


@pytest.mark.parametrize("status", ["okay", "OK", ""])
def test_a_status_that_is_none_of_the_statuses_is_refused(tmp_path, status):
    """Only "ok" has meaningful metrics: a misspelt one must not pass as another kind of failure."""
    frame = pd.DataFrame([r.to_dict() for r in _records(3)])
    frame.loc[2, "status"] = status
    frame.to_parquet(tmp_path / RECORDS_PARQUET)
    with pytest.raises(ResultsError, match=rf"record 3 \(case \w+\): column status: '{status}' is not a status \(ok, "):
        load_results(tmp_path)


# ---------------------------------------------------------------- 3. torn lines


def test_torn_last_line_is_left_out_with_a_warning(tmp_path):
    a, b = _records(2)
    journal = tmp_path / RECORDS_JOURNAL
    _write_journal(journal, [_line(a), _line(b)[:40]], end="")
    with pytest.warns(ResultsWarning, match="line 2: left out an unfinished last line"):
        records = read_journal(journal)
    assert [r.case_id for r in records] == [a.case_id]


def test_append_after_a_torn_line_keeps_the_new_record_on_its_own_line(tmp_path):
    a, b, c = _records(3)
    journal = tmp_path / RECORDS_JOURNAL
    _write_journal(journal, [_line(a), _line(b)[:40]], end="")  # killed while writing b
    with pytest.warns(ResultsWarning, match="cut away an unfinished last line"):
        append_journal(c, journal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn is left
        records = read_journal(journal)
    assert records == [a, c]
    assert journal.read_text().splitlines() == [_line(a), json.dumps(c.to_dict())]


def test_append_after_a_whole_record_without_its_newline_keeps_both(tmp_path):
    a, b = _records(2)
    journal = tmp_path / RECORDS_JOURNAL
    _write_journal(journal, [_line(a)], end="")
    append_journal(b, journal)
    assert read_journal(journal) == [a, b]


def test_readers_warn_of_a_torn_last_line_in_one_line_and_go_on(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run")
    records = synthetic_records()
    _write_journal(run / RECORDS_JOURNAL, [_line(r) for r in records[:3]] + [_line(records[3])[:30]], end="")
    assert odebench("export", run, "-o", tmp_path / "export.json") == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [
        f"odebench export: warning: {run / RECORDS_JOURNAL} line 4: "
        "left out an unfinished last line (the run was stopped mid-write)"
    ]


def test_torn_line_in_the_middle_is_corruption(tmp_path):
    a, b = _records(2)
    _write_journal(tmp_path / RECORDS_JOURNAL, [_line(a)[:50], _line(b)])
    with pytest.raises(ResultsError, match=r"records\.jsonl line 1: not a complete JSON record"):
        load_results(tmp_path)


# ---------------------------------------------------------------- 4. durability and temporary files


def test_parquet_is_synced_before_its_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_parquet_atomic(_records(2), tmp_path / RECORDS_PARQUET)
    assert events == [("fsync", "file"), ("replace", RECORDS_PARQUET), ("fsync", "folder")]
    events.clear()
    append_journal(_records(1)[0], tmp_path / RECORDS_JOURNAL)
    assert ("fsync", "file") in events


def test_full_disk_leaves_no_temporary_file_and_the_old_table_intact(tmp_path, monkeypatch):
    target = tmp_path / RECORDS_PARQUET
    write_parquet_atomic(_records(2), target)
    before = target.read_bytes()

    def full_disk(self, path, *args, **kwargs):
        (path.write if hasattr(path, "write") else Path(path).write_bytes)(b"PAR1 half a table")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    with pytest.raises(ResultsError) as info:
        write_parquet_atomic(_records(3), target)
    message = str(info.value)
    assert str(target) in message and "No space left on device" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORDS_PARQUET]
    assert target.read_bytes() == before


# ---------------------------------------------------------------- 6. values beyond int64 reaching the writer


def test_seed_beyond_int64_leaves_a_readable_folder(tmp_path):
    from odebench.runner._run import ResultsStore

    good, bad = _records(2)
    bad = dataclasses.replace(bad, seed=2**70)
    store = ResultsStore(tmp_path, [good.case_id, bad.case_id])
    store.add(good)
    store.flush()
    with pytest.raises(ResultsError, match=r"records\.jsonl: case \w+: column seed: expected an integer within int64"):
        store.add(bad)
    with pytest.raises(ResultsError, match=r"cannot write .*records\.parquet: .*column seed"):
        store.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORDS_JOURNAL, RECORDS_PARQUET]
    assert read_journal(tmp_path / RECORDS_JOURNAL) == [good]
    assert load_results(tmp_path)["case_id"].tolist() == [good.case_id]


# ---------------------------------------------------------------- the journal completes the table


def test_journal_records_newer_than_the_table_win(tmp_path):
    a, b, c = _records(3)
    failed = dataclasses.replace(a, status="failed", error="boom")
    write_parquet_atomic([failed, b], tmp_path / RECORDS_PARQUET)  # the last rewrite before a hard kill
    for record in (failed, b, a, c):  # a re-run of a, then c, finished after it
        append_journal(record, tmp_path / RECORDS_JOURNAL)
    loaded = load_results(tmp_path)
    assert loaded["case_id"].tolist() == [a.case_id, b.case_id, c.case_id]
    assert loaded["status"].tolist() == ["ok", "ok", "ok"]


# ---------------------------------------------------------------- run.json


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"cpu": "fast"}', "key cpu: expected an object"),
        ('{"git": {"commit": 7}}', "key git.commit: expected a string"),
        ('{"started_at": 20260101}', "key started_at: expected a string"),
    ],
)
def test_run_info_that_readers_cannot_use_names_file_and_key(tmp_path, text, why):
    (tmp_path / RUN_INFO).write_text(text)
    with pytest.raises(ResultsError, match=why) as info:
        load_run_info(tmp_path)
    assert str(tmp_path / RUN_INFO) in str(info.value)


def test_run_info_with_nulls_and_no_file_is_fine(tmp_path):
    assert load_run_info(tmp_path) == {}
    (tmp_path / RUN_INFO).write_text(json.dumps({"gpu": None, "git": {"commit": None, "dirty": None}}))
    assert load_run_info(tmp_path)["gpu"] is None


# ---------------------------------------------------------------- 5. every reader, every corruption


def _damage(kind: str, run: Path) -> tuple[Path, str]:
    """Damage the good results folder ``run``; returns the path to give and what the message must name."""
    if kind == "missing":
        return run.parent / "no-such-run", "no-such-run"
    if kind == "file":
        return run / RUN_INFO, RUN_INFO
    if kind == "empty-folder":
        empty = run.parent / "empty"
        empty.mkdir()
        return empty, "empty"
    if kind == "run-json-only":
        (run / RECORDS_PARQUET).unlink()
        return run, run.name
    if kind == "empty-journal":
        (run / RECORDS_PARQUET).unlink()
        (run / RECORDS_JOURNAL).write_text("")
        return run, run.name
    if kind == "parquet-bytes":
        (run / RECORDS_PARQUET).write_bytes(os.urandom(4096))
        return run, RECORDS_PARQUET
    if kind.startswith("run-json"):
        text = {"run-json-invalid": "{oops", "run-json-list": "[]", "run-json-cpu": '{"cpu": "x"}'}[kind]
        (run / RUN_INFO).write_text(text)
        return run, RUN_INFO
    if kind in ("params", "journal-list", "journal-fraction", "journal-status"):
        records = synthetic_records(failures=False)
        (run / RECORDS_PARQUET).unlink()
        lines = [json.dumps(r.to_dict()) for r in records]
        if kind == "params":
            lines[3] = _line(records[3], method_params="{solver: rk4")
        elif kind == "journal-list":
            lines[3] = "[1, 2, 3]"
        elif kind == "journal-status":
            lines[3] = _line(records[3], status="okay")
        else:
            lines[3] = _line(records[3], nfe_forward=20.5)
        _write_journal(run / RECORDS_JOURNAL, lines)
        return run, RECORDS_JOURNAL if kind != "params" else run.name
    raise AssertionError(kind)


DAMAGE = [
    "missing",
    "file",
    "empty-folder",
    "run-json-only",
    "empty-journal",
    "parquet-bytes",
    "run-json-invalid",
    "run-json-list",
    "run-json-cpu",
    "params",
    "journal-list",
    "journal-fraction",
    "journal-status",
]


def _command(command: str, bad: Path, good: Path, tmp_path: Path) -> list:
    return {
        "report": ["report", bad, "-o", tmp_path / "report"],
        "compare": ["compare", good, bad],
        "gate": ["gate", bad, "--baseline", good],
        "export": ["export", bad, "-o", tmp_path / "export.json"],
    }[command]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["report", "compare", "gate", "export"])
def test_every_reader_exits_2_with_one_line_naming_the_file(tmp_path, capsys, command, damage):
    good = write_synthetic_run(tmp_path / "good")
    bad, named = _damage(damage, write_synthetic_run(tmp_path / "run"))
    capsys.readouterr()
    status = odebench(*_command(command, bad, good, tmp_path))
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"odebench {command}: error: "), err
    assert named in lines[0], err


# ---------------------------------------------------------------- list with a broken optional library


def test_list_methods_names_a_library_that_cannot_be_looked_up(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "jax":
            raise RuntimeError("jaxlib does not match jax")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert odebench("list", "methods") == 0
    out = capsys.readouterr().out
    assert "diffrax.direct  [UNAVAILABLE: jax cannot be looked up: RuntimeError: jaxlib does not match jax]" in out
    assert "odebench.backprop  [available]" in out


def test_list_methods_documents_every_parameter_of_every_method(capsys):
    """The suite docs send users here for a method's params: each is shown with its default and meaning."""
    from odebench.backends import method_class, method_names

    assert odebench("list", "methods") == 0
    blocks: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith(" "):
            blocks[line.split()[0]] = []
        else:
            blocks[list(blocks)[-1]].append(line)
    assert list(blocks) == list(method_names())
    for name, lines in blocks.items():
        documented = [line for line in lines if line.startswith("      ")]
        options = method_class(name).options
        assert documented == [f"      {key}={o.default!r}: {o.doc}" for key, o in options.items()], name
        assert all(o.doc for o in options.values()), name


@pytest.mark.parametrize("what", ["problems", "methods"])
def test_list_survives_a_library_that_fails_at_import(tmp_path, what):
    broken = tmp_path / "site" / "jax"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('jaxlib does not match jax')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(broken.parent), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "odebench", "list", what], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert ("linear" if what == "problems" else "diffrax.direct") in proc.stdout
