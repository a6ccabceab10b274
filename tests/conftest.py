"""Shared test settings: strict numerics, one thread (2 shared cores), GPU detection."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ODEBENCH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "test-cache"))


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch


@pytest.fixture(autouse=True)
def _strict_torch():
    torch = _torch()
    previous = None
    if torch is not None:
        previous = torch.get_default_dtype(), torch.get_num_threads()
        torch.set_num_threads(1)
        # Tests must not depend on the default dtype: each one states its own.
        torch.set_default_dtype(torch.float64)
    yield
    if torch is not None and previous is not None:
        torch.set_default_dtype(previous[0])  # what it was, not what it usually is
        torch.set_num_threads(previous[1])


def cuda_available() -> bool:
    torch = _torch()
    return bool(torch is not None and torch.cuda.is_available())


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no CUDA device"))]


# The slow tier: `python -m pytest -q` leaves it out (pyproject's addopts), `-m slow` runs only
# it, and .ci/run runs both. A test is here when it took more than about 2.5 s on the 2-core
# CI machine (`--durations`, 2026-12-02), or when it compiles diffrax (each case costs 5-15 s).
SLOW = {
    "test_runner.py": {
        "test_all_backends_on_linear_match_the_analytic_gradient",
        "test_interrupt_then_resume_gives_the_same_cases",
        "test_memory_of_a_small_case_is_not_polluted_by_a_big_one",
        "test_report_from_a_real_run",
        "test_faults_become_records_and_neighbours_survive",
        "test_cli_end_to_end",
        "test_submitit_local_executor",
        "test_unavailable_backend_and_device_give_records_and_exit_0",
        "test_resume_reruns_failed_and_missing_only",
    },
    "test_own_models.py": {
        "test_a_jax_model_has_a_tight_reference_and_a_gradcheck",
        "test_from_jax_module_and_function_get_the_analytic_gradient",
        "test_benchmark_runs_from_a_script_without_a_main_guard",
        "test_the_readme_takes_a_module_to_a_report_in_under_ten_lines",
    },
    "test_reference.py": {
        "test_default_references_are_right_and_quick",
        "test_lorenz_error_estimate_grows_with_the_horizon",
        "test_tight_reference_matches_finite_differences",
        "test_fingerprints_are_the_same_in_another_process",
        "test_loss_function_of_the_own_solver_supports_finite_differences",
        "test_reference_parts_and_description",
    },
    "test_adapters.py": {"test_loss_at_and_count_agree_with_the_timed_pass"},
    "test_new_methods.py": {"test_forward_matches_finite_differences", "test_memory_growth_with_steps"},
    "test_report.py": {
        "test_every_figure_is_written",
        "test_cli_writes_the_report",
        "test_figures_of_an_earlier_report_are_removed_and_nothing_else",
        "test_cli_refuses_a_folder_it_did_not_write",
        "test_many_methods_keep_distinct_styles",
        "test_overlapping_runs_stay_apart",
        "test_a_legend_of_many_long_labels_widens_the_figure_instead_of_covering_the_panels",
    },
    "test_history.py": {
        "test_history_rewrites_its_own_folder_but_refuses_a_foreign_one",
        "test_history_names_the_planted_jump_and_nothing_else",
        "test_history_finds_an_improvement_too",
    },
    "test_processes.py": {
        "test_timeout_kills_what_the_case_started",
        "test_sighup_ends_the_run_like_sigterm",
        "test_sigkill_of_the_run_leaves_no_process",
    },
    "test_verify.py": {"test_loose_tolerance_is_an_inaccurate_solve"},
    "test_expect.py": {"test_run_exits_1_naming_the_rules_that_check_nothing_or_fail"},
    "test_ode_gradients.py": {"test_torch_gradcheck_fixed_step"},
    "test_compare_export.py": {"test_pytest_benchmark_compare_reads_the_exports"},
    "test_suite.py": {"test_hung_reference_ends_at_its_own_timeout_and_says_which"},
    "test_workloads.py": {"test_fit_observations_are_the_true_orbit_plus_noise"},
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    names = {name for tests in SLOW.values() for name in tests}
    for item in items:
        listed = item.originalname in SLOW.get(item.path.name, ())
        if listed or "diffrax" in item.name or "jax" in item.name.lower():
            item.add_marker(pytest.mark.slow)
        names.discard(item.originalname)
    # A renamed test must not fall silently back into the fast tier's budget, nor a stale name linger.
    if names and len(items) > 500:
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {sorted(names)}")
