"""User mistakes as one-line errors: :class:`UsageError` and the wrapper every ``main()`` uses.

Library checks (a data path that is a file, an empty folder, a PNG given as a model, a
corrupt ``.keras`` file...) raise a :class:`UsageError` subclass with a message that says
what is wrong and what was expected. :func:`reports_usage_errors` turns it into
``error: <message>`` on stderr and exit status 2 (argparse's status for usage errors), so
no entry point shows a traceback for them. Other exceptions are bugs and keep their traceback.

The subclasses also derive from the built-in type callers already catch
(``FileNotFoundError`` for paths, ``ValueError`` for contents), so existing handlers keep working.
:func:`prepare_output_folder` is the matching check of an output folder (``--out``), and
:func:`non_negative_int` the argparse type of a size flag (``--tile``), checked at parse time.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable

__all__ = [
    "USAGE_EXIT_STATUS",
    "PathUsageError",
    "UsageError",
    "ValueUsageError",
    "non_negative_int",
    "prepare_output_folder",
    "reports_usage_errors",
]

#: Exit status of a usage error (as argparse).
USAGE_EXIT_STATUS = 2


class UsageError(Exception):
    """Something the user asked for cannot work; the message is shown as it is."""


class PathUsageError(UsageError, FileNotFoundError):
    """A path given by the user is missing, empty, or of the wrong kind (file vs folder)."""


class ValueUsageError(UsageError, ValueError):
    """A file or argument given by the user has unusable contents."""


def reports_usage_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wraps a ``main(argv=None) -> int``: a :class:`UsageError` prints ``error: ...`` and returns 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_EXIT_STATUS

    return wrapper


def non_negative_int(text: str) -> int:
    """argparse ``type=`` of a size (``--tile 0`` allowed, ``--tile -1`` an error at parse time)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def prepare_output_folder(folder: str | Path, flag: str = "--out") -> Path:
    """Creates ``folder`` if needed and checks that files can be written in it.

    Raises:
        PathUsageError: it is a file, cannot be created (e.g. under a file, or no permission),
            or is not writable.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PathUsageError(f"{flag} {folder} is a file, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PathUsageError(f"{flag} {folder} cannot be created: {error.strerror or error}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PathUsageError(f"{flag} {folder} is not writable")
    return folder
