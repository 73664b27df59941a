"""What the simulator found, by seed (replay one with `python -m netedge.tools.sim --seeds 1
--seed S --steps K --trace`; a later change to the code may move a bug to another seed).

OPEN: real bugs in the gateway's control logic, not fixed yet (their owners have the seeds).
Their violation kinds are the ones a run may still report; every other kind is a regression.
FIXED: bugs fixed since, each seed replayed by tests/test_sim.py and required to pass.
"""

OPEN = {
    "false_failover": (
        "A gateway (re)started after a broker restart reads the last wills queued in its persistent "
        "session as news; a node's online status, queued behind its will, then makes the core act on "
        "the will at once (core.py: 'a will, then the node back at once') although the boot id is "
        "unchanged (a reconnect, not a reboot): a standby is promoted while its active is alive. "
        "Seeds (25 steps): 10, 65, 88, 104, 105."),
    "silent_gap": (
        "Chain events dropped by the broker at a full session queue (max_queued_messages, the "
        "gateway away) are never fetched again: the host's chain runs ahead of the store for good, "
        "without a record (DESIGN §5.8: the protocol must notice and repair). Seeds (25 steps): 84, 172, 231."),
    "lost_input": (
        "Follows from the silent gaps above (events missing from the store), from the stuck source "
        "below, and from inputs acknowledged by the gateway after a failed store write "
        "(service.py acks in `finally`). Seeds (25 steps): 18, 74, 84."),
    "no_host": (
        "A migration source killed while the gateway is down comes back held (its frozen record); "
        "the restarted gateway aborts the migration before it saw the source's will, so it sends "
        "`resume` (ignored by a booted-held node) and queues no recovery: the daemon stays held, "
        "processed by no node, for good. Seeds (25 steps): 18, 134, 218."),
}

FIXED = [
    # (seed, steps, what): the simulator's own bugs, found by the simulator
    (16, 25, "a frozen client whose connection was cut never noticed the cut after it thawed"),
    (46, 25, "the same, on another node"),
]
