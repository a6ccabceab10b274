"""Peak memory of each gradient mode against the number of steps, each in a fresh process.

A tanh MLP vector field (state 32, width 256, batch 512, float64) integrated with rk4
for 20, 100 and 400 fixed steps; forward + backward of a scalar loss. Peak memory is
the resident-set high-water mark of a fresh process during the solve, minus its
baseline after set-up and a two-step warm-up (or the CUDA allocator's peak with
--device cuda), measured as the runner measures it.

Expected shape: backprop grows about linearly with the number of steps, backsolve and
reversible (reversible Heun instead of rk4) stay flat, checkpoint, interpolated and
quadrature grow sub-linearly (about sqrt(N) states), symplectic keeps the N states (a
small slope) plus one evaluation's graph.

    python benchmarks/bench_memory_horizon.py [--steps 20 100 400] [--batch 512] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

MODES = ["odebench.backprop", "odebench.backsolve", "odebench.interpolated", "odebench.checkpoint",
         "odebench.quadrature", "odebench.symplectic", "odebench.reversible",
         "torchdiffeq.backprop", "torchdiffeq.adjoint"]  # fmt: skip


def child(mode: str, steps: int, batch: int, dim: int, width: int, device: str) -> dict:
    # As in the runner's workers: tensors of 64 KiB or more are mapped on their own, so
    # the resident set tracks live memory instead of what the C allocator keeps.
    import torch

    import odebench.runner._worker_init  # noqa: F401
    from odebench._memory import MemoryProbe

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dev = torch.device(device)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(dim, width), torch.nn.Tanh(), torch.nn.Linear(width, width), torch.nn.Tanh(),
                torch.nn.Linear(width, dim),
            )  # fmt: skip

        def forward(self, t, y):
            return self.net(y)

    field = Field().double().to(dev)
    y0 = torch.randn(batch, dim, dtype=torch.float64, device=dev)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, device=dev)
    library, gradient = mode.split(".")
    if library == "torchdiffeq":
        import torchdiffeq

        solve = torchdiffeq.odeint if gradient == "backprop" else torchdiffeq.odeint_adjoint

        def run(n):
            ys = solve(field, y0, t, method="rk4", options={"step_size": 1.0 / n})
            ys[-1].pow(2).mean().backward()
    else:
        from odebench.ode import odeint

        solver = "reversible_heun" if gradient == "reversible" else "rk4"

        def run(n):
            sol = odeint(field, y0, t, solver=solver, n_steps=n, gradient=gradient)
            sol.ys[-1].pow(2).mean().backward()

    run(2)  # one-time costs (lazy imports, BLAS buffers) out of the figure, as in the runner

    source = "cuda" if dev.type == "cuda" else "rss"
    start = time.perf_counter()
    with MemoryProbe(source, torch=torch, device=dev) as probe:
        run(steps)
    return {
        "mode": mode,
        "steps": steps,
        "peak_mb": probe.result.peak_bytes / 2**20,
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100, 400])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=MODES)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        out = child(args.child[0], int(args.child[1]), args.batch, args.dim, args.width, args.device)
        print(json.dumps(out))
        return 0
    print(f"tanh MLP {args.dim}-{args.width}-{args.width}-{args.dim}, batch {args.batch}, float64, rk4, "
          f"device {args.device}; each cell a fresh process; peak MB above the post-set-up baseline\n")  # fmt: skip
    table: dict[str, dict[int, dict]] = {}
    for mode in args.modes:
        for steps in args.steps:
            cmd = [sys.executable, __file__, "--child", mode, str(steps), "--batch", str(args.batch),
                   "--dim", str(args.dim), "--width", str(args.width), "--device", args.device]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                table.setdefault(mode, {})[steps] = {"peak_mb": math.nan, "seconds": math.nan}
                print(f"{mode} {steps}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            table.setdefault(mode, {})[steps] = json.loads(proc.stdout.strip().splitlines()[-1])
    cols = " ".join(f"{s:>10}" for s in args.steps)
    print(
        f"{'mode':24} {cols}   growth {args.steps[0]}->{args.steps[-1]} steps (x{args.steps[-1] / args.steps[0]:.0f})"
    )
    for mode, row in table.items():
        cells = " ".join(f"{row[s]['peak_mb']:10.1f}" for s in args.steps)
        first, last = row[args.steps[0]]["peak_mb"], row[args.steps[-1]]["peak_mb"]
        print(f"{mode:24} {cells}   x{last / first:.2f}")
    print("\nseconds per cell:")
    for mode, row in table.items():
        print(f"{mode:24} " + " ".join(f"{row[s]['seconds']:10.1f}" for s in args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
