"""What the simulator found, by seed (replay one with `python -m netedge.tools.sim --seeds 1
--seed S --steps K --trace`; a later change to the code may move a bug to another seed).

OPEN: real bugs not fixed yet (their owners have the seeds).  Their violation kinds are the ones
a run may still report; every other kind is a regression.
FIXED: bugs fixed since, each seed replayed by tests/test_sim.py and required to pass.
"""

OPEN = {
    "silent_gap": (
        "Chain events dropped by the broker at a full session queue (max_queued_messages, the "
        "gateway away) are never fetched again: the host's chain runs ahead of the store for good, "
        "without a record (DESIGN §5.8: the protocol must notice and repair; end-to-end "
        "acknowledgement is under way).  Every remaining seed passes with the queue cap out of "
        "reach.  Seeds (40 steps): 41, 44, 49, 57, 110, 125, 147, 152, 283, 334; (25 steps): 84."),
    "lost_input": (
        "Follows from the silent gaps above (events missing from the store).  Same seeds."),
    "false_failover": (
        "A promotion under way when a store commit fails: the standby accepted (`restored`) and "
        "answered the feed, the gateway's commit of that answer failed (not acknowledged, "
        "redelivered), the core rebuilt from the store no longer knows the feed it was sending "
        "(standby.py keeps it in RAM), ignores the redelivered answer and, at the reply timeout, "
        "promotes another standby over the live new active ('did not answer the promotion').  "
        "Seed (25 steps, found by the 20,000-seed run): 8043."),
}

FIXED = [
    # (seed, steps, what)
    # the simulator's own bugs, found by the simulator
    (16, 25, "a frozen client whose connection was cut never noticed the cut after it thawed"),
    (46, 25, "the same, on another node"),
    (141, 40, "the gateway learnt of a dropped connection before the messages read ahead of it "
              "(paho reports them in order): wills of a broker restart were then taken as news"),
    (87, 25, "a board with a snapshot transfer under way lost its reassembly state when another board "
             "unloaded the shared migrate.py module (a crash in the target's chunk handling)"),
    # the gateway's control plane
    (10, 25, "false failover: a restarted gateway acted on a will queued in its persistent session "
             "although the node's online status of the same boot id (a reconnect) was right behind"),
    (65, 25, "false failover: the same"),
    (105, 25, "false failover: the same"),
    (14, 25, "false failover: a restarted gateway took the wills a broker restart had queued in its "
             "session as news (the nodes reconnected only later): a resumed session gets the grace"),
    (38, 25, "false failover: the same"),
    (88, 40, "false failover: the gateway's own link was cut (its socket had not noticed yet) and "
             "every node's deadline passed: a silence of every node at once blames none"),
    (104, 40, "false failover: a gateway started while the broker was down ran the nodes' deadlines "
              "before it ever reached the broker"),
    (18, 25, "no host: a migration source killed while the gateway was down came back held; the "
             "restarted gateway aborted with `resume`, which a booted-held node ignores, and queued no "
             "recovery: every abort after a freeze now recovers the source from the input log"),
    (134, 25, "no host: the same"),
    (218, 25, "no host: the same"),
    (86, 40, "no host: a key push replaced a node's key file without the slot it still advertised "
             "(loaded in RAM); a migration there skipped the push, and after a reboot the daemon "
             "did not restore (identity_missing)"),
    (258, 40, "no host: the same"),
    (9444, 25, "no host: a source's freeze came late, after the abort's resume; the recovery's `go` "
               "found it frozen, answered active and left it frozen (a node's `go` of its own migration "
               "now unfreezes a frozen source)"),
    (18614, 25, "no host: the same"),
    (11227, 25, "stuck: the source's `release` failed after the bump (it no longer held the daemon "
                "frozen); the migration waited for a `buffered` reply that never comes (the target now "
                "takes the input log, as when the source is lost)"),
    (13306, 25, "the checker's own: a standby that refused a promotion counted as the active, so "
                "promoting the next one looked like a false failover (a promotion counts once accepted)"),
    (19355, 25, "the same"),
    (316, 40, "stuck: `stop` of a migrating daemon reached the source only; the migration waited for "
              "ever for its release (stop is now refused while migrating or recovering)"),
]
