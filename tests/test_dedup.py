"""InputWindow: exactly-once admission of (sender, counter) in bounded memory."""
import pytest
from hypothesis import given, settings, strategies as st

from netedge.shared.dedup import DUPLICATE, FULL, NEW, TOO_OLD, WINDOW, InputWindow


def test_redelivery_is_duplicate_and_reordering_within_window_is_new():
    w = InputWindow()
    assert [w.admit("a", c) for c in (1, 3, 2, 3, 1)] == [NEW, NEW, NEW, DUPLICATE, DUPLICATE]
    assert w.admit("a", 3 + WINDOW) == NEW
    assert w.admit("a", 3) == TOO_OLD          # beyond the window: refused, never processed twice
    assert w.admit("a", 4) == NEW              # still inside


def test_sender_cap_is_a_reported_outcome():
    w = InputWindow(max_senders=2)
    assert w.admit("a", 1) == NEW and w.admit("b", 1) == NEW
    assert w.check("c", 1) == FULL and w.admit("c", 1) == FULL
    assert len(w.senders) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 200)), max_size=200))
def test_never_admits_twice_and_state_round_trips(inputs):
    w = InputWindow()
    admitted = set()
    for s, c in inputs:
        if w.admit(s, c) == NEW:
            assert (s, c) not in admitted
            admitted.add((s, c))
        w = InputWindow.from_obj(w.to_obj())  # what a snapshot / flash record carries
    for s, c in admitted:
        assert w.check(s, c) in (DUPLICATE, TOO_OLD)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-5, 2 ** 70) | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=10))
def test_from_obj_rejects_garbage_with_value_error(obj):
    try:
        InputWindow.from_obj(obj)
    except ValueError:
        pass
