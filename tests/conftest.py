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
    if torch is not None:
        torch.set_num_threads(1)
        # Tests must not depend on the default dtype: each one states its own.
        torch.set_default_dtype(torch.float64)
    yield
    if torch is not None:
        torch.set_default_dtype(torch.float32)


def cuda_available() -> bool:
    torch = _torch()
    return bool(torch is not None and torch.cuda.is_available())


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no CUDA device"))]
