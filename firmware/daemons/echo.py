"""A stateless example daemon: returns its input.  Restoring a snapshot into it is an error."""
from ..daemon import Daemon


class Echo(Daemon):
    KIND = "echo"

    def process(self, event):
        return [event.payload]
