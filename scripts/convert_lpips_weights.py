#!/usr/bin/env python
"""LPIPS weight conversion from .pth; see ``--help``."""
import sys

from eusr_perceptual.cli.convert_lpips_weights import main

if __name__ == "__main__":
    sys.exit(main())
