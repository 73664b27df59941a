"""CLI subcommands: one module each, exposing `register(subparsers)` which adds its parser and
sets `func` (args -> exit code).  gateway/cli.py lists them in COMMANDS.  They parse options and
call the gateway library; nothing outside gateway/commands/ and gateway/cli.py imports them."""
from ..errors import OperatorError


class CliError(OperatorError):
    """A command line the CLI refuses (an option, an argument): the message says what to do."""
