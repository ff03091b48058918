"""`python -m bot`: the core's command line only (import, search, match, ingest, reindex, backup).

The core never imports an adapter, so the commands that start or check them (`run`, `console`,
`doctor`, `health`, `discord-invite`) are not here: asked for, they say to use `paperbot` or
`python -m adapters`, which is the whole `paperbot` command.
"""

from __future__ import annotations

import click

from bot.cli import cli

# The commands adapters/cli.py adds to the core's group (a test keeps the two in step).
ADAPTER_COMMANDS = ("run", "console", "doctor", "health", "discord-invite")


class NotInTheCore(click.ClickException):
    """An adapter command asked of the core: a usage error (exit status 2)."""

    exit_code = 2


def _elsewhere(name: str) -> click.Command:
    """A stand-in for an adapter command that says where the real one is."""

    def refuse() -> None:
        raise NotInTheCore(
            f"`{name}` needs the chat adapters, which `python -m bot` (the core) leaves out: "
            f"run `paperbot {name}` or `python -m adapters {name}`."
        )

    return click.Command(
        name,
        callback=refuse,
        help=f"Not in the core: use `paperbot {name}`.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def main() -> None:
    """Run the core's command line, with a pointer in place of each adapter command."""
    for command in ADAPTER_COMMANDS:
        cli.add_command(_elsewhere(command))
    cli(prog_name="python -m bot")


if __name__ == "__main__":
    main()
