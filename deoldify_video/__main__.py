"""``python -m deoldify_video`` runs the command-line tool."""

from .cli import main

raise SystemExit(main())
