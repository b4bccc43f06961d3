"""Running: the daemon's process lifecycle and its one loop (``dockyard run``).

Wires the steps together: the Docker watcher thread and the file watcher (route files,
your certificates and templates) poke the trigger; the loop on the main thread waits for
it, supervises nginx, and runs one reconcile pass at a time.
SIGTERM/SIGINT end the loop; nginx is asked to quit gracefully and the process exits 0
with no nginx left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
from pathlib import Path
from types import FrameType

import jinja2
import structlog

from daemon import __version__
from daemon.certificates import CertificateKeeper
from daemon.errors import ConfigRejectedError, EngineUnavailableError, NginxError
from daemon.health import HealthFile
from daemon.nginx import NginxProcess, become_subreaper
from daemon.reconcile import Reconciler
from daemon.rendering import Paths, RenderFacts, TemplateSet, environment_for, render_config
from daemon.routing import RoutingTable
from daemon.settings import Settings
from daemon.sources import DockerSource
from daemon.trigger import Trigger
from daemon.watched import FileSource, FileWatcher, read_shipped_templates

log = structlog.get_logger("daemon")

# Unix socket paths are limited to 108 bytes; keep a margin.
_MAX_SOCKET_PATH = 100


def builtin_templates() -> Path:
    """The templates shipped with the package (``templates/`` in the source tree).

    Installed, they are the directory ``daemon/templates`` (pyproject maps it); from a
    source tree or an editable install, the repository's ``templates/``. The directory is
    found on disk, not through importlib.resources: without an ``__init__.py`` it is a
    namespace package, whose ``files()`` is no path.
    """
    here = Path(__file__).resolve().parent
    installed = here / "templates"
    return installed if installed.is_dir() else here.parent / "templates"


def detect_facts(settings: Settings) -> RenderFacts:
    """Find the machine facts the config depends on: socket paths, IPv6, challenge dir.

    Creates the state dir (default mode) so its permissions can be looked at. Two things
    may not fit below it: the control socket (Unix socket paths are short) and the ACME
    challenge files (nginx's unprivileged workers must be able to enter every directory
    above them; a state dir below a 0700 home or temp dir would answer challenges with
    403). Those then go to one private directory in the system temp dir.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    control_socket = challenge = None
    socket_too_long = len(str(Paths.under(settings.state_dir).control_socket)) > _MAX_SOCKET_PATH
    closed = not _others_can_enter(settings.state_dir)
    if socket_too_long or closed:
        own = _ensure_private(private_temp_dir(settings.state_dir))
        control_socket = own / "control.sock" if socket_too_long else None
        challenge = own / "acme-challenge" if closed else None
    paths = Paths.under(settings.state_dir, control_socket, challenge)
    return RenderFacts(paths=paths, listen_ipv6=_ipv6_available())


def _others_can_enter(directory: Path) -> bool:
    """Whether users other than us can enter ``directory`` and every directory above it."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in (directory, *directory.parents))


def private_temp_dir(state_dir: Path) -> Path:
    """Where the files that cannot live below ``state_dir`` go (only made when needed).

    It holds nothing that outlives the daemon (a socket, challenge answers) and is removed
    when the daemon stops.
    """
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dockyard-{digest}"


def _ensure_private(path: Path) -> Path:
    """Make ``path`` ours (0755), refusing a directory someone else planted there."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o755)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        msg = f"{path} exists but is not a directory of ours that only we can write"
        raise OSError(msg)
    return path


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def run(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    facts = detect_facts(settings)
    _log_start(settings, facts)
    become_subreaper()
    # passes render from the file source's template sets; this one is for callers without
    env = environment_for(TemplateSet(read_shipped_templates(builtin_templates())))
    nginx = NginxProcess(settings, facts.paths)
    nginx.prepare()
    source = DockerSource(settings)
    trigger = Trigger(settings.debounce_min, settings.debounce_max, settings.reload_interval)
    certificates = CertificateKeeper(settings, facts.paths.acme_challenge, on_change=trigger.poke)
    certificates.start()
    files, watcher_of_files = _watch_files(settings, trigger)
    reconciler = Reconciler(
        settings, source, nginx, env, facts, certificates=certificates, files=files
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()
        nginx.interrupt()
        trigger.wake()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)

    watcher = threading.Thread(
        target=source.watch, args=(trigger.poke, stop), name="docker-events", daemon=True
    )
    watcher.start()
    trigger.schedule(0.0)  # the first pass runs at once; the watcher's resync poke joins it
    _loop(settings, facts, stop, trigger, nginx, reconciler, files)
    _shut_down(settings, certificates, nginx, watcher_of_files)
    return 0


def _loop(  # noqa: PLR0917 - the parts run() wired together
    settings: Settings,
    facts: RenderFacts,
    stop: threading.Event,
    trigger: Trigger,
    nginx: NginxProcess,
    reconciler: Reconciler,
    files: FileSource,
) -> None:
    """Wait for the trigger, supervise nginx, run passes; until ``stop``."""
    health = HealthFile(settings.state_dir, facts.paths.control_socket)
    retry = 0.25
    while not stop.is_set():
        restart_in = nginx.restart_due_in()
        due = trigger.wait(0.5 if restart_in is None else min(0.5, restart_in))
        if stop.is_set():
            break
        nginx.supervise()
        health.beat()
        if not due:
            continue
        try:
            if reconciler.reconcile():
                trigger.applied()
            health.engine(answered=True)
            retry = 0.25
            continue
        except EngineUnavailableError as err:
            health.engine(answered=False)
            retry = min(retry * 2, 10.0)
            log.warning("docker_unavailable", error=str(err), retry_in=retry)
        except NginxError as err:
            health.engine(answered=True)  # the snapshot came back: nginx is the trouble
            retry = min(retry * 2, 10.0)
            log.error("nginx_apply_failed", error=str(err), retry_in=retry)
        trigger.schedule(retry)
        if not nginx.running:
            _serve_without_engine(nginx, settings, facts, files)


def _watch_files(settings: Settings, trigger: Trigger) -> tuple[FileSource, FileWatcher]:
    files = FileSource(settings, builtin_templates(), schedule=trigger.schedule)
    files.prepare()
    watcher = FileWatcher(files.directories, trigger.poke)
    watcher.start()
    return files, watcher


def _shut_down(
    settings: Settings, certificates: CertificateKeeper, nginx: NginxProcess, files: FileWatcher
) -> None:
    log.info("dockyard_stopping")
    files.stop()
    # nginx's graceful quit takes up to 7 s when connections stay open (WebSockets), and an
    # ACME order in flight up to 5 s more: wait for both at once, inside docker stop's 10 s
    keeper = threading.Thread(target=certificates.stop, name="acme-stop", daemon=True)
    keeper.start()
    nginx.stop()
    keeper.join(timeout=2.0)
    shutil.rmtree(private_temp_dir(settings.state_dir), ignore_errors=True)


def _log_start(settings: Settings, facts: RenderFacts) -> None:
    log.info(
        "dockyard_starting",
        version=__version__,
        http_port=settings.http_port,
        https_port=settings.https_port,
        state_dir=str(settings.state_dir),
        label_prefix=settings.label_prefix,
        acme=settings.acme_enabled,
        acme_directory=settings.acme_directory if settings.acme_enabled else None,
        acme_challenge_dir=str(facts.paths.acme_challenge),
        routes_dir=str(settings.routes_path),
        certs_dir=str(settings.certs_path),
        templates=str(settings.templates) if settings.templates else None,
    )


def _serve_without_engine(
    nginx: NginxProcess, settings: Settings, facts: RenderFacts, files: FileSource
) -> None:
    """No routes yet: serve the last good config, or an empty one (404 everywhere).

    The empty config comes from your templates if they render one nginx accepts, else
    from the shipped ones: a broken template must not keep nginx down.
    """
    try:
        live = nginx.live_text()
        if live is not None and nginx.test_live() is None:
            nginx.test(live)
            nginx.apply(live)
            log.info("serving_last_good_config")
            return
        templates = files.snapshot().templates
        assert templates is not None
        for candidate in dict.fromkeys((templates, templates.shipped_only())):
            try:
                empty = render_config(RoutingTable(), settings, facts, environment_for(candidate))
                nginx.test(empty)
            except (jinja2.TemplateError, ValueError, ConfigRejectedError) as err:
                log.error("empty_config_invalid", templates=candidate.fingerprint, error=str(err))
                continue
            nginx.apply(empty)
            log.info("serving_empty_config")
            return
    except NginxError as err:
        log.error("nginx_start_failed", error=str(err))
