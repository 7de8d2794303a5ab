#!/usr/bin/env python
"""Trains a list of presets on identical data and compares them in one table; see ``--help``."""
import sys

from eusr_perceptual.cli.study import main

if __name__ == "__main__":
    sys.exit(main())
