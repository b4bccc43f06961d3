"""Route files: YAML and TOML static routes read, checked like labels, or refused whole."""

from __future__ import annotations

import hashlib
from textwrap import dedent

import pytest

from daemon.labels import Redirect
from daemon.route_files import (
    FILE_NAME_RE,
    ROUTE_FILE_SUFFIXES,
    FileError,
    RouteFile,
    Server,
    StaticRoute,
    is_candidate,
    parse_routes_file,
    route_file_name_problem,
)

JELLYFIN_YAML = """\
routes:
  jellyfin:                      # the route's name
    host: media.example.org
    servers: ["http://192.168.1.20:8096"]
    websocket: true
    buffering: false
    path:
      strip: true
    headers:
      X-Robots-Tag: noindex
"""
JELLYFIN_TOML = """\
[routes.jellyfin]
host = "media.example.org"
servers = ["http://192.168.1.20:8096"]
websocket = true
buffering = false
path = { strip = true }
headers = { X-Robots-Tag = "noindex" }
"""


def read(text: str, name: str = "routes.yaml") -> RouteFile:
    """The file ``name`` holding ``text``."""
    return parse_routes_file(name, dedent(text).encode())


def only(text: str, name: str = "routes.yaml") -> StaticRoute:
    """The one route a valid file declares."""
    file = read(text, name)
    assert file.error is None, file.error
    assert len(file.routes) == 1
    return file.routes[0]


def error(text: str, name: str = "routes.yaml") -> FileError:
    """The error a file is refused with."""
    file = read(text, name)
    assert file.error is not None
    assert file.routes == ()
    return file.error


def route(extra: str, servers: str = "'http://nas.lan'") -> str:
    """A YAML file with one route ``r`` on ``a.test``, its ``servers`` and ``extra`` keys."""
    lines = ["routes:", "  r:", "    host: a.test"]
    lines += [f"    servers: {servers}"] if servers else []
    lines += [f"    {line}" for line in dedent(extra).splitlines()]
    return "\n".join(lines) + "\n"


def test_the_yaml_example_becomes_one_static_route() -> None:
    """The documented YAML example: host, server, websocket, buffering, strip and a header."""
    file = parse_routes_file("media.yaml", JELLYFIN_YAML.encode())
    assert file.name == "media.yaml"
    assert file.digest == hashlib.sha256(JELLYFIN_YAML.encode()).hexdigest()[:12]
    assert file.error is None
    (static,) = file.routes
    assert static.name == "jellyfin"
    assert static.servers == (Server("192.168.1.20", 8096),)
    (labels,) = static.routes
    assert labels.name == "jellyfin"
    assert labels.hosts == ("media.example.org",)
    assert labels.port is None
    assert labels.options.websocket
    assert not labels.options.buffering
    assert labels.options.strip
    assert labels.options.response_headers == (("X-Robots-Tag", "noindex"),)
    assert labels.options.scheme == "http"


def test_the_toml_example_equals_the_yaml_one() -> None:
    """The same routes written in TOML read the same as in YAML."""
    toml = parse_routes_file("media.toml", JELLYFIN_TOML.encode())
    yaml = parse_routes_file("media.yml", JELLYFIN_YAML.encode())
    assert toml.error is None
    assert toml.routes == yaml.routes


def test_suffixes_are_yaml_yml_and_toml() -> None:
    """The three suffixes a routes file may have; anything else is refused."""
    assert ROUTE_FILE_SUFFIXES == (".yaml", ".yml", ".toml")
    assert "routes files end in" in error("routes: {}\n", name="routes.json").reason


def test_lists_booleans_and_numbers_become_label_text() -> None:
    """A list joins with ',', true/false and whole numbers read as their label text."""
    static = only(
        route(
            """\
            path: [/a, /b]
            allow: [10.0.0.0/8, "fd00::/8"]
            websocket: yes
            priority: 7
            rate_limit: 10r/s
            rate_limit.burst: 20
            """,
            servers="['http://b.lan', 'http://a.lan:8080']",
        )
    )
    labels = static.routes[0]
    assert labels.paths == ("/a", "/b")
    assert labels.options.allow == ("10.0.0.0/8", "fd00::/8")
    assert labels.options.websocket
    assert labels.priority == 7
    assert labels.options.rate_limit is not None
    assert labels.options.rate_limit.burst == 20
    assert static.servers == (Server("a.lan", 8080), Server("b.lan", 80))


def test_yaml_words_for_false_keep_their_meaning() -> None:
    """``tls: off`` stays the TLS mode off although YAML 1.1 reads it as a boolean."""
    labels = only(route("tls: off\nbuffering: no")).routes[0]
    assert labels.tls == "off"
    assert not labels.options.buffering


def test_toml_booleans_and_integers_read_as_labels() -> None:
    """TOML true/false and integers become "true"/"false" and digits."""
    labels = only(
        """\
        [routes.r]
        host = ["a.test", "b.test"]
        servers = ["http://nas.lan"]
        pass_host_header = false
        priority = -3
        """,
        name="r.toml",
    ).routes[0]
    assert labels.hosts == ("a.test", "b.test")
    assert not labels.options.pass_host_header
    assert labels.priority == -3


def test_nested_and_dotted_keys_are_the_same_key() -> None:
    """``path: {strip: true}`` and ``path.strip: true`` give the same route."""
    nested = only(route("auth:\n  forward: http://auth.lan:9091\npath:\n  strip: true"))
    dotted = only(route("auth.forward: http://auth.lan:9091\npath.strip: true"))
    assert nested == dotted
    assert nested.routes[0].options.strip
    assert nested.routes[0].options.forward_auth is not None


@pytest.mark.parametrize(
    ("extra", "key", "value"),
    [
        ("priority: 1.5", "routes.r.priority", "1.5"),
        ("headers.X-A: 2024-01-02", "routes.r.headers.X-A", "2024-01-02"),
        ("headers.X-A:", "routes.r.headers.X-A", None),
        ("path: [[/a]]", "routes.r.path", None),
    ],
)
def test_values_that_are_not_text_numbers_or_booleans_are_refused(
    extra: str, key: str, value: str | None
) -> None:
    """Fractions, dates, nulls and nested lists are refused with the key and its line."""
    err = error(route(extra))
    assert err.key == key
    assert err.value == value
    assert err.line == 5
    assert key in err.reason


def test_an_unknown_key_is_refused_with_a_suggestion_and_its_line() -> None:
    """A typo invalidates the whole file, naming the key, the line and the closest key."""
    err = error(route("websockt: true"))
    assert err.key == "routes.r.websockt"
    assert err.line == 5
    assert "routes.r.websockt" in err.reason
    assert "did you mean routes.r.websocket?" in err.reason


def test_a_misspelt_header_stem_keeps_the_header_name_in_the_suggestion() -> None:
    """``header.X-A`` suggests ``headers.X-A``."""
    assert "did you mean routes.r.headers.X-A?" in error(route("header.X-A: b")).reason


def test_a_top_level_key_other_than_routes_is_refused() -> None:
    """Only ``routes`` may be at the top, and a near miss is named."""
    err = error("rutes:\n  r: {}\n")
    assert err.key == "rutes"
    assert err.line == 1
    assert "did you mean routes?" in err.reason


@pytest.mark.parametrize("key", ["port: 8096", "network: backend"])
def test_port_and_network_are_refused_in_files(key: str) -> None:
    """A file has no container to pick an address of: servers name the backends."""
    err = error(route(key))
    assert err.key == "routes.r." + key.partition(":")[0]
    assert "file routes name their backends in servers" in err.reason


def test_named_route_keys_are_refused_in_files() -> None:
    """``route.<name>.<key>`` is for labels; a file names routes by their key."""
    assert error(route("route.gui.path: /gui")).key == "routes.r.route.gui.path"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://nas.lan", "http:// or https://"),
        ("nas.lan:8096", "http:// or https://"),
        ("http://user:pw@nas.lan", "no user name or password"),
        ("http://nas.lan/jellyfin", "no path"),
        ("http://nas.lan?a=1", "no query"),
        ("http://nas.lan#top", "no fragment"),
        ("http://nas.lan:0", "1 to 65535"),
        ("http://nas.lan:65536", "1 to 65535"),
        ("http://nas.lan:", "1 to 65535"),
        ("http://nas.lan:" + "8" * 5000, "1 to 65535"),  # more digits than int() takes
        ("http://", "no host"),
        ("http://::1", "in brackets"),
        ("http://[fe80::1%eth0]", "no zone"),
        ("http://[1.2.3.4]", "not an IPv6 address"),
        ("http://192.168.1.300", "not an IPv4 address"),
        ("http://*.nas.lan", "not a wildcard"),
        ("http://nas_box", "host names are"),
    ],
)
def test_bad_server_urls_are_refused(url: str, why: str) -> None:
    """Each rule of a server URL is enforced, naming the URL."""
    err = error(route("", servers=f"['{url}']"))
    assert err.key == "routes.r.servers"
    assert err.value == url
    assert err.line == 4
    assert why in err.reason


def test_an_empty_item_in_the_servers_list_is_refused() -> None:
    """``a,`` has an empty server URL."""
    assert "empty server URL" in error(route("", servers="'http://a.lan,'")).reason


def test_server_urls_are_normalised_sorted_and_deduplicated() -> None:
    """Names lower-cased, IPv6 unbracketed and compressed, default ports, no duplicates."""
    static = only(
        route(
            "",
            servers=(
                "['HTTP://NAS.lan', 'http://nas.lan:80/', 'http://[2001:DB8:0::1]:8080', "
                "'http://10.0.0.2']"
            ),
        )
    )
    assert static.servers == (
        Server("10.0.0.2", 80),
        Server("2001:db8::1", 8080),
        Server("nas.lan", 80),
    )


def test_servers_with_mixed_schemes_are_refused() -> None:
    """All servers of a route speak the same scheme."""
    err = error(route("", servers="['http://a.lan', 'https://b.lan']"))
    assert err.key == "routes.r.servers"
    assert "not both" in err.reason


def test_https_servers_make_the_backend_scheme_https() -> None:
    """Without a ``scheme`` key, https:// servers set scheme https and port 443."""
    static = only(route("", servers="['https://nas.lan']"))
    assert static.routes[0].options.scheme == "https"
    assert static.servers == (Server("nas.lan", 443),)


def test_https_insecure_is_accepted_for_https_servers() -> None:
    """``scheme: https+insecure`` keeps TLS to https servers without verification."""
    static = only(route("scheme: https+insecure", servers="['https://nas.lan:8920']"))
    assert static.routes[0].options.scheme == "https+insecure"


@pytest.mark.parametrize(
    ("scheme", "servers"),
    [("https+insecure", "http://nas.lan"), ("https", "http://nas.lan"), ("http", "https://a.lan")],
)
def test_a_scheme_the_servers_do_not_speak_is_refused(scheme: str, servers: str) -> None:
    """An explicit ``scheme`` must agree with the servers' URLs."""
    err = error(route(f"scheme: {scheme}", servers=f"['{servers}']"))
    assert err.key == "routes.r.scheme"
    assert err.value == scheme
    assert err.line == 5


def test_a_route_without_servers_is_refused() -> None:
    """A route that proxies needs servers."""
    err = error(route("", servers=""))
    assert err.key == "routes.r.servers"
    assert err.line == 2


def test_a_redirect_only_route_needs_no_servers() -> None:
    """``redirect.to`` a URL answers every request itself: no servers, and none allowed."""
    static = only(route("redirect.to: https://b.test$request_uri", servers=""))
    assert static.servers == ()
    assert static.routes[0].options.redirect == Redirect("https://b.test${request_uri}")
    assert only(route("redirect.to: https://b.test", servers="[]")).servers == ()
    err = error(route("redirect.to: https://b.test"))
    assert err.key == "routes.r.servers"


def test_www_redirect_expansion_yields_two_routes() -> None:
    """``redirect.to: www`` serves www.a.test and redirects a.test; the served one proxies."""
    static = only(route("redirect.to: www", servers="['https://nas.lan']"))
    served, moved = static.routes
    assert served.hosts == ("www.a.test",)
    assert served.options.redirect is None
    assert served.options.scheme == "https"
    assert moved.hosts == ("a.test",)
    assert moved.options.redirect == Redirect("${scheme}://www.a.test${request_uri}")
    assert {served.name, moved.name} == {"r"}


def test_enable_false_leaves_the_route_out() -> None:
    """A disabled route is skipped without error while the others stay."""
    file = read(
        """\
        routes:
          off:
            enable: false
          on:
            host: a.test
            servers: http://nas.lan
        """
    )
    assert file.error is None
    assert [static.name for static in file.routes] == ["on"]


def test_a_route_without_host_is_refused() -> None:
    """Every route needs a host; the error points at the route."""
    err = error("routes:\n  r:\n    servers: http://nas.lan\n")
    assert err.key == "routes.r.host"
    assert err.reason == "routes.r.host: a route needs a host"
    assert err.line == 2


def test_a_bad_route_name_is_refused() -> None:
    """Route names follow the grammar of named routes."""
    err = error("routes:\n  'a b':\n    host: a.test\n")
    assert err.key == "routes.a b"
    assert err.line == 2


def test_a_label_error_carries_the_key_value_and_line() -> None:
    """A value a label grammar refuses is reported with its key, value and line."""
    err = error(route("websocket: maybe"))
    assert err.key == "routes.r.websocket"
    assert err.value == "maybe"
    assert err.line == 5
    assert err.reason.startswith("routes.r.websocket='maybe': true or false")


def test_a_bad_host_is_refused_with_its_key_and_line() -> None:
    """An injection attempt in the host is a LabelError turned into a file error."""
    err = error("routes:\n  r:\n    host: 'a.test; return 200'\n    servers: http://nas.lan\n")
    assert err.key == "routes.r.host"
    assert err.value == "a.test; return 200"
    assert err.line == 3


def test_control_characters_are_refused_in_values() -> None:
    """A line break inside a quoted value never reaches a label grammar."""
    err = error(route('headers.X-A: "a\\nadd_header X b"'))
    assert err.key == "routes.r.headers.X-A"
    assert "control characters" in err.reason


def test_yaml_syntax_errors_carry_their_line() -> None:
    """A YAML syntax error is reported on the line the parser stopped at."""
    err = error("routes:\n  r:\n    host: [a.test\n    servers: x\n  q: 1\n")
    assert err.reason.startswith("not valid YAML")
    assert err.line is not None
    assert err.line >= 3


def test_toml_syntax_errors_carry_their_line() -> None:
    """A TOML syntax error's "(at line N, ...)" becomes the line."""
    err = error('[routes.r]\nhost = "a.test"\nservers = http://nas.lan\n', name="r.toml")
    assert err.reason.startswith("not valid TOML")
    assert err.line == 3


def test_toml_validation_errors_have_no_line() -> None:
    """tomllib gives no positions, so value errors in TOML name only the key."""
    err = error('[routes.r]\nhost = "a.test"\nservers = ["http://nas.lan"]\nlb = "x"\n', "r.toml")
    assert err.key == "routes.r.lb"
    assert err.line is None


def test_bytes_that_are_not_utf8_are_refused() -> None:
    """A file must be UTF-8 text; the line of the first bad byte is named."""
    err = parse_routes_file("r.yaml", b"routes:\n  r:\n    host: caf\xe9.test\n").error
    assert err is not None
    assert "UTF-8" in err.reason
    assert err.line == 3


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("r.yaml", ""),
        ("r.yaml", "# nothing yet\n"),
        ("r.yml", "null\n"),
        ("r.yaml", "routes:\n"),
        ("r.toml", ""),
        ("r.toml", "[routes]\n"),
    ],
)
def test_empty_files_declare_no_routes(name: str, text: str) -> None:
    """An empty file, only comments, or null: no routes and no error."""
    assert parse_routes_file(name, text.encode()) == RouteFile(
        name, hashlib.sha256(text.encode()).hexdigest()[:12]
    )


def test_a_yaml_key_given_twice_is_refused_with_its_line() -> None:
    """The same key twice in one mapping is refused at the second one."""
    err = error(route("websocket: true\nbuffering: false\nwebsocket: false"))
    assert err.key == "routes.r.websocket"
    assert err.line == 7
    assert "first on line 5" in err.reason


def test_a_flattened_key_reached_twice_is_refused() -> None:
    """``path.strip`` and ``path: {strip:}`` are one key set twice, in YAML and in TOML."""
    err = error(route("path.strip: true\npath:\n  strip: true"))
    assert err.key == "routes.r.path.strip"
    assert err.line == 7
    toml = '[routes.r]\nhost = "a.test"\n"path.strip" = true\npath = { strip = true }\n'
    assert error(toml, name="r.toml").key == "routes.r.path.strip"


def test_a_route_name_given_twice_is_refused() -> None:
    """Two routes of one name in a file is a duplicate key."""
    err = error("routes:\n  r:\n    host: a.test\n  r:\n    host: b.test\n")
    assert err.key == "routes.r"
    assert err.line == 4


def test_yaml_merge_keys_fill_in_what_a_route_does_not_set() -> None:
    """``<<: *base`` shares keys between routes; the route's own keys win."""
    file = read(
        """\
        routes:
          a: &base
            host: a.test
            servers: https://nas.lan
            tls: self-signed
          b:
            <<: *base
            host: b.test
        """
    )
    assert file.error is None
    a, b = file.routes
    assert b.routes[0].hosts == ("b.test",)
    assert b.routes[0].tls == "self-signed"
    assert b.servers == a.servers


def test_an_alias_cycle_is_refused_not_followed() -> None:
    """A mapping that contains itself ends in an error, not endless recursion."""
    err = error("routes:\n  r: &r\n    host: a.test\n    loop: *r\n")
    assert "nested deeper than any key" in err.reason


def test_values_of_the_wrong_shape_are_refused() -> None:
    """The top level, ``routes`` and each route must be mappings."""
    assert "a routes file is a mapping" in error("- a\n").reason
    assert error("routes: [a]\n").key == "routes"
    assert error("routes:\n  r: a.test\n").key == "routes.r"


@pytest.mark.parametrize(
    ("name", "text", "key", "line"),
    [
        ("r.toml", '[routes.r]\nhost = "a.test"\npriority = ' + "9" * 5000 + "\n", None, None),
        (
            "r.toml",
            '[routes.r]\nhost = "a.test"\npriority = 0x' + "f" * 5000 + "\n",
            "priority",
            None,
        ),
        ("r.yaml", route("priority: 0x" + "f" * 5000), "priority", 5),
        ("r.yaml", route("priority: " + "9" * 5000), "priority", 5),
        # YAML 1.1 base 60: quadratic to compute, so refused before it is built
        ("r.yaml", route("priority: 1" + ":1" * 200_000), "priority", 5),
        ("r.yaml", route("path: [/a, " + "7" * 200 + "]"), "path", 5),
    ],
)
def test_numbers_of_thousands_of_digits_are_refused_not_raised(
    name: str, text: str, key: str | None, line: int | None
) -> None:
    """Numbers too long for Python's int/str conversion give a FileError, never ValueError."""
    err = error(text, name=name)
    assert err.key == (None if key is None else f"routes.r.{key}")
    assert err.line == line
    assert "whole number of" in err.reason


def test_a_long_number_a_key_takes_as_text_can_be_quoted() -> None:
    """A header value of many digits is fine quoted, and the refusal says so."""
    digits = "1" * 150
    assert "quote it if it is text" in error(route(f"headers.X-Id: {digits}")).reason
    static = only(route(f"headers.X-Id: '{digits}'"))
    assert static.routes[0].options.response_headers == (("X-Id", digits),)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('routes:\n  "jf\\n":\n    host: a.test\n', "routes.jf\n", 2),
        (route('headers: {"X-A\\n": v}'), "routes.r.headers.X-A\n", 5),
        (route('"host\\t": a.test'), "routes.r.host\t", 5),
        (route('path: {"strip\\r": true}'), "routes.r.path.strip\r", 5),
        ('"routes\\u0000": {}\n', "routes\x00", 1),
    ],
)
def test_control_characters_are_refused_in_keys(text: str, key: str, line: int) -> None:
    """A key with a line break, tab or NUL is refused with its line; the reason quotes it."""
    err = error(text)
    assert (err.key, err.line) == (key, line)
    assert err.reason == f"{key!r}: control characters (line breaks, tabs) are not allowed"


def test_control_characters_are_refused_in_toml_keys() -> None:
    """TOML keys are checked the same way (TOML errors after parsing have no line)."""
    text = '[routes."jf\\n"]\nhost = "a.test"\n'
    assert error(text, name="r.toml").key == "routes.jf\n"
    text = '[routes.jf]\nhost = "a.test"\nheaders = { "X-A\\n" = "v" }\n'
    assert error(text, name="r.toml").key == "routes.jf.headers.X-A\n"


def test_a_route_or_header_name_with_a_trailing_line_break_is_refused() -> None:
    """The name grammars are exact: ``$`` would let a final line break through."""
    for text in ('routes:\n  "jf\\n":\n    host: a.test\n', route('headers: {"X-A\\n": v}')):
        assert "control characters" in error(text).reason


def test_a_file_over_one_mib_is_refused_unread() -> None:
    """More than 1 MiB is refused whole, before it is parsed."""
    text = route("") + "#" * (1024 * 1024)
    assert error(text) == FileError("the file is larger than 1 MiB")
    assert read(route("") + "#" * (1024 * 1000)).error is None


def test_list_items_through_aliases_count_against_the_budget() -> None:
    """``[*big, *big, ...]`` spends one per item, as keys do, so it cannot grow unchecked."""
    items = ", ".join(["&s http://a.lan", *["*s"] * 10_000])
    err = error(f"routes:\n  r:\n    host: a.test\n    servers: [{items}]\n")
    assert "more than 10000 keys and list items (aliases included)" in err.reason


def test_a_value_longer_than_64_kib_as_text_is_refused_with_its_key() -> None:
    """A joined list (aliases repeating a long text) is refused before it is joined."""
    text = route(f"path: [&big /{'a' * 20_000}, *big, *big, *big]")
    err = error(text)
    assert (err.key, err.line, err.value) == ("routes.r.path", 5, None)
    assert "longer than 64 KiB as text" in err.reason
    # three fit: the path grammar refuses them (too long a path), not the size cap
    assert "64 KiB" not in error(text.replace("*big, *big, *big", "*big, *big")).reason


def test_a_tagged_list_is_refused() -> None:
    """Only plain lists carry values: ``!!omap`` and friends are refused with the key."""
    err = error(route("path: !!omap [a: /x]"))
    assert (err.key, err.line) == ("routes.r.path", 5)


@pytest.mark.parametrize(
    "name", ["media.yaml", "a.yml", "nas.toml", "A-b_c.1.yaml", "0.toml", "x" * 123 + ".yaml"]
)
def test_route_file_names_the_daemon_reads(name: str) -> None:
    """Letters, digits, '.', '_' and '-' with a route suffix: a route file, no problem."""
    assert FILE_NAME_RE.match(name)
    assert is_candidate(name)
    assert route_file_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "candidate", "why"),
    [
        (".media.yaml", False, "hidden files"),
        ("media.yaml~", False, "backup files"),
        ("notes.txt", False, "route files end in .yaml, .yml, .toml"),
        ("Media.YAML", False, "route files end in"),
        ("media.yaml.swp", False, "route files end in"),
        ("my routes.yaml", True, "file names are 1 to 128 letters"),
        ("-media.yaml", True, "starting with a letter or digit"),
        ("_media.yaml", True, "starting with a letter or digit"),
        ("média.yaml", True, "file names are"),
        ("x" * 124 + ".yaml", True, "1 to 128"),
        ("a'b.toml", True, "file names are"),
        ("a\n.yaml", True, "file names are"),
    ],
)
def test_route_file_names_the_daemon_skips(name: str, candidate: bool, why: str) -> None:
    """Each skipped name says why; only candidates (meant as route files) are worth a report."""
    assert is_candidate(name) == candidate
    problem = route_file_name_problem(name)
    assert problem is not None
    assert why in problem
