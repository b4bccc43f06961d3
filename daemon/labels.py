"""Labels: one container's ``<prefix>.*`` labels turned into validated, typed values.

Pure step between the Docker source and the routing table. Nothing a label says
reaches a template before it passed the checks here: host names, ports, paths and
booleans each have a strict grammar, so no value can carry nginx syntax (braces,
``;``, quotes, ``#``, ``$``, whitespace) into the config. A bad value raises
``LabelError`` naming the label, the value and the reason; unknown keys are reported
with the closest known key, so a typo never fails silently.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from daemon.errors import LabelError

_HOST_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PATH_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~@:+-]+$")
_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ACME_PATH = "/.well-known/acme-challenge"
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

_HSTS_MAX_AGE_RE = re.compile(r"^max-age=([0-9]{1,10})$")
TLS_MODES = ("acme", "self-signed", "off")
HTTPS_MODES = ("redirect", "both", "only")

KNOWN_KEYS = (
    "host",
    "port",
    "path",
    "path.strip",
    "network",
    "websocket",
    "enable",
    "tls",
    "https",
    "hsts",
)


@dataclass(frozen=True, slots=True)
class Hsts:
    """A ``Strict-Transport-Security`` value, kept as parts so no label text reaches nginx."""

    max_age: int
    include_subdomains: bool = False
    preload: bool = False

    @property
    def header(self) -> str:
        """The header value as browsers read it."""
        parts = [f"max-age={self.max_age}"]
        parts += ["includeSubDomains"] if self.include_subdomains else []
        parts += ["preload"] if self.preload else []
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class RouteLabels:
    """What one container asks for: its host names and how to reach and proxy it."""

    hosts: tuple[str, ...]
    port: int | None = None
    path: str = "/"
    strip: bool = False
    network: str | None = None
    websocket: bool = False
    tls: str | None = None
    https: str | None = None
    # None: the default for the certificate (on for CA-issued ones); "off": never sent
    hsts: Hsts | Literal["off"] | None = None


@dataclass(frozen=True, slots=True)
class UnknownLabel:
    """A ``<prefix>.*`` key dockyard does not know, with the closest known key if any."""

    label: str
    suggestion: str | None


@dataclass(frozen=True, slots=True)
class ParsedLabels:
    """The outcome for one container: its route (None when not exposed) and unknown keys."""

    route: RouteLabels | None
    unknown: tuple[UnknownLabel, ...] = ()
    reason: str | None = None


def parse_host(label: str, value: str) -> tuple[str, ...]:
    """Split a comma-separated host list and check every name (RFC 1123, optional ``*.``)."""
    hosts: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower().removesuffix(".")
        if not name:
            raise LabelError(label, value, "empty host name in the list")
        bare = name.removeprefix("*.")
        if len(name) > 253:
            raise LabelError(label, value, f"host name longer than 253 characters: {name[:40]}...")
        if "*" in bare or not all(_HOST_LABEL_RE.match(part) for part in bare.split(".")):
            raise LabelError(
                label,
                value,
                "host names are letters, digits and '-' in dot-separated parts of 1 to 63 "
                "characters, optionally starting with '*.'",
            )
        if name not in hosts:
            hosts.append(name)
    return tuple(hosts)


def parse_port(label: str, value: str) -> int:
    """A TCP port number from 1 to 65535."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise LabelError(label, value, "a port number from 1 to 65535")
    return int(text)


def parse_path(label: str, value: str) -> str:
    """A URL path prefix: ``/`` then segments of a safe character set, no ``.`` or ``..``."""
    text = value.strip()
    if not text.startswith("/"):
        raise LabelError(label, value, "a path starting with '/'")
    segments = text.strip("/").split("/") if text != "/" else []
    for segment in segments:
        if segment in (".", "..") or not _PATH_SEGMENT_RE.match(segment):
            raise LabelError(
                label,
                value,
                "path segments are letters, digits and . _ ~ @ : + - (no empty, '.' or '..')",
            )
    path = "/" + "/".join(segments)
    if path == _ACME_PATH or path.startswith(_ACME_PATH + "/"):
        raise LabelError(label, value, "reserved for ACME HTTP-01 challenges")
    return path


def parse_bool(label: str, value: str) -> bool:
    """true/false, yes/no, on/off or 1/0, in any case."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LabelError(label, value, "true or false (also yes/no, on/off, 1/0)")


def parse_network(label: str, value: str) -> str:
    """A Docker network name."""
    text = value.strip()
    if not _NETWORK_RE.match(text):
        raise LabelError(label, value, "a Docker network name (letters, digits, _ . -)")
    return text


def parse_choice(label: str, value: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of words, in any case."""
    text = value.strip().lower()
    if text not in choices:
        raise LabelError(label, value, "one of " + ", ".join(choices))
    return text


def parse_hsts(label: str, value: str) -> Hsts | Literal["off"]:
    """``off``, or ``max-age=N`` with optional ``includeSubDomains`` and ``preload``."""
    text = value.strip()
    if text.lower() in ("off", "false", "no", "0"):
        return "off"
    parts = [part.strip() for part in text.split(";")]
    if parts and parts[-1] == "":
        parts.pop()
    match = _HSTS_MAX_AGE_RE.match(parts[0].lower()) if parts else None
    flags = [part.lower() for part in parts[1:]]
    if match is None or any(f not in ("includesubdomains", "preload") for f in flags):
        raise LabelError(
            label,
            value,
            "off, or max-age=SECONDS optionally followed by '; includeSubDomains' and '; preload'",
        )
    if len(set(flags)) != len(flags):
        raise LabelError(label, value, "each HSTS directive at most once")
    return Hsts(int(match.group(1)), "includesubdomains" in flags, "preload" in flags)


def _check_tls_labels(route: RouteLabels, ours: Mapping[str, str], prefix: str) -> None:
    """HTTPS options make no sense on a host served without TLS: say so, do not ignore it."""
    if route.tls != "off":
        return
    for key in ("https", "hsts"):
        if key in ours:
            raise LabelError(f"{prefix}.{key}", ours[key], f"needs TLS, but {prefix}.tls is off")


def parse_labels(labels: Mapping[str, str], prefix: str) -> ParsedLabels:
    """Read the ``<prefix>.*`` labels of one container; raise ``LabelError`` on a bad value."""
    dotted = prefix + "."
    ours = {key[len(dotted) :]: value for key, value in labels.items() if key.startswith(dotted)}
    unknown = tuple(
        UnknownLabel(
            dotted + key,
            next((dotted + m for m in difflib.get_close_matches(key, KNOWN_KEYS, n=1)), None),
        )
        for key in sorted(ours)
        if key not in KNOWN_KEYS
    )

    def label(key: str) -> str:
        return dotted + key

    for key, value in sorted(ours.items()):
        if key in KNOWN_KEYS and _CONTROL_RE.search(value):
            raise LabelError(
                label(key), value, "control characters (line breaks, tabs) are not allowed"
            )

    if "enable" in ours and not parse_bool(label("enable"), ours["enable"]):
        return ParsedLabels(None, unknown, reason=f"{label('enable')} is false")
    if "host" not in ours:
        reason = f"no {label('host')} label" if ours else None
        return ParsedLabels(None, unknown, reason=reason)

    route = RouteLabels(
        hosts=parse_host(label("host"), ours["host"]),
        port=parse_port(label("port"), ours["port"]) if "port" in ours else None,
        path=parse_path(label("path"), ours["path"]) if "path" in ours else "/",
        strip=parse_bool(label("path.strip"), ours["path.strip"])
        if "path.strip" in ours
        else False,
        network=parse_network(label("network"), ours["network"]) if "network" in ours else None,
        websocket=parse_bool(label("websocket"), ours["websocket"])
        if "websocket" in ours
        else False,
        tls=parse_choice(label("tls"), ours["tls"], TLS_MODES) if "tls" in ours else None,
        https=parse_choice(label("https"), ours["https"], HTTPS_MODES) if "https" in ours else None,
        hsts=parse_hsts(label("hsts"), ours["hsts"]) if "hsts" in ours else None,
    )
    _check_tls_labels(route, ours, prefix)
    return ParsedLabels(route, unknown)
