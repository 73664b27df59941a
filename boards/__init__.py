"""Per-board descriptions (board.json) and network adapters (board.py), shipped as package data."""
