"""The proxy-option labels and named routes: each value parsed, normalised or refused."""

from __future__ import annotations

import pytest

from daemon.errors import LabelError
from daemon.label_values import Url
from daemon.labels import (
    ForwardAuth,
    RateLimit,
    Redirect,
    RouteLabels,
    RouteOptions,
    parse_labels,
)

P = "dockyard"
BCRYPT = "$2y$05$" + "a" * 53
APR1 = "$apr1$abcdefgh$" + "b" * 22
SHA = "{SHA}" + "c" * 27 + "="


def options(**labels: str) -> RouteOptions:
    """The options of the plain route of a container with ``host=a.test`` and ``labels``."""
    route = parse_labels({f"{P}.host": "a.test", **_prefixed(labels)}, P).route
    assert route is not None
    return route.options


def refused(**labels: str) -> LabelError:
    """The error a container with ``host=a.test`` and ``labels`` is refused with."""
    with pytest.raises(LabelError) as caught:
        parse_labels({f"{P}.host": "a.test", **_prefixed(labels)}, P)
    return caught.value


def _prefixed(labels: dict[str, str]) -> dict[str, str]:
    return {f"{P}.{key}": value for key, value in labels.items()}


def test_response_headers_collect_shorthands_and_named_headers() -> None:
    """Security shorthands and headers.<Name> become one sorted list of exact values."""
    opts = options(
        **{
            "frame": "SameOrigin",
            "nosniff": "true",
            "xss_filter": "yes",
            "csp": "default-src 'self'; img-src https:",
            "referrer_policy": "no-referrer, strict-origin",
            "permissions_policy": "camera=()",
            "headers.X-Robots-Tag": "noindex, nofollow",
            "headers.X-Powered-By": "",
        }
    )
    assert opts.response_headers == (
        ("Content-Security-Policy", "default-src 'self'; img-src https:"),
        ("Permissions-Policy", "camera=()"),
        ("Referrer-Policy", "no-referrer, strict-origin"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Powered-By", ""),
        ("X-Robots-Tag", "noindex, nofollow"),
        ("X-XSS-Protection", "1; mode=block"),
    )


def test_false_shorthands_send_nothing() -> None:
    """nosniff/xss_filter set to false add no header."""
    assert options(nosniff="false", xss_filter="off").response_headers == ()


def test_frame_allow_from_keeps_the_value_as_written() -> None:
    """``allow-from URL`` (what Traefik's customFrameOptionsValue carries) passes unchanged."""
    opts = options(frame="allow-from https://example.com")
    assert opts.response_headers == (("X-Frame-Options", "allow-from https://example.com"),)


@pytest.mark.parametrize(
    ("labels", "label", "reason"),
    [
        ({"frame": "allow"}, "frame", "one of deny, sameorigin"),
        ({"referrer_policy": "no-referer"}, "referrer_policy", "one of no-referrer"),
        ({"headers.X Bad": "1"}, "headers.X Bad", "a header name"),
        ({"headers.Content-Length": "1"}, "headers.Content-Length", "managed by dockyard"),
        (
            {"headers.Strict-Transport-Security": "x"},
            "headers.Strict-Transport-Security",
            "managed",
        ),
        ({"request_headers.Connection": "x"}, "request_headers.Connection", "managed"),
        ({"headers.X-A": "caf\u00e9"}, "headers.X-A", "printable ASCII"),
        ({"headers.X-Frame-Options": "DENY", "frame": "deny"}, "headers.X-Frame-Options", "frame"),
        ({"csp": "a" * 5000}, "csp", "at most 4096"),
    ],
)
def test_bad_header_labels_are_refused(labels: dict[str, str], label: str, reason: str) -> None:
    """Header names outside the token set, managed headers, non-ASCII and doubles are refused."""
    err = refused(**labels)
    assert err.label == f"{P}.{label}"
    assert reason in err.reason


def test_request_headers_are_kept_by_name() -> None:
    """request_headers.<Name> keeps the name's case and the exact value (empty removes it)."""
    opts = options(
        **{"request_headers.X-Script-Name": "/jhub", "request_headers.Accept-Encoding": ""}
    )
    assert opts.request_headers == (("Accept-Encoding", ""), ("X-Script-Name", "/jhub"))


def test_allow_ranges_are_normalised() -> None:
    """Addresses become networks, host bits are dropped, IPv6 is accepted, duplicates go."""
    opts = options(allow="192.168.1.7/24, 10.0.0.1, fd00::1/8, 10.0.0.1")
    assert opts.allow == ("192.168.1.0/24", "10.0.0.1/32", "fd00::/8")


@pytest.mark.parametrize("value", ["192.168.1.0/33", "lan", "10.0.0.0/8;", ""])
def test_bad_ranges_are_refused(value: str) -> None:
    """Anything but IPv4/IPv6 addresses and CIDR ranges is refused."""
    assert refused(allow=value).label == f"{P}.allow"


def test_basic_auth_accepts_bcrypt_apr1_and_sha() -> None:
    """htpasswd entries of the three hash kinds are kept as (user, hash)."""
    opts = options(**{"auth.basic": f"ann:{BCRYPT}, bob:{APR1},cid:{SHA}"})
    assert opts.basic_auth == (("ann", BCRYPT), ("bob", APR1), ("cid", SHA))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ann:secret", "is not bcrypt"),
        (f"ann:{BCRYPT.replace('$', '$$')}", "write each $ as $$"),
        (f"ann:{APR1},ann:{SHA}", "appears twice"),
        (f"an n:{APR1}", "user:hash"),
        (APR1, "user:hash"),
    ],
)
def test_bad_basic_auth_is_refused(value: str, reason: str) -> None:
    """Plain passwords, doubled dollars, repeated users and bad user names are refused."""
    assert reason in refused(**{"auth.basic": value}).reason


def test_forward_auth_url_is_split_into_parts() -> None:
    """auth.forward keeps scheme, host, port and path; response headers are listed."""
    opts = options(
        **{
            "auth.forward": "http://Authelia:9091/api/verify?rd=x",
            "auth.forward.response_headers": "Remote-User, Remote-Groups",
        }
    )
    assert opts.forward_auth == ForwardAuth(
        Url("http", "authelia", 9091, "/api/verify?rd=x"), ("Remote-User", "Remote-Groups")
    )


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        ({"auth.forward": "http://a/;evil"}, "auth.forward"),
        ({"auth.forward": "ftp://a/"}, "auth.forward"),
        ({"auth.forward": "http://a b/"}, "auth.forward"),
        ({"auth.forward.response_headers": "Remote-User"}, "auth.forward.response_headers"),
    ],
)
def test_bad_forward_auth_is_refused(labels: dict[str, str], label: str) -> None:
    """URLs with nginx syntax or other schemes, and headers without a URL, are refused."""
    assert refused(**labels).label == f"{P}.{label}"


def test_limits_sizes_and_times_are_normalised() -> None:
    """Rates, sizes and times are kept in nginx's spelling; a bare number of seconds gets ``s``."""
    opts = options(
        **{
            "rate_limit": "10R/S",
            "rate_limit.burst": "20",
            "max_body_size": "500MB",
            "timeout.connect": "30",
            "timeout.read": "7d",
            "timeout.send": "1500ms",
        }
    )
    assert opts.rate_limit == RateLimit("10r/s", 20)
    assert opts.max_body_size == "500m"
    assert (opts.connect_timeout, opts.read_timeout, opts.send_timeout) == ("30s", "7d", "1500ms")


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        ({"rate_limit": "10/s"}, "rate_limit"),
        ({"rate_limit": "0r/s"}, "rate_limit"),
        ({"rate_limit.burst": "5"}, "rate_limit.burst"),
        ({"rate_limit": "1r/s", "rate_limit.burst": "-1"}, "rate_limit.burst"),
        ({"max_body_size": "5 m"}, "max_body_size"),
        ({"max_body_size": "5t"}, "max_body_size"),
        ({"timeout.read": "0s"}, "timeout.read"),
        ({"timeout.read": "1h30m"}, "timeout.read"),
    ],
)
def test_bad_limits_are_refused(labels: dict[str, str], label: str) -> None:
    """Malformed rates, bursts without a rate, sizes and times are refused."""
    assert refused(**labels).label == f"{P}.{label}"


def test_websocket_sets_long_timeouts_and_no_buffering_unless_overridden() -> None:
    """websocket=true means 7-day read/send timeouts and no buffering; labels override each."""
    opts = options(websocket="true")
    assert (opts.read_timeout, opts.send_timeout, opts.buffering) == ("7d", "7d", False)
    opts = options(websocket="true", **{"timeout.read": "1h", "buffering": "true"})
    assert (opts.read_timeout, opts.send_timeout, opts.buffering) == ("1h", "7d", True)


def test_redirect_target_variables_are_braced() -> None:
    """$request_uri and friends become ${...} so they cannot run into the following text."""
    opts = options(**{"redirect.to": "https://b.test$request_uri", "redirect.permanent": "true"})
    assert opts.redirect == Redirect("https://b.test${request_uri}", permanent=True)
    opts = options(**{"redirect.to": "$scheme://b.test${uri}x"})
    assert opts.redirect == Redirect("${scheme}://b.test${uri}x")


@pytest.mark.parametrize(
    "value",
    [
        "b.test",
        "https://b.test$remote_addr",
        "https://b.test/ x",
        'https://b.test/"',
        "https://b.test/{",
    ],
)
def test_bad_redirect_targets_are_refused(value: str) -> None:
    """Relative targets, other variables and nginx syntax are refused."""
    assert refused(**{"redirect.to": value}).label == f"{P}.redirect.to"


def test_www_redirect_serves_www_and_redirects_the_apex() -> None:
    """redirect.to=www: the www name is served (added if missing), the bare name redirects."""
    parsed = parse_labels({f"{P}.host": "a.test", f"{P}.redirect.to": "www"}, P)
    served, moved = parsed.routes
    assert served.hosts == ("www.a.test",)
    assert served.options.redirect is None
    assert moved.hosts == ("a.test",)
    assert moved.options.redirect == Redirect("${scheme}://www.a.test${request_uri}")


def test_apex_redirect_serves_the_apex() -> None:
    """redirect.to=apex: www.<name> redirects to <name>, which is served."""
    parsed = parse_labels(
        {
            f"{P}.host": "a.test,www.a.test",
            f"{P}.redirect.to": "apex",
            f"{P}.redirect.permanent": "1",
        },
        P,
    )
    served, moved = parsed.routes
    assert served.hosts == ("a.test",)
    assert moved.hosts == ("www.a.test",)
    assert moved.options.redirect == Redirect("${scheme}://a.test${request_uri}", permanent=True)


def test_www_redirect_refuses_wildcards() -> None:
    """A wildcard host has no single www twin: refused."""
    err = refused(**{"host": "*.a.test", "redirect.to": "www"})
    assert err.label == f"{P}.redirect.to"


def test_backend_choices_and_priority() -> None:
    """scheme, lb and priority parse into the route."""
    route = parse_labels(
        _prefixed(
            {"host": "a.test", "scheme": "HTTPS+insecure", "lb": "ip_hash", "priority": "-5"}
        ),
        P,
    ).route
    assert route is not None
    assert (route.options.scheme, route.lb, route.priority) == ("https+insecure", "ip_hash", -5)


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        ({"scheme": "h2c"}, "scheme"),
        ({"lb": "random"}, "lb"),
        ({"priority": "high"}, "priority"),
        ({"priority": "99999999"}, "priority"),
        ({"path": "/.dockyard/auth"}, "path"),
        ({"path": "/a,b"}, "path"),
        ({"path.strip": "true", "path.replace": "/x"}, "path.replace"),
        ({"path.add_prefix": "x"}, "path.add_prefix"),
    ],
)
def test_bad_route_values_are_refused(labels: dict[str, str], label: str) -> None:
    """Unknown schemes and methods, priorities out of range and bad paths are refused."""
    assert refused(**labels).label == f"{P}.{label}"


def test_several_paths_and_path_rewrites() -> None:
    """A comma-separated path list, exact matching and the rewrite labels parse."""
    route = parse_labels(
        _prefixed(
            {
                "host": "a.test",
                "path": "/a, /b/",
                "path.exact": "true",
                "path.add_prefix": "/p",
                "path.replace": "/r",
            }
        ),
        P,
    ).route
    assert route is not None
    assert (route.paths, route.exact) == (("/a", "/b"), True)
    assert (route.options.add_prefix, route.options.replace_path) == ("/p", "/r")


def test_named_routes_fall_back_to_plain_labels() -> None:
    """route.<name>.* keys override the plain labels; unset keys are inherited (JATOS seed)."""
    parsed = parse_labels(
        _prefixed(
            {
                "host": "jatos.example.org",
                "websocket": "true",
                "port": "9000",
                "route.gui.path": "/jatos",
                "route.gui.allow": "192.168.1.0/24",
            }
        ),
        P,
    )
    plain, gui = parsed.routes
    assert plain == RouteLabels(
        hosts=("jatos.example.org",),
        port=9000,
        options=RouteOptions(websocket=True, buffering=False, read_timeout="7d", send_timeout="7d"),
    )
    assert gui.name == "gui"
    assert (gui.hosts, gui.paths, gui.port) == (("jatos.example.org",), ("/jatos",), 9000)
    assert gui.options == RouteOptions(
        websocket=True,
        buffering=False,
        read_timeout="7d",
        send_timeout="7d",
        allow=("192.168.1.0/24",),
    )


def test_named_route_alone_and_with_its_own_port() -> None:
    """A container may have only named routes, each with its own host and port."""
    parsed = parse_labels(
        _prefixed(
            {
                "route.app.host": "app.test",
                "route.app.port": "80",
                "route.admin.host": "admin.app.test",
                "route.admin.port": "9000",
            }
        ),
        P,
    )
    assert [(r.name, r.hosts, r.port) for r in parsed.routes] == [
        ("admin", ("admin.app.test",), 9000),
        ("app", ("app.test",), 80),
    ]


def test_named_route_can_be_disabled() -> None:
    """route.<name>.enable=false drops just that route."""
    parsed = parse_labels(
        _prefixed({"host": "a.test", "route.x.path": "/x", "route.x.enable": "false"}), P
    )
    assert [r.name for r in parsed.routes] == [""]


@pytest.mark.parametrize(
    ("labels", "label", "reason"),
    [
        ({"route.gui.path": "/jatos"}, "route.gui.host", "no host"),
        ({"host": "a.test", "route.gui.port": "81"}, "route.gui.path", "already served"),
        ({"host": "a.test", "route.g!.path": "/x"}, "route.g!.path", "route.<name>.<key>"),
        ({"host": "a.test", "route.gui": "x"}, "route.gui", "route.<name>.<key>"),
    ],
)
def test_bad_named_routes_are_refused(labels: dict[str, str], label: str, reason: str) -> None:
    """Named routes without a host, clashing with the plain route, or badly named are refused."""
    with pytest.raises(LabelError) as caught:
        parse_labels(_prefixed(labels), P)
    assert caught.value.label == f"{P}.{label}"
    assert reason in caught.value.reason


def test_unknown_keys_in_named_routes_get_suggestions() -> None:
    """A typo inside a named route is suggested within that route."""
    parsed = parse_labels(
        _prefixed({"host": "a.test", "route.gui.path": "/g", "route.gui.alow": "10.0.0.0/8"}), P
    )
    assert [(u.label, u.suggestion) for u in parsed.unknown] == [
        (f"{P}.route.gui.alow", f"{P}.route.gui.allow")
    ]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("hots", "host"),
        ("header.X-A", "headers.<Name>"),
        ("timeout.reed", "timeout.read"),
        ("rate_limt", "rate_limit"),
        ("auth.basik", "auth.basic"),
    ],
)
def test_typos_are_suggested(key: str, suggestion: str) -> None:
    """A mistyped key is reported with the closest known one."""
    parsed = parse_labels(_prefixed({"host": "a.test", key: "x"}), P)
    assert [(u.label, u.suggestion) for u in parsed.unknown] == [
        (f"{P}.{key}", f"{P}.{suggestion}")
    ]


def test_redirect_routes_need_no_backend_options() -> None:
    """A redirect-only route parses without a port."""
    route = parse_labels(
        _prefixed({"host": "old.test", "redirect.to": "https://new.test$request_uri"}), P
    ).route
    assert route is not None
    assert route.port is None
    assert route.options.redirect == Redirect("https://new.test${request_uri}")
