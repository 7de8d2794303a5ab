#!/usr/bin/env python
"""NIMA quality predictors (AVA / TID2013); see ``--help``."""
import sys

from eusr_perceptual.cli.train_nima import main

if __name__ == "__main__":
    sys.exit(main())
