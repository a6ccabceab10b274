"""Synthetic records for testing the layers downstream of the runner without numerics.

``synthetic_records`` builds a realistic results table (problems x methods x
tolerances, a horizon sweep, failures) with deterministic, plausible metrics, so
that reports, comparisons and the gate can be tested in milliseconds.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence

from odebench._records import Record

DEFAULT_METHODS: tuple[tuple[str, dict], ...] = (
    ("odebench.backprop", {"solver": "dopri5"}),
    ("odebench.backsolve", {"solver": "dopri5", "seminorm": False}),
    ("odebench.backsolve", {"solver": "dopri5", "seminorm": True}),
    ("odebench.interpolated", {"solver": "dopri5"}),
    ("odebench.checkpoint", {"solver": "dopri5"}),
    ("torchdiffeq.adjoint", {"solver": "dopri5"}),
)

DEFAULT_PROBLEMS: tuple[tuple[str, dict], ...] = (
    ("linear", {"dim": 4}),
    ("stiff_decay", {"k": 40.0}),
    ("neural_mlp", {"width": 64, "t_end": 1.0}),
    ("neural_mlp", {"width": 64, "t_end": 4.0}),
)


def _jitter(*key: object) -> float:
    """A deterministic number in [0, 1) from a key."""
    return (zlib.crc32(repr(key).encode()) % 10_000) / 10_000.0


def synthetic_records(
    problems: Sequence[tuple[str, dict]] = DEFAULT_PROBLEMS,
    methods: Sequence[tuple[str, dict]] = DEFAULT_METHODS,
    tolerances: Sequence[float] = (1e-3, 1e-6, 1e-9),
    *,
    run_id: str = "synthetic-run",
    seed: int = 0,
    failures: bool = True,
    time_scale: float = 1.0,
) -> list[Record]:
    """Plausible records; backsolve is made inaccurate on ``stiff_decay`` as it really is.

    With ``failures`` one case times out and one method is unavailable on one problem.
    ``time_scale`` multiplies every timing (to simulate a slower machine).
    """
    records: list[Record] = []
    for p_name, p_params in problems:
        t_end = float(p_params.get("t_end", 1.0))
        n_params = 4 if p_name != "neural_mlp" else 4 * int(p_params.get("width", 64)) ** 2 // 16
        n_state = int(p_params.get("dim", 2))
        for m_name, m_params in methods:
            backend = m_name.split(".")[0]
            for rtol in tolerances:
                key = (p_name, json.dumps(p_params, sort_keys=True), m_name, json.dumps(m_params, sort_keys=True), rtol)
                j = _jitter(*key)
                logtol = -math.log10(rtol)
                nfe_f = int(round(20 * t_end * (1 + logtol) ** 1.3 * (1 + 0.05 * j)))
                adjoint = m_name.endswith(("backsolve", "adjoint", "interpolated"))
                nfe_b = 0 if m_name.endswith("backprop") else int(nfe_f * (2.2 if adjoint else 1.0))
                if m_params.get("seminorm"):
                    nfe_b = int(nfe_b * 0.6)
                err = rtol * (3 + 2 * j)
                if p_name == "stiff_decay" and m_name.endswith(("backsolve", "adjoint")):
                    err = 5e5 * (1 + j)  # the known failure of backsolve
                consistency = None if m_name.endswith("backprop") else err * 0.1
                t_total = time_scale * (nfe_f + nfe_b) * 2e-5 * (1 + 0.1 * j)
                samples = [t_total * (1 + 0.02 * ((i * 7919 + seed) % 5 - 2)) for i in range(5)]
                memory = int(1e6 * (1 + (t_end * 10 if m_name.endswith("backprop") else 0.5)))
                status, error = "ok", ""
                if failures and p_name == "neural_mlp" and m_name == "torchdiffeq.adjoint" and rtol == min(tolerances):
                    status, error = "timeout", "exceeded timeout_s=300"
                if failures and p_name == "stiff_decay" and m_name == "odebench.checkpoint" and rtol == max(tolerances):
                    status, error = "unavailable", "synthetic: solver not supported"
                ok = status == "ok"
                records.append(
                    Record(
                        run_id=run_id,
                        case_id=f"{zlib.crc32(repr(key).encode()):08x}",
                        suite="synthetic",
                        problem=p_name,
                        problem_params=json.dumps(p_params, sort_keys=True),
                        method=m_name,
                        method_params=json.dumps(m_params, sort_keys=True),
                        backend=backend,
                        solver=str(m_params.get("solver", "")),
                        rtol=rtol,
                        atol=rtol,
                        dtype="float64",
                        device="cpu",
                        seed=seed,
                        status=status,
                        error=error,
                        n_state=n_state,
                        n_params=n_params,
                        n_save_times=2,
                        loss=1.0 + j if ok else None,
                        grad_rel_err=err if ok else None,
                        grad_max_abs_err=err * 2 if ok else None,
                        grad_cosine=1 - err**2 if ok and err < 1 else (0.2 if ok else None),
                        reference="analytic" if p_name in ("linear", "stiff_decay") else "tight",
                        reference_err=0.0 if p_name in ("linear", "stiff_decay") else 1e-12,
                        consistency_err=consistency if ok else None,
                        consistency_method=f"{backend}.backprop" if consistency is not None else "",
                        fd_err=1e-7 if ok else None,
                        nfe_forward=nfe_f if ok else None,
                        nfe_backward=nfe_b if ok else None,
                        steps_forward=nfe_f // 6 if ok else None,
                        steps_backward=nfe_b // 6 if ok else None,
                        rejected_forward=1 if ok else None,
                        rejected_backward=2 if ok else None,
                        time_forward_s=t_total * 0.3 if ok else None,
                        time_backward_s=t_total * 0.7 if ok else None,
                        time_total_s=t_total if ok else None,
                        time_total_iqr_s=t_total * 0.02 if ok else None,
                        time_samples_s=samples if ok else [],
                        compile_time_s=0.0 if ok else None,
                        repeats=5,
                        peak_memory_bytes=memory if ok else None,
                        memory_source="rss" if ok else "",
                        case_wall_s=t_total * 10,
                        finished_at="2026-01-01T00:00:00Z",
                    )
                )
    return records


def synthetic_frame(**kwargs):
    """:func:`synthetic_records` as a typed DataFrame."""
    from odebench._results import records_to_frame

    return records_to_frame(synthetic_records(**kwargs))


def write_synthetic_run(folder, **kwargs):
    """Write a synthetic results folder (records.parquet and run.json); returns its path."""
    from pathlib import Path

    from odebench._results import RUN_INFO, write_parquet_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = synthetic_records(**kwargs)
    write_parquet_atomic(records, folder / "records.parquet")
    info = {
        "suite": {"name": "synthetic"},
        "suite_hash": "0" * 16,
        "odebench_version": "0.1.0",
        "git": {"commit": "0" * 40, "dirty": False},
        "python": "3.11",
        "packages": {"torch": "2.13.0"},
        "cpu": {"model": "synthetic CPU", "cores": 2},
        "gpu": None,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
    }
    (folder / RUN_INFO).write_text(json.dumps(info, indent=2))
    return folder
