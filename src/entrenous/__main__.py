"""``python -m entrenous``: the command-line interface."""

from entrenous.cli import main

raise SystemExit(main())
