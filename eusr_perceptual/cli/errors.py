"""User mistakes as one-line errors on the command line: the wrapper every ``main()`` uses and
the argparse types checked at parse time. The error classes live in :mod:`eusr_perceptual.errors`.

:func:`reports_usage_errors` turns a :class:`~eusr_perceptual.errors.UsageError` into
``error: <message>`` on stderr and exit status 2 (argparse's status for usage errors), so no
entry point shows a traceback for them. :func:`non_negative_int` is the argparse type of a size
flag (``--tile``).
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable

from eusr_perceptual.errors import USAGE_EXIT_STATUS, UsageError


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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
