"""The regression gate: each rule on both sides of its threshold, injected regressions,
noise that must pass, rules files, bad input, outputs, and the Mann-Whitney test against scipy."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import ROOT, odebench, odebench_subprocess, parse
from synthetic_runs import synthetic_frame, write_synthetic_run

from odebench._cases import case_label
from odebench._errors import UsageError
from odebench.gate import Rules, gate, load_rules, mann_whitney_u, rules_from_dict

BACKSOLVE = {"method": "odebench.backsolve", "method_params": '{"seminorm": false, "solver": "dopri5"}'}


def _mask(frame, where):
    mask = np.ones(len(frame), dtype=bool)
    for column, wanted in where.items():
        mask &= (frame[column] == wanted).to_numpy()
    return mask


def changed(frame, where, **values):
    """A copy of ``frame`` with ``values`` set on the rows matching ``where``."""
    out = frame.copy()
    mask = _mask(out, where)
    assert mask.any(), f"no row matches {where}"
    for column, v in values.items():
        out.loc[mask, column] = v
    return out


def scaled(frame, column, factor, where=None):
    out = frame.copy()
    mask = _mask(out, where or {})
    values = out.loc[mask, column] * factor
    out.loc[mask, column] = values.round().astype("Int64") if str(out[column].dtype) == "Int64" else values
    return out


def slowed(frame, factor, where=None):
    """Times (median and samples) of the matching rows multiplied by ``factor``."""
    out = scaled(frame, "time_total_s", factor, where)
    mask = _mask(out, where or {})
    out.loc[mask, "time_samples_s"] = out.loc[mask, "time_samples_s"].map(lambda s: [x * factor for x in s])
    return out


def first_label(frame, where):
    return case_label(frame[_mask(frame, where)].iloc[0].to_dict())


@pytest.fixture(scope="module")
def base():
    return synthetic_frame()


@pytest.fixture
def pair():
    """A two-case run (backprop and backsolve on one problem) and a copy to change."""
    frame = synthetic_frame(
        problems=[("linear", {"dim": 4})],
        methods=[
            ("odebench.backprop", {"solver": "dopri5"}),
            ("odebench.backsolve", {"solver": "dopri5", "seminorm": False}),
        ],
        tolerances=(1e-6,),
        failures=False,
    )
    return frame, frame.copy()


def checks(result):
    return sorted({v.check for v in result.violations})


# ---------------------------------------------------------------- noise must pass


def test_self_comparison_passes(base):
    result = gate(base, base)
    assert result.passed, result.to_markdown()
    assert result.checked == len(base)
    assert result.verdict.startswith("PASS")


def test_uniformly_slower_machine_passes_in_relative_mode(base):
    result = gate(synthetic_frame(time_scale=1.5), base)
    assert result.passed, result.to_markdown()
    assert any("×1.5" in note and "time mode absolute" in note for note in result.notes)
    assert not any("time mode absolute" in note for note in gate(base, base).notes)


def test_uniformly_slower_machine_fails_in_absolute_mode(base):
    rules = rules_from_dict({"defaults": {"time": {"mode": "absolute"}}})
    result = gate(synthetic_frame(time_scale=2.0), base, rules)
    assert not result.passed
    assert checks(result) == ["time (absolute)"]


def _honest_rerun(frame, rng, machine):
    """The same code measured again: 10% noise per sample, 5% per case, another machine speed."""
    out = frame.copy()
    samples = []
    for s in out["time_samples_s"]:
        shift = machine * math.exp(rng.normal(0, 0.05))
        samples.append([x * shift * math.exp(rng.normal(0, 0.1)) for x in s])
    out["time_samples_s"] = samples
    out["time_total_s"] = [float(np.median(s)) if s else float("nan") for s in samples]
    return out


def test_honest_reruns_pass(base):
    rng = np.random.default_rng(20260101)
    for _ in range(25):
        before = _honest_rerun(base, rng, 1.0)
        after = _honest_rerun(base, rng, rng.uniform(0.7, 1.5))
        result = gate(after, before)
        assert result.passed, result.to_markdown()


# ---------------------------------------------------------------- injected regressions (CLI, exit 1)


def _inject_gradient(frame):
    return scaled(frame, "grad_rel_err", 10, {**BACKSOLVE, "problem": "linear"})


def _inject_nfe(frame):
    return scaled(frame, "nfe_backward", 1.2, {**BACKSOLVE, "problem": "linear"})


def _inject_removed(frame):
    return frame[~_mask(frame, {**BACKSOLVE, "problem": "linear", "rtol": 1e-6})]


def _inject_failed(frame):
    return changed(frame, {**BACKSOLVE, "problem": "linear", "rtol": 1e-6}, status="failed", error="RuntimeError: boom")


def _inject_slow_method(frame):
    return slowed(frame, 2.0, {"method": "odebench.interpolated"})


@pytest.mark.parametrize(
    "inject, where, check",
    [
        (_inject_gradient, {**BACKSOLVE, "problem": "linear"}, "grad_rel_err"),
        (_inject_nfe, {**BACKSOLVE, "problem": "linear"}, "nfe_backward"),
        (_inject_removed, {**BACKSOLVE, "problem": "linear", "rtol": 1e-6}, "missing"),
        (_inject_failed, {**BACKSOLVE, "problem": "linear", "rtol": 1e-6}, "status"),
        (_inject_slow_method, {"method": "odebench.interpolated"}, "time (relative)"),
    ],
    ids=["gradient-x10", "nfe+20%", "case-removed", "status-failed", "one-method-2x-slower"],
)
def test_injected_regression_exits_1_naming_the_case(tmp_path, base, capsys, inject, where, check):
    baseline = tmp_path / "baseline.parquet"
    run = tmp_path / "run.parquet"
    base.to_parquet(baseline)
    inject(base).to_parquet(run)
    assert odebench("gate", run, "--baseline", baseline) == 1
    out = capsys.readouterr().out
    label = first_label(base, where)
    rows = [line for line in out.splitlines() if line.startswith(f"| {label} |")]
    assert rows, f"{label} not in\n{out}"
    assert f"| {check} |" in rows[0]
    assert out.strip().splitlines()[-1].startswith("odebench gate: FAIL")


def test_reference_method_slower_alone_fails(base):
    result = gate(slowed(base, 2.0, {"method": "odebench.backprop"}), base)
    assert checks(result) == ["time (relative)"]
    assert {v.identity["method"] for v in result.violations} == {"odebench.backprop"}


def test_one_method_slower_on_a_slower_machine_fails(base):
    run = slowed(synthetic_frame(time_scale=1.5), 2.0, {"method": "odebench.checkpoint"})
    result = gate(run, base)
    assert {v.identity["method"] for v in result.violations} == {"odebench.checkpoint"}
    assert all(v.ratio == pytest.approx(2.0) for v in result.violations)


# ---------------------------------------------------------------- time on another machine


def test_uniformly_much_slower_machine_passes(base):
    # A clean clone on another runner measured everything x2.35-2.49 slower.
    result = gate(synthetic_frame(time_scale=2.4), base)
    assert result.passed, result.to_markdown()
    assert not result.informational


def test_speed_factor_is_pooled_over_the_methods_of_a_problem(base):
    # The machine is x2.4 slower, but backprop only x1.2 (it is less sensitive to it): the
    # others are x2.4 / x1.2 = x2 relative to backprop, yet nothing regressed.
    run = slowed(synthetic_frame(time_scale=2.4), 0.5, {"method": "odebench.backprop"})
    result = gate(run, base)
    assert result.passed, result.to_markdown()
    # A single reference method, as asked for, still sees x2 everywhere.
    by_backprop = rules_from_dict({"defaults": {"time": {"reference": "odebench.backprop"}}})
    assert checks(gate(run, base, by_backprop)) == ["time (relative)"]


def test_one_method_three_times_slower_fails_under_the_pooled_rule(base):
    result = gate(slowed(base, 3.0, {"method": "odebench.checkpoint"}), base)
    assert checks(result) == ["time (relative)"]
    assert {v.identity["method"] for v in result.violations} == {"odebench.checkpoint"}
    assert all(v.ratio == pytest.approx(3.0) for v in result.violations)
    assert all("relative to the other methods on this problem" in v.rule for v in result.violations)


def test_other_cpu_makes_time_informational(base):
    run = slowed(base, 3.0, {"method": "odebench.checkpoint"})
    result = gate(run, base, run_cpu="AMD EPYC 7763", baseline_cpu="Intel(R) Xeon(R) Processor")
    assert result.passed, result.to_markdown()
    assert {v.identity["method"] for v in result.informational} == {"odebench.checkpoint"}
    assert all("another CPU" in v.rule for v in result.informational)
    assert any("AMD EPYC 7763" in note and "enforce_on_other_cpu" in note for note in result.notes)
    text = result.to_markdown()
    assert "Time changes (informational, not gated)" in text and "time change" in result.verdict
    enforce = rules_from_dict({"defaults": {"time": {"enforce_on_other_cpu": True}}})
    assert checks(gate(run, base, enforce, run_cpu="AMD EPYC 7763", baseline_cpu="Intel Xeon")) == ["time (relative)"]
    # The same CPU, or one that is not known: time is gated.
    assert not gate(run, base, run_cpu="AMD EPYC 7763", baseline_cpu="AMD EPYC 7763").passed
    assert not gate(run, base, run_cpu="AMD EPYC 7763").passed


def test_other_cpu_still_gates_deterministic_metrics(base):
    run = _inject_nfe(slowed(base, 3.0, {"method": "odebench.checkpoint"}))
    result = gate(run, base, run_cpu="AMD EPYC 7763", baseline_cpu="Intel Xeon")
    assert checks(result) == ["nfe_backward"] and result.informational


def test_time_informational_by_rule(base):
    rules = rules_from_dict({"defaults": {"time": {"informational": True}}})
    result = gate(slowed(base, 3.0, {"method": "odebench.checkpoint"}), base, rules)
    assert result.passed and result.informational
    assert all("informational by rule" in v.rule for v in result.informational)
    assert result.to_dict()["informational"]


@pytest.mark.parametrize("key", ["informational", "enforce_on_other_cpu"])
def test_time_flags_must_be_booleans(key):
    with pytest.raises(UsageError, match=f"defaults.time.{key}: expected true or false"):
        rules_from_dict({"defaults": {"time": {key: "yes"}}})


def test_ci_rules_gate_deterministic_metrics_and_report_time(tmp_path, base, capsys):
    """.ci/gate-rules.yaml: a slower method on another CPU passes with its time change
    printed; more steps or NFE, or a worse gradient, fail."""
    rules = ROOT / ".ci" / "gate-rules.yaml"
    baseline = write_synthetic_run(tmp_path / "baseline")
    run = write_synthetic_run(tmp_path / "run")
    slowed(base, 3.0, {"method": "odebench.checkpoint"}).to_parquet(run / "records.parquet")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "cpu": {"model": "AMD EPYC 7763", "cores": 2}}))
    assert odebench("gate", run, "--baseline", baseline, "--rules", rules) == 0
    out = capsys.readouterr().out
    assert "Time changes (informational, not gated)" in out
    assert "| time (relative) |" in out and "odebench.checkpoint(solver=dopri5)" in out
    assert "AMD EPYC 7763" in out and "synthetic CPU" in out
    for inject in (_inject_nfe, _inject_gradient, lambda f: scaled(f, "steps_backward", 1.5, BACKSOLVE)):
        inject(base).to_parquet(run / "records.parquet")
        assert odebench("gate", run, "--baseline", baseline, "--rules", rules) == 1
    assert "| steps_backward |" in capsys.readouterr().out


# ---------------------------------------------------------------- rules that match nothing


def test_rules_that_match_no_case_are_named_in_the_notes(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {where: {method: odebench.backprop, method_params: {solver: rk4}}, grad_rel_err: {factor: 1.5}}\n"
        "  - {where: {method: odebench.backprop}, grad_rel_err: {factor: 1.5}}\n"
        "ignore:\n"
        "  - {problem: no_such_problem, reason: gone}\n"
    )
    assert odebench("gate", run, "--baseline", run, "--rules", rules) == 0
    out = capsys.readouterr().out
    unmatched = [line for line in out.splitlines() if "matches no case" in line]
    assert len(unmatched) == 2, out
    assert "rules.yaml:rules[0]" in unmatched[0] and "{method: odebench.backprop, method_params: {solver: rk4}}" in out
    assert "rules.yaml:ignore[0]" in unmatched[1] and "no_such_problem" in unmatched[1]


# ---------------------------------------------------------------- records that are not valid


@pytest.mark.parametrize("column", ["method_params", "problem_params"])
def test_params_that_are_not_json_exit_2_naming_run_and_column(tmp_path, capsys, column):
    baseline = write_synthetic_run(tmp_path / "baseline")
    run = write_synthetic_run(tmp_path / "run")
    frame = synthetic_frame()
    frame.loc[3, column] = "{solver: dopri5"
    frame.to_parquet(run / "records.parquet")
    assert odebench("gate", run, "--baseline", baseline) == 2
    err = capsys.readouterr().err
    assert err.startswith("odebench gate: error: run: ") and str(run) in err and f"column {column}" in err, err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- each rule, both sides


def test_status_rule(pair):
    before, after = pair
    assert checks(gate(changed(after, BACKSOLVE, status="timeout"), before)) == ["status"]
    # not ok before: nothing to lose; and a recovery is not a regression
    failing = changed(before, BACKSOLVE, status="failed")
    assert gate(changed(after, BACKSOLVE, status="failed"), failing).passed
    assert gate(after, failing).passed


def test_missing_rule_and_new_cases(pair):
    before, after = pair
    fewer = after[~_mask(after, BACKSOLVE)]
    result = gate(fewer, before)
    assert checks(result) == ["missing"]
    result = gate(before, fewer)  # a case only in the run is reported, not gated
    assert result.passed and len(result.new_cases) == 1


@pytest.mark.parametrize("factor, fails", [(1.9, False), (2.1, True)])
def test_grad_rel_err_factor(pair, factor, fails):
    before, after = pair
    result = gate(scaled(after, "grad_rel_err", factor, BACKSOLVE), before)
    assert (checks(result) == ["grad_rel_err"]) is fails


@pytest.mark.parametrize(
    "dtype, before_err, after_err, fails",
    [
        ("float64", 1e-15, 3e-15, False),  # round-off, under the floor of 100 eps
        ("float64", 1e-15, 5e-14, True),
        ("float32", 1e-7, 1e-5, False),
        ("float32", 1e-7, 2e-5, True),
    ],
)
def test_grad_rel_err_floor_follows_dtype(pair, dtype, before_err, after_err, fails):
    before, after = pair
    before = changed(before, BACKSOLVE, grad_rel_err=before_err, dtype=dtype)
    after = changed(after, BACKSOLVE, grad_rel_err=after_err, dtype=dtype)
    assert (not gate(after, before).passed) is fails


def test_grad_rel_err_explicit_floor_and_lost_value(pair):
    before, after = pair
    before = changed(before, BACKSOLVE, grad_rel_err=1e-10)
    worse = changed(after, BACKSOLVE, grad_rel_err=1e-9)
    assert not gate(worse, before).passed
    assert gate(worse, before, rules_from_dict({"defaults": {"grad_rel_err": {"floor": 1e-8}}})).passed
    lost = changed(after, BACKSOLVE, grad_rel_err=float("nan"))
    assert checks(gate(lost, before)) == ["grad_rel_err"]


@pytest.mark.parametrize("column", ["nfe_forward", "nfe_backward"])
@pytest.mark.parametrize("factor, fails", [(1.04, False), (1.06, True)])
def test_nfe_max_increase(pair, column, factor, fails):
    before, after = pair
    before = changed(before, BACKSOLVE, **{column: 1000})
    after = changed(after, BACKSOLVE, **{column: int(1000 * factor)})
    assert (checks(gate(after, before)) == [column]) is fails


def test_nfe_from_zero_is_a_regression(pair):
    before, after = pair
    assert checks(gate(changed(after, {"method": "odebench.backprop"}, nfe_backward=6), before)) == ["nfe_backward"]


@pytest.mark.parametrize("source", ["cuda", "jax"])
@pytest.mark.parametrize("factor, fails", [(1.04, False), (1.06, True)])
def test_memory_deterministic_sources(pair, source, factor, fails):
    before, after = pair
    before = changed(before, BACKSOLVE, memory_source=source, peak_memory_bytes=10_000_000)
    after = changed(after, BACKSOLVE, memory_source=source, peak_memory_bytes=int(10_000_000 * factor))
    assert (checks(gate(after, before)) == [f"peak_memory_bytes ({source})"]) is fails


def test_memory_rss_skipped_by_default_and_loose_when_asked(pair):
    before, after = pair
    bigger = scaled(after, "peak_memory_bytes", 1.3, BACKSOLVE)
    assert gate(bigger, before).passed  # synthetic records measure rss
    loose = rules_from_dict({"defaults": {"memory": {"rss_max_increase": 0.5}}})
    assert gate(bigger, before, loose).passed
    tight = rules_from_dict({"defaults": {"memory": {"rss_max_increase": 0.2}}})
    assert checks(gate(bigger, before, tight)) == ["peak_memory_bytes (rss)"]


def test_memory_measured_differently_is_not_compared(pair):
    before, after = pair
    before = changed(before, BACKSOLVE, memory_source="rss", peak_memory_bytes=10_000_000)
    after = changed(after, BACKSOLVE, memory_source="cuda", peak_memory_bytes=20_000_000)
    assert gate(after, before).passed


@pytest.mark.parametrize("factor, fails", [(1.5, False), (1.7, True)])
def test_time_factor(base, factor, fails):
    result = gate(slowed(base, factor, {"method": "odebench.interpolated"}), base)
    assert (checks(result) == ["time (relative)"]) is fails


def test_time_needs_significant_samples(base):
    # The median doubles but the samples overlap with the baseline's: noise, not a slowdown.
    where = {"method": "odebench.interpolated"}
    run = slowed(base, 2.0, where)
    mask = _mask(run, where)
    run.loc[mask, "time_samples_s"] = base.loc[mask, "time_total_s"].map(
        lambda t: [t * 0.5, t * 0.9, t * 2, t * 2.2, t * 2.5]
    )
    assert gate(run, base).passed
    # With too few samples for the test to reach alpha, the factor decides alone.
    few = slowed(base, 2.0, where)
    few.loc[mask, "time_samples_s"] = few.loc[mask, "time_samples_s"].map(lambda s: s[:2])
    result = gate(few, base)
    assert result.violations and all("too few samples" in v.rule for v in result.violations)


def test_time_min_time_s(base):
    run = slowed(base, 2.0, {"method": "odebench.interpolated"})
    assert not gate(run, base).passed
    assert gate(run, base, rules_from_dict({"defaults": {"time": {"min_time_s": 10.0}}})).passed


def test_time_reference_is_configurable_and_prefers_the_same_solver(base):
    rules = rules_from_dict({"defaults": {"time": {"reference": "odebench.checkpoint"}}})
    result = gate(slowed(base, 2.0, {"method": "odebench.interpolated"}), base, rules)
    assert result.violations and all(
        "relative to odebench.checkpoint(solver=dopri5) on this problem" in v.rule for v in result.violations
    )

    # Every dopri5 case gets 2x slower, the tsit5 backprop 4x faster: dopri5 methods are
    # compared with the dopri5 backprop and pass; with only the tsit5 one, they fail.
    backprop = rules_from_dict({"defaults": {"time": {"reference": "odebench.backprop"}}})
    tsit = base[base["method"] == "odebench.backprop"].assign(method_params='{"solver": "tsit5"}', solver="tsit5")
    both = pd.concat([base, tsit], ignore_index=True)
    run = slowed(slowed(both, 2.0, {"solver": "dopri5"}), 0.25, {"solver": "tsit5"})
    assert gate(run, both, backprop).passed, gate(run, both, backprop).to_markdown()
    dopri_backprop = _mask(both, {"method": "odebench.backprop", "solver": "dopri5"})
    result = gate(run[~dopri_backprop], both[~dopri_backprop], backprop)
    assert result.violations and all("odebench.backprop(solver=tsit5)" in v.rule for v in result.violations)


def test_time_without_reference_uses_the_other_methods(base):
    no_backprop = base[base["method"] != "odebench.backprop"]
    run = slowed(synthetic_frame(time_scale=1.5), 2.0, {"method": "odebench.interpolated"})
    run = run[run["method"] != "odebench.backprop"]
    result = gate(run, no_backprop)
    assert result.violations and all("other methods on this problem" in v.rule for v in result.violations)
    assert {v.identity["method"] for v in result.violations} == {"odebench.interpolated"}


def test_time_mode_both_reports_each_mode(base):
    rules = rules_from_dict({"defaults": {"time": {"mode": "both"}}})
    run = slowed(base, 2.0, {"method": "odebench.interpolated", "problem": "linear", "rtol": 1e-6})
    assert checks(gate(run, base, rules)) == ["time (absolute)", "time (relative)"]


# ---------------------------------------------------------------- rules: overrides and ignore


def test_later_rules_override_earlier_ones(base):
    run = _inject_gradient(base)
    loose = {"where": {"method": "odebench.*"}, "grad_rel_err": {"factor": 100}}
    tight = {"where": {"method": "odebench.backsolve", "problem": ["linear", "other"]}, "grad_rel_err": {"factor": 2}}
    result = gate(run, base, rules_from_dict({"rules": [loose, tight]}, source="dir/rules.yaml"))
    assert checks(result) == ["grad_rel_err"] and all("[rules.yaml:rules[1]]" in v.rule for v in result.violations)
    assert gate(run, base, rules_from_dict({"rules": [tight, loose]})).passed


def test_rules_match_parameters_and_tolerances(base):
    run = _inject_gradient(base)
    skip_one = rules_from_dict(
        {
            "rules": [
                {
                    "where": {"method_params": {"seminorm": False}, "rtol": [1e-3, 1e-6, 1e-9]},
                    "grad_rel_err": {"skip": True},
                }
            ]
        }
    )
    assert gate(run, base, skip_one).passed
    other_params = rules_from_dict(
        {"rules": [{"where": {"method_params": {"seminorm": True}}, "grad_rel_err": {"skip": True}}]}
    )
    assert not gate(run, base, other_params).passed


def test_ignored_cases_are_not_gated(base):
    run = _inject_gradient(_inject_removed(base))
    rules = rules_from_dict({"ignore": [{"problem": "lin*", "method": "odebench.backsolve", "reason": "known flaky"}]})
    result = gate(run, base, rules)
    assert result.passed and result.ignored == 6
    assert "6 cases ignored" in result.to_markdown()


def test_example_rules_file_is_valid_and_passes_honest_runs(base):
    rules = load_rules(ROOT / "examples" / "gate-rules.yaml")
    assert rules.rules and rules.ignore
    assert gate(synthetic_frame(time_scale=1.5), base, rules).passed
    assert not gate(_inject_gradient(base), base, rules).passed


def test_builtin_defaults():
    defaults = Rules().defaults
    assert (defaults.grad_rel_err.factor, defaults.nfe.max_increase, defaults.memory.max_increase) == (2.0, 0.05, 0.05)
    assert defaults.memory.rss_max_increase is None
    assert (defaults.time.mode, defaults.time.reference, defaults.time.factor) == ("relative", None, 1.6)
    assert (defaults.time.informational, defaults.time.enforce_on_other_cpu) == (False, False)


# ---------------------------------------------------------------- bad input: exit 2 with a clear message


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "defaults: {grad_rel_err: {factr: 2}}",
            "defaults.grad_rel_err.factr: unknown key; valid keys: skip, factor, floor",
        ),
        ("rules:\n  - where: {metod: x}\n", "rules[0].where.metod: unknown key; valid keys: problem, method"),
        (
            "rules:\n  - {where: {method: x}, time: {mode: fast}}\n",
            "rules[0].time.mode: expected one of relative, absolute, both",
        ),
        ("rules:\n  - {time: {factor: 0.5}}\n", "rules[0].time.factor: expected a number > 1"),
        ("defaults: {time: {alpha: 2}}", "defaults.time.alpha: expected a number between 0 and 1"),
        ("defaults: {nfe: {max_increase: '5%'}}", "defaults.nfe.max_increase: expected a number >= 0"),
        (
            "defaults: {memroy: {}}",
            "defaults.memroy: unknown key; valid keys: status, missing, grad_rel_err, nfe, steps, memory, time",
        ),
        ("rule: []", "rule: unknown key; valid keys: defaults, rules, ignore"),
        ("rules: {method: x}", "rules: expected a list"),
        ("ignore:\n  - {reason: everything}\n", "ignore[0]: an ignore entry needs at least one of"),
        ("ignore:\n  - {rtol: fast}\n", "ignore[0].rtol: expected a number"),
        ("- just a list", "expected a mapping with keys defaults, rules, ignore"),
        ("defaults: {time: [", "not valid YAML"),
    ],
)
def test_malformed_rules_exit_2_naming_the_key(tmp_path, capsys, text, expected):
    run = write_synthetic_run(tmp_path / "run")
    rules = tmp_path / "gate-rules.yaml"
    rules.write_text(text)
    assert odebench("gate", run, "--baseline", run, "--rules", rules) == 2
    err = capsys.readouterr().err
    assert str(rules) in err and expected in err, err


def test_missing_rules_file_exits_2(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run")
    assert odebench("gate", run, "--baseline", run, "--rules", tmp_path / "nope.yaml") == 2
    assert "cannot read rules file" in capsys.readouterr().err


def _missing(tmp: Path) -> Path:
    return tmp / "does-not-exist"


def _garbage_parquet(tmp: Path) -> Path:
    (tmp / "baseline").mkdir()
    (tmp / "baseline" / "records.parquet").write_bytes(b"not parquet at all")
    return tmp / "baseline"


def _foreign_csv(tmp: Path) -> Path:
    (tmp / "other.csv").write_text("a,b\n1,2\n")
    return tmp / "other.csv"


def _empty_folder(tmp: Path) -> Path:
    (tmp / "baseline").mkdir()
    return tmp / "baseline"


def _duplicated(tmp: Path) -> Path:
    synthetic_frame().iloc[[0, 0, 1]].to_parquet(tmp / "twice.parquet")
    return tmp / "twice.parquet"


@pytest.mark.parametrize(
    "make, expected",
    [
        (_missing, "baseline: no such results folder or file"),
        (_garbage_parquet, "baseline: cannot read records from"),
        (_foreign_csv, "have no problem or method"),
        (_empty_folder, "is not a results folder"),
        (_duplicated, "more than once"),
    ],
    ids=["missing", "garbage-parquet", "foreign-csv", "empty-folder", "duplicate-case"],
)
def test_bad_baseline_exits_2(tmp_path, capsys, make, expected):
    run = write_synthetic_run(tmp_path / "run")
    baseline = make(tmp_path)
    assert odebench("gate", run, "--baseline", baseline) == 2
    err = capsys.readouterr().err
    assert err.startswith("odebench gate: error:") and expected in err, err


def test_bad_run_exits_2(tmp_path, capsys):
    baseline = write_synthetic_run(tmp_path / "baseline")
    assert odebench("gate", tmp_path / "missing-run", "--baseline", baseline) == 2
    assert "run: no such results folder or file" in capsys.readouterr().err


# ---------------------------------------------------------------- outputs


def test_summary_and_json_outputs(tmp_path, base, capsys):
    baseline = write_synthetic_run(tmp_path / "baseline")
    run = tmp_path / "run.parquet"
    _inject_gradient(base).to_parquet(run)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    report = tmp_path / "gate.json"
    assert odebench("gate", run, "--baseline", baseline, "--summary", summary, "--json", report) == 1
    out = capsys.readouterr().out
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, as GitHub job summaries expect
    assert "| case | what | baseline | now | ratio | rule |" in text and text.split("earlier step\n")[1] in out
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["checked"] == len(base)
    assert len(data["violations"]) == 3
    v = data["violations"][0]
    assert v["check"] == "grad_rel_err" and v["ratio"] == pytest.approx(10)
    assert v["identity"]["method"] == "odebench.backsolve" and v["identity"]["problem"] == "linear"
    assert "synthetic CPU" in out  # run.json context


def test_passing_gate_prints_verdict_and_exits_0(tmp_path, capsys):
    baseline = write_synthetic_run(tmp_path / "baseline")
    run = write_synthetic_run(tmp_path / "run", time_scale=1.5)
    assert odebench("gate", run, "--baseline", baseline) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("### odebench gate: PASS")
    assert lines[-1] == f"odebench gate: PASS: {len(synthetic_frame())} cases checked, no regression"


def test_subprocess_python_m_odebench_gate(tmp_path, base):
    baseline = write_synthetic_run(tmp_path / "baseline")
    run = tmp_path / "run.parquet"
    _inject_slow_method(base).to_parquet(run)
    done = odebench_subprocess("gate", run, "--baseline", baseline)
    assert done.returncode == 1, done.stderr
    assert "odebench.interpolated(solver=dopri5)" in done.stdout
    done = odebench_subprocess("gate", baseline, "--baseline", baseline)
    assert done.returncode == 0, done.stderr


def test_gate_imports_no_torch_jax_or_scipy():
    code = (
        "import sys, odebench.gate, odebench.compare, odebench.export, odebench.gate._cli, odebench.history\n"
        "heavy = sorted(m for m in ('torch', 'jax', 'scipy') if m in sys.modules)\n"
        "cheap = 'pandas' not in sys.modules\n"
        "print(heavy, cheap)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] True"


# ---------------------------------------------------------------- Mann-Whitney against scipy


def _samples():
    rng = np.random.default_rng(7)
    cases = []
    for n1, n2 in [(1, 1), (1, 5), (3, 4), (5, 5), (8, 8), (9, 12), (30, 25)]:
        cases.append((rng.normal(0, 1, n1), rng.normal(0.7, 1, n2)))
        cases.append((np.round(rng.normal(0, 2, n1)), np.round(rng.normal(1, 2, n2))))  # ties
    cases.append(([1.0, 1.0, 1.0], [1.0, 1.0]))  # all tied
    cases.append(([5.0, 6.0, 7.0, 8.0, 9.0], [0.0, 1.0, 2.0, 3.0, 4.0]))  # separated
    return cases


@pytest.mark.parametrize("x, y", _samples())
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("method", ["auto", "exact", "asymptotic"])
def test_mann_whitney_matches_scipy(x, y, alternative, method):
    scipy_stats = pytest.importorskip("scipy.stats")
    for continuity in (True, False):
        ours = mann_whitney_u(x, y, alternative=alternative, method=method, continuity=continuity)
        ref = scipy_stats.mannwhitneyu(x, y, alternative=alternative, method=method, use_continuity=continuity)
        assert ours.statistic == pytest.approx(ref.statistic)
        if np.isnan(ref.pvalue):
            continue  # scipy: 0/0 when every value is tied and there is no continuity correction
        assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_exact_small_sample():
    # Complete separation of 5 and 5: one ordering of C(10, 5) = 252.
    result = mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], alternative="greater")
    assert result.method == "exact" and result.pvalue == pytest.approx(1 / 252)
    with pytest.raises(ValueError, match="alternative must be one of"):
        mann_whitney_u([1], [2], alternative="bigger")


def test_workflow_example_uses_valid_commands():
    """Every odebench command line in the GitHub Actions example parses, and the gate
    step posts its summary."""
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "odebench-gate.yml").read_text())
    scripts = [step["run"] for step in workflow["jobs"]["gate"]["steps"] if "run" in step]  # `>` folds to one line
    commands = [
        line.split("||")[0] for script in scripts for line in script.splitlines() if line.startswith("odebench ")
    ]
    names = set()
    for command in commands:
        argv = shlex.split(command.replace('"$GITHUB_STEP_SUMMARY"', "summary.md"))[1:]
        if argv[0] in ("gate", "compare", "export"):
            names.add(argv[0])
            args = parse(argv)
            if argv[0] == "gate":
                assert args.summary == "summary.md" and (ROOT / args.rules).exists()
    assert names == {"gate", "compare", "export"}
