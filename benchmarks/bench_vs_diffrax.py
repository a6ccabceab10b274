"""The own gradient modes against jitted diffrax and torchdiffeq, side by side in one run.

Every method goes through the interface the runner times (``prepare`` once, then
``forward`` + ``backward`` per sample), on the same problem instance, tolerance (rtol =
atol), float64 and the CPU with one thread. Samples of all methods are interleaved,
round-robin with the order rotating, so that machine noise hits each alike. Compilation
(diffrax) happens in ``prepare`` and is printed apart, never in the samples.

Printed per problem and tolerance: the median wall time of one gradient and the median
CPU time of the process (all threads; steadier than wall time on a shared machine), the
NFE (forward + backward, counted exactly), the cost per evaluation (wall time / NFE), the
gradient error against the problem's reference, and ratios (on wall time; CPU time in
brackets):

- own backsolve / diffrax.backsolve and own checkpoint / diffrax.recursive_checkpoint
  (target: <= 1.0);
- own backsolve / torchdiffeq.adjoint (target: <= 0.3).

For the own modes, ``bare`` is what their evaluations alone would cost: NFE forward
times one bare evaluation of the field without a graph, plus NFE backward times one bare
vector-Jacobian product (the field's forward pass with a graph and one call of the
autograd engine), both timed in the same rotation; ``solver`` is the rest, the solver's
own per-evaluation cost (steps, error control, adjoint bookkeeping).

    python benchmarks/bench_vs_diffrax.py [--repeats 15] [--tolerances 1e-3 1e-6 1e-9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

PROBLEMS = [("neural_mlp", {"width": 64}), ("neural_mlp", {"width": 256}), ("linear", {})]
METHODS = [
    ("odebench.backsolve", {}),
    ("odebench.interpolated", {}),
    ("odebench.checkpoint", {}),
    ("diffrax.backsolve", {}),
    ("diffrax.recursive_checkpoint", {}),
    ("torchdiffeq.adjoint", {}),
]
PAIRS = [  # (own, peer, target ratio)
    ("odebench.backsolve", "diffrax.backsolve", 1.0),
    ("odebench.checkpoint", "diffrax.recursive_checkpoint", 1.0),
    ("odebench.backsolve", "torchdiffeq.adjoint", 0.3),
]


def _error(grads: dict, reference) -> float:
    flat = np.concatenate([np.ravel(grads[k]) for k in reference.grads])
    return float(np.linalg.norm(flat - reference.flat) / np.linalg.norm(reference.flat))


#: bare evaluations per timed sample of the floor (one call is too short to time alone)
BARE_CALLS = 20


class _Bare:
    """``BARE_CALLS`` bare evaluations of the problem's torch field per sample: without a
    graph (``vjp=False``), or each as a vector-Jacobian product with respect to the state
    and every parameter (the field's forward pass with a graph and one engine call)."""

    def __init__(self, problem, spec, vjp: bool):
        import torch

        from odebench.backends._torch import TorchProblem

        self.torch = torch
        tp = TorchProblem(problem, spec)
        self.field = tp.field(tp.params)
        self.params = tuple(tp.params.values())
        self.y = tp.y0.detach().clone()
        self.cotangent = torch.ones_like(self.y)
        self.vjp = vjp

    def run(self) -> None:
        torch, field, y = self.torch, self.field, self.y
        if not self.vjp:
            with torch.no_grad():
                for _ in range(BARE_CALLS):
                    field(0.0, y)
            return
        from odebench.ode._adjoint import _vjp_engine  # the call the own adjoints make

        for _ in range(BARE_CALLS):
            with torch.enable_grad():
                yv = y.detach().requires_grad_(True)
                _vjp_engine((field(0.0, yv),), (self.cotangent,), (yv, *self.params))


def measure(problem, tol: float, repeats: int) -> tuple[dict[str, dict], dict[str, float]]:
    from odebench.backends import make_method
    from odebench.backends._base import CaseSpec
    from odebench.problems import reference_gradient

    reference = reference_gradient(problem)
    spec = CaseSpec(tol, tol, "float64", "cpu")
    prepared, rows = {}, {}
    for name, params in METHODS:
        method = make_method(name, params)
        start = time.perf_counter()
        prep = method.prepare(problem, spec)
        setup = time.perf_counter() - start
        state = prep.backward(prep.forward())  # warm-up, and the gradient that is checked
        prep.sync()
        counts = prep.count()
        nfe = (counts.nfe_forward or 0) + (counts.nfe_backward or 0)
        rows[name] = {"setup": setup, "compile": prep.compile_time_s, "nfe": nfe, "times": [], "cpu_times": [],
                      "nfe_split": (counts.nfe_forward or 0, counts.nfe_backward or 0),
                      "err": _error(prep.outcome(state).grads, reference)}  # fmt: skip
        prepared[name] = prep
    bare = {"eval": _Bare(problem, spec, vjp=False), "vjp": _Bare(problem, spec, vjp=True)}
    bare_times: dict[str, list[float]] = {k: [] for k in bare}
    tasks = [*prepared, *(f"bare.{k}" for k in bare)]
    for i in range(repeats):
        k = i % len(tasks)
        for name in tasks[k:] + tasks[:k]:
            start, cpu_start = time.perf_counter(), time.process_time()
            if name.startswith("bare."):
                bare[name[5:]].run()
                bare_times[name[5:]].append((time.perf_counter() - start) / BARE_CALLS)
                continue
            prep = prepared[name]
            prep.backward(prep.forward())
            prep.sync()
            rows[name]["times"].append(time.perf_counter() - start)
            rows[name]["cpu_times"].append(time.process_time() - cpu_start)
    for row in rows.values():
        row["time"] = statistics.median(row["times"])
        row["cpu"] = statistics.median(row["cpu_times"])
    return rows, {k: statistics.median(v) for k, v in bare_times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[1e-3, 1e-6, 1e-9])
    args = parser.parse_args(argv)

    import jax
    import torch

    torch.set_num_threads(1)
    jax.config.update("jax_enable_x64", True)
    from odebench.problems import get_problem

    print(f"torch {torch.__version__}, jax {jax.__version__}, float64, CPU, 1 torch thread, "
          f"{args.repeats} interleaved samples per method (median)\n")  # fmt: skip
    verdicts = []
    for pname, pparams in PROBLEMS:
        problem = get_problem(pname, pparams)
        label = pname + "".join(f"({k}={v})" for k, v in pparams.items())
        for tol in args.tolerances:
            rows, bare = measure(problem, tol, args.repeats)
            print(f"{label}  rtol=atol={tol:g}")
            print(f"  {'method':30} {'ms':>8} {'cpu ms':>8} {'NFE':>6} {'us/eval':>8} {'grad err':>9} "
                  f"{'compile s':>9}  {'bare us/eval':>12} {'solver us/eval':>14}")  # fmt: skip
            for name, row in rows.items():
                per_eval = row["time"] / row["nfe"] * 1e6 if row["nfe"] else float("nan")
                compile_s = f"{row['compile']:.1f}" if row["compile"] is not None else "-"
                split = ""
                if name.startswith("odebench.") and row["nfe"]:
                    nf, nb = row["nfe_split"]
                    floor = (nf * bare["eval"] + nb * bare["vjp"]) / row["nfe"] * 1e6
                    split = f"  {floor:12.1f} {per_eval - floor:14.1f}"
                print(f"  {name:30} {row['time'] * 1e3:8.2f} {row['cpu'] * 1e3:8.2f} {row['nfe']:6d} {per_eval:8.1f} "
                      f"{row['err']:9.1e} {compile_s:>9}{split}")  # fmt: skip
            print(f"  bare field evaluation {bare['eval'] * 1e6:.1f} us, bare VJP (forward with graph + engine) "
                  f"{bare['vjp'] * 1e6:.1f} us")  # fmt: skip
            for own, peer, target in PAIRS:
                ratio = rows[own]["time"] / rows[peer]["time"]
                cpu_ratio = rows[own]["cpu"] / rows[peer]["cpu"]
                met = ratio <= target
                verdicts.append(met)
                print(f"  {own} / {peer}: x{ratio:.2f} [cpu x{cpu_ratio:.2f}] "
                      f"(target <= {target:g}: {'met' if met else 'NOT met'})")  # fmt: skip
            print()
    print(f"targets met in {sum(verdicts)} of {len(verdicts)} comparisons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
