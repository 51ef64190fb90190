"""``python -m stratus`` runs the CLI."""

from stratus.cli.app import main

main()
