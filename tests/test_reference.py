"""Reference gradients: analytic ones and tight solves against finite differences; the cache."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch
from problem_helpers import ANALYTIC, REQUIRED, scipy_loss_function

from odebench.fd import central_gradient, directional_derivatives
from odebench.problems import (
    REFERENCE_VERSION,
    Problem,
    ReferenceFailure,
    _reference,
    cache_dir,
    get_problem,
    linear,
    loss_and_gradient,
    loss_function,
    reference_gradient,
)

torch.set_num_threads(1)

# Finite differences here are Richardson-extrapolated central differences of an independent
# SciPy solve (DOP853, Radau when stiff) at rtol = atol = 1e-12. Measured against the
# references they agree to 1e-13..3e-10 relative (the FD truncation error); the stated
# tolerance leaves a margin of 300 and still catches any real gradient error.
FD_TOL = 1e-7

ANALYTIC_CASES = [
    ("linear", {}),
    ("linear", {"dim": 3, "seed": 2, "t_end": 2.0, "n_save": 4}),
    ("linear", {"n_save": 20}),  # save times, not the tolerance, set the steps
    ("oscillator", {}),
    ("oscillator", {"zeta": 1.0}),  # critically damped
    ("oscillator", {"omega": 3.0, "zeta": 2.0, "n_save": 3}),  # over-damped
    ("oscillator", {"n_save": 50}),
    ("logistic", {}),
    ("logistic", {"r": -0.5, "K": 3.0, "n_save": 5}),
    ("stiff_decay", {}),
    ("stiff_decay", {"k": 400.0, "t_end": 0.5, "n_save": 3}),
]
# Tight problems at sizes that keep the test suite quick; the defaults are in the slow tests.
TIGHT_CASES = [
    ("lotka_volterra", {}),
    ("van_der_pol", {}),
    ("van_der_pol", {"mu": 10.0, "t_end": 2.0, "n_save": 3}),
    ("lorenz", {}),
    ("robertson", {"t_end": 0.1}),
    ("brusselator", {"n": 8, "t_end": 2.0}),
    ("neural_mlp", {}),
    ("neural_mlp", {"dim": 2, "width": 8, "depth": 3, "batch": 3, "n_save": 3}),
    ("spiral", {"t_end": 5.0, "n_save": 20}),
]
TIGHT_DEFAULTS = [name for name in REQUIRED if name not in ANALYTIC]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ODEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "references"


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("name", "params"), ANALYTIC_CASES)
def test_analytic_gradient_matches_finite_differences(name, params):
    p = get_problem(name, params)
    ref = reference_gradient(p, cache=False)
    assert ref.kind == "analytic" and ref.error_estimate == 0.0
    f = scipy_loss_function(p)
    fd = central_gradient(f, p.flat_inputs(), richardson=True)
    assert _rel(ref.flat, fd) < FD_TOL
    assert ref.loss == pytest.approx(f(p.flat_inputs()), rel=1e-10)


@pytest.mark.parametrize(("name", "params"), ANALYTIC_CASES)
def test_tight_solve_agrees_with_the_closed_form_within_its_error_estimate(name, params):
    # The closed form is exact, so it checks the tight machinery and the honesty of its
    # error estimate: the true error must not exceed the estimate (plus rounding).
    p = get_problem(name, params)
    exact = reference_gradient(p, cache=False)
    tight = reference_gradient(dataclasses.replace(p, exact_gradient=None), cache=False)
    assert tight.kind == "tight"
    assert 0.0 < tight.error_estimate < 1e-8
    assert _rel(tight.flat, exact.flat) <= tight.error_estimate + 1e-14
    assert tight.loss == pytest.approx(exact.loss, rel=1e-10)


def _check_tight_against_fd(name, params, k=3):
    p = get_problem(name, params)
    ref = reference_gradient(p, cache=False)
    assert ref.kind == "tight"
    assert np.isfinite(ref.error_estimate) and 0.0 <= ref.error_estimate < 1e-8
    f = scipy_loss_function(p)
    V, dd = directional_derivatives(f, p.flat_inputs(), k, seed=1, richardson=True)
    assert np.max(np.abs(dd - V @ ref.flat)) < FD_TOL * np.linalg.norm(ref.flat)
    assert ref.loss == pytest.approx(f(p.flat_inputs()), rel=1e-10)
    return ref


@pytest.mark.parametrize(("name", "params"), TIGHT_CASES)
def test_tight_reference_matches_finite_differences(name, params):
    _check_tight_against_fd(name, params)


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED)
def test_default_references_are_right_and_quick(name):
    """Every reference at default parameters: under a minute, and checked by FD."""
    if name in ANALYTIC:
        ref = reference_gradient(get_problem(name), cache=False)
    else:
        ref = _check_tight_against_fd(name, {}, k=2)
    print(f"{name}: {ref.kind} {ref.seconds:.2f} s, error estimate {ref.error_estimate:.1e}")
    assert ref.seconds < 60


def test_reference_parts_and_description():
    p = get_problem("lorenz")
    ref = reference_gradient(p)
    assert set(ref.grads) == {"y0", "sigma", "rho", "beta"}
    assert ref.grads["y0"].shape == (3,) and ref.grads["rho"].shape == ()
    np.testing.assert_array_equal(ref.flat, p.flat_gradient(ref.grads))
    assert "dopri8" in ref.method and "1e-12" in ref.method and "1e-11" in ref.method and "tsit5" in ref.method
    assert ref.seconds > 0 and not ref.cached


def test_tight_reference_is_the_checkpoint_gradient_of_dopri8():
    p = get_problem("van_der_pol", {"t_end": 2.0})
    want = loss_and_gradient(p, solver="dopri8", rtol=1e-12, atol=1e-12, gradient="checkpoint", save_at="step")
    ref = reference_gradient(p, cache=False)
    np.testing.assert_array_equal(ref.flat, p.flat_gradient(want.grads))
    assert ref.loss == want.loss


def test_an_exact_gradient_without_a_closed_form_takes_its_loss_from_a_tight_solve():
    p = get_problem("stiff_decay")
    ref = reference_gradient(dataclasses.replace(p, exact_solution=None), cache=False)
    assert ref.kind == "analytic" and "tight solve" in ref.method
    assert ref.loss == pytest.approx(reference_gradient(p, cache=False).loss, rel=1e-12)


def test_loss_function_of_the_own_solver_supports_finite_differences():
    # The flat-vector loss that fd.central and gradcheck difference: it reproduces the
    # reference's loss and, differenced, its gradient.
    p = get_problem("lorenz", {"t_end": 0.5})
    ref = reference_gradient(p, cache=False)
    f = loss_function(p)
    assert f(p.flat_inputs()) == pytest.approx(ref.loss, rel=1e-14)
    fd = central_gradient(f, p.flat_inputs(), richardson=True)
    assert _rel(fd, ref.flat) < FD_TOL


def test_lorenz_error_estimate_grows_with_the_horizon():
    short = reference_gradient(get_problem("lorenz", {"t_end": 0.5}), cache=False)
    long = reference_gradient(get_problem("lorenz", {"t_end": 8.0}), cache=False)
    # Chaos: the gradient grows like e^(0.9 t), and with it the error of any solve.
    assert np.linalg.norm(long.flat) > 100 * np.linalg.norm(short.flat)
    assert long.error_estimate > 100 * short.error_estimate


def test_a_failed_solve_is_a_reference_failure():
    p = dataclasses.replace(get_problem("robertson"), max_steps=20)
    with pytest.raises(ReferenceFailure, match="robertson.*MaxStepsExceeded"):
        reference_gradient(p, cache=False)


def test_a_check_solve_that_fails_makes_the_estimate_infinite(monkeypatch):
    failing = {**_reference.TIGHT, "solver": "tsit5", "max_steps": 3}
    monkeypatch.setattr(_reference, "CHECKS", (_reference.CHECKS[0], failing))
    ref = reference_gradient(get_problem("lorenz", {"t_end": 0.2}), cache=False)
    assert ref.error_estimate == np.inf and "inf vs" in ref.method
    assert np.all(np.isfinite(ref.flat))


# --------------------------------------------------------------------------- the cache


def test_cache_dir_follows_the_environment(private_cache, monkeypatch):
    assert cache_dir() == private_cache
    monkeypatch.delenv("ODEBENCH_CACHE")
    assert cache_dir() == _reference.Path("~/.cache/odebench/references").expanduser()


def test_second_call_is_a_cache_hit(private_cache):
    p = get_problem("lotka_volterra", {"t_end": 3.0})
    first = reference_gradient(p)
    assert not first.cached
    files = list(private_cache.glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("lotka_volterra-")
    start = time.perf_counter()
    second = reference_gradient(get_problem("lotka_volterra", {"t_end": 3.0}))
    elapsed = time.perf_counter() - start
    assert second.cached and elapsed < 0.05 and elapsed < first.seconds / 5
    np.testing.assert_array_equal(second.flat, first.flat)  # JSON round-trips float64 exactly
    for key in first.grads:
        np.testing.assert_array_equal(second.grads[key], first.grads[key])
    assert (second.loss, second.kind, second.error_estimate, second.method, second.seconds) == (
        first.loss, first.kind, first.error_estimate, first.method, first.seconds,
    )  # fmt: skip
    assert not list(private_cache.glob("*.tmp"))  # the atomic write left nothing behind


@pytest.mark.parametrize("garbage", ["", "{not json", '{"key": 1}', "[]"])
def test_a_corrupt_cache_file_is_recomputed(private_cache, garbage):
    p = get_problem("linear")
    first = reference_gradient(p)
    (path,) = private_cache.glob("*.json")
    path.write_text(garbage)
    again = reference_gradient(p)
    assert not again.cached
    np.testing.assert_array_equal(again.flat, first.flat)
    assert reference_gradient(p).cached  # and the file was repaired


def test_a_cache_entry_with_wrong_shapes_or_values_is_recomputed(private_cache):
    p = get_problem("linear")
    reference_gradient(p)
    (path,) = private_cache.glob("*.json")
    entry = json.loads(path.read_text())
    entry["grads"]["A"] = [[1.0]]
    path.write_text(json.dumps(entry))
    assert not reference_gradient(p).cached
    entry = json.loads(path.read_text())
    entry["grads"]["y0"] = [float("nan")] * 4
    path.write_text(json.dumps(entry))  # NaN is valid in Python's JSON
    assert not reference_gradient(p).cached


def test_the_fingerprint_covers_data_mathematics_and_version(monkeypatch):
    key = _reference.fingerprint
    base = get_problem("linear")
    assert key(base) == key(linear(dim=4)) == key(get_problem("linear", {"seed": 0}))
    assert key(base) != key(get_problem("linear", {"seed": 1}))
    assert key(base) != key(get_problem("linear", {"n_save": 3}))
    assert key(base) != key(dataclasses.replace(base, y0=base.y0 + 1.0))  # same config, other data
    assert key(base) != key(dataclasses.replace(base, loss=lambda ys, xp: xp.sum(ys)))
    assert key(base) != key(dataclasses.replace(base, vector_field=lambda t, y, p, xp: p["A"] @ y * 1.001))
    assert key(base) != key(dataclasses.replace(base, exact_gradient=None))  # tight, not analytic
    before = key(base)
    monkeypatch.setattr(_reference, "REFERENCE_VERSION", REFERENCE_VERSION + "-next")
    versioned = key(base)
    assert versioned != before
    monkeypatch.setattr(_reference, "TIGHT", {**_reference.TIGHT, "rtol": 1e-13})
    assert key(base) != versioned


def test_a_new_reference_version_recomputes(monkeypatch):
    p = get_problem("oscillator")
    reference_gradient(p)
    assert reference_gradient(p).cached
    monkeypatch.setattr(_reference, "REFERENCE_VERSION", REFERENCE_VERSION + "-next")
    assert not reference_gradient(p).cached


def test_an_unwritable_cache_is_not_fatal(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ODEBENCH_CACHE", str(blocker))
    ref = reference_gradient(get_problem("logistic"))
    assert not ref.cached and np.all(np.isfinite(ref.flat))


def test_concurrent_writers_leave_one_valid_file(private_cache):
    p = get_problem("van_der_pol", {"t_end": 1.0})
    results, errors = [], []

    def work():
        try:
            results.append(reference_gradient(p))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(np.array_equal(r.flat, results[0].flat) for r in results)
    (path,) = private_cache.glob("*.json")
    assert json.loads(path.read_text())["problem"] == "van_der_pol"
    assert not [n for n in os.listdir(private_cache) if n.endswith(".tmp")]
    assert reference_gradient(p).cached


# ------------------------------------------------- the fingerprint follows the mathematics

# A user's factory module: the vector field calls a helper that reads a module constant, and
# the analytic variant's exact_gradient reads one that nothing else does. The field also
# holds a nested function and a generator expression (code constants whose repr holds an
# address). Truth: y(T) = y0 exp(-RATE a T), L = |y(T)|^2.
FACTORY = """
import numpy as np
from odebench.problems import Problem

RATE = 0.5
GRADIENT_FACTOR = 1.0  # a bug: the derivative of |y0|^2 is 2 y0


def _decay(y, xp):
    return -RATE * y


def field(t, y, params, xp):
    def scaled(v):
        return params["a"] * v

    return sum(w * scaled(_decay(y, xp)) for w in (0.25, 0.75))


def loss(ys, xp):
    return xp.sum(ys[-1] ** 2)


def exact_gradient():
    decay = np.exp(-2.0 * RATE)
    return {"y0": GRADIENT_FACTOR * np.array([1.0, 2.0]) * decay, "a": -2.0 * RATE * 5.0 * decay}


def make(analytic=False):
    return Problem(
        name="helper_decay", vector_field=field, y0=np.array([1.0, 2.0]), params={"a": np.float64(1.0)},
        t=np.array([0.0, 1.0]), loss=loss, exact_gradient=exact_gradient if analytic else None,
    )
"""


def _truth(rate):
    decay = np.exp(-2.0 * rate)  # a = 1, T = 1, |y0|^2 = 5
    return np.array([2.0 * decay, 4.0 * decay, -2.0 * rate * 5.0 * decay])


@pytest.fixture
def factory_module(tmp_path):
    """A loader of the factory module: each call executes the file afresh (new code objects)."""
    path = tmp_path / "user_factory.py"
    path.write_text(textwrap.dedent(FACTORY))
    count = iter(range(1000))

    def load():
        spec = importlib.util.spec_from_file_location(f"user_factory_{next(count)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def test_a_changed_constant_in_a_helper_recomputes_the_reference(factory_module, private_cache):
    module = factory_module()
    first = reference_gradient(module.make())
    assert not first.cached and _rel(first.flat, _truth(0.5)) < 1e-10
    assert reference_gradient(module.make()).cached
    module.RATE = 1.5  # only the helper _decay reads it
    second = reference_gradient(module.make())
    assert not second.cached
    assert _rel(second.flat, _truth(1.5)) < 1e-10  # the new truth, not the stale 0.5 one
    assert len(list(private_cache.glob("*.json"))) == 2
    module.RATE = 0.5  # back: the first reference is found again
    assert reference_gradient(module.make()).cached


def test_a_fixed_exact_gradient_recomputes_the_analytic_reference(factory_module):
    module = factory_module()
    buggy = reference_gradient(module.make(analytic=True))
    assert buggy.kind == "analytic" and _rel(buggy.flat, _truth(0.5)) > 0.1
    module.GRADIENT_FACTOR = 2.0  # the fix, in a constant only exact_gradient reads
    fixed = reference_gradient(module.make(analytic=True))
    assert not fixed.cached and _rel(fixed.flat, _truth(0.5)) < 1e-14


def test_a_nested_function_and_a_generator_do_not_defeat_the_cache(factory_module, private_cache):
    first = reference_gradient(factory_module().make())
    again = reference_gradient(factory_module().make())  # identical, separately compiled
    assert not first.cached and again.cached
    assert len(list(private_cache.glob("*.json"))) == 1
    np.testing.assert_array_equal(again.flat, first.flat)


def test_a_cache_file_with_another_fingerprint_is_recomputed(factory_module, private_cache):
    module = factory_module()
    reference_gradient(module.make())
    (path,) = private_cache.glob("*.json")
    entry = json.loads(path.read_text())
    entry["fingerprint"] = "0" * 64
    entry["grads"] = {"y0": [9.0, 9.0], "a": 9.0}  # were it reused, the verdict would be wrong
    path.write_text(json.dumps(entry))
    again = reference_gradient(module.make())
    assert not again.cached and _rel(again.flat, _truth(0.5)) < 1e-10
    assert reference_gradient(module.make()).cached  # and the file was repaired


def test_fingerprints_are_the_same_in_another_process(factory_module, tmp_path):
    module = factory_module()
    problems = {"linear": get_problem("linear"), "neural_mlp": get_problem("neural_mlp", {"batch": 3}),
                "robertson": get_problem("robertson"), "user": module.make()}  # fmt: skip
    here = {name: _reference.fingerprint(p) for name, p in problems.items()}
    script = f"""
import importlib.util, json
from odebench.problems import _reference, get_problem
spec = importlib.util.spec_from_file_location("user_factory_there", {str(tmp_path / "user_factory.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
problems = {{"linear": get_problem("linear"), "neural_mlp": get_problem("neural_mlp", {{"batch": 3}}),
            "robertson": get_problem("robertson"), "user": module.make()}}
print(json.dumps({{name: _reference.fingerprint(p) for name, p in problems.items()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there == here and all(len(key) == 64 for key in here.values())


def test_a_field_that_is_not_finite_at_the_probes_still_has_a_faithful_fingerprint():
    def problem(c):
        def field(t, y, params, xp):
            return xp.sqrt(y) * c - xp.log(y)  # NaN or -inf at y <= 0: robertson's zero entries moved

        return Problem(name="edge", vector_field=field, y0=np.array([0.0, 1.0]), params={},
                       t=np.array([0.0, 1.0]), loss=lambda ys, xp: xp.sum(ys))  # fmt: skip

    assert _reference.fingerprint(problem(2.0)) == _reference.fingerprint(problem(2.0))
    assert _reference.fingerprint(problem(2.0)) != _reference.fingerprint(problem(2.0 + 1e-6))


def test_a_problem_that_cannot_be_probed_is_computed_but_not_cached(monkeypatch, private_cache):
    monkeypatch.setattr(_reference._fingerprint, "_namespaces", lambda problem: ())
    p = get_problem("lotka_volterra", {"t_end": 1.0})
    assert _reference.fingerprint(p) is None
    first, again = reference_gradient(p), reference_gradient(p)
    assert not first.cached and not again.cached
    np.testing.assert_array_equal(again.flat, first.flat)
    assert not list(private_cache.glob("*.json"))
