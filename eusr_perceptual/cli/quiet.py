"""Hides TensorFlow's C++ start-up noise (oneDNN notices, CUDA probing, cuInit errors, absl
preamble) from the command-line tools; ``--verbose`` shows it.

TensorFlow 2.21 writes those lines to file descriptor 2 from C++ while it is imported and
while it creates its devices, before ``TF_CPP_MIN_LOG_LEVEL`` is read for some of them. The
tools therefore start TensorFlow once with descriptor 2 pointed at a temporary file, then
restore it; if the start fails, the captured text is printed with the error.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile


def start_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and creates its devices, silently unless ``verbose``; TensorFlow's
    absl INFO chatter (checkpoint sharding, SavedModel writing) is hidden too."""
    if verbose:
        return
    logging.getLogger("absl").setLevel(logging.WARNING)
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf  # lazy: its start-up noise must go to the redirected fd 2

            tf.config.list_logical_devices()
            tf.constant(0.0).numpy()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def wants_verbose(argv=None) -> bool:
    return "--verbose" in (sys.argv[1:] if argv is None else argv)
