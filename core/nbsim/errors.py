"""Errors nbsim raises for user mistakes.

Every error carries a one-line message that names the flag or file at fault; the command line
prints it without a traceback and exits with the error's ``exit_code`` (2 for usage errors,
1 for input errors), as described in ``specs/cli.md``.
"""

from __future__ import annotations


class NbsimError(Exception):
    """Base class of the errors a user can cause."""

    exit_code = 1


class UsageError(NbsimError):
    """The command line itself is wrong: unknown flag, missing or malformed value."""

    exit_code = 2


class InputError(NbsimError):
    """An input file is missing, unreadable or malformed, or values contradict each other."""

    exit_code = 1


class PluginError(NbsimError):
    """A plugin name is unknown, a plugin failed to load, or two plugins claim one name."""

    exit_code = 2


class OutputError(NbsimError):
    """An output file cannot be written: missing directory, permissions, a full disk, ..."""

    exit_code = 1


class RefinementError(NbsimError):
    """A refinement reached a model whose loss is not finite (an impossible cell, a detector
    through the sample): stopped, with the last finite parameters reported."""

    exit_code = 1


class ResourceError(NbsimError):
    """The run would need more memory than the budget or the machine has."""

    exit_code = 1
