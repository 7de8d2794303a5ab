#!/usr/bin/env python
"""Trains any GAN preset (SRGAN, ESRGAN, DP, AFM, Pan, 4PP-EUSR); see ``--help``."""
import sys

from eusr_perceptual.cli.train_gan import main

if __name__ == "__main__":
    sys.exit(main())
