"""One case, measured: the body of a worker process.

Order matters for honest figures. In a fresh process: set-up (problem, reference from
the cache, the method's ``prepare``, JIT included); a first forward + backward (lazy
initialisation; the gradient checked below comes from it); a second one under the
memory probe (the peak of this case alone, one-time costs excluded); ``warmup`` more;
the timed repeats (device sync inside the timer, garbage collection outside it); the
untimed counting pass; then the checks against the reference, the same library's
discrete backprop, and finite differences of the method's own loss.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import time
import traceback
from typing import Any

import numpy as np

from .._errors import SolverError
from .._memory import MemoryProbe
from .._records import Record
from .._verdicts import relative_error
from ..backends import CaseSpec, DeviceUnavailable, Method, Outcome, Prepared, make_method
from ._suite import Case, Settings

FD_DIRECTIONS = 2  # directional derivatives per case in the finite-difference check


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def classify(exc: BaseException) -> str:
    """``diverged`` for a solve that blew up or ran out of steps, ``failed`` otherwise.

    Every adapter turns its library's way of saying so into a :class:`SolverError`; no
    guessing from messages, which would call any error that mentions ``max_steps`` a
    divergence.
    """
    return "diverged" if isinstance(exc, SolverError) else "failed"


def describe(exc: BaseException) -> str:
    """One line for the record: the exception and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def base_record(case: Case, run_id: str, suite: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "case_id": case.case_id,
        "suite": suite,
        **case.identity,
        "backend": case.method.name.split(".")[0],
        "solver": str(case.method.params.get("solver", "")),
    }


def finish(fields: dict[str, Any], started: float) -> Record:
    fields.setdefault("finished_at", now_iso())
    fields["case_wall_s"] = time.perf_counter() - started
    return Record.from_dict(fields)


def _flat(problem, outcome: Outcome) -> tuple[np.ndarray, np.ndarray | None]:
    """The method's gradient as a flat vector, or its projections and directions."""
    if outcome.directions is not None:
        return np.asarray(outcome.derivatives, dtype=np.float64), np.asarray(outcome.directions, dtype=np.float64)
    return problem.flat_gradient(outcome.grads), None


def _compare(g: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    diff = g - ref
    ref_norm, g_norm = float(np.linalg.norm(ref)), float(np.linalg.norm(g))
    cos = float(g @ ref) / (g_norm * ref_norm) if g_norm > 0 and ref_norm > 0 else math.nan
    return {
        "grad_rel_err": relative_error(g, ref),
        "grad_max_abs_err": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "grad_cosine": cos,
    }


def _finite(outcome: Outcome) -> bool:
    values = [outcome.loss]
    arrays = list(outcome.grads.values()) + ([outcome.derivatives] if outcome.derivatives is not None else [])
    return math.isfinite(values[0]) and all(np.all(np.isfinite(a)) for a in arrays)


def _consistency(method: Method, problem, spec: CaseSpec, g: np.ndarray, directions) -> tuple[float | None, str]:
    """Relative difference to the same library's discrete backprop at the same settings."""
    other = method.discrete_twin()
    if other is None:
        return None, ""
    if other.unavailable_reason(spec.device):
        return None, other.name
    prepared = other.prepare(problem, spec)
    outcome = prepared.outcome(prepared.backward(prepared.forward()))
    ref = problem.flat_gradient(outcome.grads)
    if directions is not None:
        ref = directions @ ref
    return _compare(g, ref)["grad_rel_err"], other.name


def _fd_agreement(prepared, problem, g: np.ndarray, seed: int) -> float:
    """Largest disagreement of g . v with central differences of the method's own loss,
    over random unit directions v, relative to |g|."""
    from .. import fd

    x0 = problem.flat_inputs()

    def loss(x):
        parts = problem.unflatten(x)
        return prepared.loss_at(parts.pop("y0"), parts)

    directions, derivatives = fd.directional_derivatives(loss, x0, FD_DIRECTIONS, seed=seed)
    scale = max(float(np.linalg.norm(g)), 1e-300)
    return float(np.max(np.abs(directions @ g - derivatives)) / (np.linalg.norm(directions, axis=1).max() * scale))


def _device_reason(method: Method, device: str) -> str | None:
    if device != "cuda" or "torch" not in method.requires:
        return None
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device here (torch.cuda.is_available() is False)"
    return None


class _Stages:
    """The stage a case is in (named in its error, if it fails there) and the seconds spent
    in each stage that has a column (:data:`odebench._records.STAGE_COLUMNS`)."""

    column: str | None

    def __init__(self, fields: dict[str, Any]):
        self.fields = fields
        self.name, self.column, self.since = "building the problem", None, time.perf_counter()

    def __call__(self, name: str, column: str | None = None) -> None:
        now = time.perf_counter()
        if self.column is not None:
            self.fields[self.column] = self.fields.get(self.column, 0.0) + now - self.since
        self.name, self.column, self.since = name, column, now


def run_case(case: Case, settings: Settings, run_id: str, suite: str) -> Record:
    """Measure one case; every failure becomes the record's status and message."""
    started = time.perf_counter()
    fields = base_record(case, run_id, suite)
    fields["repeats"] = settings.repeats
    stage = _Stages(fields)
    try:
        fields.update(_measure(case, settings, fields, stage))
    except Exception as exc:  # noqa: BLE001 - failure is data: the record says what went wrong
        oom = "out of memory: " if isinstance(exc, MemoryError) else ""
        fields.update(status=classify(exc), error=f"{stage.name}: {oom}{describe(exc)}")
    stage("done")
    return finish(fields, started)


def _measure(case: Case, settings: Settings, fields: dict[str, Any], stage: _Stages) -> dict[str, Any]:
    """The body of :func:`run_case`, stage by stage: fills ``fields`` and returns the status (and error)."""
    from ..problems import get_problem, reference_gradient

    problem = get_problem(case.problem.name, dict(case.problem.params))
    fields.update(n_state=problem.n_state, n_params=problem.n_params, n_save_times=int(problem.t.size))
    stage("configuring the method")
    method = make_method(case.method.name, case.method.params)
    fields.update(backend=method.library, solver=str(method.params.get("solver", "")))
    if reason := method.unavailable_reason(case.device, problem) or _device_reason(method, case.device):
        return {"status": "unavailable", "error": reason}
    if reason := method.skip_reason(problem):
        return {"status": "skipped", "error": reason}
    # Every case, whatever its library: the reference's fingerprint may evaluate the
    # problem in torch (a closed form NumPy lacks), and a torch op that reaches for the
    # OpenMP pool the fork server started hangs forever in the forked worker (libgomp is
    # not fork-safe): seen as every diffrax case of suites/quick.yaml timing out.
    import torch

    torch.set_num_threads(settings.threads)
    stage("computing the reference gradient", "reference_s")
    reference = reference_gradient(problem)
    fields.update(reference=reference.kind, reference_err=reference.error_estimate)
    stage("preparing the method", "prepare_s")
    spec = CaseSpec(case.tolerance.rtol, case.tolerance.atol, case.dtype, case.device, case.seed)
    try:
        prepared = method.prepare(problem, spec)
    except DeviceUnavailable as exc:
        return {"status": "unavailable", "error": str(exc)}

    stage("the first forward and backward pass", "measure_s")
    outcome, first_call = _first_pass(prepared)
    fields["loss"] = outcome.loss
    if not _finite(outcome):
        return {"status": "diverged", "error": "NaN or Inf in the loss or the gradient"}
    stage("measuring peak memory", "measure_s")
    fields.update(_peak_memory(prepared))
    stage("warm-up", "measure_s")
    for _ in range(settings.warmup):
        _pass(prepared)
    stage("timing", "measure_s")
    fields.update(_timing(prepared, settings.repeats, first_call))
    stage("counting evaluations", "count_s")
    # A JAX method may take its counts from its verified on-disk cache (backends/_jax_cache.py).
    fields.update(getattr(prepared, "count_cached", prepared.count)().as_dict())

    stage("comparing with the reference")
    g, directions = _flat(problem, outcome)
    fields.update(_compare(g, reference.flat if directions is None else directions @ reference.flat))
    stage("checking consistency with discrete backprop", "consistency_s")
    fields["consistency_err"], fields["consistency_method"] = _consistency(method, problem, spec, g, directions)
    if settings.fd_check and directions is None:
        stage("checking against finite differences", "fd_s")
        fields["fd_err"] = _fd_agreement(prepared, problem, g, case.seed)
    return {"status": "ok"}


def _pass(prepared: Prepared) -> Any:
    """One forward and backward pass, finished on the device; its state."""
    state = prepared.backward(prepared.forward())
    prepared.sync()
    return state


def _first_pass(prepared: Prepared) -> tuple[Outcome, float]:
    """The first pass's outcome, and the seconds of the pass alone (tracing and compilation
    included; reading the outcome back to the host is not)."""
    t0 = time.perf_counter()
    state = _pass(prepared)
    seconds = time.perf_counter() - t0
    return prepared.outcome(state), seconds


def _peak_memory(prepared: Prepared) -> dict[str, Any]:
    """Peak memory of one pass after the first, so that one-time costs (lazy imports, BLAS
    buffers, allocator pools) stay out of it; in a fresh process, so nothing else is in."""
    probe = MemoryProbe(prepared.memory_source, torch=prepared.torch_module(), device=prepared.device_handle())
    with probe:
        _pass(prepared)
    assert probe.result is not None  # set by the probe's __exit__
    return {"peak_memory_bytes": probe.result.peak_bytes, "memory_source": probe.result.source}


def _timing(prepared: Prepared, repeats: int, first_call: float) -> dict[str, Any]:
    """Medians of ``repeats`` timed passes; compile time as the method reports it, else the first
    pass's excess over the median."""
    fwd, bwd, tot = [], [], []
    for _ in range(repeats):
        gc.collect()
        gc.disable()  # device sync inside the timer, garbage collection outside it
        try:
            t0 = time.perf_counter()
            state = prepared.forward()
            prepared.sync()
            t1 = time.perf_counter()
            prepared.backward(state)
            prepared.sync()
            t2 = time.perf_counter()
        finally:
            gc.enable()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        tot.append(t2 - t0)
    median = float(np.median(tot))
    compile_time = prepared.compile_time_s if prepared.compile_time_s is not None else max(0.0, first_call - median)
    return dict(
        time_forward_s=float(np.median(fwd)), time_backward_s=float(np.median(bwd)), time_total_s=median,
        time_total_iqr_s=float(np.percentile(tot, 75) - np.percentile(tot, 25)), time_samples_s=tot,
        compile_time_s=compile_time,
    )  # fmt: skip


def compute_reference(problem_name: str, params: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Compute (or load from the cache) one problem's reference gradient; a summary."""
    import torch

    from ..problems import get_problem, reference_gradient

    torch.set_num_threads(threads)
    started = time.perf_counter()
    ref = reference_gradient(get_problem(problem_name, params))
    return {"kind": ref.kind, "error_estimate": ref.error_estimate, "seconds": time.perf_counter() - started}
