#!/usr/bin/env python
"""Prepares a patch store for fast, bounded-memory training; see ``--help``."""
import sys

from eusr_perceptual.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
