"""Example daemons shipped with the firmware (and used by the tests and the demo)."""
