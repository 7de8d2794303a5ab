#!/usr/bin/env python
"""Pre-trains the multi-scale EUSR (4PP-EUSR section 4.1); see ``--help``."""
import sys

from eusr_perceptual.cli.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
