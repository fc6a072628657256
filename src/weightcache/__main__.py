"""``python -m weightcache`` runs the CLI."""

from .cli import main

main()
