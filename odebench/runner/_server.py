"""Imported first into the worker server (the fork server) and nowhere else.

It sets the heap up for honest memory figures (:mod:`._worker_init`) and ties the
server's life, and its workers', to the run's main process (:mod:`._lifeline`).
"""

from __future__ import annotations

from . import _worker_init  # noqa: F401 - the heap set-up happens on import
from ._lifeline import tie_server_to_run

tie_server_to_run()
