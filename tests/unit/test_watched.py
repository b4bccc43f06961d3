"""Watched files: settled files are read into one snapshot, unsettled edits keep what was read.

A fake clock stands for time and file modification times are set to match it; the
``schedule`` callback records the delays the source asks for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs
from watchdog.events import (
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from daemon.route_files import RouteFile, parse_routes_file, route_file_name_problem
from daemon.settings import Settings
from daemon.watched import (
    SETTLE,
    FileSource,
    FilesSnapshot,
    FileWatcher,
    _Handler,
    _read,
    _stat_key,
    _UnsettledError,
)
from tests.unit.test_own_certificates import (
    BY_INTERMEDIATE,
    KEY,
    NOW,
    _pem,
    issue,
    key_pem,
    leaf_chain,
)

START = NOW.timestamp()
ROUTES = "routes:\n  web:\n    host: {host}\n    servers: ['http://10.0.0.2:8080']\n"
SHIPPED = {"nginx.conf.j2": "shipped main\n", "tls.j2": "shipped tls\n"}


class Clock:
    """A settable clock in seconds since the epoch."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    """A FileSource on directories below tmp_path, its clock and what it scheduled."""

    source: FileSource
    clock: Clock
    scheduled: list[float]
    routes: Path
    certs: Path
    templates: Path
    shipped: Path
    logs: list[MutableMapping[str, Any]] = field(default_factory=list)

    def snapshot(self, at: float | None = None) -> FilesSnapshot:
        """A snapshot at ``at`` (default: the clock as it is), its log lines kept."""
        if at is not None:
            self.clock.now = at
        with capture_logs() as logs:
            snapshot = self.source.snapshot()
        self.logs.extend(logs)
        return snapshot

    def events(self, event: str) -> list[MutableMapping[str, Any]]:
        """The log lines of one event so far."""
        return [line for line in self.logs if line["event"] == event]


def about(seconds: float) -> object:
    """A delay compared to the millisecond (epoch seconds leave no more precision)."""
    return pytest.approx(seconds, abs=1e-3)


def put(path: Path, data: bytes | str, at: float) -> Path:
    """Write ``data`` to ``path`` and give it the modification time ``at``."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    ns = round(at * 1e9)
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    """Directories below tmp_path, two shipped templates, the clock at START."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name, text in SHIPPED.items():
        (shipped / name).write_text(text)
    templates = tmp_path / "templates"
    templates.mkdir()
    settings = Settings(state_dir=tmp_path / "state", templates=templates)
    clock = Clock(START)
    scheduled: list[float] = []
    source = FileSource(settings, shipped, scheduled.append, clock=clock)
    source.prepare()
    return Rig(
        source,
        clock,
        scheduled,
        settings.routes_path,
        settings.certs_path,
        templates,
        shipped,
    )


def hosts(snapshot: FilesSnapshot) -> dict[str, tuple[str, ...]]:
    """File name to the hosts of its routes."""
    return {
        file.name: tuple(h for r in file.routes for labels in r.routes for h in labels.hosts)
        for file in snapshot.routes
    }


# -- route files ----------------------------------------------------------------------


def test_prepare_creates_the_two_default_directories(rig: Rig) -> None:
    """prepare() makes routes.d and certs.d (0700: keys); all three are watched, the
    templates' whole tree (templates may include files from subdirectories)."""
    assert rig.routes.is_dir()
    assert rig.certs.is_dir()
    assert rig.certs.stat().st_mode & 0o777 == 0o700
    assert rig.source.directories == (
        (rig.routes, False),
        (rig.certs, False),
        (rig.templates, True),
    )


def test_a_route_file_is_read_once_settled_and_not_before(rig: Rig) -> None:
    """A file modified less than SETTLE ago is not read; a pass is scheduled for when it is."""
    put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - 0.05)
    assert rig.snapshot().routes == ()
    assert rig.scheduled == [about(SETTLE - 0.05)]
    assert hosts(rig.snapshot(START + SETTLE)) == {"web.yaml": ("a.test",)}
    (read,) = rig.events("routes_file_read")
    assert (read["file"], read["routes"]) == ("web.yaml", 1)


def test_the_scheduled_delay_is_never_zero(rig: Rig) -> None:
    """A file that settles right now still asks for a short wait, not a busy loop."""
    put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - SETTLE + 1e-6)
    rig.snapshot()
    assert rig.scheduled == [about(0.01)]


def test_an_unsettled_edit_keeps_the_previous_version(rig: Rig) -> None:
    """While an edit settles the version read before stays; after it, the new one is read."""
    path = put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - 10)
    assert hosts(rig.snapshot()) == {"web.yaml": ("a.test",)}
    put(path, ROUTES.format(host="b.test"), START + 1)
    assert hosts(rig.snapshot(START + 1.1)) == {"web.yaml": ("a.test",)}
    assert rig.scheduled == [about(0.1)]
    assert hosts(rig.snapshot(START + 2)) == {"web.yaml": ("b.test",)}


def test_unchanged_files_are_not_parsed_again(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose size, time and inode did not change is not parsed again."""
    calls: list[str] = []

    def counting(name: str, data: bytes) -> RouteFile:
        calls.append(name)
        return parse_routes_file(name, data)

    monkeypatch.setattr("daemon.watched.parse_routes_file", counting)
    path = put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - 10)
    first = rig.snapshot()
    second = rig.snapshot(START + 60)
    assert calls == ["web.yaml"]
    assert second.routes[0] is first.routes[0]
    assert len(rig.events("routes_file_read")) == 1
    put(path, ROUTES.format(host="a.test"), START)  # touched: same bytes, read again
    rig.snapshot(START + 61)
    assert calls == ["web.yaml", "web.yaml"]
    assert len(rig.events("routes_file_read")) == 1


def test_a_removed_file_is_dropped(rig: Rig) -> None:
    """A deleted route file leaves the snapshot and is logged as removed."""
    path = put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - 10)
    rig.snapshot()
    path.unlink()
    assert rig.snapshot().routes == ()
    (removed,) = rig.events("routes_file_removed")
    assert removed["file"] == "web.yaml"


def test_an_invalid_route_file_is_in_the_snapshot_with_its_error(rig: Rig) -> None:
    """A file that does not parse is handed on with its error (routing reports it)."""
    put(rig.routes / "bad.toml", "[routes.web\n", START - 10)
    (file,) = rig.snapshot().routes
    assert file.name == "bad.toml"
    assert file.error is not None
    assert file.error.line == 1
    assert rig.events("routes_file_read") == []


def test_hidden_backup_and_other_files_are_ignored(rig: Rig) -> None:
    """Hidden files, ``~`` backups and other suffixes are skipped without a word."""
    for name in (".web.yaml", ".web.yaml.swp", "web.yaml~", "notes.txt", "web.yaml.bak"):
        put(rig.routes / name, ROUTES.format(host="x.test"), START - 10)
    (rig.routes / "sub.yaml").mkdir()
    put(rig.routes / "a.yml", ROUTES.format(host="a.test"), START - 10)
    toml = '[routes.b]\nhost = "b.test"\nservers = "http://10.0.0.3"\n'
    put(rig.routes / "b.toml", toml, START - 10)
    assert hosts(rig.snapshot()) == {"a.yml": ("a.test",), "b.toml": ("b.test",)}
    assert [line["event"] for line in rig.logs] == ["routes_file_read", "routes_file_read"]


def test_a_bad_file_name_is_reported_once_and_ignored(rig: Rig) -> None:
    """A name with a space is not read, and watched_file_ignored is logged once."""
    put(rig.routes / "my routes.yaml", ROUTES.format(host="a.test"), START - 10)
    assert rig.snapshot().routes == ()
    assert rig.snapshot(START + 60).routes == ()
    (ignored,) = rig.events("watched_file_ignored")
    assert ignored["file"] == "my routes.yaml"
    assert ignored["log_level"] == "warning"


def test_a_file_from_the_future_is_not_held_back_until_its_time(rig: Rig) -> None:
    """A settled file whose mtime is an hour ahead is read within a second or so."""
    put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START + 3600)
    rig.snapshot()
    assert hosts(rig.snapshot(START + 1)) == {"web.yaml": ("a.test",)}


# -- certificate pairs ------------------------------------------------------------------


def put_pair(rig: Rig, stem: str, chain: bytes, key: bytes = KEY, at: float = START - 10) -> None:
    """``<stem>.crt`` and ``<stem>.key`` in the certificates directory."""
    put(rig.certs / f"{stem}.crt", chain, at)
    put(rig.certs / f"{stem}.key", key, at)


def test_a_valid_pair_is_in_the_snapshot_and_logged(rig: Rig) -> None:
    """A settled valid pair becomes an OwnCertificate; a pass is scheduled for its expiry."""
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]))
    (certificate,) = rig.snapshot().certificates
    assert (certificate.name, certificate.names) == ("shop", ("shop.example.org",))
    (loaded,) = rig.events("certificate_file_loaded")
    assert loaded["file"] == "shop.crt"
    assert loaded["names"] == ["shop.example.org"]
    assert loaded["not_after"] == certificate.not_after.isoformat()
    assert rig.scheduled == [about(certificate.not_after.timestamp() - START)]
    rig.snapshot(START + 60)
    assert len(rig.events("certificate_file_loaded")) == 1


def test_a_lone_certificate_is_reported_once_when_settled(rig: Rig) -> None:
    """A .crt without its .key waits to settle, then certificate_file_invalid once."""
    put(rig.certs / "shop.crt", leaf_chain(["shop.example.org"]), START - 0.05)
    assert rig.snapshot().certificates == ()
    assert rig.events("certificate_file_invalid") == []
    assert rig.snapshot(START + 1).certificates == ()
    assert rig.snapshot(START + 120).certificates == ()
    (invalid,) = rig.events("certificate_file_invalid")
    assert invalid["file"] == "shop.crt"
    assert "shop.key" in invalid["reason"]


def test_a_mismatched_pair_is_reported_once_and_not_used(rig: Rig) -> None:
    """A key that does not match the leaf: one certificate_file_invalid, no certificate,
    and no pass scheduled for it (only a change of the files can fix it)."""
    other = key_pem(ec.generate_private_key(ec.SECP256R1()))
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]), other)
    assert rig.snapshot().certificates == ()
    assert rig.scheduled == []
    assert rig.snapshot(START + 61).certificates == ()
    (invalid,) = rig.events("certificate_file_invalid")
    assert (invalid["file"], invalid["key_file"]) == ("shop.crt", "shop.key")
    assert "does not match" in invalid["reason"]
    assert invalid["log_level"] == "error"


def test_a_fixed_pair_is_loaded(rig: Rig) -> None:
    """Replacing the wrong key with the right one brings the pair into use."""
    other = key_pem(ec.generate_private_key(ec.SECP256R1()))
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]), other)
    assert rig.snapshot().certificates == ()
    put(rig.certs / "shop.key", KEY, START + 5)
    assert len(rig.snapshot(START + 10).certificates) == 1


def test_a_certificate_is_dropped_when_it_expires(rig: Rig) -> None:
    """A pair in use leaves the snapshot at its not_after, which the source scheduled."""
    expiry = NOW + timedelta(hours=1)
    put_pair(rig, "shop", leaf_chain(["shop.example.org"], not_after=expiry))
    assert len(rig.snapshot().certificates) == 1
    assert rig.scheduled == [about(3600)]
    assert len(rig.snapshot(expiry.timestamp() - 1).certificates) == 1
    assert rig.snapshot(expiry.timestamp()).certificates == ()
    (invalid,) = rig.events("certificate_file_invalid")
    assert "expired" in invalid["reason"]


def test_a_pair_replaced_one_file_at_a_time_keeps_the_old_certificate(rig: Rig) -> None:
    """A new .crt beside the old .key mismatches: the old certificate stays in use (no ACME
    order, no fallback) until the new .key arrives, then the new one is used."""
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]))
    (old,) = rig.snapshot().certificates
    new_key = ec.generate_private_key(ec.SECP256R1())
    names = ["shop.example.org", "www.shop.example.org"]
    new_chain = _pem(issue(new_key.public_key(), "new", BY_INTERMEDIATE, names=names))
    put(rig.certs / "shop.crt", new_chain, START + 1)
    assert rig.snapshot(START + 2).certificates == (old,)
    (invalid,) = rig.events("certificate_file_invalid")
    assert invalid["action"] == "kept the pair read before"
    put(rig.certs / "shop.key", key_pem(new_key), START + 3)
    (new,) = rig.snapshot(START + 4).certificates
    assert new.names == ("shop.example.org", "www.shop.example.org")


def test_a_not_yet_valid_pair_is_looked_at_again_when_it_becomes_valid(rig: Rig) -> None:
    """A certificate valid from later is not used, and a pass is scheduled for that moment."""
    start = NOW + timedelta(hours=2)
    put_pair(rig, "shop", leaf_chain(["shop.example.org"], not_before=start))
    assert rig.snapshot().certificates == ()
    assert rig.scheduled == [about(7200)]
    assert len(rig.snapshot(start.timestamp()).certificates) == 1


def test_a_file_that_changes_while_read_is_not_used(rig: Rig) -> None:
    """A route file whose stat differs from the listing when opened waits and is read later."""
    path = put(rig.routes / "web.yaml", ROUTES.format(host="a.test"), START - 10)
    listed = _stat_key(path.stat())
    put(path, ROUTES.format(host="b.test"), START - 5)
    with pytest.raises(_UnsettledError):
        _read(path, listed)
    assert hosts(rig.snapshot()) == {"web.yaml": ("b.test",)}


def test_a_removed_pair_is_dropped_and_logged(rig: Rig) -> None:
    """Deleting a pair in use drops it and logs certificate_file_removed."""
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]))
    assert len(rig.snapshot().certificates) == 1
    (rig.certs / "shop.crt").unlink()
    (rig.certs / "shop.key").unlink()
    assert rig.snapshot().certificates == ()
    (removed,) = rig.events("certificate_file_removed")
    assert removed["pair"] == "shop"


def test_an_unsettled_replacement_pair_keeps_the_certificate_in_use(rig: Rig) -> None:
    """While a new pair is being written, the one checked before keeps serving."""
    put_pair(rig, "shop", leaf_chain(["shop.example.org"]))
    (before,) = rig.snapshot().certificates
    put_pair(rig, "shop", leaf_chain(["new.example.org"]), at=START + 1)
    assert rig.snapshot(START + 1.05).certificates == (before,)
    (after,) = rig.snapshot(START + 2).certificates
    assert after.names == ("new.example.org",)


# -- templates ------------------------------------------------------------------------


def test_templates_are_yours_over_the_shipped_ones(rig: Rig) -> None:
    """Your directory's files are ``own`` (with their paths, subdirectories included, as
    any file there may be included), the package's are ``shipped``."""
    put(rig.templates / "nginx.conf.j2", "own main\n", START - 10)
    (rig.templates / "snippets").mkdir()
    put(rig.templates / "snippets" / "extra.conf", "# extra\n", START - 10)
    (rig.templates / ".git").mkdir()
    put(rig.templates / ".git" / "HEAD", "ref\n", START - 10)
    templates = rig.snapshot().templates
    assert templates is not None
    assert templates.own == (
        ("nginx.conf.j2", "own main\n", str(rig.templates / "nginx.conf.j2")),
        ("snippets/extra.conf", "# extra\n", str(rig.templates / "snippets" / "extra.conf")),
    )
    assert templates.shipped == tuple(
        (name, SHIPPED[name], str(rig.shipped / name)) for name in sorted(SHIPPED)
    )
    assert templates.effective["nginx.conf.j2"][0] == "own main\n"
    assert templates.effective["tls.j2"][0] == "shipped tls\n"


def test_an_unsettled_template_edit_keeps_the_previous_text(rig: Rig) -> None:
    """A template edit is used only once settled; a new template waits too."""
    path = put(rig.templates / "nginx.conf.j2", "own main\n", START - 10)
    rig.snapshot()
    put(path, "edited main\n", START + 1)
    put(rig.templates / "tls.j2", "own tls\n", START + 1)
    templates = rig.snapshot(START + 1.1).templates
    assert templates is not None
    assert [(name, text) for name, text, _ in templates.own] == [("nginx.conf.j2", "own main\n")]
    assert rig.scheduled == [about(0.1)]
    templates = rig.snapshot(START + 2).templates
    assert templates is not None
    assert [(name, text) for name, text, _ in templates.own] == [
        ("nginx.conf.j2", "edited main\n"),
        ("tls.j2", "own tls\n"),
    ]


def test_an_unreadable_template_is_reported_and_the_text_read_before_kept(rig: Rig) -> None:
    """A template that is not UTF-8 is named in ``template_invalid``; its last text stays."""
    path = put(rig.templates / "nginx.conf.j2", "own main\n", START - 10)
    rig.snapshot()
    path.write_bytes(b"\xff\xfe broken")
    os.utime(path, (START - 5, START - 5))
    templates = rig.snapshot().templates
    rig.snapshot()
    assert templates is not None
    assert [(name, text) for name, text, _ in templates.own] == [("nginx.conf.j2", "own main\n")]
    (invalid,) = rig.events("template_invalid")
    assert invalid["template"] == str(path)
    assert invalid["action"] == "kept the text read before"


def test_without_a_templates_directory_only_the_shipped_ones_count(tmp_path: Path) -> None:
    """No DOCKYARD_TEMPLATES: two directories are watched and ``own`` is empty."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    put(shipped / "nginx.conf.j2", "shipped main\n", START - 10)
    settings = Settings(state_dir=tmp_path / "state")
    source = FileSource(settings, shipped, lambda delay: None, clock=Clock(START))
    source.prepare()
    assert source.directories == ((settings.routes_path, False), (settings.certs_path, False))
    templates = source.snapshot().templates
    assert templates is not None
    assert templates.own == ()
    assert [name for name, _, _ in templates.shipped] == ["nginx.conf.j2"]


def test_missing_directories_give_an_empty_snapshot(tmp_path: Path) -> None:
    """Before prepare() (or with the directories gone) the snapshot is just empty."""
    settings = Settings(state_dir=tmp_path / "state", templates=tmp_path / "nowhere")
    source = FileSource(settings, tmp_path, lambda delay: None, clock=Clock(START))
    snapshot = source.snapshot()
    assert (snapshot.routes, snapshot.certificates) == ((), ())
    assert snapshot.templates is not None
    assert snapshot.templates.own == ()


# -- the watchdog handler ------------------------------------------------------------


@pytest.fixture
def pokes() -> tuple[_Handler, list[None]]:
    """A handler and the list its pokes are recorded in."""
    calls: list[None] = []
    return _Handler(lambda: calls.append(None)), calls


def poked(handler: tuple[_Handler, list[None]], event: FileSystemEvent) -> bool:
    """Whether ``event`` made the handler poke."""
    on, calls = handler
    before = len(calls)
    on.dispatch(event)
    return len(calls) > before


@pytest.mark.parametrize(
    "event",
    [
        FileModifiedEvent("/w/routes.d/web.yaml"),
        FileCreatedEvent("/w/certs.d/shop.key"),
        FileDeletedEvent("/w/templates/nginx.conf.j2"),
        FileClosedEvent("/w/routes.d/web.yaml"),
        FileMovedEvent("/w/routes.d/.web.yaml.tmp", "/w/routes.d/web.yaml"),
        FileMovedEvent("/w/routes.d/web.yaml", "/w/routes.d/web.yaml~"),
    ],
)
def test_relevant_events_poke(pokes: tuple[_Handler, list[None]], event: FileSystemEvent) -> None:
    """Changes to files that could matter poke the trigger (a rename onto or off one too)."""
    assert poked(pokes, event)


@pytest.mark.parametrize(
    "event",
    [
        FileModifiedEvent("/w/routes.d/.web.yaml.swp"),
        FileCreatedEvent("/w/routes.d/web.yaml~"),
        FileMovedEvent("/w/routes.d/.a", "/w/routes.d/.b"),
        FileOpenedEvent("/w/routes.d/web.yaml"),
        FileClosedNoWriteEvent("/w/routes.d/web.yaml"),
        FileModifiedEvent(b"/w/routes.d/.hidden"),
        DirModifiedEvent("/w/routes.d"),
    ],
)
def test_irrelevant_events_do_not_poke(
    pokes: tuple[_Handler, list[None]], event: FileSystemEvent
) -> None:
    """Hidden files, ``~`` backups and reads (open, close without write) do not poke."""
    assert not poked(pokes, event)


def test_any_visible_name_pokes(pokes: tuple[_Handler, list[None]]) -> None:
    """A visible name pokes even when the pass will skip it: the pass sorts it out."""
    assert poked(pokes, FileModifiedEvent("/w/routes.d/notes.txt"))


def test_a_missing_directory_is_reported_and_not_watched(tmp_path: Path) -> None:
    """Watching a directory that does not exist logs watch_dir_unavailable; the rest run."""
    present = tmp_path / "routes.d"
    present.mkdir()
    watcher = FileWatcher([(present, False), (tmp_path / "missing", True)], lambda: None)
    with capture_logs() as logs:
        watcher.start()
    try:
        events = [(e["event"], e["directory"]) for e in logs]
        assert events == [
            ("watching_directory", str(present)),
            ("watch_dir_unavailable", str(tmp_path / "missing")),
        ]
    finally:
        watcher.stop()


@pytest.mark.parametrize(
    ("recursive", "wakes"), [(True, True), (False, False)], ids=["tree", "top-level-only"]
)
def test_a_file_saved_below_a_tree_wakes_the_watcher(
    tmp_path: Path, recursive: bool, wakes: bool
) -> None:
    """A file saved in a subdirectory wakes a tree watch (templates), not a flat one."""
    (tmp_path / "snippets").mkdir()
    woken = threading.Event()
    watcher = FileWatcher([(tmp_path, recursive)], woken.set)
    watcher.start()
    try:
        (tmp_path / "snippets" / "extra.conf.j2").write_text("# more\n")
        assert woken.wait(5 if wakes else 1) is wakes
    finally:
        watcher.stop()


@pytest.mark.parametrize(
    "name",
    [
        "a.yaml",
        "a.yaml\n",
        "a\n",
        ".a.yaml",
        "a.yaml~",
        "a b.yaml",
        "A.YML",
        "x" * 123 + ".yaml",
        "x" * 124 + ".yaml",
        "-a.toml",
        "a.toml.bak",
        "ä.yaml",
    ],
)
def test_the_watcher_reads_exactly_the_names_check_accepts(rig: Rig, name: str) -> None:
    """The daemon reads a routes.d file iff ``route_file_name_problem`` (check) accepts it."""
    put(rig.routes / name, "routes: {}\n", START - 10)
    read = {file.name for file in rig.snapshot().routes}
    assert (name in read) == (route_file_name_problem(name) is None)


def test_a_huge_route_file_is_refused_unread(rig: Rig) -> None:
    """A route file over 1 MiB becomes an error without being read into memory."""
    put(rig.routes / "huge.yaml", b"#" * (1024 * 1024 + 1), START - 10)
    (file,) = rig.snapshot().routes
    assert file.error is not None
    assert "larger than 1 MiB" in file.error.reason
