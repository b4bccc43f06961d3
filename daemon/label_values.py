"""Label values: the grammar of every value a label may carry, checked before use.

Pure helpers of the ``labels`` step (and of the Traefik dialect, which reads the same
kinds of values). Each ``parse_*`` function takes the label's full name and its raw
value and returns a typed, normalised value, or raises ``LabelError`` naming the label,
the value and what was expected. Grammars are strict on purpose: whatever passes here
either cannot carry nginx syntax (names, numbers, addresses) or is printed by the
renderer inside an escaped, quoted string (header values), so no label can add a
directive to the config.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from daemon.errors import LabelError

# Every grammar is anchored with \A and \Z, never ^ and $: "$" also matches before a final
# line break, so "name\n" would pass a check of its characters.
_HOST_LABEL_RE = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_PATH_SEGMENT_RE = re.compile(r"\A[A-Za-z0-9._~@:+-]+\Z")
_NETWORK_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Names of named routes (dockyard.route.<name>.*), and of the Traefik segments that become them.
ROUTE_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z")
_ACME_PATH = "/.well-known/acme-challenge"
_OWN_PATH = "/.dockyard"
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_HSTS_MAX_AGE_RE = re.compile(r"\Amax-age=([0-9]{1,10})\Z")
# RFC 9110 tokens, narrowed to what real header names use.
_HEADER_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_HEADER_VALUE_RE = re.compile(r"\A[\x20-\x7e]{0,4096}\Z")
# nginx's longest config word (NGX_CONF_BUFFER is 4096), with room for the directive's line
_MAX_NGINX_WORD = 4000
# A path reaches nginx inside a rewrite pattern where each punctuation character becomes
# three ([.]); URLs gain at most a few braces. Both stay well inside one nginx word.
_MAX_PATH = 1000
_MAX_URL = 2000
_SIZE_RE = re.compile(r"\A([0-9]{1,10})([kmg]?)\Z")
_DURATION_RE = re.compile(r"\A([0-9]{1,9})(ms|s|m|h|d)?\Z")
_RATE_RE = re.compile(r"\A([0-9]{1,6})r/(s|m)\Z")
_USER_RE = re.compile(r"\A[A-Za-z0-9._@+-]{1,64}\Z")
_HASH_RES = (
    re.compile(r"\A\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}\Z"),  # bcrypt
    re.compile(r"\A\$apr1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}\Z"),  # Apache MD5
    re.compile(r"\A\{SHA\}[A-Za-z0-9+/]{27}=\Z"),  # SHA-1, base64
)
# Characters of a URL path or query we print into nginx without quotes (no ';', quotes,
# braces, '$', '#', whitespace or backslash).
_URL_RE = re.compile(
    r"\A(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~!&()*+,=:@%/?-]*)?\Z"
)
# Variables a redirect target may use; printed as ${name} so nothing can extend them.
REDIRECT_VARIABLES = ("request_uri", "uri", "args", "is_args", "host", "scheme")
_REDIRECT_LITERAL_RE = re.compile(r"\A[A-Za-z0-9._~!&()*+,=:@%/?\[\]-]*\Z")
_REDIRECT_RE = re.compile(r"\A(https?://|\$\{?scheme\}?://)")

# int() refuses text of thousands of digits (Python's conversion limit, a ValueError); no
# number a label takes comes near this many digits, so longer is simply out of range.
_MAX_DIGITS = 30

HEADERS_WE_SET = frozenset({"connection", "upgrade", "content-length", "transfer-encoding"})


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
class Url:
    """An ``http(s)://host[:port][/path]`` URL in parts; every part is safe to print bare."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    path: str

    @property
    def authority(self) -> str:
        """``host:port`` as nginx's ``proxy_pass`` wants it."""
        return f"{self.host}:{self.port}"


def check_plain_text(label: str, value: str) -> None:
    """Refuse control characters (line breaks, tabs) anywhere in a label value."""
    if _CONTROL_RE.search(value):
        raise LabelError(label, value, "control characters (line breaks, tabs) are not allowed")


def parse_host(label: str, value: str) -> tuple[str, ...]:
    """Split a comma-separated host list and check every name (RFC 1123, optional ``*.``)."""
    hosts: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower().removesuffix(".")
        if not name:
            raise LabelError(label, value, "empty host name in the list")
        check_host_name(label, value, name)
        if name not in hosts:
            hosts.append(name)
    return tuple(hosts)


def check_host_name(label: str, value: str, name: str) -> None:
    """Refuse ``name`` unless it is an RFC 1123 host name, optionally starting with ``*.``."""
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


def parse_port(label: str, value: str) -> int:
    """A TCP port number from 1 to 65535."""
    text = value.strip()
    number = text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS
    if not number or not 1 <= int(text) <= 65535:
        raise LabelError(label, value, "a port number from 1 to 65535")
    return int(text)


def parse_path(label: str, value: str) -> str:
    """A URL path prefix: ``/`` then segments of a safe character set, no ``.`` or ``..``."""
    text = value.strip()
    if not text.startswith("/"):
        raise LabelError(label, value, "a path starting with '/'")
    if len(text) > _MAX_PATH:
        raise LabelError(label, value, f"at most {_MAX_PATH} characters")
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
    if path == _OWN_PATH or path.startswith(_OWN_PATH + "/"):
        raise LabelError(label, value, "reserved for dockyard's forward-auth subrequests")
    return path


def parse_paths(label: str, value: str) -> tuple[str, ...]:
    """One or more comma-separated path prefixes (each as ``parse_path``), duplicates dropped."""
    paths: list[str] = []
    for raw in value.split(","):
        try:
            path = parse_path(label, raw)
        except LabelError as err:
            raise LabelError(label, value, err.reason) from None
        if path not in paths:
            paths.append(path)
    return tuple(paths)


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


def parse_int(label: str, value: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``."""
    text = value.strip()
    sign = -1 if text.startswith("-") else 1
    digits = text.removeprefix("-")
    if (
        not digits.isascii()
        or not digits.isdigit()
        or len(digits) > _MAX_DIGITS
        or not low <= sign * int(digits) <= high
    ):
        raise LabelError(label, value, f"a whole number from {low} to {high}")
    return sign * int(digits)


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


def parse_header_name(label: str, name: str, *, managed: frozenset[str] = HEADERS_WE_SET) -> str:
    """An HTTP header name of letters, digits, ``-`` and ``_``; not one dockyard manages."""
    if not _HEADER_NAME_RE.match(name):
        raise LabelError(
            label, name, "a header name of letters, digits, '-' and '_' (at most 64 characters)"
        )
    if name.lower() in managed:
        raise LabelError(label, name, f"{name} is managed by dockyard and cannot be set by a label")
    return name


def parse_header_value(label: str, value: str) -> str:
    """Printable ASCII up to 4096 characters; printed escaped inside double quotes.

    nginx refuses a config word longer than its 4 KiB read buffer, so the value must also
    fit once escaped (``"`` and ``\\`` double, each ``$`` becomes an 18-character variable).
    """
    if not _HEADER_VALUE_RE.match(value):
        raise LabelError(
            label, value, "printable ASCII characters only (no line breaks), at most 4096"
        )
    text = value.strip()
    escaped = len(text) + text.count('"') + text.count("\\") + 17 * text.count("$") + 2
    if escaped > _MAX_NGINX_WORD:
        raise LabelError(
            label, value, "too long for nginx once its quotes, backslashes and $ are escaped"
        )
    return text


def parse_cidrs(label: str, value: str) -> tuple[str, ...]:
    """Comma-separated IPv4/IPv6 networks or addresses, normalised (10.1.2.3/8 is 10.0.0.0/8)."""
    networks: list[str] = []
    for raw in value.split(","):
        text = raw.strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise LabelError(
                label, value, f"{text!r} is not an IPv4/IPv6 address or CIDR range"
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    return tuple(networks)


def parse_users(label: str, value: str) -> tuple[tuple[str, str], ...]:
    """``user:hash`` pairs, comma-separated; hashes in htpasswd form (bcrypt, apr1, {SHA})."""
    users: dict[str, str] = {}
    for raw in value.split(","):
        user, colon, digest = raw.strip().partition(":")
        if not colon or not _USER_RE.match(user):
            raise LabelError(
                label, value, "entries are user:hash, users of letters, digits and . _ @ + -"
            )
        if not any(pattern.match(digest) for pattern in _HASH_RES):
            hint = " (in a compose file, write each $ as $$)" if "$$" in digest else ""
            raise LabelError(
                label,
                value,
                f"the hash of {user} is not bcrypt ($2y$), apr1 ($apr1$) or {{SHA}} "
                f"as made by htpasswd{hint}",
            )
        if user in users:
            raise LabelError(label, value, f"user {user} appears twice")
        users[user] = digest
    return tuple(users.items())


def parse_size(label: str, value: str) -> str:
    """A body size as nginx writes it: a number with optional k, m or g; 0 means no limit."""
    text = value.strip().lower()
    text = text.removesuffix("b") if text.endswith(("kb", "mb", "gb")) else text
    if not _SIZE_RE.match(text):
        raise LabelError(label, value, "a size such as 500m, 10k, 2g or 0 (no limit)")
    return text


def parse_duration(label: str, value: str) -> str:
    """A time as nginx writes it: a number with one unit of ms, s, m, h or d (``30s``, ``7d``)."""
    text = value.strip()
    match = _DURATION_RE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise LabelError(label, value, "a positive time with one unit: ms, s, m, h or d (30s, 7d)")
    return text if match.group(2) else text + "s"


def parse_rate(label: str, value: str) -> str:
    """A request rate such as ``10r/s`` or ``300r/m``."""
    text = value.strip().lower()
    match = _RATE_RE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise LabelError(label, value, "a rate such as 10r/s or 300r/m")
    return text


def parse_url(label: str, value: str) -> Url:
    """An ``http``/``https`` URL whose parts contain no nginx syntax."""
    text = value.strip()
    match = _URL_RE.match(text) if len(text) <= _MAX_URL else None
    if match is None:
        raise LabelError(
            label,
            value,
            f"an http:// or https:// URL of at most {_MAX_URL} characters: a host, an "
            "optional port and a path (no spaces, quotes, ';', '#', '$' or braces)",
        )
    host = match.group("host").lower()
    if not host.startswith("["):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            check_host_name(label, value, host)
    scheme: Literal["http", "https"] = "https" if match.group("scheme") == "https" else "http"
    default_port = 443 if scheme == "https" else 80
    port = parse_port(label, match.group("port")) if match.group("port") else default_port
    return Url(scheme, host, port, match.group("path") or "/")


def parse_redirect_target(label: str, value: str) -> str:
    """An absolute redirect URL; ``$request_uri`` and a few other variables may appear.

    Returned in nginx string form with each variable braced (``${request_uri}``), so a
    variable can never run into following text; everything else is a safe literal.
    """
    text = value.strip()
    if len(text) > _MAX_URL:
        raise LabelError(label, value, f"at most {_MAX_URL} characters")
    if not _REDIRECT_RE.match(text):
        raise LabelError(label, value, "a URL starting with http:// or https://, or www, or apex")
    pieces = re.split(r"(\$\{?[a-z_]+\}?)", text)
    result = []
    for piece in pieces:
        if piece.startswith("$"):
            name = piece.strip("${}")
            if name not in REDIRECT_VARIABLES or piece.count("{") != piece.count("}"):
                raise LabelError(
                    label,
                    value,
                    "only these variables may appear: "
                    + ", ".join("$" + v for v in REDIRECT_VARIABLES),
                )
            result.append("${" + name + "}")
        elif not _REDIRECT_LITERAL_RE.match(piece):
            raise LabelError(
                label,
                value,
                "URL characters only (no spaces, quotes, ';', '#', braces or backslashes)",
            )
        else:
            result.append(piece)
    return "".join(result)


def closest_key(key: str, known: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The known key a typo most likely meant, or None when nothing is close.

    difflib finds the candidates; the fewest edits wins (a swap of two neighbours is one
    edit), and of equals the one with the same letters: swapped letters are the commonest
    slip (``hots`` is ``host``, not ``hsts``).
    """
    candidates = difflib.get_close_matches(key, known, n=5, cutoff=cutoff)
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda c: (_edits(key, c), sorted(c) != sorted(key), candidates.index(c)),
    )


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, changes and swaps."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
