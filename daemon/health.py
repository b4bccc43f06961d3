"""Health: what the image's ``HEALTHCHECK`` (``dockyard health``) asks the running daemon.

Beside the loop in ``running``. The daemon keeps ``health.json`` in its state dir up to
date (``HealthFile``, an edge: it writes a file): a heartbeat from the loop, whether the
Docker engine answered the last pass, and where nginx's control socket is. ``dockyard
health`` runs as a separate process, reads that file, asks nginx on the control socket,
and ``verdict`` (pure) says healthy or why not: nginx does not answer, the engine has been
away for longer than ``ENGINE_GRACE``, or the loop has not beaten for ``STALE`` seconds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import structlog

from acme_store.store import write_atomic

log = structlog.get_logger("daemon.health")

HEALTH_FILE = "health.json"
# The engine restarting (an upgrade, a daemon reload) takes seconds; a minute away means
# routes can no longer follow containers, which an orchestrator should hear about.
ENGINE_GRACE = 60.0
# A pass can take seconds at 10,000 routes with certificates (nginx -t); a loop that has
# not come round for a minute is stuck.
STALE = 60.0
# How often the loop rewrites the file when nothing changed.
HEARTBEAT = 5.0

EngineState = Literal["starting", "ok", "lost"]


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """What the daemon last said about itself."""

    pid: int
    updated: float
    engine: EngineState
    engine_since: float
    control_socket: str

    @classmethod
    def parse(cls, text: str) -> HealthRecord:
        """Read the file's JSON; raises ``ValueError`` on anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            msg = "not a JSON object"
            raise ValueError(msg)
        try:
            return cls(
                pid=int(data["pid"]),
                updated=float(data["updated"]),
                engine=_engine_state(data["engine"]),
                engine_since=float(data["engine_since"]),
                control_socket=str(data["control_socket"]),
            )
        except (KeyError, TypeError) as err:
            msg = f"missing or bad field: {err}"
            raise ValueError(msg) from err


def _engine_state(value: object) -> EngineState:
    if value == "ok":
        return "ok"
    if value == "lost":
        return "lost"
    if value == "starting":
        return "starting"
    msg = f"unknown engine state {value!r}"
    raise ValueError(msg)


def verdict(record: HealthRecord | None, now: float, nginx_answers: bool) -> str | None:
    """None when healthy, else the reason (one line)."""
    if record is None:
        return "the daemon has written no health file yet"
    if now - record.updated > STALE:
        return f"the daemon's loop last reported {now - record.updated:.0f} s ago"
    if not nginx_answers:
        return "nginx does not answer on its control socket"
    away = now - record.engine_since
    if record.engine != "ok" and away > ENGINE_GRACE:
        return f"the Docker engine has not answered for {away:.0f} s"
    return None


class HealthFile:
    """The daemon's side: keeps ``health.json`` current, writing only when it has news."""

    def __init__(
        self, state_dir: Path, control_socket: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = state_dir / HEALTH_FILE
        self._clock = clock
        now = clock()
        self._record = HealthRecord(os.getpid(), now, "starting", now, str(control_socket))
        self._written = 0.0
        # at once: a file left in the volume by the previous container must not vouch for
        # this one
        self._write(now)

    def engine(self, answered: bool) -> None:
        """The engine answered a pass (or not): write at once when that changed."""
        state: EngineState = "ok" if answered else "lost"
        if state == self._record.engine or (state == "lost" and self._record.engine == "starting"):
            self.beat()
            return
        now = self._clock()
        self._record = HealthRecord(self._record.pid, now, state, now, self._record.control_socket)
        self._write(now)

    def beat(self) -> None:
        """The loop came round: rewrite the file when the last write is ``HEARTBEAT`` old."""
        now = self._clock()
        if now - self._written >= HEARTBEAT:
            self._write(now)

    def _write(self, now: float) -> None:
        record = HealthRecord(
            self._record.pid,
            now,
            self._record.engine,
            self._record.engine_since,
            self._record.control_socket,
        )
        self._record = record
        self._written = now
        try:
            # readable by a HEALTHCHECK running as another user; it holds no secret
            write_atomic(self._path, json.dumps(asdict(record)).encode(), mode=0o644)
        except OSError as err:
            # the proxy serves on without it; the health check will say unhealthy
            log.warning("health_file_unwritable", path=str(self._path), error=str(err))


def read_record(state_dir: Path) -> HealthRecord | None:
    """The daemon's last record, or None when there is none (or it cannot be read)."""
    try:
        return HealthRecord.parse((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
