"""`python -m bot`: the same as the `paperbot` command."""

from bot.cli import main

main()
