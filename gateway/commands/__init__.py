"""CLI subcommands: one module each, exposing `register(subparsers)` which adds its parser and
sets `func` (args -> exit code).  gateway/cli.py lists them in COMMANDS."""


class CliError(Exception):
    """An operator-facing failure: the message says what went wrong and what to do."""
