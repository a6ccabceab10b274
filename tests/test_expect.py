"""``expect`` rules: the gate's ``where`` matcher, and a rule that checks nothing is a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT
from synthetic_runs import synthetic_frame

from odebench._cases import Where, case_label, parse_where
from odebench._errors import UsageError
from odebench.gate import rules_from_dict
from odebench.runner import parse_suite
from odebench.runner._expect import check_expectations
from odebench.runner._suite import Expectation


def _rule(where, index=0, **bounds):
    return Expectation(where=where, max=bounds, min={}, index=index)


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


# ---------------------------------------------------------------- one matcher


@pytest.mark.parametrize(
    "where",
    [
        {"method": "odebench.backsolve", "method_params": {"seminorm": True}},
        {"method": "odebench.*", "method_params": {"solver": "dopri*"}, "rtol": [1e-3, 1.0e-6]},
        {"problem": "neural_mlp", "problem_params": {"t_end": 4}},
        {"problem_params": {"k": 40.0}, "seed": 0},
        {"rtol": 1e-6 * (1 + 1e-12)},
        {"method_params": {"seminorm": False}},
    ],
)
def test_expect_and_gate_match_the_same_cases(frame, where):
    """The same where selects the same cases for an ``expect`` rule and for a gate rule."""
    rows = frame.to_dict("records")
    gate_where = rules_from_dict({"rules": [{"where": where, "nfe": {"skip": True}}]}).rules[0].where
    by_gate = {case_label(row) for row in rows if gate_where.matches_row(row)}
    failures = check_expectations([_rule(where, grad_cosine=-1.0)], frame)  # every ok case fails this bound
    by_expect = {line.split(": ")[1] for line in failures}
    assert by_gate and by_expect == {case_label(row) for row in rows if gate_where.matches_row(row)
                                     and row["status"] not in ("unavailable", "skipped")}  # fmt: skip


def test_booleans_are_not_numbers_and_params_match_as_data():
    row = {"method": "m", "method_params": '{"seminorm": true, "n_steps": 1}', "rtol": 1e-6}
    assert Where.of({"method_params": {"seminorm": True}}).matches_row(row)
    assert not Where.of({"method_params": {"seminorm": 1}}).matches_row(row)
    assert not Where.of({"method_params": {"n_steps": True}}).matches_row(row)
    assert Where.of({"method_params": {"n_steps": 1.0}}).matches_row(row)
    assert not Where.of({"method_params": {"absent": 1}}).matches_row(row)
    assert str(Where.of({"method": ["a", "b*"], "method_params": {"solver": "rk4"}, "rtol": 1e-6})) == (
        "{method: [a, b*], method_params: {solver: rk4}, rtol: 1e-06}"
    )


def _fail(path, message):
    return UsageError(f"suite.yaml: {path}: {message}")


@pytest.mark.parametrize(
    "where, expected",
    [
        ({"method_params": "*rk4*"}, "expect[0].where.method_params: expected a mapping of parameter names"),
        ({"method_params": {"solver": ["rk4"]}}, "expect[0].where.method_params.solver: expected a string, number"),
        ({"rtol": "1e-6"}, "expect[0].where.rtol: expected a number"),
        ({"method": 3}, "expect[0].where.method: expected a glob pattern"),
        ({"metod": "x"}, "expect[0].where.metod: unknown key"),
    ],
)
def test_where_values_are_validated(where, expected):
    with pytest.raises(UsageError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_where(where, "expect[0].where", _fail)


def test_suite_rejects_a_where_the_gate_would_reject():
    suite = {
        "name": "s",
        "problems": ["linear"],
        "methods": ["odebench.backprop"],
        "tolerances": [1e-6],
        "expect": [{"where": {"method_params": "*rk4*"}, "max": {"grad_rel_err": 1}}],
    }
    with pytest.raises(UsageError, match=r"s.yaml: expect\[0\].where.method_params: expected a mapping"):
        parse_suite(suite, "s.yaml")


# ---------------------------------------------------------------- a rule that checks nothing


def test_rule_matching_no_case_fails_naming_it(frame):
    where = {"method": "odebench.backprop", "method_params": {"solver": "rk4"}}
    failures = check_expectations([_rule({"method": "odebench.*"}, 0, grad_rel_err=1e9), _rule(where, 1)], frame)
    assert failures == [
        "expect[1] (where {method: odebench.backprop, method_params: {solver: rk4}}): matches no case;"
        " a rule that checks nothing is a mistake"
    ]
    # A run of a selection of the suite's cases (--only) may rightly leave a rule without cases.
    assert check_expectations([_rule(where, 1)], frame, subset=True) == []


def test_rule_matching_only_cases_that_did_not_run_fails(frame):
    where = {"problem": "stiff_decay", "method": "odebench.checkpoint", "rtol": 1e-3}  # unavailable there
    failures = check_expectations([_rule(where, 2, grad_rel_err=1.0)], frame)
    assert len(failures) == 1 and failures[0].startswith("expect[2] (where {problem: stiff_decay")
    assert failures[0].endswith("matched only cases that did not run (1 unavailable)")
    # With one case that ran among them, the rule checks that case.
    wider = {"problem": "stiff_decay", "method": "odebench.checkpoint"}
    assert check_expectations([_rule(wider, 2, grad_rel_err=1.0)], frame) == []


def test_failed_case_and_missing_metric_are_failures(frame):
    timeout = {"problem": "neural_mlp", "method": "torchdiffeq.adjoint", "rtol": 1e-9}
    failures = check_expectations([_rule(timeout, 0, grad_rel_err=1.0)], frame)
    assert len(failures) == 2 and all("status timeout (exceeded timeout_s=300)" in f for f in failures)
    backprop = {"problem": "linear", "method": "odebench.backprop", "rtol": 1e-6}
    failures = check_expectations([_rule(backprop, 0, consistency_err=1.0)], frame)  # none for backprop
    assert len(failures) == 1 and failures[0].endswith("consistency_err = missing, max 1")


# ---------------------------------------------------------------- end to end


def test_run_exits_1_naming_the_rules_that_check_nothing_or_fail(tmp_path):
    """A tiny suite (one cheap case): a where on method_params now selects the case the gate
    would, and a rule that selects no case fails the run."""
    suite = {
        "name": "tiny",
        "settings": {"repeats": 1, "warmup": 0, "fd_check": False, "timeout_s": 60},
        "problems": [{"name": "linear", "params": {"dim": 2}}],
        "methods": [{"name": "odebench.backprop", "params": {"solver": "rk4", "n_steps": 8}}],
        "tolerances": [1e-6],
        "expect": [
            {"where": {"method": "odebench.backprop", "method_params": {"solver": "rk4"}}, "max": {"grad_rel_err": 1}},
            {"where": {"method": "odebench.backprop", "method_params": {"solver": "dopri5"}}, "max": {"fd_err": 1}},
            {"where": {"method_params": {"n_steps": 8}}, "max": {"grad_rel_err": 1.0e-30}},
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = subprocess.run(
        [sys.executable, "-m", "odebench", "run", path, "-o", tmp_path / "out", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("EXPECTATION FAILED")]
    assert len(failed) == 2, done.stdout
    assert failed[0].startswith(
        "EXPECTATION FAILED expect[1] (where {method: odebench.backprop, method_params: {solver: dopri5}}): "
        "matches no case"
    )
    assert failed[1].startswith("EXPECTATION FAILED expect[2]: linear(dim=2) odebench.backprop(n_steps=8, solver=rk4)")
    assert failed[1].endswith("max 1e-30")


def test_the_case_vocabulary_imports_only_the_standard_library():
    import ast

    import odebench._cases as cases

    tree = ast.parse(Path(cases.__file__).read_text())
    absolute = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
        for alias in node.names
    }
    assert absolute <= set(sys.stdlib_module_names) | {"__future__"}, absolute
