"""Settings: the environment (and ``--flags``) turned into one frozen ``Settings``.

First step of every command. Parsing is pure (a mapping in, a value or a
``SettingsError`` out) so a bad variable stops startup with one clear line before
anything touches Docker, nginx or the disk.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from acme_store.records import KEY_TYPES
from daemon.errors import SettingsError

LogFormat = Literal["json", "console"]

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Paths reach nginx directives (root, pid, temp paths) where `$` starts a variable and
# quotes, braces, `;` and whitespace change the syntax: refuse them outright.
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~+@:/-]*$")
# Contact addresses go to the CA, never into nginx config; still, keep them plain.
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon is told from outside, validated."""

    http_port: int = 80
    https_port: int = 443
    state_dir: Path = Path("/var/lib/dockyard")
    label_prefix: str = "dockyard"
    network: str | None = None
    log_format: LogFormat = "json"
    access_log: bool = True
    nginx: str = "nginx"
    templates: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    debounce_min: float = 0.02
    debounce_max: float = 0.5
    reload_interval: float = 1.0
    worker_processes: str = "auto"
    worker_shutdown_timeout: str = "1h"
    container_id: str | None = None
    acme_email: str | None = None
    acme_directory: str = LETSENCRYPT
    acme_store: Path | None = None
    acme_key_type: str = "ec256"
    acme_profile: str | None = None
    # CAs that backends with `scheme: https` (and HTTPS forward-auth servers) are checked against
    backend_ca: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    # watched directories; None: below the state dir (``routes_path``, ``certs_path``)
    routes_dir: Path | None = None
    certs_dir: Path | None = None

    @property
    def acme_enabled(self) -> bool:
        """ACME is on when a contact address is set (``DOCKYARD_ACME_EMAIL``)."""
        return self.acme_email is not None

    @property
    def store_path(self) -> Path:
        """The ACME store: ``DOCKYARD_ACME_STORE``, else ``acme.json`` in the state dir."""
        return self.acme_store or self.state_dir / "acme.json"

    @property
    def routes_path(self) -> Path:
        """Static route files: ``DOCKYARD_ROUTES_DIR``, else ``routes.d`` in the state dir."""
        return self.routes_dir or self.state_dir / "routes.d"

    @property
    def certs_path(self) -> Path:
        """Your own certificate pairs: ``DOCKYARD_CERTS_DIR``, else ``certs.d`` in the state dir."""
        return self.certs_dir or self.state_dir / "certs.d"


def _port(variable: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SettingsError(variable, value, "a TCP port from 1 to 65535")
    return int(value)


def _path(variable: str, value: str) -> Path:
    if not _PATH_RE.match(value):
        raise SettingsError(
            variable, value, "an absolute path of letters, digits and . _ ~ + @ : / -"
        )
    return Path(value)


def _boolean(variable: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise SettingsError(variable, value, "on or off (also true/false, yes/no, 1/0)") from None


def _milliseconds(variable: str, value: str) -> float:
    if not value.isdigit() or int(value) > 60_000:
        raise SettingsError(variable, value, "whole milliseconds from 0 to 60000")
    return int(value) / 1000


def _networks(variable: str, value: str) -> tuple[str, ...]:
    ranges = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            ranges.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                variable, value, "comma-separated IPv4/IPv6 addresses or CIDR ranges"
            ) from None
    return tuple(ranges)


def load_settings(env: Mapping[str, str]) -> Settings:  # noqa: PLR0912, PLR0915 - one branch a variable
    """Read ``DOCKYARD_*`` variables from ``env``; unset or empty means the default."""
    defaults = Settings()

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    http_port = _port("DOCKYARD_HTTP_PORT", v) if (v := get("DOCKYARD_HTTP_PORT")) else 80
    https_port = _port("DOCKYARD_HTTPS_PORT", v) if (v := get("DOCKYARD_HTTPS_PORT")) else 443
    if http_port == https_port:
        raise SettingsError(
            "DOCKYARD_HTTPS_PORT", str(https_port), "a port other than DOCKYARD_HTTP_PORT"
        )

    state_dir = defaults.state_dir
    if v := get("DOCKYARD_STATE_DIR"):
        state_dir = _path("DOCKYARD_STATE_DIR", v)

    prefix = get("DOCKYARD_LABEL_PREFIX") or defaults.label_prefix
    if not _PREFIX_RE.match(prefix):
        raise SettingsError(
            "DOCKYARD_LABEL_PREFIX",
            prefix,
            "lower-case letters, digits, '-' and '_' in dot-separated parts",
        )

    network = get("DOCKYARD_NETWORK")
    if network is not None and not _NETWORK_RE.match(network):
        raise SettingsError("DOCKYARD_NETWORK", network, "a Docker network name")

    log_format = (get("DOCKYARD_LOG_FORMAT") or "json").lower()
    if log_format not in ("json", "console"):
        raise SettingsError("DOCKYARD_LOG_FORMAT", log_format, "json or console")

    access_log = defaults.access_log
    if v := get("DOCKYARD_ACCESS_LOG"):
        access_log = _boolean("DOCKYARD_ACCESS_LOG", v)

    nginx = get("DOCKYARD_NGINX") or defaults.nginx
    if any(c.isspace() for c in nginx):
        raise SettingsError("DOCKYARD_NGINX", nginx, "an nginx binary name or path, no spaces")

    templates = _path("DOCKYARD_TEMPLATES", v) if (v := get("DOCKYARD_TEMPLATES")) else None
    routes_dir = _path("DOCKYARD_ROUTES_DIR", v) if (v := get("DOCKYARD_ROUTES_DIR")) else None
    certs_dir = _path("DOCKYARD_CERTS_DIR", v) if (v := get("DOCKYARD_CERTS_DIR")) else None
    v = get("DOCKYARD_BACKEND_CA")
    backend_ca = _path("DOCKYARD_BACKEND_CA", v) if v else defaults.backend_ca

    trusted = _networks("DOCKYARD_TRUSTED_PROXIES", get("DOCKYARD_TRUSTED_PROXIES") or "")

    debounce_min = defaults.debounce_min
    if v := get("DOCKYARD_DEBOUNCE_MIN_MS"):
        debounce_min = _milliseconds("DOCKYARD_DEBOUNCE_MIN_MS", v)
    debounce_max = defaults.debounce_max
    if v := get("DOCKYARD_DEBOUNCE_MAX_MS"):
        debounce_max = _milliseconds("DOCKYARD_DEBOUNCE_MAX_MS", v)
    if debounce_max < debounce_min:
        raise SettingsError(
            "DOCKYARD_DEBOUNCE_MAX_MS",
            str(int(debounce_max * 1000)),
            "at least DOCKYARD_DEBOUNCE_MIN_MS",
        )

    reload_interval = defaults.reload_interval
    if v := get("DOCKYARD_RELOAD_INTERVAL_MS"):
        reload_interval = _milliseconds("DOCKYARD_RELOAD_INTERVAL_MS", v)

    workers = get("DOCKYARD_WORKER_PROCESSES") or defaults.worker_processes
    if workers != "auto" and not (workers.isdigit() and 1 <= int(workers) <= 256):
        raise SettingsError("DOCKYARD_WORKER_PROCESSES", workers, "auto or 1 to 256")

    shutdown = get("DOCKYARD_WORKER_SHUTDOWN_TIMEOUT") or defaults.worker_shutdown_timeout
    if not re.fullmatch(r"[0-9]{1,6}(ms|s|m|h|d)?", shutdown):
        raise SettingsError(
            "DOCKYARD_WORKER_SHUTDOWN_TIMEOUT", shutdown, "an nginx time such as 30s, 10m or 1h"
        )

    container_id = get("DOCKYARD_CONTAINER_ID")
    if container_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", container_id):
        raise SettingsError("DOCKYARD_CONTAINER_ID", container_id, "a container id or name")

    acme = _acme_settings(get)

    return Settings(
        http_port=http_port,
        https_port=https_port,
        state_dir=state_dir,
        label_prefix=prefix,
        network=network,
        log_format="console" if log_format == "console" else "json",
        access_log=access_log,
        nginx=nginx,
        templates=templates,
        routes_dir=routes_dir,
        certs_dir=certs_dir,
        backend_ca=backend_ca,
        trusted_proxies=trusted,
        debounce_min=debounce_min,
        debounce_max=debounce_max,
        reload_interval=reload_interval,
        worker_processes=workers,
        worker_shutdown_timeout=shutdown,
        container_id=container_id,
        **acme,
    )


def _acme_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The ``DOCKYARD_ACME_*`` variables, as keyword arguments for ``Settings``."""
    email = get("DOCKYARD_ACME_EMAIL")
    if email is not None and not _EMAIL_RE.match(email):
        raise SettingsError(
            "DOCKYARD_ACME_EMAIL", email, "an email address such as ops@example.org"
        )
    directory = get("DOCKYARD_ACME_DIRECTORY") or LETSENCRYPT
    if directory.lower() == "staging":
        directory = LETSENCRYPT_STAGING
    elif directory.lower() == "production":
        directory = LETSENCRYPT
    elif not _URL_RE.match(directory):
        raise SettingsError(
            "DOCKYARD_ACME_DIRECTORY",
            directory,
            "an ACME directory URL (https://...), or staging / production for Let's Encrypt",
        )
    store = _path("DOCKYARD_ACME_STORE", v) if (v := get("DOCKYARD_ACME_STORE")) else None
    key_type = (get("DOCKYARD_ACME_KEY_TYPE") or "ec256").lower()
    if key_type not in KEY_TYPES:
        raise SettingsError("DOCKYARD_ACME_KEY_TYPE", key_type, ", ".join(KEY_TYPES))
    profile = get("DOCKYARD_ACME_PROFILE")
    if profile is not None and not _PROFILE_RE.match(profile):
        raise SettingsError(
            "DOCKYARD_ACME_PROFILE", profile, "a profile name the CA offers, e.g. tlsserver"
        )
    return {
        "acme_email": email,
        "acme_directory": directory,
        "acme_store": store,
        "acme_key_type": key_type,
        "acme_profile": profile,
    }
