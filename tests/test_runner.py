"""The runner end to end: CLI, records, isolation and faults, interruption and resume, executors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from odebench import COLUMNS, load_results, load_run_info
from odebench.runner import parse_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAST = {"repeats": 2, "warmup": 0, "timeout_s": 120, "fd_check": True}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))


def _write(tmp_path: Path, suite: dict) -> Path:
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "odebench", *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=cwd or ROOT, timeout=timeout)  # fmt: skip


def test_cli_end_to_end(tmp_path):
    """``odebench run`` in a subprocess, then the parquet: every column, sane values."""
    suite = _write(tmp_path, {
        "name": "e2e",
        "settings": FAST,
        "problems": [{"name": "linear", "params": {"dim": 3}}],
        "methods": [{"name": "odebench.backprop"}, {"name": "odebench.backsolve"},
                    {"name": "odebench.checkpoint", "params": {"solver": "rk4", "n_steps": 50}}],
        "tolerances": [1e-8],
        "expect": [{"where": {"method": "odebench.*"}, "max": {"grad_rel_err": 1e-4}}],
    })  # fmt: skip
    out = tmp_path / "run"
    proc = _cli("run", suite, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "all 1 expectations met" in proc.stdout
    frame = pd.read_parquet(out / "records.parquet")
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(frame) == 3 and set(frame["status"]) == {"ok"}
    assert (frame["grad_rel_err"] < 1e-4).all()
    assert (frame["reference"] == "analytic").all()
    assert (frame["time_total_s"] > 0).all() and (frame["time_forward_s"] > 0).all()
    assert frame["time_samples_s"].map(len).eq(2).all()
    assert (frame["peak_memory_bytes"] >= 0).all() and set(frame["memory_source"]) == {"rss"}
    assert (frame["nfe_forward"] > 0).all()
    rk4 = frame[frame["method"] == "odebench.checkpoint"].iloc[0]
    assert rk4["nfe_forward"] == 4 * 50 and rk4["steps_forward"] == 50  # the hand count
    assert rk4["consistency_err"] < 1e-10  # checkpoint == backprop of the same discrete solve
    backprop = frame[frame["method"] == "odebench.backprop"].iloc[0]
    assert backprop["nfe_backward"] == 0 and pd.isna(backprop["consistency_err"])
    assert (frame["fd_err"] < 1e-3).all()
    info = load_run_info(out)
    assert info["suite"]["name"] == "e2e" and info["finished_at"] and info["packages"]["torch"]
    assert info["cpu"]["cores"] >= 1 and "commit" in info["git"]
    assert len(load_results(out)) == 3


def test_all_backends_on_linear_match_the_analytic_gradient(tmp_path):
    methods = ["odebench.backprop", "odebench.backsolve", "odebench.interpolated", "odebench.checkpoint",
               "torchdiffeq.backprop", "torchdiffeq.adjoint", "diffrax.recursive_checkpoint", "diffrax.backsolve",
               "diffrax.direct", "torchode.autodiff", "torchode.backsolve"]  # fmt: skip
    suite = parse_suite({
        "name": "backends", "settings": {**FAST, "fd_check": False},
        "problems": [{"name": "linear", "params": {"dim": 3}}],
        "methods": [{"name": m, "params": {"solver": "dopri5"}} for m in methods] + [{"name": "fd.central"}],
        "tolerances": [1e-9],
    })  # fmt: skip
    frame = run_suite(suite, tmp_path / "run", progress=False).frame()
    ran = frame[frame["status"] != "unavailable"]
    assert set(ran["status"]) == {"ok"}, ran[["method", "status", "error"]].to_string()
    assert (ran["grad_rel_err"] < 1e-5).all(), ran[["method", "grad_rel_err"]].to_string()
    assert ran["nfe_forward"].notna().all() and ran["nfe_backward"].notna().all()


FAULTS = {
    "raises": ("failed", "always raises"),
    "nan": ("diverged", ""),
    "aborts": ("failed", "SIGABRT"),
    "sleeps": ("timeout", "timeout_s=5"),
    "allocates": ("failed", "out of memory"),
}


def test_faults_become_records_and_neighbours_survive(tmp_path):
    names = ["good", *FAULTS, "good2"]
    problems = [{"name": f"fault_problems:{'good' if n == 'good2' else n}"} for n in names]
    problems[-1]["params"] = {"rate": 0.25}
    suite = parse_suite({
        "name": "faults",
        "settings": {**FAST, "timeout_s": 5, "memory_limit_mb": 400, "reference_timeout_s": 30},
        "problems": problems,
        "methods": [{"name": "odebench.backprop"}, {"name": "odebench.backsolve"}],
        "tolerances": [1e-6],
    })  # fmt: skip
    start = time.monotonic()
    result = run_suite(suite, tmp_path / "run", progress=False)
    frame = result.frame()
    assert time.monotonic() - start < 120
    by_problem = frame.groupby("problem")
    for name, (status, text) in FAULTS.items():
        rows = by_problem.get_group(f"fault_problems:{name}")
        assert set(rows["status"]) == {status}, rows[["status", "error"]].to_string()
        assert rows["error"].str.contains(text, regex=False).all(), rows["error"].tolist()
    good = by_problem.get_group("fault_problems:good")
    assert set(good["status"]) == {"ok"} and (good["grad_rel_err"] < 1e-4).all()
    assert result.exit_code == 0


def test_unavailable_backend_and_device_give_records_and_exit_0(tmp_path):
    suite = _write(tmp_path, {
        "name": "unavail", "settings": {**FAST, "device": ["cpu", "cuda"]},
        "problems": [{"name": "linear", "params": {"dim": 2}}],
        "methods": [{"name": "odebench.backprop"}, {"name": "torchode.autodiff", "params": {"solver": "rk4"}},
                    {"name": "diffrax.direct", "params": {"solver": "rk4"}}],
        "tolerances": [1e-6],
    })  # fmt: skip
    # Hide torchode from the parent: its cases must be unavailable, with the reason.
    hide = "import sys; sys.modules['torchode'] = None; from odebench.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", hide, "run", str(suite), "-o", str(tmp_path / "run")],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frame = load_results(tmp_path / "run")
    rows = frame.set_index(["method", "device"])
    assert rows.loc[("torchode.autodiff", "cpu"), "status"] == "unavailable"
    assert "torchode is not installed" in rows.loc[("torchode.autodiff", "cpu"), "error"]
    assert rows.loc[("diffrax.direct", "cpu"), "status"] == "unavailable"
    assert "rk4" in rows.loc[("diffrax.direct", "cpu"), "error"]
    if not _has_cuda():
        assert rows.loc[("odebench.backprop", "cuda"), "status"] == "unavailable"
        assert "CUDA" in rows.loc[("odebench.backprop", "cuda"), "error"]
    assert rows.loc[("odebench.backprop", "cpu"), "status"] == "ok"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _slow_suite(tmp_path):
    return _write(tmp_path, {
        "name": "slow", "settings": {**FAST, "repeats": 1, "fd_check": False},
        "problems": [{"name": "fault_problems:slow", "params": {"seconds": 0.4}}],
        "methods": [{"name": "odebench.backprop"}, {"name": "odebench.checkpoint"}],
        "tolerances": [1e-3, 1e-4, 1e-5],
    })  # fmt: skip


# A background job of a shell script starts with SIGINT ignored, and Python then keeps
# ignoring it; a user's terminal delivers it with the default disposition. (Not through
# preexec_fn: forking a process that runs JAX's threads is unsafe.)
WITH_DEFAULT_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'odebench'; runpy.run_module('odebench', run_name='__main__')"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_then_resume_gives_the_same_cases(tmp_path, signum):
    suite = _slow_suite(tmp_path)
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-c", WITH_DEFAULT_SIGINT, "run", str(suite), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)  # fmt: skip
    journal = out / "records.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    partial = load_results(out)
    assert 2 <= len(partial) < 6 and set(partial["status"]) == {"ok"}
    assert load_run_info(out)["interrupted"] is True

    resumed = _cli("run", suite, "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    full = _cli("run", suite, "-o", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    a, b = load_results(out), load_results(tmp_path / "full")
    assert sorted(a["case_id"]) == sorted(b["case_id"]) and len(a) == 6
    assert set(a["status"]) == {"ok"}
    # The records of the interrupted part were kept, not rerun.
    assert set(partial["finished_at"]) <= set(a["finished_at"])


def test_resume_reruns_failed_and_missing_only(tmp_path):
    suite = parse_suite({"name": "resume", "settings": FAST, "problems": [{"name": "linear", "params": {"dim": 2}}],
                         "methods": ["odebench.backprop", "odebench.backsolve"], "tolerances": [1e-4, 1e-6]})  # fmt: skip
    out = tmp_path / "run"
    first = run_suite(suite, out, progress=False)
    records = {r.case_id: r for r in first.records}
    # Pretend one case failed and one never ran.
    frame = first.frame()
    frame.loc[0, "status"] = "failed"
    dropped = frame.loc[1, "case_id"]
    frame = frame.drop(index=1)
    (out / "records.jsonl").unlink()
    frame.to_parquet(out / "records.parquet")
    second = run_suite(suite, resume=out, progress=False)
    after = {r.case_id: r for r in second.records}
    assert len(after) == 4 and all(r.status == "ok" for r in after.values())
    rerun = {frame.loc[0, "case_id"], dropped}
    for case_id, record in after.items():
        assert (record.finished_at != records[case_id].finished_at) == (case_id in rerun) or case_id in rerun


def test_jobs_two_runs_everything(tmp_path):
    suite = parse_suite({"name": "jobs", "settings": FAST, "problems": [{"name": "linear", "params": {"dim": [2, 3]}}],
                         "methods": ["odebench.backprop", "odebench.interpolated"], "tolerances": [1e-5]})  # fmt: skip
    result = run_suite(suite, tmp_path / "run", jobs=2, progress=False)
    assert len(result.records) == 4 and {r.status for r in result.records} == {"ok"}


def test_memory_of_a_small_case_is_not_polluted_by_a_big_one(tmp_path):
    """Each case runs in a fresh process: a large case first must not inflate a small one."""
    settings = {**FAST, "fd_check": False}
    small = {"name": "neural_mlp", "params": {"width": 16, "batch": 4}}
    big = {"name": "neural_mlp", "params": {"width": 256, "batch": 512}}
    method = [{"name": "odebench.backprop", "params": {"solver": "rk4", "n_steps": 40}}]
    alone = run_suite(parse_suite({"name": "alone", "settings": settings, "problems": [small], "methods": method,
                                   "tolerances": [1e-3]}), tmp_path / "a", progress=False).frame()  # fmt: skip
    after = run_suite(parse_suite({"name": "after", "settings": settings, "problems": [big, small], "methods": method,
                                   "tolerances": [1e-3]}), tmp_path / "b", progress=False).frame()  # fmt: skip
    big_mem = after.iloc[0]["peak_memory_bytes"]
    small_after = after.iloc[1]["peak_memory_bytes"]
    assert big_mem > 20 * 2**20
    assert small_after < max(2 * alone.iloc[0]["peak_memory_bytes"], 8 * 2**20)


def test_submitit_local_executor(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("ODEBENCH_SUBMITIT_CLUSTER", "local")
    suite = parse_suite({"name": "slurm", "settings": {**FAST, "slurm": {"cases_per_job": 2}},
                         "problems": [{"name": "linear", "params": {"dim": 2}}, "fault_problems:raises"],
                         "methods": ["odebench.backprop", "odebench.backsolve"], "tolerances": [1e-5]})  # fmt: skip
    result = run_suite(suite, tmp_path / "run", executor="submitit", progress=False)
    frame = result.frame()
    assert len(frame) == 4
    assert set(frame[frame["problem"] == "linear"]["status"]) == {"ok"}
    assert set(frame[frame["problem"] == "fault_problems:raises"]["status"]) == {"failed"}
    assert (tmp_path / "run" / "shards").is_dir()
    assert len(load_results(tmp_path / "run")) == 4


def test_only_solver_errors_are_divergences():
    from odebench._errors import MaxStepsExceeded, StepSizeUnderflow
    from odebench.runner._measure import classify

    assert classify(MaxStepsExceeded("exceeded max_steps=10")) == "diverged"
    assert classify(StepSizeUnderflow("step size underflow")) == "diverged"
    assert classify(AttributeError("'X' object has no attribute 'max_steps'")) == "failed"
    assert classify(RuntimeError("nan")) == "failed"


def test_report_from_a_real_run(tmp_path):
    """A tiny real run through the report: every figure file written, the HTML names them."""
    from odebench.report import build_report

    suite = parse_suite({"name": "tiny-real", "settings": {**FAST, "fd_check": False},
                         "problems": [{"name": "linear", "params": {"dim": 2}}, "stiff_decay"],
                         "methods": ["odebench.backprop", "odebench.backsolve", "odebench.interpolated"],
                         "tolerances": [1e-4, 1e-7]})  # fmt: skip
    run = run_suite(suite, tmp_path / "run", progress=False)
    out = build_report([run.path], tmp_path / "report")
    figures = sorted((out / "figures").glob("*.png"))
    assert {"wp_time_linear.png", "wp_time_stiff_decay.png", "wp_nfe_stiff_decay.png"} <= {f.name for f in figures}
    assert all(f.stat().st_size > 1000 for f in figures)
    html = (out / "index.html").read_text()
    markdown = (out / "report.md").read_text()
    for figure in figures:
        assert f"figures/{figure.name}" in markdown
        assert figure.stem in html
    # backsolve's failure on stiff_decay is among the findings, and named once per method.
    findings = markdown.split("## Findings", 1)[1].split("\n## ", 1)[0].split("How to read this report", 1)[0]
    assert "odebench.backsolve" in findings and "unstable backward solve" in findings
    assert "odebench.interpolated" not in findings


def test_stage_times_add_up_and_the_summary_names_them():
    """Each measured stage of a case has its column; together they stay within the case's
    wall time, and the summary line names them largest first, with the run's phases."""
    from odebench._records import STAGE_COLUMNS
    from odebench.runner._measure import run_case
    from odebench.runner._summary import time_breakdown

    suite = parse_suite({
        "name": "stages", "settings": {"repeats": 2, "warmup": 0},
        "problems": [{"name": "linear", "params": {"dim": 2}}],
        "methods": [{"name": "odebench.backsolve"}], "tolerances": [1e-5],
    })  # fmt: skip
    (case,) = suite.cases()
    record = run_case(case, suite.settings, "r", "stages")
    assert record.status == "ok", record.error
    stages = {column: getattr(record, column) for column, _ in STAGE_COLUMNS}
    assert all(v is not None and v >= 0 for v in stages.values()), stages
    assert sum(stages.values()) <= record.case_wall_s
    assert stages["measure_s"] > 0

    stage_nan = {column: None for column, _ in STAGE_COLUMNS}
    frame = pd.DataFrame([
        {"status": "ok", "case_wall_s": 10.0, "reference_s": 0.5, "prepare_s": 6.0, "measure_s": 1.0,
         "count_s": 2.0, "consistency_s": None, "fd_s": 0.25},
        {"status": "timeout", "case_wall_s": 4.0, **stage_nan},  # killed: no stages came back
        {"status": "unavailable", "case_wall_s": 0.0, **stage_nan},
    ])  # fmt: skip
    text = time_breakdown(frame, {"references": 3.0, "cases": 16.0}, jobs=1)
    first, second = text.splitlines()
    assert first == "wall time: references 3.0 s + cases 16.0 s (--jobs 1)"
    assert second.startswith("case time 16.0 s: prepare/compile 6.0 s (38%), cases killed before reporting "
                             "(timeouts, crashes) 4.0 s (25%), counting pass 2.0 s (12%), ")  # fmt: skip
    assert "between cases (fork, dispatch, writing) 2.0 s" in second
    assert "start-up and set-up 0.2 s" in second  # 10 - 9.75
    assert "discrete-backprop twin" not in second  # never reached: not shown


@pytest.mark.parametrize("method", ["odebench.forward", "diffrax.forward"])
def test_forward_mode_over_max_inputs_is_skipped_with_the_reason(method):
    """A forward-mode method declines a problem with more inputs than max_inputs: the
    record says skipped and why, and nothing is prepared (no compile, no timeout)."""
    from odebench.runner._measure import run_case

    suite = parse_suite({
        "name": "skip", "problems": [{"name": "linear", "params": {"dim": 4}}],
        "methods": [{"name": method, "params": {"max_inputs": 19}}], "tolerances": [1e-5],
    })  # fmt: skip
    (case,) = suite.cases()
    record = run_case(case, suite.settings, "r", "skip")
    assert record.status == "skipped"
    assert "20 inputs (state 4, parameters 16) exceed max_inputs=19" in record.error
    assert record.prepare_s is None
