"""Labels: one container's ``<prefix>.*`` labels turned into validated, typed routes.

Pure step between the Docker source and the routing table. Nothing a label says
reaches a template before it passed the grammars in ``label_values``: host names,
ports, paths, sizes and times each have a strict grammar, and the few free texts
(header values) are printed escaped inside quotes. A bad value raises ``LabelError``
naming the label, the value and the reason; unknown keys are reported with the
closest known key, so a typo never fails silently.

A container has a plain route (``<prefix>.host`` and friends) and any number of named
routes (``<prefix>.route.<name>.<key>``); a named route takes every key it does not
set from the plain labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from daemon.errors import LabelError
from daemon.label_values import (
    ROUTE_NAME_RE,
    Hsts,
    Url,
    check_plain_text,
    closest_key,
    parse_bool,
    parse_choice,
    parse_cidrs,
    parse_duration,
    parse_header_name,
    parse_header_value,
    parse_host,
    parse_hsts,
    parse_int,
    parse_network,
    parse_path,
    parse_paths,
    parse_port,
    parse_rate,
    parse_redirect_target,
    parse_size,
    parse_url,
    parse_users,
)

__all__ = [
    "KNOWN_KEYS",
    "ForwardAuth",
    "Hsts",
    "IgnoredLabel",
    "LabelSource",
    "ParsedLabels",
    "RateLimit",
    "Redirect",
    "RouteLabels",
    "RouteOptions",
    "UnknownLabel",
    "parse_labels",
    "route_from_source",
]

_T = TypeVar("_T")
TLS_MODES = ("acme", "self-signed", "off")
HTTPS_MODES = ("redirect", "both", "only")
SCHEMES = ("http", "https", "https+insecure")
LB_METHODS = ("round_robin", "least_conn", "ip_hash")
FRAME_OPTIONS = ("deny", "sameorigin")
REFERRER_POLICIES = (
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
)

KNOWN_KEYS = (
    "host",
    "port",
    "path",
    "path.strip",
    "path.exact",
    "path.add_prefix",
    "path.replace",
    "network",
    "websocket",
    "enable",
    "tls",
    "https",
    "hsts",
    "frame",
    "nosniff",
    "xss_filter",
    "csp",
    "referrer_policy",
    "permissions_policy",
    "allow",
    "auth.basic",
    "auth.forward",
    "auth.forward.response_headers",
    "rate_limit",
    "rate_limit.burst",
    "max_body_size",
    "buffering",
    "timeout.connect",
    "timeout.read",
    "timeout.send",
    "redirect.to",
    "redirect.permanent",
    "scheme",
    "lb",
    "priority",
    "pass_host_header",
)
# Keys that carry a name after the dot: headers.X-Robots-Tag, request_headers.X-Script-Name.
HEADER_KEYS = ("headers", "request_headers")
# What a typo is compared with: the fixed keys and the stems of the named ones.
_SUGGESTIONS = (*KNOWN_KEYS, *(f"{stem}.<Name>" for stem in HEADER_KEYS), "route.<name>.<key>")
# Response headers the shorthand labels set, so a `headers.*` label cannot set them twice.
_SHORTHAND_HEADERS = {
    "frame": "X-Frame-Options",
    "nosniff": "X-Content-Type-Options",
    "xss_filter": "X-XSS-Protection",
    "csp": "Content-Security-Policy",
    "referrer_policy": "Referrer-Policy",
    "permissions_policy": "Permissions-Policy",
}
_RESPONSE_MANAGED = frozenset(
    {"connection", "upgrade", "content-length", "transfer-encoding", "strict-transport-security"}
)
_WEBSOCKET_TIMEOUT = "7d"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit_req``: a rate per client address and host, with a burst allowance."""

    rate: str
    burst: int = 0


@dataclass(frozen=True, slots=True)
class ForwardAuth:
    """Forward authentication: ask ``url`` first; 2xx lets the request through."""

    url: Url
    response_headers: tuple[str, ...] = ()
    # the address routing found for the URL's host among the containers, if any
    address: str | None = None
    # False when the URL names a container that does not run: the check fails closed
    reachable: bool = True


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer with a redirect to ``target`` (an nginx string with braced variables)."""

    target: str
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How requests on one route are checked, rewritten and proxied (per location)."""

    strip: bool = False
    add_prefix: str | None = None
    replace_path: str | None = None
    websocket: bool = False
    buffering: bool = True
    # (name, value); an empty value removes the header
    response_headers: tuple[tuple[str, str], ...] = ()
    request_headers: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()
    basic_auth: tuple[tuple[str, str], ...] = ()
    forward_auth: ForwardAuth | None = None
    rate_limit: RateLimit | None = None
    max_body_size: str | None = None
    connect_timeout: str | None = None
    read_timeout: str | None = None
    send_timeout: str | None = None
    redirect: Redirect | None = None
    scheme: str = "http"
    pass_host_header: bool = True


@dataclass(frozen=True, slots=True)
class RouteLabels:
    """One route a container asks for: host names, paths, how to reach and proxy it."""

    hosts: tuple[str, ...]
    port: int | None = None
    paths: tuple[str, ...] = ("/",)
    exact: bool = False
    network: str | None = None
    tls: str | None = None
    https: str | None = None
    # None: the default for the certificate (on for CA-issued ones); "off": never sent
    hsts: Hsts | Literal["off"] | None = None
    lb: str = "round_robin"
    priority: int = 0
    options: RouteOptions = field(default_factory=RouteOptions)
    # "" for the plain route, else the name in <prefix>.route.<name>.*
    name: str = ""


@dataclass(frozen=True, slots=True)
class UnknownLabel:
    """A ``<prefix>.*`` key dockyard does not know, with the closest known key if any."""

    label: str
    suggestion: str | None


@dataclass(frozen=True, slots=True)
class IgnoredLabel:
    """A label whose key is known but has no effect here (Traefik dialect), and why."""

    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedLabels:
    """The outcome for one container: its routes (none when not exposed) and unknown keys."""

    routes: tuple[RouteLabels, ...] = ()
    unknown: tuple[UnknownLabel, ...] = ()
    reason: str | None = None
    ignored: tuple[IgnoredLabel, ...] = ()

    @property
    def route(self) -> RouteLabels | None:
        """The first route, for callers (and tests) that expect one."""
        return self.routes[0] if self.routes else None


def _known(key: str) -> bool:
    stem, _, name = key.partition(".")
    return key in KNOWN_KEYS or (stem in HEADER_KEYS and bool(name))


def _suggest(key: str) -> str | None:
    found = closest_key(key, _SUGGESTIONS)
    if found is None:
        stem = closest_key(key.split(".", 1)[0], [*HEADER_KEYS, "route"], cutoff=0.75)
        if stem is not None:
            found = f"{stem}.<Name>" if stem in HEADER_KEYS else "route.<name>.<key>"
    return found


class LabelSource:
    """The labels one route reads, each remembered with the full label name it came from.

    Keys are the part after the prefix (``host``, ``auth.forward``); values are (full label
    name, raw value), so every error names the label the user wrote (the Traefik dialect's
    frontends extend it with their own readers).
    """

    def __init__(self, values: Mapping[str, tuple[str, str]]) -> None:
        self.values = values

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def label(self, key: str) -> str:
        return self.values[key][0]

    def raw(self, key: str) -> str:
        return self.values[key][1]

    def get(self, key: str, parse: Callable[[str, str], _T], default: _T) -> _T:
        if key not in self.values:
            return default
        label, value = self.values[key]
        return parse(label, value)

    def optional(self, key: str, parse: Callable[[str, str], _T]) -> _T | None:
        """The parsed value, or None when the label is absent."""
        return parse(*self.values[key]) if key in self.values else None

    def requires(self, key: str, needed: str) -> None:
        """Refuse ``key`` when the label it only qualifies (``needed``) is absent."""
        if key in self.values and needed not in self.values:
            raise LabelError(self.label(key), self.raw(key), f"needs {needed}")

    def named(self, stem: str) -> list[tuple[str, str, str]]:
        """(header name, label, value) of every ``<stem>.<Name>`` key, by name."""
        prefix = stem + "."
        return sorted(
            (key[len(prefix) :], label, value)
            for key, (label, value) in self.values.items()
            if key.startswith(prefix)
        )


def _response_headers(src: LabelSource) -> tuple[tuple[str, str], ...]:
    headers: dict[str, tuple[str, str, str]] = {}  # lower name -> (name, value, label)

    def put(name: str, value: str, label: str) -> None:
        if name.lower() in headers:
            other = headers[name.lower()][2]
            raise LabelError(label, value, f"{name} is already set by {other}")
        headers[name.lower()] = (name, value, label)

    if "frame" in src:
        text = src.raw("frame").strip()
        if text.lower().startswith("allow-from "):
            parse_url(src.label("frame"), text[len("allow-from ") :])
            value = text
        else:
            value = parse_choice(src.label("frame"), text, FRAME_OPTIONS).upper()
        put(
            _SHORTHAND_HEADERS["frame"],
            parse_header_value(src.label("frame"), value),
            src.label("frame"),
        )
    if src.get("nosniff", parse_bool, default=False):
        put(_SHORTHAND_HEADERS["nosniff"], "nosniff", src.label("nosniff"))
    if src.get("xss_filter", parse_bool, default=False):
        put(_SHORTHAND_HEADERS["xss_filter"], "1; mode=block", src.label("xss_filter"))
    for key in ("csp", "permissions_policy"):
        if key in src:
            put(_SHORTHAND_HEADERS[key], src.get(key, parse_header_value, ""), src.label(key))
    if "referrer_policy" in src:
        label = src.label("referrer_policy")
        policies = [
            parse_choice(label, part, REFERRER_POLICIES)
            for part in src.raw("referrer_policy").split(",")
        ]
        put(_SHORTHAND_HEADERS["referrer_policy"], ", ".join(policies), label)
    for name, label, value in src.named("headers"):
        put(
            parse_header_name(label, name, managed=_RESPONSE_MANAGED),
            parse_header_value(label, value),
            label,
        )
    return tuple((name, value) for name, value, _ in sorted(headers.values()))


def _request_headers(src: LabelSource) -> tuple[tuple[str, str], ...]:
    return tuple(
        (parse_header_name(label, name), parse_header_value(label, value))
        for name, label, value in src.named("request_headers")
    )


def _forward_auth(src: LabelSource) -> ForwardAuth | None:
    src.requires("auth.forward.response_headers", "auth.forward")
    url = src.optional("auth.forward", parse_url)
    if url is None:
        return None
    names: tuple[str, ...] = ()
    if "auth.forward.response_headers" in src:
        label = src.label("auth.forward.response_headers")
        names = tuple(
            parse_header_name(label, part.strip())
            for part in src.raw("auth.forward.response_headers").split(",")
            if part.strip()
        )
    return ForwardAuth(url, names)


def _redirect(src: LabelSource) -> Redirect | None:
    src.requires("redirect.permanent", "redirect.to")
    if "redirect.to" not in src:
        return None
    permanent = src.get("redirect.permanent", parse_bool, default=False)
    text = src.raw("redirect.to").strip().lower()
    if text in ("www", "apex"):
        return Redirect(text, permanent)
    return Redirect(
        parse_redirect_target(src.label("redirect.to"), src.raw("redirect.to")), permanent
    )


def _options(src: LabelSource) -> RouteOptions:
    websocket = src.get("websocket", parse_bool, default=False)
    long_wait = _WEBSOCKET_TIMEOUT if websocket else None
    src.requires("rate_limit.burst", "rate_limit")
    rate = src.optional("rate_limit", parse_rate)
    burst = src.get("rate_limit.burst", lambda lb, v: parse_int(lb, v, 0, 100000), 0)
    rate_limit = RateLimit(rate, burst) if rate is not None else None
    strip = src.get("path.strip", parse_bool, default=False)
    replace_path = src.optional("path.replace", parse_path)
    if replace_path is not None and strip:
        raise LabelError(
            src.label("path.replace"),
            src.raw("path.replace"),
            "path.replace and path.strip exclude each other",
        )
    return RouteOptions(
        strip=strip,
        add_prefix=src.optional("path.add_prefix", parse_path),
        replace_path=replace_path,
        websocket=websocket,
        buffering=src.get("buffering", parse_bool, default=not websocket),
        response_headers=_response_headers(src),
        request_headers=_request_headers(src),
        allow=src.get("allow", parse_cidrs, ()),
        basic_auth=src.get("auth.basic", parse_users, ()),
        forward_auth=_forward_auth(src),
        rate_limit=rate_limit,
        max_body_size=src.optional("max_body_size", parse_size),
        connect_timeout=src.optional("timeout.connect", parse_duration),
        read_timeout=src.optional("timeout.read", parse_duration) or long_wait,
        send_timeout=src.optional("timeout.send", parse_duration) or long_wait,
        redirect=_redirect(src),
        scheme=src.get("scheme", lambda lb, v: parse_choice(lb, v, SCHEMES), "http"),
        pass_host_header=src.get("pass_host_header", parse_bool, default=True),
    )


def _route(name: str, src: LabelSource, prefix: str) -> RouteLabels:
    """One route from its labels; raises ``LabelError`` on the first bad value."""
    if "host" not in src:
        raise LabelError(
            f"{prefix}.route.{name}.host", "", f"no host for this route (nor {prefix}.host)"
        )
    route = RouteLabels(
        name=name,
        hosts=parse_host(src.label("host"), src.raw("host")),
        port=src.optional("port", parse_port),
        paths=src.get("path", parse_paths, ("/",)),
        exact=src.get("path.exact", parse_bool, default=False),
        network=src.optional("network", parse_network),
        tls=src.optional("tls", lambda lb, v: parse_choice(lb, v, TLS_MODES)),
        https=src.optional("https", lambda lb, v: parse_choice(lb, v, HTTPS_MODES)),
        hsts=src.optional("hsts", parse_hsts),
        lb=src.get("lb", lambda lb, v: parse_choice(lb, v, LB_METHODS), "round_robin"),
        priority=src.get("priority", lambda lb, v: parse_int(lb, v, -1000000, 1000000), 0),
        options=_options(src),
    )
    if route.tls == "off":
        for key in ("https", "hsts"):
            if key in src:
                raise LabelError(
                    src.label(key), src.raw(key), f"needs TLS, but {prefix}.tls is off"
                )
    return route


def expand_host_redirects(route: RouteLabels) -> tuple[RouteLabels, ...]:
    """``redirect.to`` ``www``/``apex``: the served hosts, plus one redirecting route per name.

    ``www``: ``example.com`` redirects to ``www.example.com``, which is served (and added
    when missing). ``apex`` is the reverse.
    """
    redirect = route.options.redirect
    if redirect is None or redirect.target not in ("www", "apex"):
        return (route,)
    served: list[str] = []
    moved: list[tuple[str, str]] = []
    for host in route.hosts:
        if host.startswith("*."):
            continue
        is_www = host.startswith("www.")
        if (redirect.target == "www") == is_www:
            target = host
        else:
            target = "www." + host if redirect.target == "www" else host.removeprefix("www.")
            moved.append((host, target))
        if target not in served:
            served.append(target)
    plain = replace(route, hosts=tuple(served), options=replace(route.options, redirect=None))
    redirects = tuple(
        replace(
            route,
            hosts=(host,),
            options=RouteOptions(
                redirect=Redirect("${scheme}://" + target + "${request_uri}", redirect.permanent)
            ),
        )
        for host, target in moved
    )
    return (plain, *redirects)


def _check_wildcards(route: RouteLabels, src: LabelSource) -> None:
    redirect = route.options.redirect
    if (
        redirect is not None
        and redirect.target in ("www", "apex")
        and any(host.startswith("*.") for host in route.hosts)
    ):
        raise LabelError(
            src.label("redirect.to"),
            src.raw("redirect.to"),
            "www/apex redirects need exact host names, not wildcards",
        )


def route_from_source(name: str, src: LabelSource, prefix: str) -> tuple[RouteLabels, ...]:
    """One route from its values, checked, with its www/apex redirects expanded.

    The one route builder of container labels and route files. ``prefix`` is what messages
    put before a key (``dockyard``); raises ``LabelError`` on the first bad value, also
    for a missing host (a caller with a better word for that checks ``host`` first).
    """
    route = _route(name, src, prefix)
    _check_wildcards(route, src)
    return expand_host_redirects(route)


def parse_labels(labels: Mapping[str, str], prefix: str) -> ParsedLabels:
    """Read the ``<prefix>.*`` labels of one container; raise ``LabelError`` on a bad value."""
    dotted = prefix + "."
    ours = {key[len(dotted) :]: value for key, value in labels.items() if key.startswith(dotted)}
    plain: dict[str, tuple[str, str]] = {}
    named: dict[str, dict[str, tuple[str, str]]] = {}
    unknown: list[UnknownLabel] = []
    for key, value in sorted(ours.items()):
        full = dotted + key
        if key.startswith("route."):
            name, _, rest = key[len("route.") :].partition(".")
            if not ROUTE_NAME_RE.match(name) or not rest:
                raise LabelError(
                    full,
                    value,
                    "named route labels are route.<name>.<key>, names of letters, "
                    "digits, '-' and '_'",
                )
            target = named.setdefault(name, {})
            key = rest  # noqa: PLW2901 - the key inside the named route
            where = f"{dotted}route.{name}."
        else:
            target = plain
            where = dotted
        if not _known(key):
            suggestion = _suggest(key)
            unknown.append(UnknownLabel(full, where + suggestion if suggestion else None))
            continue
        check_plain_text(full, value)
        target[key] = (full, value)

    if "enable" in plain and not parse_bool(*plain["enable"]):
        return ParsedLabels((), tuple(unknown), reason=f"{dotted}enable is false")
    routes: list[RouteLabels] = []
    if "host" in plain:
        routes.extend(route_from_source("", LabelSource(plain), prefix))
    for name, own in sorted(named.items()):
        src = LabelSource({**plain, **own})
        if "enable" in own and not parse_bool(*own["enable"]):
            continue
        routes.extend(route_from_source(name, src, prefix))
    _check_overlaps(routes, dotted)
    if not routes:
        reason = f"no {dotted}host label" if ours else None
        return ParsedLabels((), tuple(unknown), reason=reason)
    return ParsedLabels(tuple(routes), tuple(unknown))


def _check_overlaps(routes: list[RouteLabels], dotted: str) -> None:
    """Two routes of one container on the same host and path would fight: refuse it."""
    seen: dict[tuple[str, str, bool], str] = {}
    for route in routes:
        for host in route.hosts:
            for path in route.paths:
                key = (host, path, route.exact)
                if key in seen and seen[key] != route.name:
                    label = f"{dotted}route.{route.name}.path" if route.name else f"{dotted}path"
                    other = f"route {seen[key]!r}" if seen[key] else "the plain route"
                    raise LabelError(
                        label, path, f"{host}{path} is already served by {other} of this container"
                    )
                seen[key] = route.name
