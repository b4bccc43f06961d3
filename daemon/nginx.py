"""nginx: the edge that owns the nginx process and its config file.

Last step of the flow. A candidate config is written next to the live one and checked
with ``nginx -t``; only then is it renamed over the live file (atomic) and nginx told to
reload (SIGHUP). A reload counts as done when the new workers answer with the new
config's generation on the control socket, so ``nginx_reloaded`` reports the real time
to "new config serves". The master runs as our child; if it dies it is restarted with
backoff, and its orphaned workers (we are their subreaper) are told to quit first so
they free the ports. nginx's error log is read from its stderr and re-logged as
structured events.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Protocol

import structlog

from acme_store.store import fsync_dir, write_atomic
from daemon.errors import ConfigRejectedError, NginxError
from daemon.rendering import Paths, config_generation
from daemon.settings import Settings

log = structlog.get_logger("daemon.nginx")

_PR_SET_CHILD_SUBREAPER = 36
_MMAP_THRESHOLD = 4096
_AUTH_FILE_RE = re.compile(r"auth_basic_user_file \S+/([0-9a-f]+\.htpasswd);")
_CERT_FILE_RE = re.compile(r"ssl_certificate \S+/([0-9a-f]+\.pem);")
_ERROR_LINE_RE = re.compile(r"^\S+ \S+ \[(\w+)\] (?:\d+#\d+: )?(?:\*\d+ )?(.*)$")
_LEVELS = {
    "emerg": "error",
    "alert": "error",
    "crit": "error",
    "error": "error",
    "warn": "warning",
    "notice": "info",
    "info": "info",
    "debug": "debug",
}


class NginxControl(Protocol):
    """What reconcile needs from nginx: test a config, then make it the live one."""

    def serving(self) -> str | None:
        """The generation nginx was last confirmed to serve; None if unknown or not running."""
        ...

    def test(self, text: str) -> None:
        """Raise ``ConfigRejectedError`` unless ``nginx -t`` accepts ``text``."""
        ...

    def apply(self, text: str) -> float:
        """Make the last tested ``text`` live; return seconds until it answered."""
        ...

    def provide(self, files: Mapping[str, str]) -> None:
        """Write the files a config names besides itself (htpasswd), by file name."""
        ...

    def provide_certificates(self, files: Mapping[str, bytes]) -> None:
        """Write copies of your own certificate pairs (chain + key), by file name."""
        ...


def master_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The nginx master's environment: ours, plus a malloc setting that bounds its memory.

    A reload parses the new config into fresh memory and frees the old one; glibc keeps
    freed heap memory, and every new worker is forked from that doubled heap (10,000
    routes: 154 MB after start, 307 MB after a reload). With allocations of 4 KiB and up
    served by mmap, nginx's config pools go back to the system when freed, and memory
    stays flat across reloads. Only the master gets it: it makes ``nginx -t`` slower.
    """
    env = dict(environ)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    if not any(t.startswith("glibc.malloc.mmap_threshold=") for t in tunables):
        tunables.append(f"glibc.malloc.mmap_threshold={_MMAP_THRESHOLD}")
    env["GLIBC_TUNABLES"] = ":".join(tunables)
    return env


def become_subreaper() -> bool:
    """Adopt orphaned descendants (nginx workers whose master died) so we can reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over the control socket (nginx listens on a Unix socket there)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


def query_generation(control_socket: Path, timeout: float = 1.0) -> str | None:
    """The generation of the config the answering worker runs, or None if none answers."""
    conn = _UnixHTTPConnection(control_socket, timeout)
    try:
        conn.request("GET", "/dockyard/generation")
        response = conn.getresponse()
        body = response.read().decode("ascii", "replace").strip()
        return body if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _is_our_master(pid: int, config: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return cmdline.startswith("nginx: master process") and str(config) in cmdline


class NginxProcess:
    """The supervised nginx master and the files it reads."""

    def __init__(self, settings: Settings, paths: Paths) -> None:
        self._settings = settings
        self._paths = paths
        self._candidate = paths.config.with_name("nginx.conf.candidate")
        self._candidate_text: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_thread: threading.Thread | None = None
        self._restart_at: float | None = None
        self._restart_delay = 0.25
        self._started_at = 0.0
        self._stopping = False
        self._interrupted = threading.Event()
        self._serving: str | None = None

    @property
    def pid(self) -> int | None:
        """The master's PID while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the master process is alive."""
        return self.pid is not None

    def serving(self) -> str | None:
        """The generation confirmed live, while the master that confirmed it runs."""
        return self._serving if self.running else None

    def prepare(self) -> None:
        """Create the state directories and retire an nginx left by a previous daemon."""
        for directory in (
            self._paths.config.parent,
            self._paths.temp,
            self._paths.acme_challenge,
            self._paths.auth_files,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self._paths.control_socket.parent.mkdir(parents=True, exist_ok=True)
        self._retire_stale_master()

    def _retire_stale_master(self) -> None:
        try:
            pid = int(self._paths.pid.read_text().strip())
        except (OSError, ValueError):
            return
        if not _is_our_master(pid, self._paths.config):
            return
        log.warning("nginx_stale_master", pid=pid, action="quit")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def live_text(self) -> str | None:
        """The live config file, if there is one."""
        try:
            return self._paths.config.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def test(self, text: str) -> None:
        """Write ``text`` as the candidate and run ``nginx -t`` on it."""
        write_atomic(self._candidate, text.encode("utf-8"), mode=0o644)
        self._candidate_text = None
        result = self._run_test(self._candidate)
        if result is not None:
            raise ConfigRejectedError(result)
        self._candidate_text = text

    def test_live(self) -> str | None:
        """``nginx -t`` on the live file: None when it passes, nginx's message when not."""
        return self._run_test(self._paths.config)

    def _run_test(self, path: Path) -> str | None:
        try:
            result = subprocess.run(
                [*self._argv(path), "-t", "-q"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise NginxError(f"cannot run {self._settings.nginx} -t: {err}") from err
        if result.returncode == 0:
            return None
        message = result.stderr.decode("utf-8", "replace").strip()
        return message.replace(str(path), "nginx.conf") or f"exit code {result.returncode}"

    def _argv(self, config: Path) -> list[str]:
        prefix = str(self._paths.config.parent) + "/"
        return [self._settings.nginx, "-c", str(config), "-p", prefix, "-e", "stderr"]

    def provide(self, files: Mapping[str, str]) -> None:
        """Write each support file once: names are digests of the content, so an existing
        file is already right, and a file the live config names is never rewritten."""
        for name, content in files.items():
            path = self._paths.auth_files / name
            if not path.exists():
                self._paths.auth_files.mkdir(parents=True, exist_ok=True)
                # nginx's unprivileged workers read these on every request
                write_atomic(path, content.encode("utf-8"), mode=0o644)

    def provide_certificates(self, files: Mapping[str, bytes]) -> None:
        """Write each certificate copy once (names are digests, like the htpasswd files).

        nginx reads the copy, never your files: a pair replaced while nginx reloads
        cannot give it a new certificate with an old key.
        """
        directory = self._paths.own_certificates
        for name, content in files.items():
            path = directory / name
            if not path.exists():
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomic(path, content, mode=0o600)

    def _prune_support_files(self, text: str) -> None:
        """Remove the support files the now-live config no longer names."""
        for directory, pattern, regex in (
            (self._paths.auth_files, "*.htpasswd", _AUTH_FILE_RE),
            (self._paths.own_certificates, "*.pem", _CERT_FILE_RE),
        ):
            named = set(regex.findall(text))
            for path in directory.glob(pattern):
                if path.name not in named:
                    path.unlink(missing_ok=True)

    def apply(self, text: str) -> float:
        """Install the tested candidate and reload (or start) nginx; seconds until live."""
        if self._candidate_text != text:
            msg = "apply() without a successful test() of the same text"
            raise NginxError(msg)
        self._candidate.replace(self._paths.config)
        fsync_dir(self._paths.config.parent)
        self._candidate_text = None
        generation = config_generation(text)
        # Until the new generation answers, what nginx serves is unknown: a failed reload
        # must not look like "already live" to the next pass.
        self._serving = None
        seconds = self.start(generation) if self.pid is None else self._reload(generation)
        self._serving = generation
        self._prune_support_files(text)
        return seconds

    def start(self, generation: str | None = None) -> float:
        """Start the master on the live config and wait until it serves ``generation``."""
        began = time.monotonic()
        self._reap_orphans()
        # A master that died leaves its socket file behind, and bind() would refuse it.
        with contextlib.suppress(FileNotFoundError):
            self._paths.control_socket.unlink()
        argv = self._argv(self._paths.config)
        try:
            self._proc = subprocess.Popen(
                argv,
                env=master_environment(os.environ),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                process_group=0,  # a Ctrl-C to the daemon must not hit nginx directly
            )
        except OSError as err:
            raise NginxError(f"cannot start {self._settings.nginx}: {err}") from err
        assert self._proc.stderr is not None
        self._stderr_thread = threading.Thread(
            target=_relay_stderr, args=(self._proc.stderr,), name="nginx-stderr", daemon=True
        )
        self._stderr_thread.start()
        self._started_at = time.monotonic()
        self._restart_at = None
        expected = generation or config_generation(self.live_text() or "")
        self._serving = None
        self._wait_generation(expected, began)
        self._serving = expected
        seconds = time.monotonic() - began
        log.info("nginx_started", pid=self._proc.pid, seconds=round(seconds, 4))
        return seconds

    def _reload(self, generation: str | None) -> float:
        assert self._proc is not None
        began = time.monotonic()
        os.kill(self._proc.pid, signal.SIGHUP)
        self._wait_generation(generation, began)
        seconds = time.monotonic() - began
        log.info("nginx_reloaded", pid=self._proc.pid, seconds=round(seconds, 4))
        return seconds

    def _wait_generation(self, generation: str | None, began: float, timeout: float = 15) -> None:
        while time.monotonic() - began < timeout:
            if self._interrupted.is_set():
                msg = "interrupted by shutdown"
                raise NginxError(msg)
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                msg = f"nginx exited with code {code} before serving the new config"
                raise NginxError(msg)
            answer = query_generation(self._paths.control_socket, timeout=0.5)
            if answer is not None and (generation is None or answer == generation):
                return
            time.sleep(0.002)
        msg = f"nginx did not serve generation {generation} within {timeout} s"
        raise NginxError(msg)

    def supervise(self) -> None:
        """Called by the loop: notice a dead master and restart it with backoff."""
        if self._stopping or self._proc is None:
            return
        code = self._proc.poll()
        if code is None:
            if time.monotonic() - self._started_at > 30:
                self._restart_delay = 0.25
            return
        now = time.monotonic()
        if self._restart_at is None:
            log.error("nginx_exited", pid=self._proc.pid, code=code, restart_in=self._restart_delay)
            self._reap_orphans()
            self._restart_at = now + self._restart_delay
            return
        if now < self._restart_at:
            return
        try:
            self.start()
        except NginxError as err:
            self._restart_delay = min(self._restart_delay * 2, 10.0)
            self._restart_at = time.monotonic() + self._restart_delay
            log.error("nginx_start_failed", error=str(err), restart_in=self._restart_delay)

    def restart_due_in(self) -> float | None:
        """Seconds until a pending restart, so the loop can wake for it."""
        if self._restart_at is None:
            return None
        return max(0.0, self._restart_at - time.monotonic())

    def _reap_orphans(self) -> None:
        """Quit and reap processes we adopted: workers of a master that died."""
        tracked = {self._proc.pid} if self._proc is not None else set()
        for pid in children_of(os.getpid()):
            if pid in tracked:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        # Give them a moment to drop the listening sockets before a new master binds them.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            orphans = [p for p in children_of(os.getpid()) if p not in tracked]
            if not orphans:
                return
            for pid in orphans:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)

    def interrupt(self) -> None:
        """Make a pending wait give up (called from the signal handler on shutdown)."""
        self._interrupted.set()

    def stop(self, timeout: float = 7.0) -> None:
        """Graceful quit (SIGQUIT), fast stop after ``timeout``, kill as a last resort."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 1.5), (signal.SIGKILL, 1.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        self._reap_orphans()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1)
        log.info("nginx_stopped", pid=proc.pid, code=proc.returncode)


def _relay_stderr(stream: IO[bytes]) -> None:
    """Re-log every line nginx writes to its error log as an ``nginx_log`` event."""
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        match = _ERROR_LINE_RE.match(line)
        level, message = (match.group(1), match.group(2)) if match else ("error", line)
        log.log(_level_number(_LEVELS.get(level, "error")), "nginx_log", message=message)


def _level_number(name: str) -> int:
    return {"debug": 10, "info": 20, "warning": 30, "error": 40}[name]
