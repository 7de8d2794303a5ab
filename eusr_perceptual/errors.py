"""The project's error classes: user mistakes, reported as one line by the command line.

Library checks (a data path that is a file, an empty folder, a PNG given as a model, a
corrupt ``.keras`` file, a damaged store...) raise a :class:`UsageError` subclass whose
message says what is wrong and what was expected. The command-line layer
(:func:`eusr_perceptual.cli.errors.reports_usage_errors`) prints it as ``error: <message>`` and
exits with status 2 (argparse's status for usage errors); library code never exits and never
prints. Other exceptions are bugs and keep their traceback.

The subclasses also derive from the built-in type callers already catch
(``FileNotFoundError`` for paths, ``ValueError`` for contents), so existing handlers keep working.
"""

from __future__ import annotations

__all__ = ["USAGE_EXIT_STATUS", "PathUsageError", "UsageError", "ValueUsageError"]

#: Exit status of a usage error (as argparse).
USAGE_EXIT_STATUS = 2


class UsageError(Exception):
    """Something the user asked for cannot work; the message is shown as it is."""


class PathUsageError(UsageError, FileNotFoundError):
    """A path given by the user is missing, empty, or of the wrong kind (file vs folder)."""


class ValueUsageError(UsageError, ValueError):
    """A file or argument given by the user has unusable contents."""
