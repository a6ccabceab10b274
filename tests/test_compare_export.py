"""``odebench compare`` and ``odebench export --format pytest-benchmark``."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import odebench
from synthetic_runs import synthetic_frame, write_synthetic_run

from odebench._cases import case_label
from odebench.compare import compare_runs, comparison_markdown
from odebench.export import sample_stats

# pytest-benchmark's own command line, as users run it (the console script next to
# this interpreter, else its ``python -m pytest_benchmark``).
_SCRIPT = Path(sys.executable).with_name("pytest-benchmark")
PYTEST_BENCHMARK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pytest_benchmark"]

# ---------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def runs():
    base = synthetic_frame()
    new = synthetic_frame(time_scale=1.5)
    new.loc[4, "status"] = "failed"
    new.loc[7, "nfe_forward"] = new.loc[7, "nfe_forward"] * 2
    dropped = new.loc[10].to_dict()
    new = new.drop(index=10)
    return base, new, base.loc[4].to_dict(), base.loc[7].to_dict(), dropped


def test_compare_puts_changed_statuses_first_with_ratios(runs):
    base, new, failed, doubled, dropped = runs
    table = compare_runs(base, new)
    assert len(table) == len(base)
    assert list(table["case"][:2]) == [case_label(failed), case_label(dropped)]
    assert list(table["status_new"][:2]) == ["failed", "absent"]
    assert not table["status_changed"][2:].any()
    row = table[table["case"] == case_label(doubled)].iloc[0]
    assert row["nfe_forward_ratio"] == pytest.approx(2.0)
    assert row["time_total_s_ratio"] == pytest.approx(1.5)
    assert row["grad_rel_err_ratio"] == pytest.approx(1.0)


def test_compare_markdown_cells(runs):
    base, new, failed, doubled, _ = runs
    text = comparison_markdown(compare_runs(base, new))
    assert "72 cases: 2 changed status (1 only in BASE, 0 only in NEW)" in text
    failed_row = next(line for line in text.splitlines() if line.startswith(f"| {case_label(failed)} |"))
    assert "**ok → failed**" in failed_row
    doubled_row = next(line for line in text.splitlines() if line.startswith(f"| {case_label(doubled)} |"))
    nfe = int(doubled["nfe_forward"])
    assert f"| {nfe} → {2 * nfe} (×2) |" in doubled_row
    assert "(×1.5)" in doubled_row  # time


def test_compare_cli_writes_file_and_exits_0(tmp_path, capsys):
    base = write_synthetic_run(tmp_path / "base")
    new = write_synthetic_run(tmp_path / "new", time_scale=2.0)
    out = tmp_path / "compare.md"
    assert odebench("compare", base, new, "-o", out) == 0
    printed = capsys.readouterr().out
    assert out.read_text() in printed and "| case | status | grad_rel_err |" in printed
    assert "(×2)" in out.read_text()


def test_compare_bad_input_exits_2(tmp_path, capsys):
    base = write_synthetic_run(tmp_path / "base")
    assert odebench("compare", base, tmp_path / "nothing") == 2
    assert "NEW: no such results folder or file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["compare", "{base}", "{bad}"], ["export", "{bad}", "-o", "{out}"]])
def test_params_that_are_not_json_exit_2(tmp_path, capsys, argv):
    """Records whose method_params are not JSON are bad input, not a case without parameters."""
    base = write_synthetic_run(tmp_path / "base")
    bad = write_synthetic_run(tmp_path / "bad")
    frame = synthetic_frame()
    frame.loc[0, "method_params"] = "solver=dopri5"
    frame.to_parquet(bad / "records.parquet")
    out = tmp_path / "bench.json"
    assert odebench(*[a.format(base=base, bad=bad, out=out) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "column method_params: not a JSON object: 'solver=dopri5'" in err
    assert len(err.splitlines()) == 1 and not out.exists()


# ---------------------------------------------------------------- export: stats


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 9, 12, 25])
def test_sample_stats_match_pytest_benchmark(n):
    stats_module = pytest.importorskip("pytest_benchmark.stats")
    rng = random.Random(n)
    data = [rng.lognormvariate(-5, 0.3) for _ in range(n)]
    if n > 4:
        data[0] *= 10  # an outlier
    reference = stats_module.Stats()
    for x in data:
        reference.update(x)
    ours = sample_stats(data)
    expected = reference.as_dict()
    assert set(expected) <= set(ours)
    for key, value in expected.items():
        assert ours[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert ours["data"] == data and ours["iterations"] == 1


# ---------------------------------------------------------------- export: document


@pytest.fixture
def exported(tmp_path):
    run = write_synthetic_run(tmp_path / "run")
    path = tmp_path / "export.json"
    assert odebench("export", run, "--format", "pytest-benchmark", "-o", path) == 0
    return json.loads(path.read_text()), path


def test_export_layout(exported):
    document, _ = exported
    assert set(document) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert document["commit_info"]["id"] == "0" * 40 and document["commit_info"]["dirty"] is False
    assert document["machine_info"]["cpu"] == {"brand_raw": "synthetic CPU", "count": 2}
    assert document["datetime"] == "2026-01-01T00:01:00Z"
    bench = document["benchmarks"][0]
    assert {"group", "name", "fullname", "params", "param", "extra_info", "options", "stats"} <= set(bench)
    stats = bench["stats"]
    for key in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds", "iterations", "ops", "data"):
        assert key in stats
    assert stats["rounds"] == len(stats["data"]) == 5


def test_export_only_ok_cases_with_samples_and_readable_unique_names(exported):
    document, _ = exported
    frame = synthetic_frame()
    ok = frame[frame["status"] == "ok"]
    names = [b["name"] for b in document["benchmarks"]]
    assert len(names) == len(ok) == len(set(names))
    first = ok.iloc[0].to_dict()
    bench = document["benchmarks"][0]
    assert bench["name"] == "odebench.backprop(solver=dopri5)[linear(dim=4)-tol=0.001-float64-cpu-seed=0]"
    assert bench["params"]["method_params"] == {"solver": "dopri5"} and bench["params"]["rtol"] == first["rtol"]
    assert bench["extra_info"]["nfe_forward"] == first["nfe_forward"]
    assert bench["stats"]["data"] == pytest.approx(first["time_samples_s"])
    assert bench["stats"]["median"] == pytest.approx(first["time_total_s"])


def test_export_to_stdout_and_bad_format(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run")
    assert odebench("export", run) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["benchmarks"]) == 69
    assert "3 cases not ok or without timing samples left out" in captured.err
    assert odebench("export", run, "--format", "asv") == 2
    assert "valid formats: pytest-benchmark" in capsys.readouterr().err
    assert odebench("export", tmp_path / "none") == 2


def test_pytest_benchmark_compare_reads_the_exports(tmp_path):
    """The real ``pytest-benchmark compare`` loads two exports and reports our numbers."""
    pytest.importorskip("pytest_benchmark")
    documents, paths = [], []
    for name, scale in (("0001_before", 1.0), ("0002_after", 1.5)):
        run = write_synthetic_run(tmp_path / name, time_scale=scale)
        paths.append(tmp_path / f"{name}.json")
        assert odebench("export", run, "-o", paths[-1]) == 0
        documents.append(json.loads(paths[-1].read_text()))
    table = tmp_path / "compare"
    done = subprocess.run(
        [*PYTEST_BENCHMARK, "compare", "--between", "median", *map(str, paths), "--csv", str(table)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stdout + done.stderr  # it warns and goes on
    before = documents[0]["benchmarks"]
    assert before[0]["name"] in done.stdout and before[0]["group"] in done.stdout
    assert done.stdout.count("+50.0%") == len(before) == 69  # every median x1.5
    with open(f"{table}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))  # by full name, one row per source
    assert len(rows) == 2 * len(before)
    first = [row for row in rows if row["name"] == before[0]["fullname"]]
    assert [float(row["median"]) for row in first] == pytest.approx(
        [before[0]["stats"]["median"], documents[1]["benchmarks"][0]["stats"]["median"]]
    )
    assert first[0]["param:method"] == "odebench.backprop" and float(first[0]["param:rtol"]) == 1e-3
