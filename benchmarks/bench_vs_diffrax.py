"""The own gradient modes against jitted diffrax and torchdiffeq, side by side in one run.

Every method goes through the interface the runner times (``prepare`` once, then
``forward`` + ``backward`` per sample), on the same problem instance, tolerance (rtol =
atol), float64 and the CPU with one thread. Samples of all methods are interleaved,
round-robin with the order rotating, so that machine noise hits each alike. Compilation
(diffrax) happens in ``prepare`` and is printed apart, never in the samples.

Printed per problem and tolerance: the median wall time of one gradient, the NFE
(forward + backward, counted exactly), the cost per evaluation (time / NFE), the
gradient error against the problem's reference, and ratios:

- own backsolve / diffrax.backsolve and own checkpoint / diffrax.recursive_checkpoint
  (target: <= 1.0);
- own backsolve / torchdiffeq.adjoint (target: <= 0.3).

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


def measure(problem, tol: float, repeats: int) -> dict[str, dict]:
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
        rows[name] = {"setup": setup, "compile": prep.compile_time_s, "nfe": nfe, "times": [],
                      "err": _error(prep.outcome(state).grads, reference)}  # fmt: skip
        prepared[name] = prep
    names = list(prepared)
    for i in range(repeats):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            prep = prepared[name]
            start = time.perf_counter()
            prep.backward(prep.forward())
            prep.sync()
            rows[name]["times"].append(time.perf_counter() - start)
    for row in rows.values():
        row["time"] = statistics.median(row["times"])
    return rows


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
            rows = measure(problem, tol, args.repeats)
            print(f"{label}  rtol=atol={tol:g}")
            print(f"  {'method':30} {'ms':>8} {'NFE':>6} {'us/eval':>8} {'grad err':>9} {'compile s':>9}")
            for name, row in rows.items():
                per_eval = row["time"] / row["nfe"] * 1e6 if row["nfe"] else float("nan")
                compile_s = f"{row['compile']:.1f}" if row["compile"] is not None else "-"
                print(f"  {name:30} {row['time'] * 1e3:8.2f} {row['nfe']:6d} {per_eval:8.1f} "
                      f"{row['err']:9.1e} {compile_s:>9}")  # fmt: skip
            for own, peer, target in PAIRS:
                ratio = rows[own]["time"] / rows[peer]["time"]
                met = ratio <= target
                verdicts.append(met)
                print(f"  {own} / {peer}: x{ratio:.2f} (target <= {target:g}: {'met' if met else 'NOT met'})")
            print()
    print(f"targets met in {sum(verdicts)} of {len(verdicts)} comparisons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
