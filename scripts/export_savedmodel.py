#!/usr/bin/env python
"""TF Serving SavedModel export; see ``--help``."""
import sys

from eusr_perceptual.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
