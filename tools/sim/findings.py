"""What the simulator found, by seed (replay one with `python -m netedge.tools.sim --seeds 1
--seed S --steps K --trace`; a later change to the code may move a bug to another seed).

OPEN: real bugs not fixed yet (their owners have the seeds).  Their violation kinds are the ones
a run may still report; every other kind is a regression.
FIXED: bugs fixed since, each seed replayed by tests/test_sim.py and required to pass.
"""

OPEN = {
    "lost_input": (
        "An input the broker accepted and then dropped from EVERY subscriber's session queue at its "
        "cap (the gateway's and the host's, both full: the world's queue cap of 40): nobody but the "
        "publisher ever held it, so nothing in netedge can replay it or record it.  Dropped on one "
        "path only, it is repaired (the host's events carry their inputs to the gateway's log; a "
        "caught-up host gets logged inputs it lacks).  Fix: a broker that does not drop (the shipped "
        "Mosquitto config: no queue cap for the gateway and node logins), or a publisher that "
        "confirms by the chain event.  Seeds (20 steps, the 100,000-seed run): 5771, 6385, 8816, "
        "8855, 10533, 14038, 14341 (about one seed in 2,000)."),
    "false_failover": (
        "The active's node, silent through a broker restart, is deposed without a live standby "
        "('no healthy standby'); when it is back the gateway promotes IT at epoch 2 while it still "
        "runs the daemon at epoch 1: it refuses (already_migrating: hosted here already) and the "
        "next member back is promoted over it.  A node that answers a promotion so still hosts "
        "the daemon: the group should take it back as its active (a demote-free rejoin).  Seed "
        "(20 steps, the 100,000-seed run): 28965."),
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
    # end-to-end acknowledgement (control/acks.py, firmware/host.py)
    (41, 40, "silent gap: chain events the broker dropped at a full session queue (the gateway away) "
             "were never fetched again; the host now keeps what the gateway has not marked stored and "
             "resends it when asked"),
    (84, 25, "silent gap and lost inputs: the same"),
    (103, 20, "stuck: the migration bumped the epoch before the gateway had stored the source's chain "
              "through the snapshot; the former source, no longer marked, sat at its cap and could take no "
              "`release` (the bump now waits for the stored chain; a former host is marked at its epoch; "
              "a discontinued daemon's host is released)"),
    (476, 20, "stuck: the same"),
    (8043, 25, "false failover: a store commit failed mid-promotion; the rebuilt core had lost the feed "
               "(RAM), ignored the redelivered answers and at the timeout promoted another standby over "
               "the promoted one (the feed is now driven again from the log)"),
    (18614, 25, "lost input: inputs the broker dropped from the host's own session queue, logged by the "
                "gateway after an aborted migration's recovery had read its backlog, were never replayed "
                "(a caught-up host lacking logged inputs now gets them from the log)"),
    (3032, 20, "stuck (found by the 100,000-seed run): a host stalled on an input of a daemon the "
               "operator had just stopped; the gateway marks no stopped daemon, and the `stop` waited "
               "behind the stalled input for ever (a stopped daemon's host is now released, as a "
               "discontinued one's)"),
    (20638, 20, "false failover (the 100,000-seed run): under a full disk the gateway lost track of a "
                "promotion n2 had accepted, promoted n2 again at a newer epoch, n2 refused "
                "(already_migrating) and n3 was promoted over it; a newer promotion before `start` "
                "now replaces the unfinished one on the node"),
]
