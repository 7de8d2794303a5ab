#!/usr/bin/env python
"""Tiled whole-image upscaling; see ``--help``."""
import sys

from eusr_perceptual.cli.upscale import main

if __name__ == "__main__":
    sys.exit(main())
