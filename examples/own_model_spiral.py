"""Benchmark your own neural ODE: torchdiffeq's spiral demo model under every method.

The model and data are those of torchdiffeq's examples/ode_demo.py (Chen et al. 2018):
the data follow y' = y**3 A from (2, 0); the model is y' = MLP(y**3), a tanh network
with forward(t, y). Sizes are small (50 save times on [0, 5], width 50) so that the run
takes about a minute; the JAX methods show as unavailable (a torch-only problem).

    python examples/own_model_spiral.py [REPORT_DIR]
"""

import sys

import torch
from torchdiffeq import odeint

import odebench
from odebench.report import build_report

true_y0 = torch.tensor([[2.0, 0.0]])
t = torch.linspace(0.0, 5.0, 50)
true_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
with torch.no_grad():
    true_y = odeint(lambda t, y: torch.mm(y**3, true_A), true_y0, t, method="dopri5")


class ODEFunc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2))
        for m in self.net.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, mean=0, std=0.1)
                torch.nn.init.constant_(m.bias, val=0)

    def forward(self, t, y):
        return self.net(y**3)


torch.manual_seed(0)

# The core: the model as a problem, every method, one table.
problem = odebench.Problem.from_torch(ODEFunc(), true_y0, t, lambda ys: ((ys - true_y) ** 2).mean(), name="spiral_demo")
frame = odebench.benchmark(problem, tolerances=[1e-6], repeats=1, warmup=0, progress=True)
print(frame[["method", "status", "grad_rel_err", "time_total_s", "nfe_forward", "nfe_backward"]].to_string())

report = build_report(frame.attrs["path"], sys.argv[1] if len(sys.argv) > 1 else "reports/own-model-spiral")
print(f"report: {report}/index.html")
