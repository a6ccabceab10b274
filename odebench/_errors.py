"""Errors shared across layers. Bad user input is a :class:`UsageError` (exit status 2)."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user (a suite file, a CLI argument, a results folder).

    The message names what is wrong and what would be right; the CLI prints it and
    exits with status 2.
    """
