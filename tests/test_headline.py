"""The report's reproduced results: sections built from synthetic records with planted facts."""

from __future__ import annotations

import json
import re

import pytest
from synthetic_runs import synthetic_frame

from odebench._records import Record
from odebench._results import records_to_frame
from odebench.report import write_report
from odebench.report._data import prepare
from odebench.report._headline import EXACT_AGREEMENT, find_reproductions

NEURAL = {"dim": 2, "width": 64, "batch": 64}
WIDE = {"dim": 2, "width": 256, "batch": 64}


def rec(problem, pparams, method, mparams=None, rtol=1e-6, atol=1e-6, status="ok", **metrics) -> Record:
    mparams = {"solver": "dopri5", **(mparams or {})}
    ok = status == "ok"
    values = {
        "grad_rel_err": 1e-7,
        "time_total_s": 0.01,
        "peak_memory_bytes": 1e6,
        "nfe_forward": 100,
        "nfe_backward": 100,
        "n_params": 4,
        "n_state": 2,
        **metrics,
    }
    sizes = {k: values.pop(k) for k in ("n_params", "n_state")}
    return Record(
        run_id="run",
        case_id=f"{problem}-{method}-{json.dumps(mparams, sort_keys=True)}-{rtol}-{atol}",
        suite="synthetic",
        problem=problem,
        problem_params=json.dumps(pparams, sort_keys=True),
        method=method,
        method_params=json.dumps(mparams, sort_keys=True),
        backend=method.split(".")[0],
        solver=mparams["solver"],
        rtol=rtol,
        atol=atol,
        dtype="float64",
        device="cpu",
        seed=0,
        status=status,
        error="" if ok else f"synthetic {status}",
        repeats=3,
        consistency_method="odebench.backprop" if method != "odebench.backprop" else "",
        **sizes,
        **{k: (v if ok else None) for k, v in values.items()},
    )


def sections(records: list[Record]) -> dict:
    return {r.key: r for r in find_reproductions(prepare(records_to_frame(records)))}


# --- 1. forward against reverse mode ----------------------------------------------------------

SIZES = [("lotka_volterra", {}, 4), ("linear", {"dim": 8}, 64), ("linear", {"dim": 16}, 256), ("neural_mlp", NEURAL, 4482), ("neural_mlp", WIDE, 67074)]  # fmt: skip


def crossover_records(forward_cost: float = 1e-4, reverse_time: float = 0.01) -> list[Record]:
    """Forward costs ``forward_cost`` x n_params seconds, reverse a constant; forward refused above 1100."""
    out = []
    for problem, pparams, n in SIZES:
        for method, scale in (("odebench.forward", 3.0), ("diffrax.forward", 1.0)):
            if n > 1100:
                out.append(rec(problem, pparams, method, status="failed", n_params=n))
            else:
                out.append(rec(problem, pparams, method, time_total_s=forward_cost * n * scale, n_params=n))
        for method, scale in (("odebench.backprop", 2.0), ("diffrax.recursive_checkpoint", 1.0)):
            out.append(rec(problem, pparams, method, time_total_s=reverse_time * scale, n_params=n))
        # A very fast but wrong reverse gradient never counts as the fastest.
        out.append(rec(problem, pparams, "odebench.backsolve", time_total_s=1e-7, grad_rel_err=10.0, n_params=n))
    return out


def test_crossover_is_the_first_size_where_reverse_wins():
    found = sections(crossover_records())["forward_vs_reverse"]
    # forward 1e-4 * n against reverse 0.01: forward wins at 4 and 64, reverse from 256.
    assert found.facts["crossover"] == 256
    assert found.facts["reverse_method"] == "diffrax.recursive_checkpoint"
    assert found.facts["forward_method"] == "diffrax.forward"
    assert found.facts["forward_time"] == pytest.approx(1e-4 * 256)
    assert found.facts["reverse_time"] == pytest.approx(0.01)
    assert "Crossover at n_params = 256" in found.conclusion
    assert "25.6 ms" in found.conclusion and "10 ms" in found.conclusion
    assert "up to n_params = 64" in found.conclusion
    # Above max_inputs forward did not run: said so, and the largest reverse time is given.
    assert "n_params = 67074" in found.conclusion and "failed" in found.conclusion
    table = found.table
    assert list(table["n_params"]) == ["4", "64", "256", "4482", "67074"]
    assert list(table["faster"]) == ["forward", "forward", "reverse", "—", "—"]
    assert table.loc["neural_mlp(batch=64, dim=2, width=64)", "fastest forward"] == "failed"
    assert "odebench.backsolve" not in set(table["fastest reverse"])


def test_no_crossover_in_range_is_said_plainly():
    found = sections(crossover_records(forward_cost=1e-7))["forward_vs_reverse"]
    assert found.facts["crossover"] is None
    assert found.conclusion.startswith("No crossover in the range measured")
    assert "up to n_params = 256" in found.conclusion


def test_crossover_below_the_range():
    found = sections(crossover_records(forward_cost=1.0))["forward_vs_reverse"]
    assert found.facts["crossover"] == 4 and found.facts["below_range"]
    assert "below the range measured" in found.conclusion


def test_forward_that_wins_again_is_named():
    records = [r for r in crossover_records() if not (r.n_params == 64 and r.method == "diffrax.forward")]
    records.append(rec("linear", {"dim": 8}, "diffrax.forward", time_total_s=0.5, n_params=64))
    records = [r for r in records if not (r.n_params == 256 and r.method.endswith("forward"))]
    records.append(rec("linear", {"dim": 16}, "diffrax.forward", time_total_s=1e-3, n_params=256))
    found = sections(records)["forward_vs_reverse"]
    assert found.facts["crossover"] == 64
    assert found.facts["forward_again"] == [256]


# --- 2. the symplectic adjoint ---------------------------------------------------------------


def symplectic_records(agreement: float = 3e-15) -> list[Record]:
    out = []
    for n in (20, 100, 400):
        fixed = {"solver": "rk4", "n_steps": n}
        out += [
            rec("neural_mlp", NEURAL, "odebench.backprop", fixed, peak_memory_bytes=1e6 * n, time_total_s=1e-3 * n),
            rec("neural_mlp", NEURAL, "odebench.symplectic", fixed, peak_memory_bytes=1e5 + 1e3 * n,
                time_total_s=2e-3 * n, consistency_err=agreement),
            rec("neural_mlp", NEURAL, "odebench.checkpoint", fixed, peak_memory_bytes=2e5, time_total_s=1.5e-3 * n,
                consistency_err=1e-15),
            rec("neural_mlp", NEURAL, "odebench.backsolve", fixed, peak_memory_bytes=1e5, time_total_s=1.2e-3 * n,
                consistency_err=1e-4),
            rec("neural_mlp", NEURAL, "odebench.reversible", {"solver": "reversible_heun", "n_steps": n},
                status="diverged" if n == 20 else "ok", peak_memory_bytes=5e4, time_total_s=3e-3 * n,
                consistency_err=1e-14),
        ]  # fmt: skip
    # An adaptive case of the same methods stays out of the fixed-step section.
    out.append(rec("neural_mlp", NEURAL, "odebench.backprop", time_total_s=99.0))
    return out


def test_symplectic_memory_and_time_against_backprop():
    found = sections(symplectic_records())["symplectic"]
    assert found.facts["n_steps"] == 400
    assert found.facts["memory_ratio"] == pytest.approx((1e5 + 4e5) / 4e8)
    assert found.facts["time_ratio"] == pytest.approx(2.0)
    assert found.facts["agreement"] == pytest.approx(3e-15)
    assert "by 3.0e-15" in found.conclusion and "within" in found.conclusion
    assert "×0.00125 its peak memory and ×2 its time" in found.conclusion
    assert "`odebench.backprop`'s by ×20" in found.conclusion
    table = found.table
    row = table.loc["odebench.symplectic(solver=rk4)"]
    assert row["memory / backprop"] == "×0.00125" and row["time / backprop"] == "×2"
    assert row["difference from backprop"] == "3.0e-15"
    assert table.loc["odebench.backprop(solver=rk4)", "difference from backprop"] == "—"
    assert table.loc["odebench.reversible(solver=reversible_heun)", "time / backprop"] == "×3"
    assert len(table) == 5


def test_symplectic_disagreement_is_flagged():
    found = sections(symplectic_records(agreement=1e-9))["symplectic"]
    assert found.facts["agreement"] > EXACT_AGREEMENT
    assert "outside" in found.conclusion


# --- 3. seminorms ------------------------------------------------------------------------------

# The hand-measured numbers: at width 64 and atol 1e-8, 38 -> 26 backward NFE; nothing at width 256.
SEMINORM = {
    (64, 1e-8): (38, 26),
    (64, 1e-6): (30, 30),
    (256, 1e-8): (40, 40),
    (256, 1e-6): (32, 31),
}


def seminorm_records() -> list[Record]:
    out = []
    for (width, atol), nfe in SEMINORM.items():
        pparams = {**NEURAL, "width": width}
        for method in ("odebench.backsolve", "torchdiffeq.adjoint"):
            for flag, backward in zip((False, True), nfe, strict=True):
                out.append(rec("neural_mlp", pparams, method, {"seminorm": flag}, atol=atol, nfe_backward=backward))
    # An unstable backsolve: its NFE says nothing about seminorms and is left out.
    for flag in (False, True):
        out.append(rec("stiff_decay", {"k": 100.0}, "odebench.backsolve", {"seminorm": flag}, grad_rel_err=1e10,
                       nfe_backward=500 if flag else 1000))  # fmt: skip
    out.append(rec("stiff_decay", {"k": 100.0}, "odebench.interpolated", grad_rel_err=1e-9))
    return out


def test_seminorm_table_and_conclusion():
    found = sections(seminorm_records())["seminorm"]
    table = found.table
    # A row per problem and tolerance (the unstable stiff_decay pair left out), a column per method.
    assert len(table) == 4 and "stiff_decay(k=100)" not in table.index
    backsolve, adjoint = (
        "odebench.backsolve: backward NFE without → with",
        "torchdiffeq.adjoint: backward NFE without → with",
    )
    assert list(table.columns) == ["tolerance", backsolve, adjoint]
    w64 = table.loc["neural_mlp(batch=64, dim=2, width=64)"].set_index("tolerance")
    assert w64.loc["rtol=1e-06, atol=1e-08", backsolve] == "38 → 26 (31.6%)"
    assert w64.loc["rtol=1e-06, atol=1e-08", adjoint] == "38 → 26 (31.6%)"
    assert w64.loc["rtol=atol=1e-06", backsolve] == "30 → 30 (0.0%)"
    w256 = table.loc["neural_mlp(batch=64, dim=2, width=256)"].set_index("tolerance")
    assert w256.loc["rtol=atol=1e-06", adjoint] == "32 → 31 (3.1%)"
    assert found.facts["saves"] == 2
    text = found.conclusion
    assert text.startswith(
        "The seminorm saves 31.6% of the backward NFE on `neural_mlp(batch=64, dim=2, width=64)` at rtol=1e-06, atol=1e-08."
    )
    assert "wherever atol ≥ rtol" in text
    assert "on `neural_mlp(batch=64, dim=2, width=256)` at every tolerance" in text
    assert "1 pair(s) left out" in found.note


def test_seminorm_that_costs_steps_is_said():
    records = seminorm_records()
    for flag, backward in ((False, 68), (True, 74)):
        records.append(
            rec("linear", {"dim": 8}, "torchdiffeq.adjoint", {"seminorm": flag}, atol=1e-8, nfe_backward=backward)
        )
    found = sections(records)["seminorm"]
    assert (
        "adds backward NFE in 1 case(s), at worst 8.8% more (`torchdiffeq.adjoint` on `linear(dim=8)` at rtol=1e-06, atol=1e-08)"
        in found.conclusion
    )
    assert found.table.loc["linear(dim=8)", "torchdiffeq.adjoint: backward NFE without → with"] == "68 → 74 (-8.8%)"


def test_seminorm_without_any_saving():
    records = [r for r in seminorm_records() if r.problem == "neural_mlp" and 'width": 256' in r.problem_params]
    found = sections(records)["seminorm"]
    assert found.facts["saves"] == 0
    assert found.conclusion.startswith("No saving of 5% or more anywhere: the largest is 3.1%")


# --- 4. backsolve's instability ------------------------------------------------------------------


def stability_records() -> list[Record]:
    out = []
    problems = [("stiff_decay", {"k": 10.0}), ("stiff_decay", {"k": 100.0}), ("lorenz", {})]
    for problem, pparams in problems:
        broken = problem == "lorenz" or pparams.get("k") == 100.0
        out += [
            rec(problem, pparams, "odebench.backsolve", grad_rel_err=3e31 if broken else 1e-7),
            rec(problem, pparams, "diffrax.backsolve", status="diverged" if broken else "ok", grad_rel_err=2e-7),
            rec(problem, pparams, "odebench.interpolated", grad_rel_err=1e-9),
            rec(problem, pparams, "odebench.checkpoint", grad_rel_err=1e-10),
            rec(problem, pparams, "odebench.quadrature", grad_rel_err=5e-8),
        ]
        for n in (100, 400):
            status = "diverged" if pparams.get("k") == 100.0 and n == 400 else "ok"
            out.append(rec(problem, pparams, "odebench.reversible", {"solver": "reversible_heun", "n_steps": n},
                           status=status, grad_rel_err=1e-3 if n == 100 else 1e-5))  # fmt: skip
    # A problem where backsolve is fine is no part of the section.
    out.append(rec("linear", {"dim": 4}, "odebench.backsolve", grad_rel_err=1e-7))
    out.append(rec("linear", {"dim": 4}, "odebench.checkpoint", grad_rel_err=1e-7))
    return out


def test_stability_table_says_which_methods_stay_right():
    found = sections(stability_records())["stability"]
    table = found.table  # the solver joins the labels: it differs between methods (reversible_heun)
    assert list(table.columns) == ["lorenz", "stiff_decay(k=10)", "stiff_decay(k=100)", "right on"]
    assert table.loc["odebench.backsolve(solver=dopri5)", "stiff_decay(k=100)"] == "3.0e+31 ✗"
    assert table.loc["odebench.backsolve(solver=dopri5)", "stiff_decay(k=10)"] == "1.0e-07 ✓"
    assert table.loc["diffrax.backsolve(solver=dopri5)", "lorenz"] == "diverged ✗"
    assert table.loc["odebench.interpolated(solver=dopri5)", "right on"] == "3/3"
    # The reversible solver appears at its largest step count only.
    assert table.loc["odebench.reversible(n_steps=400, solver=reversible_heun)", "stiff_decay(k=100)"] == "diverged ✗"
    assert not any("n_steps=100" in s for s in table.index)
    facts = found.facts
    assert set(facts["always_right"]) == {
        "odebench.checkpoint(solver=dopri5)",
        "odebench.interpolated(solver=dopri5)",
        "odebench.quadrature(solver=dopri5)",
    }
    assert facts["wrong"]["odebench.backsolve(solver=dopri5)"] == ["lorenz", "stiff_decay(k=100)"]
    text = found.conclusion
    assert "on all 3 problem instances" in text
    assert "backsolve-type: `diffrax.backsolve(solver=dopri5)` on `lorenz` and `stiff_decay(k=100)` (diverged)" in text
    assert "`odebench.backsolve(solver=dopri5)` on `lorenz` and `stiff_decay(k=100)` (error up to 3.0e+31)" in text
    assert "other: `odebench.reversible(n_steps=400, solver=reversible_heun)` on `stiff_decay(k=100)`" in text


# --- presence, absence and the report files ---------------------------------------------------------


def all_records() -> list[Record]:
    return crossover_records() + symplectic_records() + seminorm_records() + stability_records()


def test_each_section_needs_its_data():
    assert set(sections(all_records())) == {"forward_vs_reverse", "symplectic", "seminorm", "stability"}
    without = {
        "forward_vs_reverse": lambda r: not r.method.endswith(".forward"),
        "symplectic": lambda r: r.method != "odebench.symplectic",
        "seminorm": lambda r: "seminorm" not in r.method_params,
        "stability": lambda r: r.method not in ("odebench.backsolve", "diffrax.backsolve"),
    }
    for key, keep in without.items():
        found = sections([r for r in all_records() if keep(r)])
        assert key not in found, key


def test_no_sections_without_their_data(tmp_path):
    methods = (("odebench.backprop", {"solver": "dopri5"}), ("odebench.checkpoint", {"solver": "dopri5"}))
    frame = synthetic_frame(methods=methods)
    assert find_reproductions(prepare(frame)) == []
    out = write_report(frame, tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "Reproduced results" not in md
    assert not list((out / "figures").glob("headline_*"))


def test_the_report_carries_every_section(tmp_path):
    out = write_report(records_to_frame(all_records()), tmp_path / "report")
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    assert "## Reproduced results" in md
    titles = re.findall(r"^### (.*)$", md[md.index("## Reproduced results") :], flags=re.M)[:4]
    assert [t.split(" (")[0] for t in titles] == [
        "Forward against reverse mode as the parameters grow",
        "Exact gradients at adjoint-like memory: the symplectic adjoint",
        "Seminorms",
        "Backsolve's instability",
    ]
    for key in ("forward_vs_reverse", "symplectic", "seminorm", "stability"):
        figure = out / "figures" / f"headline_{key}.png"
        assert figure.read_bytes().startswith(b"\x89PNG"), key
        assert f"figures/headline_{key}.png" in md
        assert f'id="reproduction-{key}"' in html
    # The sections come after the findings and before the per-problem evidence.
    assert md.index("## Findings") < md.index("## Reproduced results") < md.index("## Problem")
    assert "Crossover at n_params = 256" in md and "Crossover at n_params = 256" in html


def test_empty_frame_has_no_sections():
    assert find_reproductions(prepare(synthetic_frame().iloc[:0])) == []
