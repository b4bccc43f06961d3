"""Debounce: bursts of events become one pass, bounded by the max wait."""

from __future__ import annotations

import threading

from daemon.trigger import Debouncer, Trigger


def test_single_poke_fires_after_min_wait() -> None:
    """One event fires one pass ``min_wait`` later, and only once."""
    d = Debouncer(0.05, 0.5)
    d.poke(10.0)
    assert d.due_at() == 10.05
    assert not d.take(10.04)
    assert d.take(10.05)
    assert d.due_at() is None
    assert not d.take(11.0)


def test_burst_is_coalesced_until_quiet() -> None:
    """Events closer than ``min_wait`` keep pushing the pass back."""
    d = Debouncer(0.05, 0.5)
    for t in (0.0, 0.03, 0.06, 0.09):
        d.poke(t)
    assert d.due_at() == 0.09 + 0.05
    assert not d.take(0.13)
    assert d.take(0.14)


def test_endless_burst_still_fires_at_max_wait() -> None:
    """A constant stream of events cannot starve the loop past ``max_wait``."""
    d = Debouncer(0.05, 0.5)
    fired = []
    t = 0.0
    while t < 1.2:
        d.poke(t)
        if d.take(t):
            fired.append(round(t, 2))
        t += 0.01
    assert fired == [0.5, 1.01]


def test_cooldown_spaces_reloads_in_a_burst() -> None:
    """After an applied change, the next pass waits for the cooldown; a quiet start does not."""
    d = Debouncer(0.02, 0.5, cooldown=1.0)
    d.poke(0.0)
    assert d.take(0.02)
    d.applied(0.1)
    d.poke(0.3)
    assert d.due_at() == 1.1
    assert not d.take(0.5)
    assert d.take(1.1)
    d.applied(1.2)
    d.poke(5.0)
    assert d.due_at() == 5.02


def test_schedule_fires_without_pokes() -> None:
    """A scheduled retry fires at its time; the earlier of two schedules wins."""
    d = Debouncer(0.05, 0.5)
    d.schedule(3.0)
    d.schedule(2.0)
    assert d.due_at() == 2.0
    assert d.take(2.0)


def test_trigger_wait_uses_the_injected_clock() -> None:
    """``Trigger.wait`` returns True once the debounced time has come on its clock."""
    now = [100.0]
    trigger = Trigger(0.05, 0.5, clock=lambda: now[0])
    trigger.poke()
    now[0] = 100.06
    assert trigger.wait(0.0)
    assert not trigger.wait(0.0)


def test_wake_returns_without_a_pass() -> None:
    """``wake`` (shutdown) ends a wait early and reports no pass due."""
    trigger = Trigger(0.05, 0.5)
    timer = threading.Timer(0.05, trigger.wake)
    timer.start()
    assert trigger.wait(5.0) is False
    timer.join()
