"""`python -m embridge` is the `embridge` command."""

from embridge.stages.cli import main

main()
