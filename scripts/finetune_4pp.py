#!/usr/bin/env python
"""4PP-EUSR perceptual fine-tuning (sections 3.2-3.4, 4.3); see ``--help``."""
import sys

from eusr_perceptual.cli.finetune_4pp import main

if __name__ == "__main__":
    sys.exit(main())
