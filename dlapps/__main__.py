"""`python -m dlapps` is the `dlapps` command."""

from dlapps.cli import main

raise SystemExit(main())
