"""``odebench history``: runs ordered by start time, the jumps named by the gate's rules, figures, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import odebench
from synthetic_runs import synthetic_frame, write_synthetic_run

from odebench._cases import case_label
from odebench.history import MARKER

METHODS = (
    ("odebench.backprop", {"solver": "dopri5"}),
    ("odebench.backsolve", {"solver": "dopri5", "seminorm": False}),
    ("odebench.checkpoint", {"solver": "dopri5"}),
)
SMALL = {"problems": [("linear", {"dim": 4})], "methods": METHODS, "tolerances": (1e-6,), "failures": False}
COMMITS = [f"{i}{'abcdef0123'[i]}" * 20 for i in range(5)]  # 40 characters each
JUMP_AT = 3  # the commit where backsolve's backward NFE jumps
BACKSOLVE = ("method", "odebench.backsolve")


def _run(folder: Path, i: int, *, suite: str = "synthetic", nfe_factor: float = 1.0) -> Path:
    write_synthetic_run(folder, **SMALL)
    frame = synthetic_frame(**SMALL)
    mask = frame[BACKSOLVE[0]] == BACKSOLVE[1]
    frame.loc[mask, "nfe_backward"] = (frame.loc[mask, "nfe_backward"] * nfe_factor).round().astype("Int64")
    frame.to_parquet(folder / "records.parquet")
    info = json.loads((folder / "run.json").read_text())
    info.update(
        suite={"name": suite},
        git={"commit": COMMITS[i], "dirty": False},
        started_at=f"2026-01-0{i + 1}T12:00:00Z",
    )
    (folder / "run.json").write_text(json.dumps(info))
    return folder


@pytest.fixture
def runs(tmp_path):
    """Five runs of one suite, given out of order; from JUMP_AT on, backsolve's backward NFE is x1.5."""
    paths = [_run(tmp_path / f"run-{i}", i, nfe_factor=1.5 if i >= JUMP_AT else 1.0) for i in range(5)]
    return [paths[i] for i in (2, 0, 4, 1, 3)]


def test_history_names_the_planted_jump_and_nothing_else(tmp_path, runs, capsys):
    out = tmp_path / "history"
    assert odebench("history", *runs, "-o", out) == 0
    printed = capsys.readouterr().out
    text = (out / "history.md").read_text()
    assert text.split("## Cases")[0] in printed and "1 jump;" in printed
    jumps = text.split("## Jumps")[1].split("## Cases")[0]
    rows = [line for line in jumps.splitlines() if line.startswith("| ") and not line.startswith("| commit")]
    rows = [row for row in rows if not set(row) <= set("|- ")]
    backsolve = case_label(synthetic_frame(**SMALL).query("method == 'odebench.backsolve'").iloc[0].to_dict())
    assert len(rows) == 1, jumps
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[:4] == [COMMITS[JUMP_AT][:10], "worse", backsolve, "nfe_backward"]
    assert cells[6] == "×1.5" and cells[7] == f"since {COMMITS[JUMP_AT - 1][:10]}"
    # Runs listed in order of start time, whatever the order given.
    listed = [line.split("|")[2].strip() for line in text.split("## Jumps")[0].splitlines() if line.startswith("| ")]
    assert [c for c in listed if c not in ("commit", "---")] == [c[:10] for c in COMMITS]
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) == len(METHODS) and all(f.stat().st_size > 1000 for f in figures)
    assert all(f"(figures/{f.name})" in text for f in figures)


def test_history_finds_an_improvement_too(tmp_path):
    paths = [_run(tmp_path / f"run-{i}", i, nfe_factor=1.0 if i >= 2 else 1.5) for i in range(3)]
    out = tmp_path / "history"
    assert odebench("history", *paths, "-o", out) == 0
    text = (out / "history.md").read_text()
    assert f"| {COMMITS[2][:10]} | better |" in text and "nfe_backward" in text
    assert "| worse |" not in text


def test_history_rewrites_its_own_folder_but_refuses_a_foreign_one(tmp_path, runs, capsys):
    out = tmp_path / "history"
    assert odebench("history", *runs, "-o", out) == 0
    # A figure an earlier history wrote (listed in the marker) goes; a file put there by hand stays.
    stale, kept = out / "figures" / "gone-case.png", out / "figures" / "by-hand.png"
    stale.write_bytes(b"png")
    kept.write_bytes(b"png")
    marker = out / MARKER
    marker.write_text(json.dumps([*json.loads(marker.read_text()), "figures/gone-case.png"]))
    assert odebench("history", *runs[:2], "-o", out) == 0  # its own folder: written again
    assert not stale.exists() and kept.exists() and (out / "history.md").is_file()
    assert len(list((out / "figures").glob("*.png"))) == len(METHODS) + 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert odebench("history", *runs, "-o", foreign) == 2
    err = capsys.readouterr().err
    assert f"-o {foreign}" in err and "not empty" in err and len(err.strip().splitlines()) == 1
    assert (foreign / "notes.txt").read_text() == "keep me" and not (foreign / "history.md").exists()


def _records_file_only(tmp: Path, runs: list[Path]) -> Path:
    synthetic_frame(**SMALL).to_parquet(tmp / "records.parquet")
    return tmp / "records.parquet"


def _other_suite(tmp: Path, runs: list[Path]) -> Path:
    return _run(tmp / "other", 4, suite="nightly")


def _missing(tmp: Path, runs: list[Path]) -> Path:
    return tmp / "no-such-run"


def _bad_start_time(tmp: Path, runs: list[Path]) -> Path:
    folder = _run(tmp / "bad-time", 1)
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "started_at": "yesterday"}))
    return folder


@pytest.mark.parametrize(
    "make, expected",
    [
        (_records_file_only, "no run.json"),
        (_other_suite, "runs of different suites"),
        (_missing, "no such results folder or file"),
        (_bad_start_time, "started_at: expected an ISO time"),
    ],
    ids=["records-file", "other-suite", "missing", "bad-start-time"],
)
def test_history_bad_input_exits_2_with_one_line(tmp_path, runs, capsys, make, expected):
    bad = make(tmp_path, runs)
    out = tmp_path / "history"
    assert odebench("history", *runs, bad, "-o", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("odebench history: error:") and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
