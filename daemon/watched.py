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

import errno
import os
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
from daemon.route_files import (
    FILE_NAME_RE,
    MAX_FILE_BYTES,
    FileError,
    RouteFile,
    is_candidate,
    parse_routes_file,
)
from daemon.settings import Settings

log = structlog.get_logger("daemon.watched")

# Seconds a file must have been left alone before it is read. Editors finish a save
# within milliseconds; copying a file over a slow link can take longer, and is caught by
# the next event, which restarts the wait.
SETTLE = 0.2
_CERT_SUFFIX = ".crt"
_KEY_SUFFIX = ".key"
_TEMPLATE_SUFFIX = ".j2"

# (mtime ns, size, inode, ctime ns): ctime moves on chmod too, so a file made readable
# is read again though its content did not change
_Stat = tuple[int, int, int, int]


class _UnsettledError(Exception):
    """The file changed while it was read: try again once it has settled."""


# what ``_settled_bytes`` returns instead of bytes: not yet, and no longer there
_WAIT = object()
_GONE = object()


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
    # the certificate served: the pair's, or the one read before while a replacement fails
    certificate: OwnCertificate | None
    reason: str | None
    # when a verdict changes with time alone (a certificate not yet valid)
    retry_at: float | None


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
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns)


def _read(path: Path, stat: _Stat) -> bytes:
    """The file's bytes, if it is still the version listed as ``stat`` after reading.

    A write that starts between the listing and the read (or during it) would otherwise
    be read half done under the old, settled ``stat``.
    """
    if stat[1] > MAX_FILE_BYTES:
        # route files, certificates and templates are small: do not read a stray huge file
        raise OSError(errno.EFBIG, "larger than 1 MiB")
    with path.open("rb") as handle:
        if _stat_key(os.fstat(handle.fileno())) != stat:
            raise _UnsettledError
        data = handle.read()
        if _stat_key(os.fstat(handle.fileno())) != stat:
            raise _UnsettledError
    return data


def _wanted_template(name: str) -> bool:
    return True


def _wanted_certificate(name: str) -> bool:
    return name.endswith((_CERT_SUFFIX, _KEY_SUFFIX))


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
        # the certificates directory holds private keys: only we may read it
        for directory, mode in ((self._routes_dir, 0o755), (self._certs_dir, 0o700)):
            try:
                directory.mkdir(mode=mode, parents=True, exist_ok=True)
            except OSError as err:
                log.warning("watch_dir_unavailable", directory=str(directory), error=str(err))

    @property
    def directories(self) -> tuple[tuple[Path, bool], ...]:
        """The directories to watch, and whether their whole tree (templates may include
        files from subdirectories)."""
        found = [(self._routes_dir, False), (self._certs_dir, False)]
        if self._templates_dir is not None:
            found.append((self._templates_dir, True))
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

    def _entries(
        self, directory: Path | None, wanted: Callable[[str], bool], *, tree: bool = False
    ) -> Iterator[tuple[str, Path, _Stat]]:
        """Regular files in ``directory`` (all levels with ``tree``) by relative name.

        Hidden files and directories, ``~`` backups and names ``wanted`` refuses (other
        suffixes) are left out silently; names with characters that would need quoting
        in logs and config comments are reported once.
        """
        if directory is None:
            return
        try:
            found = sorted(self._walk(directory, tree))
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
        for parts, path in found:
            name = "/".join(parts)
            if any(p.startswith(".") or p.endswith("~") for p in parts) or not wanted(name):
                continue
            try:
                info = path.stat()
            except OSError:
                continue  # removed while we looked
            if not S_ISREG(info.st_mode):
                continue
            if not all(FILE_NAME_RE.match(part) for part in parts):
                self._report_once(
                    ("name", str(directory), name),
                    "watched_file_ignored",
                    file=name,
                    directory=str(directory),
                    reason="file names are letters, digits, '.', '_' and '-'",
                    level="warning",
                )
                continue
            yield name, path, _stat_key(info)

    @staticmethod
    def _walk(directory: Path, tree: bool) -> Iterator[tuple[tuple[str, ...], Path]]:
        if not tree:
            for path in directory.iterdir():
                yield (path.name,), path
            return
        for root, dirs, files in os.walk(directory, onerror=_raise):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            base = Path(root).relative_to(directory).parts
            for name in files:
                yield (*base, name), Path(root) / name

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
        for name, path, stat in self._entries(self._routes_dir, is_candidate):
            known = previous.get(name)
            if known is not None and known[0] == stat:
                current[name] = known
                continue
            data = self._settled_bytes(path, stat, now, wake)
            if isinstance(data, bytes):
                current[name] = (stat, parse_routes_file(name, data))
            elif isinstance(data, OSError):
                reason = f"cannot read the file: {data.strerror or data}"
                current[name] = (stat, RouteFile(name, "", error=FileError(reason)))
            elif data is _GONE:
                continue
            elif known is not None:
                current[name] = known
        for name in previous.keys() - current.keys():
            log.info("routes_file_removed", file=name)
        for name, (_, file) in current.items():
            changed = name not in previous or previous[name][1].digest != file.digest
            if changed and file.error is None:
                log.info("routes_file_read", file=name, routes=len(file.routes))
        self._memory.routes = current
        return tuple(file for _, file in current.values())

    def _settled_bytes(
        self, path: Path, stat: _Stat, now: float, wake: list[float]
    ) -> bytes | OSError | object:
        """The file's bytes once settled; ``_WAIT`` before, ``_GONE`` if it vanished."""
        if not self._settled(stat, now, wake):
            return _WAIT
        try:
            return _read(path, stat)
        except _UnsettledError:
            wake.append(now + SETTLE)
            return _WAIT
        except FileNotFoundError:
            return _GONE
        except OSError as err:
            return err

    def _certificates(self, now: float, wake: list[float]) -> tuple[OwnCertificate, ...]:
        files = {n: (p, st) for n, p, st in self._entries(self._certs_dir, _wanted_certificate)}
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
            known = previous.get(stem)
            if known is not None and known.stat == (cert[1], key[1]) and not _stale(known, now):
                pair: _Pair | None = known
            else:
                pair = self._check(stem, (cert, key), known, now, wake)
            if pair is None:  # not settled, or gone while we looked
                if known is not None:
                    current[stem] = known
                continue
            current[stem] = pair
            if pair.certificate is not None:
                wake.append(pair.certificate.not_after.timestamp())
            if pair.retry_at is not None:
                wake.append(pair.retry_at)
        for stem in previous.keys() - current.keys():
            if previous[stem].certificate is not None:
                log.info("certificate_file_removed", pair=stem)
        self._memory.pairs = current
        return tuple(p.certificate for p in current.values() if p.certificate is not None)

    def _check(
        self,
        stem: str,
        files: tuple[tuple[Path, _Stat], tuple[Path, _Stat]],
        known: _Pair | None,
        now: float,
        wake: list[float],
    ) -> _Pair | None:
        """Read and check one pair; None while it is not settled."""
        (cert, cert_stat), (key, key_stat) = files
        stat = (cert_stat, key_stat)
        if not all(self._settled(s, now, wake) for s in stat):
            return None
        retry_at = None
        try:
            chain, key_pem = _read(cert, cert_stat), _read(key, key_stat)
            certificate = check_pair(stem, chain, key_pem, datetime.fromtimestamp(now, UTC))
        except _UnsettledError:
            wake.append(now + SETTLE)
            return None
        except FileNotFoundError:
            return None
        except OSError as err:
            reason = f"cannot read it: {err.strerror or err}"
        except PairError as err:
            reason = err.reason
            retry_at = err.valid_from.timestamp() if err.valid_from is not None else None
        else:
            if known is None or known.certificate != certificate:
                log.info(
                    "certificate_file_loaded",
                    file=cert.name,
                    names=list(certificate.names),
                    not_after=certificate.not_after.isoformat(),
                )
            return _Pair(stat, certificate, None, None)
        # A pair replaced one file at a time mismatches in between; the host keeps the
        # certificate it had (and orders nothing from ACME) until the pair is whole again.
        kept = known.certificate if known is not None else None
        if kept is not None and now >= kept.not_after.timestamp():
            kept = None
        action = "kept the pair read before" if kept is not None else "not used"
        self._report_once(
            ("pair", stem, str(stat), reason, action),
            "certificate_file_invalid",
            file=cert.name,
            key_file=key.name,
            reason=reason,
            action=action,
        )
        return _Pair(stat, kept, reason, retry_at)

    def _templates(self, now: float, wake: list[float]) -> tuple[tuple[str, str, str], ...]:
        previous = self._memory.templates
        current: dict[str, tuple[_Stat, str]] = {}
        directory = self._templates_dir
        for name, path, stat in self._entries(directory, _wanted_template, tree=True):
            known = previous.get(name)
            if known is not None and known[0] == stat:
                current[name] = known
                continue
            data = self._settled_bytes(path, stat, now, wake)
            if data is _GONE:
                continue
            if isinstance(data, bytes):
                try:
                    current[name] = (stat, data.decode("utf-8"))
                    continue
                except UnicodeDecodeError:
                    data = ValueError("not UTF-8 text")
            if isinstance(data, Exception):
                self._report_once(
                    ("template", name, str(stat)),
                    "template_invalid",
                    template=str(path),
                    error=f"cannot read it: {data}",
                    action="kept the text read before"
                    if known is not None
                    else "using the shipped template of this name, if any",
                )
            if known is not None:
                current[name] = known
        self._memory.templates = current
        return tuple(
            (name, text, str(directory / name) if directory is not None else name)
            for name, (_, text) in sorted(current.items())
        )

    def _report_once(
        self, key: tuple[str, ...], event: str, *, level: str = "error", **fields: str
    ) -> None:
        if key not in self._memory.reported:
            self._memory.reported.add(key)
            log.log(40 if level == "error" else 30, event, **fields)


def _raise(err: OSError) -> None:
    raise err


def _stale(pair: _Pair, now: float) -> bool:
    """Whether a pair's last verdict may have changed with time alone."""
    if pair.certificate is not None and now >= pair.certificate.not_after.timestamp():
        return True
    return pair.retry_at is not None and now >= pair.retry_at


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

    def __init__(
        self, directories: Iterable[tuple[Path, bool]], on_change: Callable[[], None]
    ) -> None:
        """``directories``: (path, whether to watch the whole tree below it)."""
        self._directories = tuple(directories)
        self._handler = _Handler(on_change)
        self._observer = Observer()

    def start(self) -> None:
        """Watch every directory that exists (a missing one is reported, not watched)."""
        self._observer.daemon = True
        self._observer.start()
        for directory, recursive in self._directories:
            try:
                # a running observer adds the inotify watch here, so failures show here
                self._observer.schedule(self._handler, str(directory), recursive=recursive)
            except OSError as err:
                log.warning("watch_dir_unavailable", directory=str(directory), error=str(err))
                continue
            log.info("watching_directory", directory=str(directory))

    def stop(self) -> None:
        """Stop the observer threads."""
        self._observer.stop()
        self._observer.join(timeout=5)
