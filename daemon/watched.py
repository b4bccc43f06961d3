"""Watched files: route files, your own certificates and your own templates (an edge module).

A source beside the Docker one. ``FileWatcher`` follows the three directories with
watchdog and only pokes the trigger, exactly like a Docker event: the reconcile pass then
calls ``FileSource.snapshot``, which re-reads the directories (files whose size and
modification time did not change are not parsed again) and returns them as one frozen
``FilesSnapshot``. One trigger, one pass, one validation and reload path.

Editors save in odd ways (write in place, several writes, temp file + rename). A file
modified less than ``SETTLE`` seconds ago may be half-written, so a pass never reads it:
the version read before stays in use (a new file waits), and a pass is scheduled for
when the file has settled.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from daemon.own_certificates import OwnCertificate, PairError, check_pair
from daemon.rendering import TemplateSet
from daemon.route_files import ROUTE_FILE_SUFFIXES, FileError, RouteFile, parse_routes_file
from daemon.settings import Settings

log = structlog.get_logger("daemon.watched")

# Seconds a file must have been left alone before it is read. Editors finish a save
# within milliseconds; copying a file over a slow link can take longer, and is caught by
# the next event, which restarts the wait.
SETTLE = 0.2
# File names that reach logs and config comments: no spaces or quotes.
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CERT_SUFFIX = ".crt"
_KEY_SUFFIX = ".key"
_TEMPLATE_SUFFIX = ".j2"
# A certificate that failed its checks is looked at again this often even without
# changes: "not yet valid" ends by itself.
_RECHECK_INVALID = 60.0

_Stat = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class FilesSnapshot:
    """What the watched directories hold now, as far as it is settled."""

    routes: tuple[RouteFile, ...] = ()
    certificates: tuple[OwnCertificate, ...] = ()
    templates: TemplateSet | None = None
    # each route file's modification time (ns): a ``touch`` asks for a file nginx
    # rejected to be tried again
    route_stamps: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class _Pair:
    """What was last read of one certificate pair."""

    stat: tuple[_Stat, _Stat]
    certificate: OwnCertificate | None
    reason: str | None
    checked: float


@dataclass(slots=True)
class _Memory:
    routes: dict[str, tuple[_Stat, RouteFile]] = field(default_factory=dict)
    pairs: dict[str, _Pair] = field(default_factory=dict)
    templates: dict[str, tuple[_Stat, str]] = field(default_factory=dict)
    # when each file version with a modification time in the future was first seen
    first_seen: dict[_Stat, float] = field(default_factory=dict)
    seen_now: dict[_Stat, float] = field(default_factory=dict)
    reported: set[tuple[str, ...]] = field(default_factory=set)


def _stat_key(info: os.stat_result) -> _Stat:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def read_shipped_templates(directory: Path) -> tuple[tuple[str, str, str], ...]:
    """The templates shipped with the package, as (name, text, path)."""
    return tuple(
        (path.name, path.read_text(encoding="utf-8"), str(path))
        for path in sorted(directory.glob("*" + _TEMPLATE_SUFFIX))
    )


class FileSource:
    """Reads the routes, certificates and templates directories for each pass."""

    def __init__(
        self,
        settings: Settings,
        shipped_templates: Path,
        schedule: Callable[[float], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._routes_dir = settings.routes_path
        self._certs_dir = settings.certs_path
        self._templates_dir = settings.templates
        self._shipped = read_shipped_templates(shipped_templates)
        self._schedule = schedule
        self._clock = clock
        self._memory = _Memory()

    def prepare(self) -> None:
        """Create the two directories that have defaults below the state dir."""
        for directory in (self._routes_dir, self._certs_dir):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                log.warning("watch_dir_unavailable", directory=str(directory), error=str(err))

    @property
    def directories(self) -> tuple[Path, ...]:
        """The directories to watch."""
        found = [self._routes_dir, self._certs_dir]
        if self._templates_dir is not None:
            found.append(self._templates_dir)
        return tuple(found)

    def snapshot(self) -> FilesSnapshot:
        """The settled state of the three directories; schedules a pass for the rest."""
        now = self._clock()
        wake: list[float] = []
        self._memory.seen_now = {}
        routes = self._routes(now, wake)
        certificates = self._certificates(now, wake)
        templates = TemplateSet(self._shipped, self._templates(now, wake))
        self._memory.first_seen = self._memory.seen_now
        if wake:
            self._schedule(max(0.01, min(wake) - now))
        stamps = tuple((name, stat[0]) for name, (stat, _) in self._memory.routes.items())
        return FilesSnapshot(routes, certificates, templates, stamps)

    # -- reading ---------------------------------------------------------------------

    def _entries(self, directory: Path | None, kind: str) -> Iterator[tuple[str, Path, _Stat]]:
        """Regular files in ``directory`` by name (hidden ones and odd names left out)."""
        if directory is None:
            return
        try:
            paths = sorted(directory.iterdir())
        except FileNotFoundError:
            return
        except OSError as err:
            self._report_once(
                ("dir", str(directory), str(err)),
                "watch_dir_unreadable",
                directory=str(directory),
                error=str(err),
            )
            return
        for path in paths:
            name = path.name
            if name.startswith(".") or name.endswith("~"):
                continue
            try:
                info = path.stat()
            except OSError:
                continue  # removed while we looked
            if not S_ISREG(info.st_mode):
                continue
            if not _FILE_NAME_RE.match(name):
                self._report_once(
                    ("name", kind, name),
                    "watched_file_ignored",
                    file=name,
                    directory=str(directory),
                    reason="file names are letters, digits, '.', '_' and '-'",
                )
                continue
            yield name, path, _stat_key(info)

    def _settled(self, stat: _Stat, now: float, wake: list[float]) -> bool:
        modified = stat[0] / 1e9
        if modified > now:
            # A time ahead of our clock (copied with -p, another machine's clock, an
            # archive) says nothing about when it was written: settle from first sight.
            modified = self._memory.first_seen.get(stat, now)
            self._memory.seen_now[stat] = modified
        if now - modified >= SETTLE:
            return True
        wake.append(modified + SETTLE)
        return False

    def _routes(self, now: float, wake: list[float]) -> tuple[RouteFile, ...]:
        previous = self._memory.routes
        current: dict[str, tuple[_Stat, RouteFile]] = {}
        for name, path, stat in self._entries(self._routes_dir, "routes"):
            if not name.endswith(ROUTE_FILE_SUFFIXES):
                continue
            known = previous.get(name)
            if known is not None and known[0] == stat:
                current[name] = known
                continue
            if not self._settled(stat, now, wake):
                if known is not None:
                    current[name] = known
                continue
            try:
                data = path.read_bytes()
            except OSError as err:
                reason = f"cannot read the file: {err.strerror or err}"
                current[name] = (stat, RouteFile(name, "", error=FileError(reason)))
                continue
            current[name] = (stat, parse_routes_file(name, data))
        for name in previous.keys() - current.keys():
            log.info("routes_file_removed", file=name)
        for name, (_, file) in current.items():
            changed = name not in previous or previous[name][1].digest != file.digest
            if changed and file.error is None:
                log.info("routes_file_read", file=name, routes=len(file.routes))
        self._memory.routes = current
        return tuple(file for _, file in current.values())

    def _certificates(self, now: float, wake: list[float]) -> tuple[OwnCertificate, ...]:
        files = {name: (path, stat) for name, path, stat in self._entries(self._certs_dir, "certs")}
        stems = {n[: -len(_CERT_SUFFIX)] for n in files if n.endswith(_CERT_SUFFIX)}
        stems |= {n[: -len(_KEY_SUFFIX)] for n in files if n.endswith(_KEY_SUFFIX)}
        previous = self._memory.pairs
        current: dict[str, _Pair] = {}
        for stem in sorted(stems):
            cert = files.get(stem + _CERT_SUFFIX)
            key = files.get(stem + _KEY_SUFFIX)
            if cert is None or key is None:
                lone = cert or key
                assert lone is not None
                if self._settled(lone[1], now, wake):
                    missing = stem + (_KEY_SUFFIX if key is None else _CERT_SUFFIX)
                    self._report_once(
                        ("pair", stem, missing, str(lone[1])),
                        "certificate_file_invalid",
                        file=lone[0].name,
                        reason=f"no {missing} beside it; both files are needed",
                    )
                continue
            stat = (cert[1], key[1])
            known = previous.get(stem)
            unchanged = known is not None and known.stat == stat
            if not unchanged and not all(self._settled(s, now, wake) for s in stat):
                if known is not None:
                    current[stem] = known
                continue
            if unchanged and known is not None and not _stale(known, now):
                current[stem] = known
            else:
                current[stem] = self._check(stem, (cert[0], key[0]), stat, now)
            pair = current[stem]
            if pair.certificate is not None:
                wake.append(pair.certificate.not_after.timestamp())
            else:
                wake.append(pair.checked + _RECHECK_INVALID)
        for stem in previous.keys() - current.keys():
            if previous[stem].certificate is not None:
                log.info("certificate_file_removed", pair=stem)
        self._memory.pairs = current
        return tuple(p.certificate for p in current.values() if p.certificate is not None)

    def _check(
        self, stem: str, files: tuple[Path, Path], stat: tuple[_Stat, _Stat], now: float
    ) -> _Pair:
        cert, key = files
        try:
            moment = datetime.fromtimestamp(now, UTC)
            certificate = check_pair(stem, cert.read_bytes(), key.read_bytes(), moment)
        except PairError as err:
            self._report_once(
                ("pair", stem, str(stat), err.reason),
                "certificate_file_invalid",
                file=cert.name,
                key_file=key.name,
                reason=err.reason,
            )
            return _Pair(stat, None, err.reason, now)
        except OSError as err:
            return _Pair(stat, None, str(err), now)
        previous = self._memory.pairs.get(stem)
        if previous is None or previous.certificate != certificate:
            log.info(
                "certificate_file_loaded",
                file=cert.name,
                names=list(certificate.names),
                not_after=certificate.not_after.isoformat(),
            )
        return _Pair(stat, certificate, None, now)

    def _templates(self, now: float, wake: list[float]) -> tuple[tuple[str, str, str], ...]:
        previous = self._memory.templates
        current: dict[str, tuple[_Stat, str]] = {}
        for name, path, stat in self._entries(self._templates_dir, "templates"):
            if not name.endswith(_TEMPLATE_SUFFIX):
                continue
            known = previous.get(name)
            if known is not None and known[0] == stat:
                current[name] = known
            elif self._settled(stat, now, wake):
                try:
                    current[name] = (stat, path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError) as err:
                    self._report_once(
                        ("template", name, str(stat)),
                        "template_invalid",
                        template=str(path),
                        error=f"cannot read it as UTF-8 text: {err}",
                        action="kept the text read before"
                        if known is not None
                        else "using the shipped template of this name, if any",
                    )
                    if known is not None:
                        current[name] = known
            elif known is not None:
                current[name] = known
        self._memory.templates = current
        assert self._templates_dir is not None or not current
        return tuple(
            (name, text, str(self._templates_dir / name) if self._templates_dir else name)
            for name, (_, text) in sorted(current.items())
        )

    def _report_once(self, key: tuple[str, ...], event: str, **fields: str) -> None:
        if key not in self._memory.reported:
            self._memory.reported.add(key)
            log.error(event, **fields)


def _stale(pair: _Pair, now: float) -> bool:
    """Whether a pair's last verdict may have changed with time alone."""
    if pair.certificate is not None:
        return now >= pair.certificate.not_after.timestamp()
    return now >= pair.checked + _RECHECK_INVALID


class _Handler(FileSystemEventHandler):
    """Any change to a file that could matter pokes the trigger; the pass sorts it out."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # inotify reports it beside every file event in the directory
        paths = [event.src_path, getattr(event, "dest_path", "")]
        names = [Path(os.fsdecode(p)).name for p in paths if p]
        if event.is_directory or any(not n.startswith(".") and not n.endswith("~") for n in names):
            self._on_change()


class FileWatcher:
    """watchdog observers on the watched directories, poking ``on_change``."""

    def __init__(self, directories: Iterable[Path], on_change: Callable[[], None]) -> None:
        self._directories = tuple(directories)
        self._handler = _Handler(on_change)
        self._observer = Observer()

    def start(self) -> None:
        """Watch every directory that exists (a missing one is reported, not watched)."""
        for directory in self._directories:
            try:
                self._observer.schedule(self._handler, str(directory), recursive=False)
            except OSError as err:
                log.warning("watch_dir_unavailable", directory=str(directory), error=str(err))
                continue
            log.info("watching_directory", directory=str(directory))
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        """Stop the observer threads."""
        self._observer.stop()
        self._observer.join(timeout=5)
