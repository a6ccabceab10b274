"""What every JAX-based method shares: the problem as JAX arrays on one device, the
gradient split into two ahead-of-time compiled halves, and exact evaluation counts.

Nothing here imports JAX at module import time, so that listing methods works without it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import _errors
from .._memory import jax_memory_source
from .._records import WORK_COUNTERS
from ._base import CaseSpec, Counts, DeviceUnavailable, Outcome, Prepared

PHASES = ("forward", "backward")


def jax_device(name: str):
    """The JAX device for a case's ``cpu`` or ``cuda``; ``cuda`` without a GPU backend
    raises :class:`DeviceUnavailable`."""
    import jax

    if name == "cpu":
        return jax.devices("cpu")[0]
    try:
        return jax.devices("gpu")[0]
    except RuntimeError as exc:
        raise DeviceUnavailable(f"{name} was asked for but JAX has no GPU backend here ({exc})") from None


def solver_error(kind: str, message: str) -> Exception:
    """The solver exception ``kind`` (``MaxStepsExceeded``, ...): the runner records a divergence."""
    return getattr(_errors, kind)(message)


def _tap(callback: Callable[..., None]):
    """An identity ``tap(x, *flags)`` on a float array that calls ``callback(*flags)`` on
    the host each time ``x`` is computed.

    The callback is pure and its zero result is added to ``x``: JAX and XLA drop it exactly
    when they drop the computation of ``x`` and run it again when they recompute ``x``
    (checkpointing). An effectful callback would instead be kept, or staged into both
    halves of a gradient, where the value it taps is not computed.
    """
    import jax

    def host(x, *flags):
        callback(*(f.item() for f in flags))
        return np.zeros((), x.dtype)

    @jax.custom_jvp
    def tap(x, *flags):
        zero = jax.pure_callback(host, jax.ShapeDtypeStruct((), x.dtype), x, *flags, vmap_method="sequential")
        return x + zero

    @tap.defjvp
    def _tap_jvp(primals, tangents):
        return tap(*primals), tangents[0]

    return tap


class EvalTally:
    """Counts, per phase, what compiled code computes: vector-field evaluations and steps.

    ``evaluation(dy)`` marks the output of one vector-field evaluation; ``step(t, accepted)``
    marks one step decision. Set ``phase`` between the (blocking) calls of a pass.
    """

    def __init__(self):
        self.phase = "forward"
        self._lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {phase: Counter() for phase in PHASES}
        self.evaluation = _tap(lambda: self._add("nfe"))
        self.step = _tap(lambda accepted: self._add("accepted" if accepted else "rejected"))

    def reset(self) -> None:
        self.phase = "forward"
        self.counts = {phase: Counter() for phase in PHASES}

    def _add(self, key: str) -> None:
        # XLA runs host callbacks on its own threads.
        with self._lock:
            self.counts[self.phase][key] += 1


def enable_compilation_cache(jax) -> None:
    """XLA's persistent compilation cache under the odebench cache (``$ODEBENCH_CACHE/jax``):
    a worker process loads what an earlier one compiled instead of compiling again.

    Only computations without host callbacks are stored: the timed gradient halves (diffrax
    solves them with ``throw=False`` for this reason) and the helpers, not the counting
    build. Tracing is not cached here: :mod:`._jax_cache` stores the traced programs and
    the counting build's counts beside it."""
    from ..problems import cache_dir

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir().parent / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class JaxProblem:
    """A :class:`~odebench.Problem` as JAX arrays of one dtype on one device (float64 enabled)."""

    def __init__(self, problem, spec: CaseSpec):
        import jax

        # Before any array exists: without it float64 silently becomes float32.
        jax.config.update("jax_enable_x64", True)
        enable_compilation_cache(jax)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.problem = problem
        self.device = jax_device(spec.device)
        self.dtype = np.dtype(spec.dtype)
        self.y0 = self.array(problem.y0)
        self.params = {k: self.array(v) for k, v in problem.params.items()}
        self.t = self.array(problem.t)

    def array(self, value) -> Any:
        return self.jax.device_put(np.asarray(value, dtype=self.dtype), self.device)

    def field(self, tally: EvalTally | None = None) -> Callable[[Any, Any, Any], Any]:
        """The vector field ``f(t, y, params)``; each evaluation counted by ``tally`` if given."""
        vector_field, jnp = self.problem.vector_field, self.jnp
        tap = tally.evaluation if tally is not None else None

        def f(t, y, params):
            dy = vector_field(t, y, params, jnp)
            return dy if tap is None else tap(dy)

        return f

    def loss(self, ys) -> Any:
        return self.problem.loss(ys, self.jnp)


class SplitGradient:
    """``loss(y0, params) -> (loss, aux)`` compiled ahead of time as two functions: the
    forward pass returns the loss, the pullback (its residuals as a pytree) and ``aux``;
    the backward pass applies the pullback to 1. Compiled functions never retrace.

    Given ``programs`` (a :class:`~._jax_cache.Programs` on a CPU device), the two halves
    are exported to StableHLO and stored there, and a later process loads them instead of
    tracing (the pullback's residuals then travel as a flat list). ``source`` says which
    happened: ``traced``, ``exported`` (traced and stored) or ``loaded``."""

    def __init__(self, loss: Callable, y0, params, programs: Any = None):
        started = time.perf_counter()
        self.source = "traced"
        halves = None
        if programs is not None and y0.devices().pop().platform == "cpu":
            halves = self._from_programs(programs, loss, y0, params)
        if halves is None:
            halves = self._trace(loss, y0, params)
        self.forward, self.backward = halves
        self.compile_time_s = time.perf_counter() - started

    def _from_programs(self, programs, loss: Callable, y0, params) -> tuple[Any, Any] | None:
        from . import _jax_cache

        loaded = programs.load()
        if loaded is not None:
            try:
                halves = _jax_cache.compile_split(loaded[0], loaded[1], y0, params)
            except Exception:  # noqa: BLE001 - of another layout after all: trace instead
                pass
            else:
                self.source = "loaded"
                return halves
        if not programs.exportable():
            return None
        try:
            exported = _jax_cache.export_split(loss, y0, params)
            halves = _jax_cache.compile_split(exported[0], exported[1], y0, params)
        except Exception as exc:  # noqa: BLE001 - a host callback, say; the plain build decides
            halves = self._trace(loss, y0, params)  # raises if the computation itself fails
            programs.mark_unexportable(f"{type(exc).__name__}: {exc}"[:2000])
            return halves
        programs.store(exported[0], exported[1])
        self.source = "exported"
        return halves

    @staticmethod
    def _trace(loss: Callable, y0, params) -> tuple[Any, Any]:
        import jax
        import jax.numpy as jnp

        forward = jax.jit(lambda y0, params: jax.vjp(loss, y0, params, has_aux=True))
        compiled_forward = forward.lower(y0, params).compile()
        one = np.ones((), dtype=y0.dtype)
        backward = jax.jit(lambda pullback: pullback(jnp.asarray(one)))
        return compiled_forward, backward.lower(compiled_forward.out_info[1]).compile()


class ForwardGradient:
    """``loss(y0, params) -> (loss, aux)`` and its gradient by forward mode (``jax.jacfwd``:
    one JVP per input direction, batched), compiled ahead of time as one function. Same
    interface as :class:`SplitGradient`: ``forward`` returns the loss, the gradient (in
    place of a pullback) and ``aux``; ``backward`` hands the gradient on."""

    source = "traced"

    def __init__(self, loss: Callable, y0, params, programs: Any = None):
        import jax

        del programs  # one function, not split in two: always traced (XLA's cache still holds it)

        def value_and_grad(y0, params):
            def with_value(y0, params):
                value, aux = loss(y0, params)
                return value, (value, aux)

            grads, (value, aux) = jax.jacfwd(with_value, argnums=(0, 1), has_aux=True)(y0, params)
            return value, grads, aux

        started = time.perf_counter()
        self.forward = jax.jit(value_and_grad).lower(y0, params).compile()
        self.compile_time_s = time.perf_counter() - started

    @staticmethod
    def backward(grads):
        return grads


class JaxPrepared(Prepared):
    """A JAX computation: subclasses give ``loss_fn(tally) -> loss(y0, params) -> (loss, aux)``
    with ``aux["finite"]`` true when the solution is finite, and turn a counting pass into
    :class:`Counts`. ``gradient`` is how the gradient is taken: reverse mode split into two
    compiled halves (:class:`SplitGradient`) or forward mode (:class:`ForwardGradient`)."""

    gradient: type = SplitGradient

    def __init__(self, jp: JaxProblem):
        from . import _jax_cache

        self.jp = jp
        self.memory_source = jax_memory_source(jp.device)
        #: the key of this computation in the on-disk caches (:mod:`._jax_cache`), or None
        self.cache_key: str | None = None
        facts = self.cache_facts()
        started = time.perf_counter()
        if facts is not None:
            try:
                self.cache_key = _jax_cache.case_key(jp, facts)
            except Exception:  # noqa: BLE001 - a field that will not lower alone: no caching
                self.cache_key = None
        programs = None if self.cache_key is None else _jax_cache.Programs(self.cache_key, self.label)
        with self.timed_build():
            self.timed = self.gradient(self.loss_fn(None), jp.y0, jp.params, programs)
        self.compile_time_s = time.perf_counter() - started
        self._last: Any = None
        self._aux: Mapping[str, Any] = {}  # of the last timed forward pass
        self._loss: Callable | None = None  # the jitted loss, built on first use
        #: the counts of the last counting pass (``count``), where a test can read them
        self.tally: EvalTally | None = None
        self._counting: SplitGradient | None = None
        #: where :meth:`count_cached` took its counts from: ``cache`` or ``counted``
        self.counts_source: str | None = None

    def timed_build(self) -> contextlib.AbstractContextManager[Any]:
        """The context in which the timed build is traced (both halves)."""
        return contextlib.nullcontext()

    def cache_facts(self) -> dict[str, Any] | None:
        """What besides the problem, dtype and device determines the computation (method,
        parameters, tolerances, ...), for its key in the on-disk caches; None: no caching."""
        return None

    @abstractmethod
    def loss_fn(self, tally: EvalTally | None) -> Callable:
        """The loss of one solve and its aux, with evaluations and steps tapped into ``tally``."""

    @abstractmethod
    def counts(self, tally: EvalTally, aux: Mapping[str, Any]) -> Counts:
        """The counts of one counting pass, from the tally and the forward pass's aux."""

    @property
    def label(self) -> str:
        return type(self).__name__

    def failures(self):
        """A context that turns the library's runtime errors into the solver core's."""
        return contextlib.nullcontext()

    def check(self, aux: Mapping[str, Any]) -> None:
        """Raise the solver core's error if the forward pass's ``aux`` says the solve failed."""
        if not bool(aux["finite"]):
            raise solver_error("NonFiniteSolution", f"{self.label}: the solution contains NaN or Inf")

    def forward(self):
        with self.failures():
            loss, pullback, aux = self.timed.forward(self.jp.y0, self.jp.params)
            self._last, self._aux = (loss, pullback), aux
            # Blocks, as the sync after it would: a fixed-step solve runs on through NaN.
            self.check(aux)
        return loss, pullback

    def backward(self, state):
        loss, pullback = state
        with self.failures():
            grads = self.timed.backward(pullback)
        self._last = grads
        return loss, grads

    def sync(self) -> None:
        with self.failures():
            self.jp.jax.block_until_ready(self._last)

    def outcome(self, state) -> Outcome:
        loss, (g_y0, g_params) = state
        grads = {"y0": np.asarray(g_y0, dtype=np.float64)}
        grads.update({k: np.asarray(g_params[k], dtype=np.float64) for k in self.jp.params})
        return Outcome(loss=float(loss), grads=grads)

    def count(self) -> Counts:
        return self._count()[0]

    def _count(self) -> tuple[Counts, Any, Mapping[str, Any]]:
        """One pass of the counting build: its counts, its (loss, gradient) and its aux."""
        jax = self.jp.jax
        if self._counting is None:
            self.tally = EvalTally()
            self._counting = self.gradient(self.loss_fn(self.tally), self.jp.y0, self.jp.params)
        tally, split = self.tally, self._counting
        assert tally is not None  # set together with self._counting
        tally.reset()
        with self.failures():
            loss, pullback, aux = jax.block_until_ready(split.forward(self.jp.y0, self.jp.params))
            tally.phase = "backward"
            grads = jax.block_until_ready(split.backward(pullback))
        return self.counts(tally, aux), (loss, grads), aux

    def _timed_pass(self) -> tuple[Any, Mapping[str, Any]]:
        """One pass of the timed build: its (loss, gradient) and its forward pass's aux."""
        outputs = self.backward(self.forward())
        self.sync()
        return outputs, self._aux

    @staticmethod
    def _forward_steps(counts: Mapping[str, Any], aux: Mapping[str, Any]) -> bool:
        """Whether ``counts`` has the forward steps that the timed build's ``aux`` reports
        (where it reports them: diffrax's own statistics)."""
        if "accepted" not in aux or "rejected" not in aux:
            return True
        return counts["steps_forward"] == int(aux["accepted"]) and counts["rejected_forward"] == int(aux["rejected"])

    def count_cached(self) -> Counts:
        """:meth:`count`, or its counts from the on-disk cache where they vouch for this very
        computation (:mod:`._jax_cache`): an entry written after a counting build whose loss
        and gradient were bit-identical to the timed build's, used only when the timed build
        produces those same bits here and the forward steps it reports agree. Otherwise the
        counting build runs (and its counts are stored when they qualify).
        ``counts_source`` says which: ``cache`` or ``counted``."""
        from . import _jax_cache

        if self.cache_key is None:
            self.counts_source = "counted"
            return self.count()
        entry = _jax_cache.CountsEntry(self.cache_key, self.label)
        timed, timed_aux = self._timed_pass()
        digest = _jax_cache.output_digest(timed)
        cached = entry.read(digest, WORK_COUNTERS)
        if cached is not None and self._forward_steps(cached, timed_aux):
            self.counts_source = "cache"
            return Counts(**cached)
        counts, outputs, _ = self._count()
        self.counts_source = "counted"
        values = counts.as_dict()
        if (
            _jax_cache.output_digest(outputs) == digest
            and self._forward_steps(values, timed_aux)
            and all(isinstance(v, int) for v in values.values())
        ):
            entry.write(digest, {k: int(v) for k, v in values.items() if v is not None})
        return counts

    def loss_at(self, y0: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
        """The loss at other inputs: the timed forward pass where it is a plain solve (no
        retrace, no compile), else the loss jitted on first use."""
        jp = self.jp
        args = jp.array(y0), {k: jp.array(params[k]) for k in jp.params}
        with self.failures():
            if isinstance(self.timed, SplitGradient):
                loss, _, aux = self.timed.forward(*args)
            else:
                if self._loss is None:
                    self._loss = jp.jax.jit(self.loss_fn(None))
                loss, aux = self._loss(*args)
            self.check(aux)
        return float(loss)

    def device_handle(self):
        return self.jp.device
