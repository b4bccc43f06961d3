"""Running: the daemon's process lifecycle and its one loop (``dockyard run``).

Wires the steps together: the Docker watcher thread pokes the trigger; the loop on the
main thread waits for it, supervises nginx, and runs one reconcile pass at a time.
SIGTERM/SIGINT end the loop; nginx is asked to quit gracefully and the process exits 0
with no nginx left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import os
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
from daemon.errors import EngineUnavailableError, NginxError
from daemon.nginx import NginxProcess, become_subreaper
from daemon.reconcile import Reconciler
from daemon.rendering import Paths, RenderFacts, make_environment, render_config
from daemon.routing import RoutingTable
from daemon.settings import Settings
from daemon.sources import DockerSource
from daemon.trigger import Trigger

log = structlog.get_logger("daemon")

# Unix socket paths are limited to 108 bytes; keep a margin.
_MAX_SOCKET_PATH = 100


def builtin_templates() -> Path:
    """The templates shipped with the package (``templates/`` in the source tree)."""
    try:
        return Path(str(importlib.resources.files("daemon.templates")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "templates"


def detect_facts(settings: Settings) -> RenderFacts:
    """Find the machine facts the config depends on: socket paths, IPv6, challenge dir.

    Creates the state dir (default mode) so its permissions can be looked at.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:12]
    control_socket = None
    if len(str(Paths.under(settings.state_dir).control_socket)) > _MAX_SOCKET_PATH:
        control_socket = Path(tempfile.gettempdir()) / f"dockyard-{digest}.sock"
    challenge = None
    if not _others_can_enter(settings.state_dir):
        challenge = _private_temp_dir(f"dockyard-{digest}") / "acme-challenge"
    paths = Paths.under(settings.state_dir, control_socket, challenge)
    return RenderFacts(paths=paths, listen_ipv6=_ipv6_available())


def _others_can_enter(directory: Path) -> bool:
    """Whether nginx's unprivileged workers can reach files below ``directory``.

    They serve ACME challenge files, and a state dir below a 0700 directory (a private
    temp dir, a home directory) would answer every challenge with 403.
    """
    for part in (directory, *directory.parents):
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            continue  # created later with the default mode, which lets others enter
        if not mode & stat.S_IXOTH:
            return False
    return True


def _private_temp_dir(name: str) -> Path:
    """A directory of ours in the system temp dir, refusing one someone else planted."""
    path = Path(tempfile.gettempdir()) / name
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
    env = make_environment(settings.templates, builtin_templates())
    nginx = NginxProcess(settings, facts.paths)
    nginx.prepare()
    source = DockerSource(settings)
    trigger = Trigger(settings.debounce_min, settings.debounce_max, settings.reload_interval)
    certificates = CertificateKeeper(settings, facts.paths.acme_challenge, on_change=trigger.poke)
    certificates.start()
    reconciler = Reconciler(settings, source, nginx, env, facts, certificates=certificates)
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
    retry = 0.25
    while not stop.is_set():
        restart_in = nginx.restart_due_in()
        due = trigger.wait(0.5 if restart_in is None else min(0.5, restart_in))
        if stop.is_set():
            break
        nginx.supervise()
        if not due:
            continue
        try:
            if reconciler.reconcile():
                trigger.applied()
            retry = 0.25
            continue
        except EngineUnavailableError as err:
            retry = min(retry * 2, 10.0)
            log.warning("docker_unavailable", error=str(err), retry_in=retry)
        except NginxError as err:
            retry = min(retry * 2, 10.0)
            log.error("nginx_apply_failed", error=str(err), retry_in=retry)
        trigger.schedule(retry)
        if not nginx.running:
            _serve_without_engine(nginx, settings, facts, env)

    log.info("dockyard_stopping")
    certificates.stop()
    nginx.stop()
    return 0


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
    )


def _serve_without_engine(
    nginx: NginxProcess, settings: Settings, facts: RenderFacts, env: jinja2.Environment
) -> None:
    """No routes yet: serve the last good config, or an empty one (404 everywhere)."""
    try:
        live = nginx.live_text()
        if live is not None and nginx.test_live() is None:
            nginx.test(live)
            nginx.apply(live)
            log.info("serving_last_good_config")
            return
        empty = render_config(RoutingTable(), settings, facts, env)
        nginx.test(empty)
        nginx.apply(empty)
        log.info("serving_empty_config")
    except NginxError as err:
        log.error("nginx_start_failed", error=str(err))
