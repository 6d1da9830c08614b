"""`python -m mrules` runs the CLI."""

from mrules.cli import main

main()
