"""odebench's own backsolve adjoint against torchdiffeq's odeint_adjoint, side by side.

Same problem, solver (dopri5), tolerances (rtol = atol), dtype (float64), device (CPU),
one thread; the two are timed in alternation so machine noise hits both alike. Prints
wall time of forward+backward (median), forward and backward NFE, gradient error
against a reference, and the ratios own / torchdiffeq.

Target: own wall time <= 0.5x torchdiffeq's, at no more NFE and no worse gradient error.

    python benchmarks/bench_adjoint_vs_torchdiffeq.py [--repeats 21] [--seminorm]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from odebench.ode import odeint


class Linear(torch.nn.Module):
    """y' = A y, 4-dim; the reference gradient is exact (matrix exponential)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = torch.nn.Parameter(torch.randn(4, 4, generator=g, dtype=torch.float64) * 0.5 - 0.5 * torch.eye(4))
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return self.A @ y

    def reference(self, y0, t):
        y0 = y0.detach().requires_grad_(True)
        yT = torch.linalg.matrix_exp(self.A * float(t[-1])) @ y0
        return torch.autograd.grad(loss(yT), [y0, self.A])


class MLP(torch.nn.Module):
    """A 2-64-64-2 tanh MLP vector field (4,482 parameters), weights scaled so the
    dynamics are non-trivial over the horizon."""

    def __init__(self, scale=2.0):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)
        ).double()
        with torch.no_grad():
            for p in self.net.parameters():
                p.mul_(scale)
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return self.net(y)

    def reference(self, y0, t):
        # Exact gradient of a very accurate discrete solve (dopri8, 1e-13).
        y0 = y0.detach().requires_grad_(True)
        sol = odeint(self, y0, t, solver="dopri8", rtol=1e-13, atol=1e-13, gradient="checkpoint")
        return torch.autograd.grad(loss(sol.ys[-1]), [y0, *self.parameters()])


def loss(y_final):
    return (y_final**2).sum()


def flat(grads):
    return torch.cat([g.reshape(-1) for g in grads])


def run_own(field, y0, t, tol, seminorm):
    field.calls = 0
    sol = odeint(field, y0, t, solver="dopri5", rtol=tol, atol=tol, gradient="backsolve", seminorm=seminorm)
    nfe_f = field.calls
    grads = torch.autograd.grad(loss(sol.ys[-1]), [y0, *field.parameters()])
    return grads, nfe_f, field.calls - nfe_f


def run_torchdiffeq(field, y0, t, tol, seminorm):
    import torchdiffeq

    field.calls = 0
    options = {"norm": "seminorm"} if seminorm else None
    ys = torchdiffeq.odeint_adjoint(field, y0, t, method="dopri5", rtol=tol, atol=tol, adjoint_options=options)
    nfe_f = field.calls
    grads = torch.autograd.grad(loss(ys[-1]), [y0, *field.parameters()])
    return grads, nfe_f, field.calls - nfe_f


def measure(field, y0, t, tol, seminorm, repeats):
    runners = {"own": run_own, "torchdiffeq": run_torchdiffeq}
    ref = flat(field.reference(y0, t))
    out = {}
    for name, fn in runners.items():
        fn(field, y0, t, tol, seminorm)  # warm-up
        grads, nfe_f, nfe_b = fn(field, y0, t, tol, seminorm)
        err = float((flat(grads) - ref).norm() / ref.norm())
        out[name] = {"nfe_f": nfe_f, "nfe_b": nfe_b, "err": err, "times": []}
    for i in range(repeats):
        order = list(runners) if i % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            runners[name](field, y0, t, tol, seminorm)
            out[name]["times"].append(time.perf_counter() - start)
    for name in out:
        out[name]["time"] = statistics.median(out[name]["times"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seminorm", action="store_true", help="seminorm in both libraries")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[1e-3, 1e-6, 1e-9])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import torchdiffeq

    print(f"torch {torch.__version__}, torchdiffeq {getattr(torchdiffeq, '__version__', '?')}, float64, CPU, 1 thread, "
          f"dopri5, seminorm={args.seminorm}, {args.repeats} alternating repeats (median)\n")  # fmt: skip
    header = (
        f"{'problem':8} {'tol':>7} | {'own ms':>8} {'td ms':>8} {'ratio':>6} | {'own nfe f+b':>12} {'td nfe f+b':>12}"
        f" | {'own err':>9} {'td err':>9} | verdict"
    )
    print(header)
    print("-" * len(header))
    problems = {
        "linear4": (Linear(), torch.tensor([1.0, -0.5, 0.3, 0.8], dtype=torch.float64), torch.tensor([0.0, 2.0])),
        "mlp": (
            MLP(),
            torch.tensor([[0.5, -1.0], [1.0, 0.3], [-0.2, 0.8]], dtype=torch.float64),
            torch.tensor([0.0, 5.0]),
        ),
    }
    all_ok = True
    for pname, (field, y0, t) in problems.items():
        y0 = y0.clone().requires_grad_(True)
        for tol in args.tolerances:
            r = measure(field, y0, t, tol, args.seminorm, args.repeats)
            own, td = r["own"], r["torchdiffeq"]
            ratio = own["time"] / td["time"]
            nfe_own, nfe_td = own["nfe_f"] + own["nfe_b"], td["nfe_f"] + td["nfe_b"]
            ok = ratio <= 0.5 and nfe_own <= nfe_td and own["err"] <= 1.5 * td["err"] + 1e-14
            all_ok &= ok
            print(
                f"{pname:8} {tol:7.0e} | {own['time'] * 1e3:8.2f} {td['time'] * 1e3:8.2f} {ratio:6.2f} | "
                f"{own['nfe_f']:>5}+{own['nfe_b']:<6} {td['nfe_f']:>5}+{td['nfe_b']:<6} | "
                f"{own['err']:9.2e} {td['err']:9.2e} | {'ok' if ok else 'MISSED'}"
            )
    print(
        f"\ntarget (ratio <= 0.5, NFE <= torchdiffeq's, error <= 1.5x torchdiffeq's): {'met' if all_ok else 'not met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
