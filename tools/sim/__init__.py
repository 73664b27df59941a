"""Deterministic simulation of a whole netedge installation in one process.

The real GatewayCore (over a real SQLite Store and Keystore) and real NodeCores with their
daemons run against a simulated MQTT broker, on a simulated clock, driven by one seeded
scheduler (FoundationDB's simulation testing and TigerBeetle's VOPR are the models).  Faults
are injected at any step; an invariant checker that shares no logic with what it checks reads
the store and the wire after every step.  A failing seed replays exactly.

    python -m netedge.tools.sim --seeds 1000          # or: make sim SEEDS=1000

Host-side tooling only: nothing here is part of a node's firmware.
"""
