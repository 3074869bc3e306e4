"""`python -m tokviz` runs the same entry point as the `tokviz` console script."""

from tokviz.cli import main

raise SystemExit(main())
