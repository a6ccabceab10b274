"""A user's own model as a problem: Problem.from_torch / from_jax, gradcheck on a module,
and odebench.benchmark from a script without a __main__ guard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import odebench
from odebench import Problem
from odebench.backends import CaseSpec, MethodError, make_method
from odebench.problems import ProblemError, get_problem, reference_gradient

ROOT = Path(__file__).parent.parent
SPEC = CaseSpec(rtol=1e-10, atol=1e-10, dtype="float64", device="cpu")


class LinearField(torch.nn.Module):
    """y' = A y as a module with forward(t, y): the built-in ``linear`` problem's maths."""

    def __init__(self, a: np.ndarray):
        super().__init__()
        self.A = torch.nn.Parameter(torch.tensor(a, dtype=torch.float32))
        self.register_buffer("scale", torch.ones(()))  # a buffer must follow the case's dtype
        self.frozen = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, t, y):
        return self.scale * (y @ self.A.T) + self.frozen


def _linear_model():
    """The module, its problem, and the built-in ``linear`` problem with the same numbers."""
    builtin = get_problem("linear", {"dim": 3, "n_save": 3})
    a32 = builtin.params["A"].astype(np.float32).astype(np.float64)  # the module stores float32
    builtin = Problem(
        name="linear_copy", vector_field=builtin.vector_field, y0=builtin.y0, params={"A": a32}, t=builtin.t,
        loss=builtin.loss, exact_solution=builtin.exact_solution,
    )  # fmt: skip
    from odebench.problems._analytic import with_closed_form

    module = LinearField(a32)
    problem = Problem.from_torch(
        module, torch.tensor(builtin.y0), torch.tensor(builtin.t), lambda ys: (ys[1:] ** 2).mean(), name="mine"
    )
    return module, problem, with_closed_form(builtin)


def _gradient(method: str, problem: Problem) -> np.ndarray:
    prepared = make_method(method).prepare(problem, SPEC)
    return problem.flat_gradient(prepared.outcome(prepared.backward(prepared.forward())).grads)


def test_from_torch_takes_the_trainable_parameters_by_name():
    module, problem, _ = _linear_model()
    assert list(problem.params) == ["A"] and problem.framework == "torch"
    assert problem.params["A"].dtype == np.float64
    np.testing.assert_array_equal(problem.params["A"], module.A.detach().double().numpy())
    y = torch.randn(3, dtype=torch.float64)
    params = {"A": torch.tensor(problem.params["A"])}
    out = problem.vector_field(torch.tensor(0.0, dtype=torch.float64), y, params, torch)
    assert out.dtype == torch.float64  # the module was evaluated in the case's dtype
    torch.testing.assert_close(out, y @ params["A"].T)


@pytest.mark.parametrize(
    "method", ["odebench.backprop", "odebench.backsolve", "odebench.interpolated", "odebench.checkpoint",
               "torchdiffeq.backprop", "torchdiffeq.adjoint", "torchode.autodiff", "torchode.backsolve"],
)  # fmt: skip
def test_torch_methods_get_the_analytic_gradient_of_a_module(method):
    _, problem, builtin = _linear_model()
    want = builtin.flat_gradient(builtin.exact_gradient())
    np.testing.assert_allclose(_gradient(method, problem), want, rtol=1e-7)


def test_the_reference_of_a_module_is_the_tight_solve():
    _, problem, builtin = _linear_model()
    ref = reference_gradient(problem, cache=False)
    assert ref.kind == "tight"
    np.testing.assert_allclose(ref.flat, builtin.flat_gradient(builtin.exact_gradient()), rtol=1e-10)


def test_a_callable_and_a_dict_of_tensors():
    a = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=torch.float64)
    problem = Problem.from_torch(lambda t, y, p: y @ p["A"].T, [1.0, 0.0], [0.0, 1.0], lambda ys: ys[-1].sum(),
                                 {"A": a})  # fmt: skip
    assert list(problem.params) == ["A"]
    with pytest.raises(ProblemError, match="carries its own parameters"):
        Problem.from_torch(LinearField(np.eye(2)), [1.0, 0.0], [0.0, 1.0], lambda ys: ys.sum(), {"A": a})
    with pytest.raises(ProblemError, match="nn.Module or a callable"):
        Problem.from_torch(3, [1.0, 0.0], [0.0, 1.0], lambda ys: ys.sum())


def test_jax_methods_record_a_torch_model_as_unavailable():
    _, problem, _ = _linear_model()
    for name in ("diffrax.recursive_checkpoint", "diffrax.backsolve", "diffrax.direct"):
        reason = make_method(name).unavailable_reason("cpu", problem)
        assert reason and reason.startswith("torch-only problem"), name
    assert make_method("odebench.backsolve").unavailable_reason("cpu", problem) is None
    assert make_method("diffrax.direct").unavailable_reason("cpu", get_problem("linear")) is None


def test_the_fingerprint_tells_models_apart():
    # Same parameters, another activation: the cached reference must not be shared.
    _, a, _ = _linear_model()

    class Tanh(LinearField):
        def forward(self, t, y):
            return torch.tanh(super().forward(t, y))

    b = Problem.from_torch(Tanh(a.params["A"]), a.y0, a.t, lambda ys: (ys[1:] ** 2).mean(), name="mine")
    c = Problem.from_torch(LinearField(a.params["A"]), a.y0, a.t, lambda ys: (ys[1:] ** 3).mean(), name="mine")
    same = Problem.from_torch(LinearField(a.params["A"]), a.y0, a.t, lambda ys: (ys[1:] ** 2).mean(), name="mine")
    assert len({a.config["fingerprint"], b.config["fingerprint"], c.config["fingerprint"]}) == 3
    assert same.config["fingerprint"] == a.config["fingerprint"]


def test_gradcheck_takes_a_module():
    module, problem, builtin = _linear_model()
    result = odebench.gradcheck(module, problem.y0, problem.t, lambda ys: (ys[1:] ** 2).mean(),
                                method="odebench.backsolve", rtol=1e-8)  # fmt: skip
    assert result.passed, str(result)
    np.testing.assert_allclose(result.gradients["reference"], builtin.flat_gradient(builtin.exact_gradient()),
                               rtol=1e-9)  # fmt: skip
    with pytest.raises(MethodError, match="torch-only problem"):
        odebench.gradcheck(module, problem.y0, problem.t, lambda ys: ys.sum(), method="diffrax.direct")


# --------------------------------------------------------------------------- JAX models

jax = pytest.importorskip("jax")
eqx = pytest.importorskip("equinox")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy


class JaxLinear(eqx.Module):
    A: jax.Array

    def __call__(self, t, y):
        return self.A @ y


def _jax_problems():
    _, _, builtin = _linear_model()
    loss = lambda ys: jnp.mean(ys[1:] ** 2)  # noqa: E731
    a = jnp.asarray(builtin.params["A"])
    module = Problem.from_jax(JaxLinear(a), builtin.y0, builtin.t, loss)
    function = Problem.from_jax(lambda t, y, p: p["A"] @ y, builtin.y0, builtin.t, loss, {"A": a})
    return module, function, builtin.flat_gradient(builtin.exact_gradient())


def test_from_jax_module_and_function_get_the_analytic_gradient():
    module, function, want = _jax_problems()
    assert list(module.params) == ["A"] and list(function.params) == ["A"] and module.framework == "jax"
    for problem in (module, function):
        np.testing.assert_allclose(_gradient("diffrax.direct", problem), want, rtol=1e-7)
        reason = make_method("torchdiffeq.adjoint").unavailable_reason("cpu", problem)
        assert reason.startswith("jax-only problem")


@pytest.mark.slow
def test_a_jax_model_has_a_tight_reference_and_a_gradcheck():
    module, _, want = _jax_problems()
    np.testing.assert_allclose(reference_gradient(module, cache=False).flat, want, rtol=1e-10)
    a = jnp.asarray(module.params["A"])
    result = odebench.gradcheck(JaxLinear(a), jnp.asarray(module.y0), module.t, lambda ys: jnp.mean(ys[1:] ** 2),
                                method="diffrax.backsolve", rtol=1e-8)  # fmt: skip
    assert result.passed, str(result)


JAX_ONLY = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from odebench.problems import Problem, ProblemError, loss_and_gradient, reference_gradient

problem = Problem.from_jax(lambda t, y, p: -p["k"] * y, jnp.ones(2), jnp.linspace(0.0, 1.0, 3),
                           lambda ys: jnp.sum(ys**2), {"k": jnp.asarray(0.5)})
result = loss_and_gradient(problem)
reference = reference_gradient(problem, cache=False)  # the tight solve and its two checks
try:
    loss_and_gradient(problem, gradient="backsolve")
    refused = ""
except ProblemError as exc:
    refused = str(exc)
print(json.dumps({"loss": result.loss, "grads": {k: v.tolist() for k, v in result.grads.items()},
                  "torch": "torch" in sys.modules, "refused": refused,
                  "reference": reference.flat.tolist()}))
"""


def test_a_jax_only_problem_and_its_reference_are_solved_without_torch_never_by_another_gradient():
    out = subprocess.run([sys.executable, "-c", JAX_ONLY], capture_output=True, text=True, check=True, cwd=ROOT)
    got = json.loads(out.stdout.splitlines()[-1])
    # y = exp(-k t) y0 saved at t = 0, 0.5, 1: loss = |y0|^2 sum_i exp(-2 k t_i)
    t, k = np.array([0.0, 0.5, 1.0]), 0.5
    e = np.exp(-2 * k * t)
    np.testing.assert_allclose(got["loss"], 2 * e.sum(), rtol=1e-10)
    np.testing.assert_allclose(got["grads"]["y0"], [2 * e.sum()] * 2, rtol=1e-10)
    np.testing.assert_allclose(got["grads"]["k"], 2 * np.sum(-2 * t * e), rtol=1e-10)
    np.testing.assert_allclose(got["reference"], [2 * e.sum(), 2 * e.sum(), 2 * np.sum(-2 * t * e)], rtol=1e-10)
    assert got["torch"] is False
    assert "not 'backsolve'" in got["refused"]


# --------------------------------------------------------------------------- benchmark


SCRIPT = """
import json, sys
import torch
import odebench

class Field(torch.nn.Module):  # defined in the script: it reaches the workers by value
    def __init__(self):
        super().__init__()
        self.A = torch.nn.Parameter(torch.tensor([[-0.5, 1.0], [-1.0, -0.5]]))

    def forward(self, t, y):
        return y @ self.A.T

problem = odebench.Problem.from_torch(Field(), [1.0, 0.0], [0.0, 0.5, 1.0], lambda ys: (ys[1:] ** 2).mean())
frame = odebench.benchmark(problem, ["odebench.backsolve", "torchdiffeq.adjoint", "diffrax.direct"], [1e-8],
                           output=sys.argv[1], repeats=1, warmup=0, fd_check=False)
print(json.dumps(frame[["method", "status", "error", "grad_rel_err"]].to_dict("records")))
"""


def test_benchmark_runs_from_a_script_without_a_main_guard(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["method"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    for name in ("odebench.backsolve", "torchdiffeq.adjoint"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["grad_rel_err"] < 1e-5
    assert rows["diffrax.direct"]["status"] == "unavailable"
    assert rows["diffrax.direct"]["error"].startswith("torch-only problem")
    assert (tmp_path / "out" / "records.parquet").exists()


def test_benchmark_rejects_bad_input_naming_the_key():
    from odebench import UsageError

    _, problem, _ = _linear_model()
    with pytest.raises(UsageError, match=r"odebench.benchmark: methods\[0\]: unknown method 'nope'"):
        odebench.benchmark(problem, ["nope"])
    with pytest.raises(UsageError, match=r"settings.repeats"):
        odebench.benchmark(problem, ["odebench.backprop"], repeats=0)


def test_the_readme_takes_a_module_to_a_report_in_under_ten_lines(tmp_path):
    """The README's block, run as it stands: a torch module, every method, a report."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("```python\nimport odebench, odebench.report, torch\n") + len("```python\n")
    block = readme[start : readme.index("```", start)]
    assert len([line for line in block.splitlines() if line.strip()]) < 10
    (tmp_path / "mine.py").write_text(block)
    done = subprocess.run([sys.executable, "mine.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = odebench.load_results(tmp_path / "results" / "mine")
    torch_methods = frame[frame["backend"].isin(["odebench", "torchdiffeq", "torchode"])]
    assert len(torch_methods) >= 10 and (torch_methods["status"] == "ok").all(), torch_methods[["method", "error"]]
    assert (frame.loc[frame["backend"] == "diffrax", "status"] == "unavailable").all()
    assert "Which method to use" in (tmp_path / "reports" / "mine" / "report.md").read_text()
