#!/usr/bin/env python
"""PSNR/SSIM/NIQE/LPIPS tables on benchmark folders; see ``--help``."""
import sys

from eusr_perceptual.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
