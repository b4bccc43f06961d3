"""Health: the verdict for ``dockyard health`` and the file the daemon keeps for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.health import (
    ENGINE_GRACE,
    HEARTBEAT,
    STALE,
    HealthFile,
    HealthRecord,
    read_record,
    verdict,
)

NOW = 1_800_000_000.0


def record(engine: str = "ok", since: float = NOW - 10, updated: float = NOW) -> HealthRecord:
    """A record as the daemon writes it."""
    return HealthRecord(1, updated, engine, since, "/run/control.sock")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "answers", "reason"),
    [
        (record(), True, None),
        (record("lost", since=NOW - ENGINE_GRACE + 1), True, None),
        (record("starting", since=NOW - 5), True, None),
        (None, True, "no health file"),
        (record(updated=NOW - STALE - 1), True, "last reported"),
        (record(), False, "nginx does not answer"),
        (record("lost", since=NOW - ENGINE_GRACE - 1), True, "has not answered for 61 s"),
        (record("starting", since=NOW - ENGINE_GRACE - 1), True, "has not answered"),
    ],
)
def test_verdict(given: HealthRecord | None, answers: bool, reason: str | None) -> None:
    """Healthy unless no file, a stale loop, a silent nginx, or the engine gone too long."""
    found = verdict(given, NOW, nginx_answers=answers)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_engine_loss_counts_from_the_last_good_answer(tmp_path: Path) -> None:
    """ok → lost writes at once with the time of the loss; lost → lost keeps that time."""
    clock = Clock()
    health = HealthFile(tmp_path, Path("/run/c.sock"), clock)
    health.engine(answered=True)
    assert read_record(tmp_path) == HealthRecord(health._record.pid, NOW, "ok", NOW, "/run/c.sock")
    clock.now = NOW + 1
    health.engine(answered=False)
    first = read_record(tmp_path)
    assert first is not None
    assert (first.engine, first.engine_since) == ("lost", NOW + 1)
    clock.now = NOW + 1 + HEARTBEAT
    health.engine(answered=False)
    later = read_record(tmp_path)
    assert later is not None
    assert (later.engine, later.engine_since, later.updated) == ("lost", NOW + 1, clock.now)


def test_no_engine_since_start_counts_from_start(tmp_path: Path) -> None:
    """An engine that never answered stays ``starting`` since the daemon began."""
    clock = Clock()
    health = HealthFile(tmp_path, Path("/run/c.sock"), clock)
    clock.now = NOW + 30
    health.engine(answered=False)
    found = read_record(tmp_path)
    assert found is not None
    assert (found.engine, found.engine_since) == ("starting", NOW)


def test_heartbeats_are_throttled(tmp_path: Path) -> None:
    """beat() rewrites the file only once HEARTBEAT has passed since the last write."""
    clock = Clock()
    health = HealthFile(tmp_path, Path("/run/c.sock"), clock)
    health.beat()
    clock.now = NOW + HEARTBEAT / 2
    health.beat()
    found = read_record(tmp_path)
    assert found is not None
    assert found.updated == NOW
    clock.now = NOW + HEARTBEAT
    health.beat()
    found = read_record(tmp_path)
    assert found is not None
    assert found.updated == NOW + HEARTBEAT


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"pid": 1}', json.dumps({"engine": "x"})])
def test_a_bad_file_reads_as_none(tmp_path: Path, text: str) -> None:
    """A missing, partial or foreign health file is no record at all."""
    (tmp_path / "health.json").write_text(text)
    assert read_record(tmp_path) is None


def test_an_unwritable_state_dir_is_survived(tmp_path: Path) -> None:
    """A health file that cannot be written is logged; the loop goes on."""
    (tmp_path / "a-file").write_text("not a directory")
    blocked = tmp_path / "a-file" / "state"
    with capture_logs() as logs:
        health = HealthFile(blocked, Path("/run/c.sock"))
        health.engine(answered=True)
    assert read_record(blocked) is None
    assert [e["event"] for e in logs] == ["health_file_unwritable"] * 2


def test_a_new_daemon_replaces_the_last_ones_file_at_once(tmp_path: Path) -> None:
    """A health file left by the previous run is overwritten as the new daemon starts."""
    (tmp_path / "health.json").write_text(
        json.dumps(
            {"pid": 1, "updated": NOW, "engine": "ok", "engine_since": 0, "control_socket": "/x"}
        )
    )
    clock = Clock()
    clock.now = NOW + 1
    HealthFile(tmp_path, Path("/run/c.sock"), clock)
    found = read_record(tmp_path)
    assert found is not None
    assert (found.engine, found.engine_since, found.control_socket) == (
        "starting",
        NOW + 1,
        "/run/c.sock",
    )
