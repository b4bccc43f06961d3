"""Trigger: Docker events (and timers) become coalesced wake-ups of the reconcile loop.

Sits between the sources and ``reconcile``. Events are only wake-ups: the loop re-reads
all state, so a burst of events needs one pass, not one each. ``Debouncer`` is the
pure rule (fire ``min_wait`` after the last poke, but never later than ``max_wait``
after the first one, and never sooner than ``cooldown`` after the last applied change, so
a long burst of starts costs about one reload per ``cooldown``, while a lone start
after a quiet spell is applied at once); ``Trigger`` wraps it for threads. The loop runs
one pass at a time, so pokes during a pass simply schedule the next one (single flight).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Debouncer:
    """When to fire, given pokes at the times the caller passes in (no clock of its own)."""

    min_wait: float
    max_wait: float
    cooldown: float = 0.0
    _first: float | None = None
    _last: float | None = None
    _timer: float | None = None
    _applied: float | None = None

    def poke(self, now: float) -> None:
        """Something changed at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    def schedule(self, at: float) -> None:
        """Fire at ``at`` at the latest, even with no poke (retries, periodic resyncs)."""
        self._timer = at if self._timer is None else min(self._timer, at)

    def applied(self, now: float) -> None:
        """A pass changed nginx's config at ``now``: the cooldown starts."""
        self._applied = now

    def due_at(self) -> float | None:
        """The time the next pass should start, or None when nothing is pending."""
        candidates = []
        if self._first is not None and self._last is not None:
            due = min(self._last + self.min_wait, self._first + self.max_wait)
            if self._applied is not None:
                due = max(due, self._applied + self.cooldown)
            candidates.append(due)
        if self._timer is not None:
            candidates.append(self._timer)
        return min(candidates) if candidates else None

    def take(self, now: float) -> bool:
        """If a pass is due at ``now``, clear the pending state and say so."""
        due = self.due_at()
        if due is None or due > now:
            return False
        self._first = self._last = self._timer = None
        return True


class Trigger:
    """Thread-safe ``Debouncer``: sources call ``poke``, the loop calls ``wait``."""

    def __init__(
        self,
        min_wait: float,
        max_wait: float,
        cooldown: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._debouncer = Debouncer(min_wait, max_wait, cooldown)
        self._clock = clock
        # Reentrant so a signal handler on the loop's own thread can wake it safely.
        self._cond = threading.Condition(threading.RLock())
        self._woken = False

    def poke(self) -> None:
        """Something changed: schedule a pass."""
        with self._cond:
            self._debouncer.poke(self._clock())
            self._cond.notify_all()

    def schedule(self, delay: float) -> None:
        """Run a pass ``delay`` seconds from now even if nothing changes."""
        with self._cond:
            self._debouncer.schedule(self._clock() + delay)
            self._cond.notify_all()

    def applied(self) -> None:
        """The loop applied a new config now."""
        with self._cond:
            self._debouncer.applied(self._clock())

    def wake(self) -> None:
        """Return from ``wait`` now (shutdown) without scheduling a pass."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when a pass is due now."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                if self._debouncer.take(now):
                    return True
                if self._woken:
                    self._woken = False
                    return False
                due = self._debouncer.due_at()
                until = deadline if due is None else min(due, deadline)
                if until <= now:
                    return False
                self._cond.wait(until - now)
