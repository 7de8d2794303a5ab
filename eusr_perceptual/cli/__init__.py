"""The command-line tools (``eusr-*`` console scripts and ``scripts/*.py``): each module parses
flags and calls one library function. Importing the package starts TensorFlow quietly unless
``--verbose`` is on the command line (:mod:`eusr_perceptual.cli.quiet`)."""

from eusr_perceptual.cli.quiet import start_tensorflow, wants_verbose

start_tensorflow(wants_verbose())
