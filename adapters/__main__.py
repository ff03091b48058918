"""`python -m adapters`: the whole `paperbot` command (run, console, doctor and the core's)."""

from adapters.cli import main

main()
