"""Replies are routed by operation id, finished key pushes by their tag (control/routes.py)."""
from netedge.gateway.control.routes import MAX_ROUTES, Routes


def test_an_id_goes_to_the_orchestrator_that_issued_it():
    r, a, b = Routes(), object(), object()
    r.op(7, a)
    r.op(8, b)
    assert r.owner_of_op(7) is a and r.owner_of_op(8) is b
    assert r.owner_of_op(9) is None and r.owner_of_op("7") is None and r.owner_of_op(True) is None


def test_the_map_is_bounded_oldest_first():
    r, a = Routes(), object()
    for m in range(MAX_ROUTES + 10):
        r.op(m, a)
    assert r.owner_of_op(9) is None and r.owner_of_op(10) is a and r.owner_of_op(MAX_ROUTES + 9) is a
    r.op(10, a)  # registered again: the newest
    for m in range(MAX_ROUTES + 10, MAX_ROUTES + 20):
        r.op(m, a)
    assert r.owner_of_op(10) is a and r.owner_of_op(11) is None


def test_a_finished_push_is_answered_once():
    r, a = Routes(), object()
    r.push("group:0000abcd:n1", a)
    assert r.take_push("group:0000abcd:n1") is a
    assert r.take_push("group:0000abcd:n1") is None
