"""Suite files: expansion, and bad input rejected before anything runs (exit status 2)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from odebench import UsageError
from odebench.cli import main as cli_main
from odebench.runner import load_suite, parse_suite
from odebench.runner._suite import MAX_YAML_NODES, Settings, override_settings, resolve_factories

VALID = {
    "name": "tiny",
    "settings": {"repeats": 2, "warmup": 0, "timeout_s": 60},
    "problems": [{"name": "linear", "params": {"dim": [2, 3]}}, "logistic"],
    "methods": [
        {"name": "odebench.backsolve", "params": {"solver": "dopri5", "seminorm": [False, True]}},
        {"name": "odebench.backprop"},
    ],
    "tolerances": [1e-3, {"rtol": 1e-6, "atol": 1e-8}],
}


def test_cartesian_expansion_and_stable_ids():
    suite = parse_suite(VALID, "tiny.yaml")
    cases = suite.cases()
    assert len(cases) == 3 * 3 * 2  # problems (2 dims + logistic) x methods (2 seminorm + backprop) x tolerances
    assert {c.tolerance.atol for c in cases} == {1e-3, 1e-8}
    ids = [c.case_id for c in cases]
    assert len(set(ids)) == len(ids)
    assert ids == [c.case_id for c in parse_suite(VALID, "tiny.yaml").cases()]


def _with(path: str, value, delete: bool = False):
    """VALID with the value at a dotted path (list indices as numbers) replaced."""
    import copy

    data = copy.deepcopy(VALID)
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    # (suite, expected key path in the message, expected hint)
    (_with("speed", 3), "speed", "valid keys: name, description"),
    (_with("name", None, delete=True), "name", "required"),
    (_with("name", "has space"), "name", "letters, digits"),
    (_with("problems", []), "problems", "must not be empty"),
    (_with("methods", "odebench.backprop"), "methods", "must be a list"),
    (_with("tolerances", []), "tolerances", "must not be empty"),
    (_with("tolerances", [-1e-3]), "tolerances[0]", "positive number"),
    (_with("tolerances", ["tight"]), "tolerances[0]", "positive number"),
    (_with("tolerances", [{"atol": 1e-6}]), "tolerances[0]", "needs rtol"),
    (_with("problems.0.name", "lorentz"), "problems[0]", "lorenz"),
    (_with("problems.0.params.dim", "four"), "problems[0]", "dim"),
    (_with("problems.0.params.dim", []), "problems[0].params.dim", "empty list"),
    (_with("problems.0", {"name": "fault_problems:factory raises"}), "problems[0]", "'package.module:function'"),
    (_with("methods.0.name", "odebench.adjoint"), "methods[0]", "must be one of odebench.backprop"),
    (_with("methods.0.params.solver", "rk45"), "methods[0]", "unknown solver 'rk45'"),
    (_with("methods.0.params.seminorm", "yes"), "methods[0]", "must be bool"),
    (_with("methods.0.params.solvr", "dopri5"), "methods[0]", "valid parameters: solver"),
    (_with("settings.device", "tpu"), "settings.device", "cpu, cuda, auto"),
    (_with("settings.dtype", "float16"), "settings.dtype", "float32, float64"),
    (_with("settings.repeats", 0), "settings.repeats", "integer >= 1"),
    (_with("settings.timeout_s", "long"), "settings.timeout_s", "positive number"),
    (_with("settings.retries", 3), "settings.retries", "valid keys: dtype"),
    (
        _with("expect", [{"where": {"method": "odebench.*"}, "max": {"grad_err": 1}}]),
        "expect[0].max.grad_err",
        "valid keys",
    ),
    (_with("expect", [{"where": {"method": "odebench.*"}}]), "expect[0]", "needs max or min"),
]


@pytest.mark.parametrize("data, path, hint", BAD, ids=[f"{i:02d}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_suite_names_file_key_and_valid_choices(data, path, hint, tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(UsageError) as info:
        load_suite(file)
    message = str(info.value)
    assert message.startswith(f"{file}: "), message
    assert path in message, message
    assert hint in message, message


def test_bad_suite_exits_2_before_running(tmp_path, capsys):
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(_with("methods.0.params.solver", "rk45")))
    out = tmp_path / "out"
    assert cli_main(["run", str(file), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "methods[0]" in err and "rk45" in err
    assert not out.exists()


def test_not_yaml_and_missing_file(tmp_path):
    file = tmp_path / "broken.yaml"
    file.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_suite(file)
    with pytest.raises(UsageError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_shipped_suites_are_valid():
    from pathlib import Path

    suites = sorted((Path(__file__).parent.parent / "suites").glob("*.yaml"))
    assert {p.name for p in suites} >= {"quick.yaml", "standard.yaml", "headline.yaml", "gpu.yaml", "ci.yaml"}
    for path in suites:
        suite = load_suite(path)
        assert suite.cases(), path


def test_string_shorthand_and_yaml_text(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text(textwrap.dedent(
        """
        name: s
        problems: [linear]
        methods: [odebench.backprop, {name: fd.central, params: {directions: 3}}]
        tolerances: [1.0e-4]
        """
    ))  # fmt: skip
    suite = load_suite(file)
    assert [c.method.name for c in suite.cases()] == ["odebench.backprop", "fd.central"]


def _load_text(tmp_path, text: str, name: str = "s.yaml"):
    file = tmp_path / name
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file


def _refused(file, path: str, hint: str, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        load_suite(file, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{file}: "), message
    assert path in message and hint in message, message
    return message


# Each value below once reached the records (or json.dumps) and failed there with a traceback.
NOT_JSON = [
    ("2024-01-01", "problems[0].params.x", "got date"),
    ("2024-01-01 10:00:00", "problems[0].params.x", "got datetime"),
    ("!!set {a, b}", "problems[0].params.x", "got set"),
    ("!!binary aGVsbG8=", "problems[0].params.x", "got bytes"),
    ("!!omap [{a: 1}]", "problems[0].params.x[0]", "got tuple"),
    ("{1: 2}", "problems[0].params.x", "keys must be text, got int 1"),
    ("[[1, 2024-01-01]]", "problems[0].params.x[0][1]", "got date"),
    (".nan", "problems[0].params.x", "finite number"),
]


@pytest.mark.parametrize("value, path, hint", NOT_JSON, ids=[v[0] for v in NOT_JSON])
def test_param_values_must_be_json(value, path, hint, tmp_path):
    file = _load_text(tmp_path, f"""
        name: s
        problems: [{{name: "problem_factories:takes_anything", params: {{x: {value}}}}}]
        methods: [odebench.backprop]
        tolerances: [1.0e-3]
        """)  # fmt: skip
    _refused(file, path, hint)


BEYOND_INT64 = [
    ("settings: {seed: 99999999999999999999}", "settings.seed", "64-bit integer"),
    ("settings: {seed: [0, -9223372036854775809]}", "settings.seed[1]", "64-bit integer"),
    ("settings: {repeats: 9223372036854775808}", "settings.repeats", "integer >= 1"),
    ("settings: {timeout_s: 1000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}",
     "settings.timeout_s", "positive number"),
    ("problems: [{name: linear, params: {seed: 99999999999999999999}}]", "problems[0].params.seed", "64-bit"),
]  # fmt: skip


@pytest.mark.parametrize("line, path, hint", BEYOND_INT64, ids=[b[1] for b in BEYOND_INT64])
def test_integers_beyond_int64_are_refused_before_running(line, path, hint, tmp_path):
    base = {"name": "s", "problems": ["linear"], "methods": ["odebench.backprop"], "tolerances": [1e-3]}
    key = line.split(":")[0]
    text = "\n".join([f"{k}: {v}" for k, v in base.items() if k != key] + [line])
    _refused(_load_text(tmp_path, text), path, hint)


def test_unreadable_suite_paths_exit_2(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    for path, hint in ((latin, "not UTF-8 text (byte 0xe9"), (folder, "is a folder"),
                       (tmp_path / "nope.yaml", "no such suite file")):  # fmt: skip
        assert cli_main(["run", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"{path}: {hint}" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


REPEATS = [
    ("settings: {seed: [1, 1]}", "settings.seed[1]", "repeats settings.seed[0]"),
    ("settings: {dtype: [float64, float32, float64]}", "settings.dtype[2]", "repeats settings.dtype[0]"),
    ("tolerances: [1.0e-3, {rtol: 1.0e-3}]", "tolerances[1]", "same tolerance as tolerances[0]"),
    ("problems: [linear, {name: linear, params: {}}]", "problems[1]", "same problem as problems[0]"),
    ("problems: [{name: linear, params: {dim: [2, 3, 2]}}]", "problems[0].params.dim[2]",
     "repeats problems[0].params.dim[0]"),
    ("problems: [{name: linear, params: {dim: [2, 3]}}, {name: linear, params: {dim: 3}}]", "problems[1]",
     "same problem as problems[0] (linear(dim=3))"),
    ("methods: [odebench.backprop, {name: odebench.backprop}]", "methods[1]", "same method as methods[0]"),
]  # fmt: skip


@pytest.mark.parametrize("line, path, hint", REPEATS, ids=[r[1] for r in REPEATS])
def test_a_case_given_twice_is_refused_naming_both_entries(line, path, hint, tmp_path):
    base = {"name": "s", "problems": ["linear"], "methods": ["odebench.backprop"], "tolerances": [1e-3]}
    key = line.split(":")[0]
    text = "\n".join([f"{k}: {v}" for k, v in base.items() if k != key] + [line])
    _refused(_load_text(tmp_path, text), path, hint)


def test_repeated_yaml_key_is_refused(tmp_path):
    file = _load_text(tmp_path, """
        name: s
        settings: {seed: 1}
        problems: [linear]
        methods: [odebench.backprop]
        tolerances: [1.0e-3]
        settings: {seed: 2}
        """)  # fmt: skip
    _refused(file, "line 7", "key 'settings' repeats the one on line 3")


def _measure(fn):
    """``(seconds, peak traced bytes)`` of ``fn()``."""
    import time
    import tracemalloc

    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, peak


def test_alias_bomb_is_refused_fast_and_small(tmp_path):
    # Eight levels of ten aliases: 10^8 values from a few hundred bytes.
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    text = "\n".join([
        "name: bomb", "methods: [odebench.backprop]", "tolerances: [1.0e-3]", "problems:",
        "  - name: problem_factories:takes_anything", "    params:",
        *(f"      {line}" for line in levels[:-1]), f"      x: [{levels[-1].split(': ', 1)[1]}]",
    ])  # fmt: skip
    assert len(text.encode()) < 700
    file = _load_text(tmp_path, text)
    seconds, peak = _measure(lambda: _refused(file, "", f"more than {MAX_YAML_NODES:,} values"))
    assert seconds < 1.0 and peak < 20e6, (seconds, peak)
    cycle = _load_text(tmp_path, "name: s\nproblems: [{name: linear, params: {x: &a [*a]}}]\n", "cycle.yaml")
    _refused(cycle, "line 2", "an alias refers to a collection that contains it")


def test_a_million_cases_are_counted_not_expanded(tmp_path):
    numbers = ", ".join(str(i) for i in range(1, 101))
    tolerances = ", ".join(f"{1e-6 * (1 + i / 100):.6e}" for i in range(100))  # YAML 1.1 floats need a dot
    file = _load_text(tmp_path, f"""
        name: grid
        problems: [{{name: linear, params: {{dim: [{numbers}]}}}}]
        methods: [{{name: odebench.checkpoint, params: {{n_steps: [{numbers}]}}}}]
        tolerances: [{tolerances}]
        """)  # fmt: skip
    hint = "expands to 1,000,000 cases (100 problems x 100 methods x 100 tolerances), more than the limit of 10,000"
    seconds, peak = _measure(lambda: _refused(file, "", hint))
    assert seconds < 1.0 and peak < 20e6, (seconds, peak)
    _refused(file, "", "more than the limit of 999,999", max_cases=999_999)


def test_max_cases_flag(tmp_path, capsys):
    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump(VALID))  # 18 cases
    assert len(load_suite(file, max_cases=18).cases()) == 18
    assert cli_main(["run", str(file), "-o", str(tmp_path / "out"), "--max-cases", "17"]) == 2
    assert "expands to 18 cases" in capsys.readouterr().err
    assert cli_main(["run", str(file), "-o", str(tmp_path / "out"), "--max-cases", "0"]) == 2
    assert "--max-cases must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_reference_timeout_follows_timeout(tmp_path):
    assert Settings().reference_timeout_s == 1800
    assert Settings(timeout_s=20).reference_timeout_s == 200
    assert Settings(timeout_s=600).reference_timeout_s == 1800
    assert Settings(timeout_s=20, reference_timeout_s=30).reference_timeout_s == 30
    suite = parse_suite(_with("settings.timeout_s", 20), "s.yaml")
    assert suite.settings.reference_timeout_s == 200
    assert override_settings(suite, timeout_s=5).settings.reference_timeout_s == 50
    assert parse_suite(_with("settings.reference_timeout_s", 7), "s.yaml").settings.reference_timeout_s == 7


def test_hung_reference_ends_at_its_own_timeout_and_says_which(tmp_path):
    from odebench.runner import run_suite

    suite = parse_suite({"name": "hang", "settings": {"repeats": 1, "warmup": 0, "timeout_s": 0.3},
                         "problems": ["suite_factories:reference_hangs"], "methods": ["odebench.backprop"],
                         "tolerances": [1e-3]}, "hang.yaml")  # fmt: skip
    assert suite.settings.reference_timeout_s == 3
    result = run_suite(suite, tmp_path / "run", progress=False)
    [record] = result.records
    assert record.status == "timeout"
    assert record.error == "reference gradient: exceeded reference_timeout_s=3 (worker killed)"


FACTORY_ERRORS = [
    ("no_such_module:factory", "cannot import module 'no_such_module'"),
    ("fault_problems:factory_raises", "factory raised ValueError"),
    ("fault_problems:missing", "has no attribute 'missing'"),
]


@pytest.mark.parametrize("name, hint", FACTORY_ERRORS, ids=[f[0] for f in FACTORY_ERRORS])
def test_factory_errors_surface_when_resolved(name, hint):
    suite = parse_suite(_with("problems.1", {"name": name}), "s.yaml")  # checked for form only
    with pytest.raises(UsageError, match=rf"^s\.yaml: problems\[1\]: problem '{name}': .*{hint}"):
        resolve_factories(suite, suite.cases())
    resolve_factories(suite, [c for c in suite.cases() if c.problem.name == "linear"])


def test_only_imports_the_factories_of_selected_cases(tmp_path, monkeypatch, capsys):
    from odebench import load_results

    marker = tmp_path / "imported"
    monkeypatch.setenv("ODEBENCH_TEST_IMPORT_MARKER", str(marker))
    file = tmp_path / "two.yaml"
    file.write_text(yaml.safe_dump({
        "name": "two", "settings": {"repeats": 1, "warmup": 0, "fd_check": False},
        "problems": ["problem_factories:decay", "suite_factories_import_marker:factory"],
        "methods": ["odebench.backprop"], "tolerances": [1e-6],
    }))  # fmt: skip
    assert len(load_suite(file).cases()) == 2 and not marker.exists()  # validation imports nothing
    assert cli_main(["run", str(file), "-o", str(tmp_path / "run"), "--only", "decay", "--quiet"]) == 0
    assert not marker.exists()
    frame = load_results(tmp_path / "run")
    assert list(frame["problem"]) == ["problem_factories:decay"] and list(frame["status"]) == ["ok"]
    # Selected, the bad factory is imported (the marker works) and refused before anything runs.
    capsys.readouterr()
    assert cli_main(["run", str(file), "-o", str(tmp_path / "bad"), "--only", "marker", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{file}: problems[1]: problem 'suite_factories_import_marker:factory': importing module" in err, err
    assert marker.exists() and not (tmp_path / "bad").exists()


def test_a_jax_case_runs_torch_with_the_suites_thread_count(tmp_path):
    """The fingerprint may evaluate a problem in torch inside a diffrax case's worker; with
    torch's default threads that op can deadlock on the fork server's OpenMP pool."""
    from odebench.runner import run_suite

    probe = tmp_path / "threads.txt"
    suite = parse_suite({"name": "threads", "settings": {"repeats": 1, "warmup": 0, "fd_check": False, "threads": 1},
                         "problems": [{"name": "suite_factories:torch_threads_probe", "params": {"path": str(probe)}}],
                         "methods": ["diffrax.backsolve"], "tolerances": [1e-6]}, "threads.yaml")  # fmt: skip
    [record] = run_suite(suite, tmp_path / "run", progress=False).records
    assert record.status == "ok", record.error
    counts = probe.read_text().split()
    assert counts and set(counts) == {"1"}, counts


def test_exponent_floats_without_a_dot_are_numbers_in_suites_and_rules(tmp_path):
    # PyYAML reads YAML 1.1, where 1e-6 is the string "1e-6": a tolerance written so was refused,
    # and a rule's where-clause would have matched nothing.
    from odebench.gate import load_rules

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nproblems: [linear]\nmethods: [odebench.backprop]\ntolerances: [{rtol: 1e-6, atol: 2E-8}]\n"
    )
    assert [(t.rtol, t.atol) for t in load_suite(suite).tolerances] == [(1e-6, 2e-8)]
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - where: {rtol: 1e-6}\n    grad_rel_err: {factor: 1e3}\n")
    loaded = load_rules(rules)
    assert loaded.rules[0].where.matches({"rtol": 1e-6}) and not loaded.rules[0].where.matches({"rtol": 1e-7})
    quoted = tmp_path / "q.yaml"
    quoted.write_text("name: s\nproblems: [linear]\nmethods: [odebench.backprop]\ntolerances: [{rtol: '1e-6'}]\n")
    with pytest.raises(UsageError, match=r"tolerances\[0\]\.rtol: must be a positive number"):
        load_suite(quoted)  # quoted, it is a string, as the writer asked


def test_run_suite_takes_an_executor_of_ones_own(tmp_path):
    # The runner only calls the Executor protocol: an object of one's own (here a wrapper
    # that records what it was given) runs the cases, and run.json names it.
    import json

    from odebench.runner import Executor, LocalExecutor, make_executor, run_suite

    class Recording:
        name = "recording"

        def __init__(self):
            self.inner = LocalExecutor(jobs=1)
            self.phases = self.inner.phases
            self.given: list[str] = []

        def run(self, suite, cases, run_id, path):
            self.given = [c.label for c in cases]
            yield from self.inner.run(suite, cases, run_id, path)

    suite = parse_suite({"name": "own", "problems": ["linear"], "methods": ["odebench.backprop", "odebench.backsolve"],
                         "tolerances": [{"rtol": 1e-6}], "settings": {"repeats": 1, "warmup": 0, "fd_check": False}})  # fmt: skip
    executor = Recording()
    assert isinstance(executor, Executor)
    result = run_suite(suite, tmp_path / "run", executor=executor)
    assert executor.given == [c.label for c in suite.cases()] and len(executor.given) == 2
    assert [r.status for r in result.records] == ["ok", "ok"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["executor"] == "recording"
    assert set(result.phases) == {"references", "cases"}
    with pytest.raises(UsageError, match="--executor must be local or submitit, got 'ray'"):
        make_executor("ray")
