#!/usr/bin/env python
"""Released weights (.pb graphs, .pth state dicts) to .keras; see ``--help``."""
import sys

from eusr_perceptual.cli.import_weights import main

if __name__ == "__main__":
    sys.exit(main())
