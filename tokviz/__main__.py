"""`python -m tokviz`: the same command line as the `tokviz` script."""

from tokviz.cli import run

run()
