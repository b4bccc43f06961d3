"""Traefik v1 labels: a container's ``traefik.*`` labels read as Traefik 1.7 would read them.

A pure step in front of ``labels``, for containers with ``traefik.*`` labels and no
``<prefix>.*`` ones. ``translate_traefik`` turns one container's Traefik labels into the
equivalent native labels (``<prefix>.*`` for the default frontend,
``<prefix>.route.<segment>.*`` for segment labels), remembering which Traefik label each
came from; ``parse_traefik_labels`` runs the native parser over them, so every value still
passes the native grammars before it can reach nginx, and errors name the Traefik label.

Traefik ignored unknown labels and bad values silently; here an unknown key comes back
with the closest Traefik key, a bad value raises ``LabelError``, and so does a key dockyard
cannot honour when dropping it would change who gets in or what is served (regex
matchers, digest auth, trusted X-Forwarded-For). Keys that only tune Traefik's own
machinery (health checks, weights, circuit breakers) come back as ignored, with the
reason. The semantics follow Traefik 1.7's docker provider, rule parser and headers
middleware; docs/migrating-from-traefik-v1.md lists every key and each choice made.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from daemon.errors import LabelError
from daemon.label_values import (
    ROUTE_NAME_RE,
    check_plain_text,
    closest_key,
    parse_bool,
    parse_choice,
    parse_int,
    parse_port,
    parse_url,
)
from daemon.labels import IgnoredLabel, LabelSource, ParsedLabels, UnknownLabel, parse_labels

__all__ = [
    "TRAEFIK_PREFIX",
    "Translation",
    "parse_traefik_labels",
    "translate_traefik",
    "uses_traefik_labels",
]

TRAEFIK_PREFIX = "traefik"
_DOTTED = TRAEFIK_PREFIX + "."
_SEGMENT_PROPERTIES = ("port", "portIndex", "weight", "protocol", "backend")
# Traefik's segment labels: traefik.<segment>.<property>, the segment name matched lazily.
_SEGMENT_RE = re.compile(
    rf"^(?P<segment>.+?)\.(?P<property>{'|'.join(_SEGMENT_PROPERTIES)}|frontend\..+)$"
)
_COMPOSE_PROJECT = "com.docker.compose.project"
_COMPOSE_SERVICE = "com.docker.compose.service"
_H = "frontend.headers."

# Keys read and translated (after ``traefik.``).
_TRANSLATED = frozenset(
    {
        "enable",
        "port",
        "protocol",
        "backend",
        "domain",
        "docker.network",
        "backend.loadbalancer.method",
        "backend.loadbalancer.sticky",
        "backend.loadbalancer.stickiness",
        "backend.buffering.maxRequestBodyBytes",
        "frontend.rule",
        "frontend.entryPoints",
        "frontend.passHostHeader",
        "frontend.priority",
        "frontend.redirect.entryPoint",
        "frontend.redirect.permanent",
        "frontend.whiteList.sourceRange",
        "frontend.whiteList.useXForwardedFor",
        "frontend.whitelistSourceRange",
        "frontend.auth.basic",
        "frontend.auth.basic.users",
        "frontend.auth.basic.removeHeader",
        "frontend.auth.forward.address",
        "frontend.auth.forward.authResponseHeaders",
        "frontend.auth.forward.trustForwardHeader",
        "frontend.passTLSCert",
        "frontend.rateLimit.extractorFunc",
        *(
            _H + name
            for name in (
                "customRequestHeaders",
                "customResponseHeaders",
                "allowedHosts",
                "SSLForceHost",
                "SSLRedirect",
                "SSLTemporaryRedirect",
                "SSLHost",
                "STSSeconds",
                "STSIncludeSubdomains",
                "STSPreload",
                "forceSTSHeader",
                "frameDeny",
                "customFrameOptionsValue",
                "contentTypeNosniff",
                "browserXSSFilter",
                "customBrowserXSSValue",
                "contentSecurityPolicy",
                "publicKey",
                "referrerPolicy",
                "isDevelopment",
            )
        ),
    }
)
_FORWARD_AUTH_TLS = "the auth server's TLS files live inside Traefik's container; dockyard "
_FORWARD_AUTH_TLS += "verifies an https:// auth server against DOCKYARD_BACKEND_CA"
# Keys whose feature dockyard does not have, and dropping which would change who gets in
# or what is served: a container using them is refused, with the reason.
_REFUSED = {
    "frontend.auth.basic.usersFile": "names a file inside Traefik's container; put the users "
    "in traefik.frontend.auth.basic.users",
    "frontend.auth.digest.users": "nginx has no digest authentication; use basic auth "
    "(traefik.frontend.auth.basic.users)",
    "frontend.auth.digest.usersFile": "nginx has no digest authentication",
    "frontend.auth.digest.removeHeader": "nginx has no digest authentication",
    "frontend.auth.headerField": "passing the authenticated user to the app in a header is "
    "not translated",
    "frontend.auth.forward.tls.ca": _FORWARD_AUTH_TLS,
    "frontend.auth.forward.tls.caOptional": _FORWARD_AUTH_TLS,
    "frontend.auth.forward.tls.cert": _FORWARD_AUTH_TLS,
    "frontend.auth.forward.tls.key": _FORWARD_AUTH_TLS,
    "frontend.auth.forward.tls.insecureSkipVerify": _FORWARD_AUTH_TLS,
    "frontend.redirect.regex": "regular-expression redirects are not translated",
    "frontend.redirect.replacement": "regular-expression redirects are not translated",
    _H + "SSLProxyHeaders": "dockyard terminates TLS itself: plain-HTTP requests are redirected "
    "whatever their headers say",
}
# Keys that only tune Traefik's own machinery: read, reported once, without effect.
_IGNORED = {
    "weight": "replicas share requests equally (traefik.backend.loadbalancer.method chooses how)",
    "tags": "constraints are set in traefik.toml, which dockyard does not read",
    "portIndex": "not used by Traefik's Docker provider either",
    "portName": "not used by Traefik's Docker provider either",
    "backend.circuitbreaker": "there is no circuit breaker; nginx tries the next replica on "
    "connection errors",
    "backend.circuitbreaker.expression": "there is no circuit breaker; nginx tries the next "
    "replica on connection errors",
    "backend.loadbalancer.stickiness.cookieName": "stickiness is by client address (ip_hash), "
    "without a cookie",
    "backend.loadbalancer.swarm": "Swarm mode is not supported",
    "backend.responseForwarding.flushInterval": "nginx flushes as it buffers",
    _H + "hostsProxyHeaders": "the host is the one the client asked for",
    **{
        f"backend.healthcheck.{name}": "dockyard follows the container's Docker HEALTHCHECK: "
        "starting and unhealthy containers get no traffic"
        for name in ("scheme", "path", "port", "interval", "hostname", "headers")
    },
    **{
        f"backend.maxconn.{name}": "there is no per-backend connection limit"
        for name in ("amount", "extractorfunc")
    },
    **{
        f"backend.buffering.{name}": "nginx buffers by itself; only maxRequestBodyBytes is "
        "translated"
        for name in (
            "memRequestBodyBytes",
            "maxResponseBodyBytes",
            "memResponseBodyBytes",
            "retryExpression",
        )
    },
}
_CERT_FIELDS = "(commonName|country|domainComponent|locality|organization|province|serialNumber)"
# Families of keys with a name inside: (pattern, what happens, the reason for ignored ones).
_RATE_SET_RE = re.compile(
    r"^frontend\.rateLimit\.rateSet\.(?P<name>[^ .]+)\.(?P<field>period|average|burst)$"
)
_ERRORS_RE = re.compile(r"^frontend\.errors\.[^ .]+\.(backend|query|status)$")
_CLIENT_CERT_RE = re.compile(
    rf"^frontend\.passTLSClientCert\.(pem|infos\.(notAfter|notBefore|sans)"
    rf"|infos\.(subject|issuer)\.{_CERT_FIELDS})$"
)
_ERRORS_REASON = "error pages from another backend are not supported; the app's own are served"
_SUGGESTIONS = sorted(
    {
        *_TRANSLATED,
        *_REFUSED,
        *_IGNORED,
        "frontend.errors.<name>.status",
        "frontend.errors.<name>.backend",
        "frontend.errors.<name>.query",
        "frontend.rateLimit.rateSet.<name>.period",
        "frontend.rateLimit.rateSet.<name>.average",
        "frontend.rateLimit.rateSet.<name>.burst",
        "frontend.passTLSClientCert.pem",
        "<segment>.frontend.rule",
        "<segment>.port",
    }
)
_SEGMENT_SUGGESTIONS = sorted(
    {*_SEGMENT_PROPERTIES, *(key for key in _SUGGESTIONS if key.startswith("frontend."))}
)

# Rule functions (Traefik's rules.go): path matchers as (exact, strip); modifiers by key.
_PATH_MATCHERS = {
    "Path": (True, False),
    "PathStrip": (True, True),
    "PathPrefix": (False, False),
    "PathPrefixStrip": (False, True),
}
_MODIFIERS = {"AddPrefix": "path.add_prefix", "ReplacePath": "path.replace"}
_BY_REQUEST = "dockyard chooses a backend by host name and path only"
_REGEX = "regular-expression paths are not translated; dockyard matches literal paths"
_REFUSED_MATCHERS = {
    "Method": _BY_REQUEST,
    "Headers": _BY_REQUEST,
    "HeadersRegexp": _BY_REQUEST,
    "Query": _BY_REQUEST,
    "PathStripRegex": _REGEX,
    "PathPrefixStripRegex": _REGEX,
    "ReplacePathRegex": _REGEX,
}
_ENTRY_POINTS = ("http", "https")
_LB_METHODS = {"wrr": "round_robin", "drr": "least_conn"}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_DURATIONS_RE = re.compile(f"(?:{_DURATION_RE.pattern})+")
# far more than any real period (1h30m15s), far less than Python's digit limit
_MAX_PERIOD = 100
_DURATION_UNITS = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
}


@dataclass(frozen=True, slots=True)
class Translation:
    """One container's Traefik labels as native labels, or why it is not exposed.

    ``origins`` maps each native label to the Traefik label and value it came from, so an
    error found by the native parser names what the user wrote.
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    origins: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    unknown: tuple[UnknownLabel, ...] = ()
    ignored: tuple[IgnoredLabel, ...] = ()
    reason: str | None = None


def uses_traefik_labels(labels: Mapping[str, str], prefix: str) -> bool:
    """Whether a container is read in the Traefik dialect: ``traefik.*`` and no ``<prefix>.*``."""
    if prefix == TRAEFIK_PREFIX:
        return False
    dotted = prefix + "."
    return any(key.startswith(_DOTTED) for key in labels) and not any(
        key.startswith(dotted) for key in labels
    )


def parse_traefik_labels(
    labels: Mapping[str, str], prefix: str, container_name: str = ""
) -> ParsedLabels:
    """Read a container's Traefik labels into routes; ``LabelError`` names the Traefik label."""
    translation = translate_traefik(labels, prefix, container_name=container_name)
    if translation.reason is not None:
        return ParsedLabels(
            unknown=translation.unknown, reason=translation.reason, ignored=translation.ignored
        )
    try:
        parsed = parse_labels(translation.labels, prefix)
    except LabelError as err:
        # a key the translation left at its default (a path) came from the route's rule
        route_host = err.label.rsplit(".", 1)[0] + ".host"
        origin = translation.origins.get(err.label) or translation.origins.get(route_host)
        label, value = origin or (err.label, err.value)
        reason = err.reason
        for native in sorted(translation.origins, key=len, reverse=True):
            reason = reason.replace(native, translation.origins[native][0])
        raise LabelError(label, value, reason) from None
    return dataclasses.replace(
        parsed, unknown=translation.unknown + parsed.unknown, ignored=translation.ignored
    )


def translate_traefik(
    labels: Mapping[str, str], prefix: str, *, container_name: str = ""
) -> Translation:
    """The native labels equivalent to a container's ``traefik.*`` labels.

    Raises ``LabelError`` naming the Traefik label for a bad value or a feature that cannot
    be translated. ``container_name`` is used only for Traefik's default rule
    (``Host:<name>.<traefik.domain>``).
    """
    classic, segments, unknown = _split(labels)
    if "enable" in classic and not _parse_bool(*classic["enable"]):
        return Translation(unknown=unknown, reason="traefik.enable is false")
    # Segment labels take the plain ones as defaults; with segments, the plain labels make
    # no frontend of their own (Traefik 1.7's ExtractTraefikLabels).
    fronts = {"": classic} if not segments else {n: {**classic, **s} for n, s in segments.items()}
    routes: dict[str, dict[str, _Native]] = {}
    ignored: dict[str, IgnoredLabel] = {}
    for name, values in sorted(fronts.items()):
        front = _Frontend(name, values)
        rule = _frontend_rule(front, labels, container_name)
        if rule is None:
            return Translation(unknown=unknown, reason=_no_rule_reason(name, labels))
        for route_name, keys in _translate(front, rule):
            if route_name in routes:
                raise front.refuse(rule.source, f"two frontends would be named {route_name}")
            routes[route_name] = keys
        ignored.update((note.label, note) for note in front.ignored)
    native: dict[str, str] = {}
    origins: dict[str, tuple[str, str]] = {}
    for route_name, keys in routes.items():
        where = f"{prefix}." if not route_name else f"{prefix}.route.{route_name}."
        for key, (value, origin) in keys.items():
            native[where + key] = value
            if origin is not None:
                origins[where + key] = origin
    return Translation(native, origins, unknown, tuple(ignored[k] for k in sorted(ignored)))


# -- reading the labels ------------------------------------------------------------------

_Values = dict[str, tuple[str, str]]  # key after ``traefik.`` -> (full label, value)


def _split(
    labels: Mapping[str, str],
) -> tuple[_Values, dict[str, _Values], tuple[UnknownLabel, ...]]:
    """Plain labels, segment labels by segment, and the unknown keys with suggestions."""
    classic: _Values = {}
    segments: dict[str, _Values] = {}
    unknown: list[UnknownLabel] = []
    for full, value in sorted(labels.items()):
        if not full.startswith(_DOTTED):
            continue
        key = full[len(_DOTTED) :]
        match = None if key.startswith(("frontend.", "backend.")) else _SEGMENT_RE.match(key)
        if match is None:
            if not _known(key):
                unknown.append(UnknownLabel(full, _suggest(key, _SUGGESTIONS, "")))
                continue
            target = classic
        else:
            segment, key = match.group("segment"), match.group("property")
            if not _known(key):
                suggestion = _suggest(key, _SEGMENT_SUGGESTIONS, segment + ".")
                unknown.append(UnknownLabel(full, suggestion))
                continue
            # a segment becomes a native named route, whose names have this grammar
            if not ROUTE_NAME_RE.match(segment):
                raise LabelError(
                    full,
                    value,
                    f"segment name {segment!r}: letters, digits, '-' and '_', at most 32 "
                    "(it becomes a dockyard route name)",
                )
            target = segments.setdefault(segment, {})
        check_plain_text(full, value)
        if value:  # Traefik reads an empty label as an absent one
            target[key] = (full, value)
    return classic, segments, tuple(unknown)


def _known(key: str) -> bool:
    return (
        key in _TRANSLATED
        or key in _REFUSED
        or key in _IGNORED
        or any(p.match(key) for p in (_RATE_SET_RE, _ERRORS_RE, _CLIENT_CERT_RE))
    )


def _suggest(key: str, candidates: list[str], where: str) -> str | None:
    """The Traefik label a typo most likely meant (case slips first: Traefik is case-exact)."""
    by_case = {candidate.lower(): candidate for candidate in candidates}
    found = by_case.get(key.lower()) or closest_key(key, candidates)
    return f"{_DOTTED}{where}{found}" if found else None


def _parse_bool(label: str, value: str) -> bool:
    """A boolean as Go's ParseBool reads it (``t``, ``F``, ``TRUE``...), or as dockyard does."""
    text = value.strip()
    if text in ("t", "T"):
        return True
    if text in ("f", "F"):
        return False
    return parse_bool(label, value)


_Native = tuple[str, tuple[str, str] | None]  # native value, and the Traefik label and value


class _Frontend(LabelSource):
    """One frontend's labels, each with the full label it came from, and what they turn into."""

    def __init__(self, name: str, values: _Values) -> None:
        super().__init__(values)
        self.name = name  # the segment name; "" for the default frontend
        self.native: dict[str, _Native] = {}
        self.ignored: list[IgnoredLabel] = []

    def flag(self, key: str) -> bool:
        return key in self and _parse_bool(*self.values[key])

    def items(self, key: str) -> list[str]:
        """A comma-separated list as Traefik splits it: trimmed, empty entries dropped."""
        return (
            [part.strip() for part in self.raw(key).split(",") if part.strip()]
            if key in self
            else []
        )

    def set(self, native_key: str, value: str, source: str | None) -> None:
        self.native[native_key] = (value, self.values[source] if source else None)

    def ignore(self, key: str, reason: str) -> None:
        self.ignored.append(IgnoredLabel(self.label(key), reason))

    def refuse(self, key: str, reason: str) -> LabelError:
        return LabelError(self.label(key), self.raw(key), reason)


# -- the frontend rule ----------------------------------------------------------------------


@dataclass(slots=True)
class _Rule:
    """What a ``traefik.frontend.rule`` says, in native terms."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] | None = None
    exact: bool = False
    strip: bool = False
    modifiers: dict[str, str] = field(default_factory=dict)
    source: str = "frontend.rule"


def _frontend_rule(front: _Frontend, labels: Mapping[str, str], name: str) -> _Rule | None:
    """The frontend's rule; without one, Traefik's default ``Host:<name>.<domain>``, if known."""
    if "frontend.rule" in front:
        return _parse_rule(front.label("frontend.rule"), front.raw("frontend.rule"))
    if "domain" not in front:
        return None
    domain = front.raw("domain").strip()
    project, service = labels.get(_COMPOSE_PROJECT), labels.get(_COMPOSE_SERVICE)
    base = f"{service}.{project}" if project and service else name
    if not base:
        return None
    # Traefik's getSubDomain: no leading '/', and '/' and '_' become '-'.
    sub = base.lstrip("/").replace("/", "-").replace("_", "-")
    return _Rule(hosts=[f"{sub}.{domain}"], source="domain")


def _no_rule_reason(segment: str, labels: Mapping[str, str]) -> str:
    where = f"{_DOTTED}{segment}." if segment else _DOTTED
    reason = (
        f"no {where}frontend.rule: Traefik would use Host:<container name>.<domain> with "
        "the domain of traefik.toml, which dockyard does not read; set "
        f"{where}frontend.rule (or {_DOTTED}domain)"
    )
    if any(key.startswith(("traefik.http.", "traefik.tcp.", "traefik.udp.")) for key in labels):
        reason += "; traefik.http.* labels are Traefik v2, which dockyard does not read"
    return reason


def _parse_rule(label: str, value: str) -> _Rule:
    """Traefik 1.7's rule grammar: matchers joined by ';' (AND), values by ',' (OR)."""
    rule = _Rule()
    for matcher in (part for part in value.split(";") if part.strip()):
        name, colon, rest = matcher.partition(":")
        args = [arg.strip() for arg in rest.split(",") if arg.strip()]
        if not colon or not args:
            raise LabelError(label, value, f"{matcher.strip()!r}: matchers are Name:value[,value]")
        _add_matcher(rule, name.strip(), args, label, value)
    if not rule.hosts:
        raise LabelError(
            label,
            value,
            "no Host matcher: Traefik would answer for every host name, dockyard routes by "
            "name; add Host:<name>",
        )
    return rule


def _add_matcher(rule: _Rule, name: str, args: list[str], label: str, value: str) -> None:
    if name in ("Host", "HostRegexp"):
        if rule.hosts:
            raise LabelError(
                label,
                value,
                "two host matchers must both match (';' is AND): list every name "
                "in one, comma-separated",
            )
        rule.hosts = [_host_template(label, value, a) if name == "HostRegexp" else a for a in args]
    elif name in _PATH_MATCHERS:
        if rule.paths is not None:
            raise LabelError(label, value, "two path matchers must both match (';' is AND)")
        if any("{" in arg for arg in args):
            raise LabelError(label, value, f"{name}: {_REGEX}")
        rule.paths = args
        rule.exact, rule.strip = _PATH_MATCHERS[name]
    elif name in _MODIFIERS:
        if len(args) > 1 or _MODIFIERS[name] in rule.modifiers:
            raise LabelError(label, value, f"{name} takes one path")
        rule.modifiers[_MODIFIERS[name]] = args[0]
    elif name in _REFUSED_MATCHERS:
        raise LabelError(label, value, f"{name}: {_REFUSED_MATCHERS[name]}")
    else:
        known = [*_PATH_MATCHERS, *_MODIFIERS, *_REFUSED_MATCHERS, "Host", "HostRegexp"]
        guess = closest_key(name, known)
        hint = f" (did you mean {guess}?)" if guess else ""
        raise LabelError(label, value, f"unknown matcher {name!r}{hint}")


def _host_template(label: str, value: str, template: str) -> str:
    """``{sub}.example.com`` or ``{sub:[a-z]+}.example.com`` → ``*.example.com``."""
    if not template.startswith("{"):
        if "{" in template or "}" in template:
            raise LabelError(label, value, _HOST_REGEXP)
        return template
    depth, end = 0, -1
    for index, char in enumerate(template):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            end = index
            break
    rest = template[end + 1 :]
    if end < 0 or not rest.startswith(".") or "{" in rest or "}" in rest:
        raise LabelError(label, value, _HOST_REGEXP)
    return "*" + rest


_HOST_REGEXP = (
    "HostRegexp is translated only with a variable as the whole first name part "
    "({name}.example.com or {name:regex}.example.com, served as *.example.com)"
)


# -- one frontend -----------------------------------------------------------------------------


def _translate(front: _Frontend, rule: _Rule) -> Iterator[tuple[str, dict[str, _Native]]]:
    """The native routes of one frontend: its own, and one redirecting to ``SSLHost``."""
    _routing(front, rule)
    _backend(front)
    tls_off = _entry_points(front)
    _access(front)
    _security_headers(front, rule, tls_off)
    _custom_headers(front)
    _rate_limit(front)
    _refused_and_ignored(front)
    forced = _forced_host(front, rule)
    if forced is None:
        yield front.name, front.native
        return
    moved, target = forced
    served = [host for host in rule.hosts if host not in moved]
    redirect = dict(front.native)
    source = front.values[_H + "SSLHost"]
    redirect["host"] = (",".join(moved), front.values[rule.source])
    redirect["redirect.to"] = (f"https://{target}$request_uri", source)
    redirect["redirect.permanent"] = (
        "false" if front.flag(_H + "SSLTemporaryRedirect") else "true",
        source,
    )
    if not tls_off:
        # the redirect itself is the answer on both schemes, as Traefik's is (one hop)
        redirect["https"] = ("both", source)
    if not served:
        yield front.name, redirect
        return
    front.native["host"] = (",".join(served), front.values[rule.source])
    yield front.name, front.native
    yield (f"{front.name}-sslhost" if front.name else "sslhost"), redirect


def _routing(front: _Frontend, rule: _Rule) -> None:
    front.set("host", ",".join(rule.hosts), rule.source)
    if rule.paths is not None:
        front.set("path", ",".join(rule.paths), "frontend.rule")
    if rule.exact:
        front.set("path.exact", "true", "frontend.rule")
    if rule.strip and "path.replace" not in rule.modifiers:
        front.set("path.strip", "true", "frontend.rule")
        stripped = [path for path in rule.paths or () if path != "/"]
        if len(stripped) == 1:
            # Traefik's StripPrefix tells the app what it removed
            front.set("request_headers.X-Forwarded-Prefix", stripped[0], "frontend.rule")
    for key, path in rule.modifiers.items():
        front.set(key, path, "frontend.rule")


def _backend(front: _Frontend) -> None:
    if "port" in front:
        front.set("port", str(parse_port(front.label("port"), front.raw("port"))), "port")
    if "protocol" in front:
        protocol = parse_choice(front.label("protocol"), front.raw("protocol"), ("http", "https"))
        front.set("scheme", protocol, "protocol")
    if "docker.network" in front:
        front.set("network", front.raw("docker.network"), "docker.network")
    method = "backend.loadbalancer.method"
    if method in front:
        lb = parse_choice(front.label(method), front.raw(method), tuple(_LB_METHODS))
        front.set("lb", _LB_METHODS[lb], method)
    for sticky in ("backend.loadbalancer.stickiness", "backend.loadbalancer.sticky"):
        if front.flag(sticky):
            front.set("lb", "ip_hash", sticky)
    body = "backend.buffering.maxRequestBodyBytes"
    if body in front:
        size = parse_int(front.label(body), front.raw(body), 0, 9_999_999_999)
        front.set("max_body_size", str(size), body)


def _entry_points(front: _Frontend) -> bool:
    """``tls``/``https`` from the entry points and redirects; whether TLS is off."""
    tls_off = False
    if "frontend.entryPoints" in front:
        points = set(front.items("frontend.entryPoints"))
        if not points or not points <= set(_ENTRY_POINTS):
            raise front.refuse(
                "frontend.entryPoints",
                "dockyard has one HTTP and one HTTPS entry point, read as the entry points "
                "named http and https",
            )
        if points == {"https"}:
            front.set("https", "redirect", "frontend.entryPoints")
        tls_off = points == {"http"}
        if tls_off:
            front.set("tls", "off", "frontend.entryPoints")
    redirects = [key for key in _ssl_redirects(front) if front.flag(key)]
    if "frontend.redirect.entryPoint" in front:
        if front.raw("frontend.redirect.entryPoint").strip() != "https":
            raise front.refuse(
                "frontend.redirect.entryPoint",
                "only redirects to the https entry point are translated",
            )
        redirects.append("frontend.redirect.entryPoint")
    for key in redirects:
        if tls_off:
            raise front.refuse(key, "redirects to HTTPS, but traefik.frontend.entryPoints is http")
        front.set("https", "redirect", key)
    return tls_off


def _ssl_redirects(front: _Frontend) -> list[str]:
    """The secure middleware's redirect keys, unless ``isDevelopment`` turns them off."""
    if front.flag(_H + "isDevelopment"):
        return []
    return [_H + "SSLRedirect", _H + "SSLTemporaryRedirect"]


def _access(front: _Frontend) -> None:
    for key in ("frontend.whitelistSourceRange", "frontend.whiteList.sourceRange"):
        if key in front:
            front.set("allow", ",".join(front.items(key)), key)
    if front.flag("frontend.whiteList.useXForwardedFor"):
        raise front.refuse(
            "frontend.whiteList.useXForwardedFor",
            "X-Forwarded-For is believed only from DOCKYARD_TRUSTED_PROXIES, never per route: "
            "a client could otherwise name any address",
        )
    users = next(
        (k for k in ("frontend.auth.basic", "frontend.auth.basic.users") if k in front), None
    )
    if users is not None:
        front.set("auth.basic", ",".join(front.items(users)), users)
        if front.flag("frontend.auth.basic.removeHeader"):
            front.set("request_headers.Authorization", "", "frontend.auth.basic.removeHeader")
    if "frontend.auth.forward.address" in front:
        if users is not None:
            raise front.refuse(
                "frontend.auth.forward.address",
                f"Traefik 1.7 applies one kind of auth and would ignore this for {_DOTTED}{users}; "
                "keep one",
            )
        front.set(
            "auth.forward",
            front.raw("frontend.auth.forward.address"),
            "frontend.auth.forward.address",
        )
    headers = "frontend.auth.forward.authResponseHeaders"
    if headers in front:
        front.set("auth.forward.response_headers", ",".join(front.items(headers)), headers)
    if front.flag("frontend.auth.forward.trustForwardHeader"):
        raise front.refuse(
            "frontend.auth.forward.trustForwardHeader",
            "X-Forwarded-* headers are believed only from DOCKYARD_TRUSTED_PROXIES",
        )
    if front.flag("frontend.passTLSCert"):
        raise front.refuse("frontend.passTLSCert", "dockyard does not ask clients for certificates")
    if "frontend.passHostHeader" in front:
        value = "true" if front.flag("frontend.passHostHeader") else "false"
        front.set("pass_host_header", value, "frontend.passHostHeader")
    if "frontend.priority" in front:
        front.set("priority", front.raw("frontend.priority"), "frontend.priority")


def _security_headers(front: _Frontend, rule: _Rule, tls_off: bool) -> None:
    """Traefik's secure middleware (unrolled/secure): HSTS, frame, sniffing, XSS, policies."""
    development = front.flag(_H + "isDevelopment")
    _hsts(front, tls_off, development)
    if _H + "customFrameOptionsValue" in front:
        value = front.raw(_H + "customFrameOptionsValue")
        front.set("frame", value, _H + "customFrameOptionsValue")
    elif front.flag(_H + "frameDeny"):
        front.set("frame", "deny", _H + "frameDeny")
    if front.flag(_H + "contentTypeNosniff"):
        front.set("nosniff", "true", _H + "contentTypeNosniff")
    if _H + "customBrowserXSSValue" in front:
        value = front.raw(_H + "customBrowserXSSValue")
        front.set("headers.X-XSS-Protection", value, _H + "customBrowserXSSValue")
    elif front.flag(_H + "browserXSSFilter"):
        front.set("xss_filter", "true", _H + "browserXSSFilter")
    for key, native in (("contentSecurityPolicy", "csp"), ("referrerPolicy", "referrer_policy")):
        if _H + key in front:
            front.set(native, front.raw(_H + key), _H + key)
    if development:
        return  # Traefik skips HPKP and the allowed hosts check in development
    if _H + "publicKey" in front:
        front.set("headers.Public-Key-Pins", front.raw(_H + "publicKey"), _H + "publicKey")
    allowed = _H + "allowedHosts"
    if allowed in front:
        names = {name.lower() for name in front.items(allowed)}
        outside = [host for host in rule.hosts if host.lower() not in names]
        if outside:
            raise front.refuse(allowed, f"{', '.join(outside)} of the rule would get 500 Bad Host")


def _hsts(front: _Frontend, tls_off: bool, development: bool) -> None:
    """``STSSeconds`` and its flags; without them no HSTS at all, as with Traefik."""
    key = _H + "STSSeconds"
    seconds = 0
    if key in front and not development:
        seconds = parse_int(front.label(key), front.raw(key), 0, 9_999_999_999)
    if seconds and tls_off:
        front.ignore(key, "HSTS is sent over HTTPS only, and this frontend is HTTP only")
    elif seconds:
        hsts = f"max-age={seconds}"
        hsts += "; includeSubDomains" if front.flag(_H + "STSIncludeSubdomains") else ""
        hsts += "; preload" if front.flag(_H + "STSPreload") else ""
        front.set("hsts", hsts, key)
    elif not tls_off:
        front.set("hsts", "off", None)


def _custom_headers(front: _Frontend) -> None:
    for key, stem in (
        ("customResponseHeaders", "headers"),
        ("customRequestHeaders", "request_headers"),
    ):
        if _H + key not in front:
            continue
        seen: set[str] = set()
        for name, value in _header_map(front.label(_H + key), front.raw(_H + key)):
            if name.lower() in seen:
                raise front.refuse(_H + key, f"{name} appears twice")
            seen.add(name.lower())
            front.set(f"{stem}.{name}", value, _H + key)


def _header_map(label: str, value: str) -> Iterator[tuple[str, str]]:
    """``Name:value||Name2:value2`` (a value may hold ',' and ':'), names canonicalised."""
    for entry in value.split("||"):
        name, colon, text = entry.partition(":")
        if not colon or not name.strip():
            raise LabelError(label, value, f"{entry!r}: entries are Name:value, joined by '||'")
        yield _canonical_header(name.strip()), text.strip()


def _canonical_header(name: str) -> str:
    """Go's CanonicalHeaderKey: ``x-robots-tag`` is sent as ``X-Robots-Tag``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _forced_host(front: _Frontend, rule: _Rule) -> tuple[list[str], str] | None:
    """``SSLHost``: the rule's other hosts and where they are sent (``SSLForceHost``)."""
    ssl_host = _H + "SSLHost"
    if ssl_host not in front or front.flag(_H + "isDevelopment"):
        return None
    if "/" in front.raw(ssl_host):
        raise front.refuse(ssl_host, "a host name, optionally with :port")
    target = parse_url(front.label(ssl_host), "https://" + front.raw(ssl_host).strip()).authority
    target = target.removesuffix(":443")
    others = [host for host in rule.hosts if host.lower() != target.lower()]
    if not others:
        return None
    if front.flag(_H + "SSLForceHost"):
        return others, target
    if any(front.flag(key) for key in _ssl_redirects(front)):
        raise front.refuse(
            ssl_host,
            "without SSLForceHost, Traefik sends only plain-HTTP requests of "
            f"{', '.join(others)} to {target}; set SSLForceHost=true to send all of them there",
        )
    return None


def _rate_limit(front: _Frontend) -> None:
    """``rateLimit``: one rate set per client address, as nginx's ``limit_req``."""
    sets: dict[str, dict[str, str]] = {}
    for key in front.values:
        match = _RATE_SET_RE.match(key)
        if match:
            sets.setdefault(match.group("name"), {})[match.group("field")] = key
    extractor = "frontend.rateLimit.extractorFunc"
    if extractor not in front:
        for key in sorted(k for keys in sets.values() for k in keys.values()):
            front.ignore(key, f"Traefik uses rate sets only with {_DOTTED}{extractor}")
        return
    if front.raw(extractor).strip() != "client.ip":
        raise front.refuse(extractor, "only client.ip is translated (limits per client address)")
    if len(sets) != 1:
        raise front.refuse(extractor, "exactly one rate set is translated")
    (fields,) = sets.values()
    if "average" not in fields:
        raise front.refuse(extractor, "the rate set needs an average")
    average = parse_int(front.label(fields["average"]), front.raw(fields["average"]), 1, 1_000_000)
    period = _seconds(front, fields["period"]) if "period" in fields else Fraction(1)
    per_second = Fraction(average) / period
    if per_second.denominator == 1:
        rate = f"{per_second}r/s"
    elif (per_second * 60).denominator == 1:
        rate = f"{per_second * 60}r/m"
    else:
        raise front.refuse(fields["average"], "nginx rates are whole requests per second or minute")
    front.set("rate_limit", rate, fields["average"])
    if "burst" in fields:
        front.set("rate_limit.burst", front.raw(fields["burst"]), fields["burst"])


def _seconds(front: _Frontend, key: str) -> Fraction:
    """A Traefik period: whole seconds, or a Go duration such as ``10s`` or ``1m30s``."""
    text = front.raw(key).strip()
    if len(text) > _MAX_PERIOD:
        # int() and Fraction() raise ValueError on thousands of digits, not LabelError
        raise front.refuse(key, f"a period of at most {_MAX_PERIOD} characters")
    if text.isascii() and text.isdigit():  # isdigit alone takes '²', which int() refuses
        seconds = Fraction(int(text))
    elif _DURATIONS_RE.fullmatch(text):
        seconds = sum(
            (Fraction(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_RE.findall(text)),
            Fraction(0),
        )
    else:
        raise front.refuse(key, "a period such as 10s, 1m or 1h (or whole seconds)")
    if seconds <= 0:
        raise front.refuse(key, "a period longer than zero")
    return seconds


def _refused_and_ignored(front: _Frontend) -> None:
    for key in sorted(front.values):
        if key in _REFUSED:
            raise front.refuse(key, _REFUSED[key])
        if _CLIENT_CERT_RE.match(key) and front.flag(key):
            raise front.refuse(key, "dockyard does not ask clients for certificates")
        if key in _IGNORED:
            front.ignore(key, _IGNORED[key])
        elif _ERRORS_RE.match(key):
            front.ignore(key, _ERRORS_REASON)
