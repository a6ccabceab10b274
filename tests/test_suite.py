"""Suite files: expansion, and bad input rejected before anything runs (exit status 2)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from odebench import UsageError
from odebench.cli import main as cli_main
from odebench.runner import load_suite, parse_suite

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
    (_with("problems.0", {"name": "no_such_module:factory"}), "problems[0]", "no_such_module"),
    (_with("problems.0", {"name": "fault_problems:factory_raises"}), "problems[0]", "factory raised"),
    (_with("problems.0", {"name": "fault_problems:missing"}), "problems[0]", "missing"),
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
