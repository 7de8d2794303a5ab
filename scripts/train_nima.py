#!/usr/bin/env python
"""NIMA quality predictors (AVA / TID2013); see ``--help``."""
import sys

from nima.cli import main

if __name__ == "__main__":
    sys.exit(main())
