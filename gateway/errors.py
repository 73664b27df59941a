"""The gateway library's operator-facing failure: what went wrong and what to do about it.

Library modules (config, remote, the status page, audit, the demo harness) raise it; the command
line (gateway/cli.py) prints its message and exits 2.  It lives here, not in gateway/commands/,
because a library never imports the CLI.
"""


class OperatorError(Exception):
    """A failure the operator can act on: the message says what went wrong and what to do."""
