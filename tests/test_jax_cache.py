"""The on-disk caches of the JAX methods (odebench/backends/_jax_cache.py).

Exported programs: a warm case loads the timed gradient's halves instead of tracing, and
they compute the very bits that today's traced build does. Cached counts: used only when
they vouch for the timed build at hand (its gradient's bits, its forward steps); a stale,
corrupt or forged entry is caught and the counting build runs again and records the right
counts. Every test gets a cache folder of its own (``ODEBENCH_CACHE``), so each starts cold.

Tests that compile diffrax have ``jax`` in their names: the slow tier (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import pytest

from odebench.backends import CaseSpec, _jax_cache as cache_module, make_method
from odebench.problems import linear

SPEC = CaseSpec(rtol=1e-8, atol=1e-8, dtype="float64", device="cpu")
COUNTERS = ("nfe_forward", "nfe_backward", "steps_forward", "steps_backward", "rejected_forward", "rejected_backward")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ODEBENCH_CACHE", str(tmp_path))
    return tmp_path


def _problem():
    return linear(dim=3, t_end=1.5, n_save=4)


def _prepare(method="diffrax.backsolve", params=(("solver", "dopri5"),), problem=None, spec=SPEC):
    return make_method(method, dict(params)).prepare(problem or _problem(), spec)


def _outputs(prepared):
    loss, grads = prepared.backward(prepared.forward())
    prepared.sync()
    return cache_module.output_digest((loss, grads))


@contextlib.contextmanager
def _as_before(monkeypatch):
    """The timed build as it was before the caches: traced, with diffrax's raising checks."""
    from odebench.backends._diffrax import _DiffraxPrepared

    with monkeypatch.context() as patch:
        patch.setattr(_DiffraxPrepared, "cache_facts", lambda self: None)
        patch.setattr(_DiffraxPrepared, "timed_build", lambda self: contextlib.nullcontext())
        yield


def _entry(cache) -> tuple:
    (path,) = (cache / "jax-counts").glob("*.json")
    return path, json.loads(path.read_text())


def _rewrite(path, entry, recheck=True) -> None:
    if recheck:
        entry["check"] = cache_module._check(entry)
    path.write_text(json.dumps(entry))


# --- counts entries, without JAX -----------------------------------------------------------


def test_counts_entry_reads_back_only_what_it_vouches_for(cache):
    counts = dict(zip(COUNTERS, (31, 37, 5, 6, 0, 1), strict=True))
    entry = cache_module.CountsEntry("k" * 64, "diffrax.backsolve (dopri5)")
    assert entry.read("digest", COUNTERS) is None  # absent
    entry.write("digest", counts)
    assert entry.read("digest", COUNTERS) == counts
    assert entry.read("other gradient", COUNTERS) is None
    assert cache_module.CountsEntry("j" * 64, "diffrax.backsolve (dopri5)").read("digest", COUNTERS) is None

    path = entry.path
    good = json.loads(path.read_text())
    _rewrite(path, {**good, "counts": {**counts, "nfe_forward": 30}}, recheck=False)  # wrong counts, old checksum
    assert entry.read("digest", COUNTERS) is None
    _rewrite(path, {**good, "key": "j" * 64})  # another computation's entry under this name
    assert entry.read("digest", COUNTERS) is None
    _rewrite(path, {**good, "version": "0"})
    assert entry.read("digest", COUNTERS) is None
    _rewrite(path, {**good, "counts": {**counts, "nfe_forward": -1}})
    assert entry.read("digest", COUNTERS) is None
    _rewrite(path, {**good, "counts": {k: v for k, v in counts.items() if k != "rejected_backward"}})
    assert entry.read("digest", COUNTERS) is None
    path.write_text(path.read_text()[:40])  # truncated
    assert entry.read("digest", COUNTERS) is None
    path.write_text(json.dumps(good))
    assert entry.read("digest", COUNTERS) == counts


def test_programs_entry_that_is_garbage_or_of_another_key_is_not_loaded(cache):
    programs = cache_module.Programs("k" * 64, "diffrax.backsolve (dopri5)")
    assert programs.load() is None and programs.exportable()
    programs.path.parent.mkdir(parents=True)
    programs.path.write_bytes(b"not a program")
    assert programs.load() is None
    programs.mark_unexportable("a host callback")
    assert not programs.exportable()


# --- exported programs ------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["dopri5", "euler"])
def test_jax_programs_exported_then_loaded_compute_the_same_bits(cache, monkeypatch, solver):
    """Cold: traced, exported, stored. Warm: loaded, nothing traced. Both give the bits of
    the build as it was before the caches (euler: backsolve's adjoint solve checks its step too)."""
    params = (("solver", solver), ("n_steps", 16))
    with _as_before(monkeypatch):
        before = _prepare(params=params)
    cold = _prepare(params=params)
    warm = _prepare(params=params)
    assert (before.timed.source, cold.timed.source, warm.timed.source) == ("traced", "exported", "loaded")
    assert _outputs(before) == _outputs(cold) == _outputs(warm)
    assert before.count() == cold.count() == warm.count()
    assert warm.compile_time_s > 0 and warm.compile_time_s < cold.compile_time_s  # reported apart, as before
    # The finite-difference check reuses the compiled forward pass: nothing new is jitted.
    problem = _problem()
    loss, _ = warm.forward()
    assert warm.loss_at(problem.y0, problem.params) == float(loss)
    assert warm._loss is None


def test_jax_program_entry_of_other_bits_is_rebuilt(cache, monkeypatch):
    """A stored program whose payload was replaced (here by another method's, which loads
    and runs) fails its checksum: the case traces and exports again, and computes the right bits."""
    truth = _outputs(_prepare())
    other = _prepare("diffrax.recursive_checkpoint")
    assert _outputs(other) != truth
    (mine,) = (cache / "jax-programs").glob("diffrax.backsolve*.bin")
    (theirs,) = (cache / "jax-programs").glob("diffrax.recursive_checkpoint*.bin")
    magic = len(cache_module._MAGIC)
    header, _ = mine.read_bytes()[magic:].split(b"\n", 1)
    _, payload = theirs.read_bytes()[magic:].split(b"\n", 1)
    mine.write_bytes(cache_module._MAGIC + header + b"\n" + payload)
    again = _prepare()
    assert again.timed.source == "exported"
    assert _outputs(again) == truth
    assert _prepare().timed.source == "loaded"


def test_jax_unexportable_computation_is_traced_and_noted(cache, monkeypatch):
    """A timed build that cannot be exported (a host callback in it) is traced as before;
    the note spares later processes the attempt."""
    with _as_before(monkeypatch):
        truth = _outputs(_prepare())

    def refuse(*args):
        raise NotImplementedError("serialization of host_callbacks is not yet implemented")

    monkeypatch.setattr(cache_module, "export_split", refuse)
    first = _prepare()
    assert first.timed.source == "traced" and _outputs(first) == truth
    (note,) = (cache / "jax-programs").glob("*.unexportable")
    assert "host_callbacks" in json.loads(note.read_text())["reason"]

    def never(*args):
        raise AssertionError("export attempted again")

    monkeypatch.setattr(cache_module, "export_split", never)
    second = _prepare()
    assert second.timed.source == "traced" and _outputs(second) == truth


def test_jax_cache_key_sees_one_ulp_of_a_constant_and_every_setting(cache):
    """The key is of the exact computation: one ulp in a constant the vector field reads, or
    in a save time, is another computation (the reference's fingerprint rounds to 10 digits)."""
    from odebench.backends._jax import JaxProblem

    def key(problem, spec=SPEC, facts=None):
        return cache_module.case_key(JaxProblem(problem, spec), facts or {"method": "m"})

    base = _problem()
    assert key(base) == key(_problem())

    scale = np.nextafter(1.0, 2.0)  # one ulp above 1

    def field(t, y, params, xp):
        return base.vector_field(t, y, params, xp) * scale

    t = base.t.copy()
    t[1] = np.nextafter(t[1], 2.0)
    keys = {
        key(base),
        key(dataclasses.replace(base, vector_field=field)),
        key(dataclasses.replace(base, t=t)),
        key(base, dataclasses.replace(SPEC, dtype="float32")),
        key(base, facts={"method": "m", "rtol": 1e-6}),
        key(base, facts={"method": "n"}),
    }
    assert len(keys) == 6


# --- cached counts ------------------------------------------------------------------------------


def _forge_outputs(entry):
    return {**entry, "outputs": "0" * 64}  # a gradient hash of other bits


def _forge_counts_keep_checksum(entry):
    return {**entry, "counts": {**entry["counts"], "nfe_backward": entry["counts"]["nfe_backward"] + 1}}


def _forge_forward_steps(entry):
    return {**entry, "counts": {**entry["counts"], "steps_forward": entry["counts"]["steps_forward"] + 1}}


CORRUPTIONS = {
    "wrong gradient hash": (_forge_outputs, True),
    "wrong counts, mismatched checksum": (_forge_counts_keep_checksum, False),
    "forward steps that the timed build contradicts": (_forge_forward_steps, True),
}


def test_jax_counts_come_from_the_cache_only_when_they_vouch(cache):
    first = _prepare()
    truth = first.count()
    assert first.count_cached() == truth and first.counts_source == "counted"
    warm = _prepare()
    assert warm.count_cached() == truth and warm.counts_source == "cache"
    path, good = _entry(cache)
    for name, (corrupt, recheck) in CORRUPTIONS.items():
        _rewrite(path, corrupt(dict(good)), recheck=recheck)
        counts = warm.count_cached()
        assert (warm.counts_source, counts) == ("counted", truth), name
        assert _entry(cache)[1] == good, name  # rewritten from the counting build
        assert warm.count_cached() == truth and warm.counts_source == "cache", name
    path.write_text("{")
    assert warm.count_cached() == truth and warm.counts_source == "counted"


def test_jax_counts_are_stored_only_when_the_counting_build_gives_the_timed_bits(cache, monkeypatch):
    """The counting build is the timed computation with taps: when its gradient is not
    bit-identical to the timed build's, its counts are recorded but never cached."""
    prepared = _prepare()
    count = type(prepared)._count

    def other_bits(self):
        counts, (loss, grads), aux = count(self)
        return counts, (loss * (1 + 2**-52), grads), aux

    monkeypatch.setattr(type(prepared), "_count", other_bits)
    truth = prepared.count()
    assert prepared.count_cached() == truth and prepared.counts_source == "counted"
    assert not (cache / "jax-counts").exists() or not list((cache / "jax-counts").iterdir())


def test_jax_backward_failure_is_never_cached(cache):
    """backsolve's adjoint solve out of steps: only the counting build sees it, every time."""
    from odebench.ode import MaxStepsExceeded
    from odebench.problems import get_problem

    problem = get_problem("stiff_decay", {"k": 40.0})
    spec = CaseSpec(rtol=1e-6, atol=1e-6, dtype="float64", device="cpu")
    for _ in range(2):
        prepared = make_method("diffrax.backsolve", {"max_steps": 50}).prepare(problem, spec)
        with pytest.raises(MaxStepsExceeded, match="max_steps=50"):
            prepared.count_cached()
    assert not (cache / "jax-counts").exists() or not list((cache / "jax-counts").iterdir())


def test_jax_set_up_checks_become_callback_free_only_when_they_cannot_fire():
    import equinox.internal as eqxi
    import jax
    import jax.numpy as jnp

    from odebench.backends._diffrax import _set_up_checks_without_callback

    original = eqxi.error_if

    def check(message):
        @jax.jit
        def f(x):
            return eqxi.error_if(x, x > 0, message)

        return f

    with _set_up_checks_without_callback(np.array([0.0, 1.0, 2.0]), 0.1):
        assert np.isnan(check("saveat.ts must lie between t0 and t1.")(jnp.ones(2))).all()
        assert np.isnan(check("Must have (t1 - t0) * dt0 >= 0, we instead got ...")(jnp.ones(2))).all()
        with pytest.raises(Exception, match="another check"):
            jax.block_until_ready(check("another check")(jnp.ones(2)))
    assert eqxi.error_if is original
    with _set_up_checks_without_callback(np.array([0.0, 2.0, 1.0]), 0.1):
        assert eqxi.error_if is original  # save times that fail the check: nothing changes
    with _set_up_checks_without_callback(np.array([0.0, 1.0, 2.0]), -0.1):
        with pytest.raises(Exception, match="dt0"):
            jax.block_until_ready(check("Must have (t1 - t0) * dt0 >= 0")(jnp.ones(2)))


# --- the runner ---------------------------------------------------------------------------------


def test_jax_runner_records_the_same_counts_and_checks_from_a_warm_cache(cache):
    from odebench.runner import parse_suite
    from odebench.runner._measure import run_case

    suite = parse_suite({
        "name": "warm", "settings": {"repeats": 2, "warmup": 0},
        "problems": [{"name": "linear", "params": {"dim": 2}}],
        "methods": [{"name": "diffrax.backsolve"}], "tolerances": [1e-6],
    })  # fmt: skip
    (case,) = suite.cases()
    cold, warm = (run_case(case, suite.settings, "r", "warm") for _ in range(2))
    assert cold.status == warm.status == "ok", (cold.error, warm.error)
    same = (*COUNTERS, "loss", "grad_rel_err", "consistency_err", "consistency_method", "fd_err")
    assert {c: getattr(warm, c) for c in same} == {c: getattr(cold, c) for c in same}
    assert warm.nfe_forward > 0 and warm.compile_time_s > 0
    assert warm.count_s < cold.count_s and warm.prepare_s < cold.prepare_s
