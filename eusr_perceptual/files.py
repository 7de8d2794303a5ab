"""Files written so that a crash never leaves half of one, and output folders checked first."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from eusr_perceptual.errors import PathUsageError


def write_json_atomically(path: Path, payload: Any) -> None:
    """Writes JSON to a temporary file in the same folder, then renames it over ``path``.

    The file gets the permissions the umask gives any new file (``0o666 & ~umask``, as the
    stores' shards and the checkpoints), not ``tempfile.mkstemp``'s 0600, so that a store or
    run folder shared with other users stays readable by them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(temporary, "x") as stream:  # O_CREAT | O_EXCL, mode 0o666 less the umask
        json.dump(payload, stream, indent=2, default=str)
    os.replace(temporary, path)


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
