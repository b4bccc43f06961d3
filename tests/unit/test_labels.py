"""Label parsing and validation: every value is checked before it can reach nginx."""

from __future__ import annotations

import pytest

from daemon.errors import LabelError
from daemon.labels import KNOWN_KEYS, Hsts, RouteLabels, RouteOptions, parse_labels

P = "dockyard"

# Everything that would change nginx syntax if it were printed into the config.
INJECTIONS = [
    "a.test; return 200",
    "a.test}",
    "{a.test",
    "a.test#",
    'a.test"',
    "a.test'",
    "a.test\nserver_name evil",
    "a.test\r\n",
    "$host",
    "a.test $x",
    "a`b",
    "a\\b",
]
# Free text (a CSP has quotes and ';') is not refused but printed quoted and escaped: see
# test_rendering.py. Line breaks are refused there too.
FREE_TEXT_KEYS = ("csp", "permissions_policy", "headers.X-Test", "request_headers.X-Test")
KEYS_WITH_VALUES = tuple(key for key in KNOWN_KEYS if key not in FREE_TEXT_KEYS)


def _labels(**values: str) -> dict[str, str]:
    return {f"{P}.{key.replace('_', '.')}": value for key, value in values.items()}


@pytest.mark.parametrize("key", KEYS_WITH_VALUES)
@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_attempts_are_rejected_in_every_label(key: str, evil: str) -> None:
    """A value carrying nginx syntax is refused with the label and the value named."""
    labels = {f"{P}.host": "ok.test", f"{P}.{key}": evil}
    if key == "path":
        labels[f"{P}.path"] = "/" + evil
    with pytest.raises(LabelError) as caught:
        parse_labels(labels, P)
    assert caught.value.label == f"{P}.{key}"
    assert caught.value.value == labels[f"{P}.{key}"]
    assert caught.value.reason


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("app.example.com", ("app.example.com",)),
        ("App.Example.COM", ("app.example.com",)),
        ("a.test, www.a.test", ("a.test", "www.a.test")),
        ("*.example.com", ("*.example.com",)),
        ("a.test,a.test", ("a.test",)),
        ("localhost", ("localhost",)),
        ("x.test.", ("x.test",)),
        ("xn--bcher-kva.example", ("xn--bcher-kva.example",)),
    ],
)
def test_valid_hosts_are_normalised(value: str, hosts: tuple[str, ...]) -> None:
    """Host lists are split, lower-cased and de-duplicated."""
    parsed = parse_labels(_labels(host=value), P)
    assert parsed.route is not None
    assert parsed.route.hosts == hosts


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a..test",
        "-a.test",
        "a-.test",
        "a_b.test",
        "*",
        "a.*.test",
        "*a.test",
        "a" * 64 + ".t",
        "ä.test",
        ",a.test",
        "a.test,",
        "x." * 127 + "x",
    ],
)
def test_invalid_hosts_are_rejected(value: str) -> None:
    """Names outside RFC 1123 (plus a leading ``*.``) are refused."""
    with pytest.raises(LabelError):
        parse_labels(_labels(host=value), P)


@pytest.mark.parametrize("value", ["0", "65536", "-1", "80a", "8 0", "", "٣"])
def test_invalid_ports_are_rejected(value: str) -> None:
    """Ports are ASCII numbers from 1 to 65535."""
    with pytest.raises(LabelError):
        parse_labels(_labels(host="a.test", port=value), P)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("/", "/"),
        ("/jellyfin", "/jellyfin"),
        ("/jellyfin/", "/jellyfin"),
        ("/a/b.c-d_e~f", "/a/b.c-d_e~f"),
    ],
)
def test_valid_paths_are_normalised(value: str, path: str) -> None:
    """Paths lose their trailing slash; ``/`` stays ``/``."""
    parsed = parse_labels(_labels(host="a.test", path=value), P)
    assert parsed.route is not None
    assert parsed.route.paths == (path,)


@pytest.mark.parametrize(
    "value",
    [
        "jellyfin",
        "/a//b",
        "/a/../b",
        "/./a",
        "/a b",
        "/a?b",
        "/a%20",
        "/*",
        "/.well-known/acme-challenge",
        "/.well-known/acme-challenge/x",
    ],
)
def test_invalid_paths_are_rejected(value: str) -> None:
    """Paths must start with ``/`` and use the safe character set, no dot segments."""
    with pytest.raises(LabelError):
        parse_labels(_labels(host="a.test", path=value), P)


def test_all_labels_parse_into_route_labels() -> None:
    """Every documented label lands in the typed result."""
    parsed = parse_labels(
        _labels(
            host="a.test",
            port="8096",
            path="/jf",
            path_strip="TRUE",
            network="back-end_1",
            websocket="yes",
            enable="on",
        ),
        P,
    )
    assert parsed.route == RouteLabels(
        hosts=("a.test",),
        port=8096,
        paths=("/jf",),
        network="back-end_1",
        options=RouteOptions(
            strip=True, websocket=True, buffering=False, read_timeout="7d", send_timeout="7d"
        ),
    )


def test_container_without_host_is_not_exposed() -> None:
    """No host label: no route, and the reason is given when other labels are present."""
    assert parse_labels({"other": "x"}, P).route is None
    assert parse_labels({"other": "x"}, P).reason is None
    parsed = parse_labels(_labels(port="80"), P)
    assert parsed.route is None
    assert parsed.reason == "no dockyard.host label"


def test_enable_false_excludes_the_container() -> None:
    """``enable=false`` wins over every other label."""
    parsed = parse_labels(_labels(host="a.test", enable="false"), P)
    assert parsed.route is None
    assert parsed.reason is not None


def test_unknown_labels_are_reported_with_a_suggestion() -> None:
    """A typo is reported with the closest known label, and the rest still parses."""
    parsed = parse_labels(_labels(host="a.test", prot="80", colour="red"), P)
    assert parsed.route is not None
    suggestions = {u.label: u.suggestion for u in parsed.unknown}
    assert suggestions == {"dockyard.prot": "dockyard.port", "dockyard.colour": None}


def test_other_prefixes_are_ignored() -> None:
    """Only labels under the configured prefix count."""
    parsed = parse_labels({"dockyardx.host": "a.test", "other.host": "b.test"}, P)
    assert parsed.route is None
    assert parsed.unknown == ()


def test_tls_https_and_hsts_labels_parse() -> None:
    """TLS mode, HTTPS mode and HSTS are read in any case; HSTS keeps only its parts."""
    parsed = parse_labels(
        _labels(host="a.test", tls="Self-Signed", https="ONLY", hsts="max-age=600; preload;"), P
    )
    assert parsed.route is not None
    assert (parsed.route.tls, parsed.route.https) == ("self-signed", "only")
    assert parsed.route.hsts == Hsts(600, include_subdomains=False, preload=True)
    assert parsed.route.hsts.header == "max-age=600; preload"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=31536000", Hsts(31536000)),
        ("max-age=0", Hsts(0)),
        ("max-age=63072000; includeSubDomains; preload", Hsts(63072000, True, True)),
        ("MAX-AGE=10;INCLUDESUBDOMAINS", Hsts(10, True)),
        ("off", "off"),
    ],
)
def test_valid_hsts_values(value: str, expected: object) -> None:
    """Every valid HSTS value (and off) is accepted and normalised."""
    parsed = parse_labels(_labels(host="a.test", hsts=value), P)
    assert parsed.route is not None
    assert parsed.route.hsts == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "max-age=",
        "max-age=-1",
        "max-age=1; includeSubDomains; includeSubDomains",
        "1 year",
        "max-age=1; always",
        "max-age=1, preload",
    ],
)
def test_invalid_hsts_values_are_rejected(value: str) -> None:
    """Anything but off or max-age=N with the two standard flags is refused."""
    with pytest.raises(LabelError) as caught:
        parse_labels(_labels(host="a.test", hsts=value), P)
    assert caught.value.label == f"{P}.hsts"


@pytest.mark.parametrize(("key", "value"), [("tls", "letsencrypt"), ("https", "force")])
def test_unknown_modes_are_rejected_with_the_choices(key: str, value: str) -> None:
    """A mode outside the documented words is refused and the words are listed."""
    with pytest.raises(LabelError) as caught:
        parse_labels({f"{P}.host": "a.test", f"{P}.{key}": value}, P)
    assert caught.value.label == f"{P}.{key}"
    assert "one of" in caught.value.reason


@pytest.mark.parametrize(("key", "value"), [("https", "redirect"), ("hsts", "max-age=60")])
def test_https_options_without_tls_are_rejected(key: str, value: str) -> None:
    """HTTPS options on a host with tls=off are an error, not silently ignored."""
    with pytest.raises(LabelError) as caught:
        parse_labels({f"{P}.host": "a.test", f"{P}.tls": "off", f"{P}.{key}": value}, P)
    assert caught.value.label == f"{P}.{key}"
    assert "tls is off" in caught.value.reason


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("route.jf\n.host", f"{P}.route.jf\n.host"),
        ("headers.X-A\n", f"{P}.headers.X-A\n"),
        ("request_headers.X-A\n", f"{P}.request_headers.X-A\n"),
    ],
)
def test_names_with_a_trailing_line_break_are_refused(key: str, label: str) -> None:
    """Route and header names are matched whole: ``$`` would let a final line break pass."""
    with pytest.raises(LabelError) as caught:
        parse_labels({f"{P}.host": "a.test", f"{P}.{key}": "v"}, P)
    assert caught.value.label == label


@pytest.mark.parametrize(
    "labels",
    [
        {"port": "9" * 5000},
        {"priority": "9" * 5000},
        {"priority": "-" + "9" * 5000},
        {"rate_limit": "10r/s", "rate_limit.burst": "1" * 5000},
    ],
)
def test_numbers_of_thousands_of_digits_are_refused(labels: dict[str, str]) -> None:
    """A number past Python's int conversion limit is a LabelError, not a ValueError."""
    values = {f"{P}.{key}": value for key, value in labels.items()}
    with pytest.raises(LabelError, match="from"):
        parse_labels({f"{P}.host": "a.test", **values}, P)
