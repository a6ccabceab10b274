"""Problem factories that misbehave on purpose, loaded by suites as "fault_problems:NAME".

Each has an analytic reference, so no reference solve evaluates the faulty vector field;
only the reference's fingerprint probes it, at four points (see ``problems/_fingerprint``).
A fault meant for the case itself therefore strikes after those first evaluations.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from odebench import Problem


def _decay(name, field, rate=0.5):
    """y' = -k y, loss = sum y(T)^2: exact gradient in closed form."""
    y0 = np.array([1.0, 2.0])
    t = np.array([0.0, 1.0])

    def exact():
        e = np.exp(-2 * rate * t[-1])
        return {"y0": 2 * y0 * e, "k": np.array(-2 * t[-1] * e * float(y0 @ y0))}

    return Problem(
        name=name,
        vector_field=field,
        y0=y0,
        params={"k": np.array(rate)},
        t=t,
        loss=lambda ys, xp: (ys[-1] ** 2).sum(),
        exact_gradient=exact,
        # The closed form keeps the reference from ever evaluating the faulty field.
        exact_solution=lambda y0, params, t, xp: y0[None, :] * xp.exp(-params["k"] * xp.asarray(t))[:, None],
    )


def good(rate: float = 0.5):
    return _decay("good", lambda t, y, p, xp: -p["k"] * y, rate)


def raises():
    def field(t, y, p, xp):
        raise RuntimeError("this vector field always raises")

    return _decay("raises", field)


def nan():
    return _decay("nan", lambda t, y, p, xp: -p["k"] * y * float("nan"))


def aborts():
    def field(t, y, p, xp):
        os.abort()

    return _decay("aborts", field)


def sleeps():
    calls = iter(range(10**9))

    def field(t, y, p, xp):
        if next(calls) >= 8:  # past the fingerprint's probes: the case hangs, not the reference
            time.sleep(3600)
        return -p["k"] * y

    return _decay("sleeps", field)


def spawns(pidfile: str = ""):
    """Starts a child process (``sleep``), writes its pid to ``pidfile``, and hangs: the
    child must end with the case (timeout, shutdown, or the death of the run)."""

    def field(t, y, p, xp):
        child = subprocess.Popen(["sleep", "1000"])
        if pidfile:
            Path(pidfile).write_text(str(child.pid))
        time.sleep(3600)
        return -p["k"] * y

    return _decay("spawns", field)


def allocates():
    """Allocates 64 MiB per evaluation and keeps it: stopped by the suite's memory limit
    (an address-space limit, so the pages need not be touched: touching 400 MiB took up to
    4 s on a busy machine, close to the fault test's 5 s timeout)."""
    hoard = []

    def field(t, y, p, xp):
        hoard.append(np.empty(8 * 2**20))
        return -p["k"] * y

    return _decay("allocates", field)


def slow(seconds: float = 0.3):
    """A well-behaved problem whose every evaluation takes a while (for interrupt tests)."""

    def field(t, y, p, xp):
        time.sleep(seconds / 20)
        return -p["k"] * y

    return _decay("slow", field)


def factory_raises():
    raise ValueError("this factory always raises")
