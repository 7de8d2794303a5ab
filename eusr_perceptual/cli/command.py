"""What every console script's ``main(argv=None) -> int`` shares, set up in one place.

:func:`command` wraps a ``main``: logging is configured once (one format, the command's level,
TensorFlow's absl INFO chatter hidden), and a :class:`~eusr_perceptual.errors.UsageError` raised
anywhere below becomes ``error: <message>`` on stderr and exit status 2 (argparse's status for
usage errors), so no command shows a traceback for a user mistake. Other exceptions are bugs and
keep their traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

from eusr_perceptual.errors import USAGE_EXIT_STATUS, UsageError

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def command(log_level: int = logging.INFO) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorator of a console script's ``main``: training commands log at INFO (progress lines),
    the others at WARNING (skipped files, fallbacks)."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            logging.basicConfig(level=log_level, format=LOG_FORMAT)
            logging.getLogger("absl").setLevel(logging.WARNING)  # checkpoint/SavedModel chatter
            try:
                return main(*args, **kwargs)
            except UsageError as error:
                print(f"error: {error}", file=sys.stderr)
                return USAGE_EXIT_STATUS

        return wrapper

    return decorate
