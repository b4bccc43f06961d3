"""Fuzzing the route file reader: whatever a file holds, ``parse_routes_file`` answers.

The daemon reads every file an operator (or a tool) drops into the routes directory, so
no content may raise out of the reader: arbitrary bytes, and YAML and TOML texts built
from pieces of real route files mixed with the corners of both languages (aliases, merge
keys, tags, base-60 and hex numbers, escapes, long digit runs) all end in a ``RouteFile``,
with routes or with the error that skips it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.route_files import RouteFile, parse_routes_file

NAMES = ("routes.yaml", "routes.yml", "routes.toml", "routes.json")
# Pieces of YAML route files, valid and not, joined into lines with random indents.
YAML_PIECES = (
    "routes:",
    "r:",
    "jf:",
    '"jf\\n":',
    "host: a.test",
    "host: [a.test, b.test]",
    "servers: ['http://10.0.0.5:8096']",
    "servers: [http://a.lan, https://b.lan]",
    "servers: [&s http://a.lan, *s, *s]",
    "path: {strip: true}",
    "path: [/a, /b]",
    "headers:",
    "X-Robots-Tag: noindex",
    'headers: {"X-A\\n": v}',
    "redirect.to: www",
    "priority: 7",
    "priority: 0x" + "f" * 40,
    "priority: 1:2:3:4:5",
    "priority: 0b1010",
    "priority: 1e999",
    "priority: 2001-12-14t21:59:43.10-05:00",
    "websocket: yes",
    "enable: off",
    "- a",
    "- *a",
    "&a",
    "*a",
    "&b {x: *b}",
    "<<: *a",
    "<<: [*a, *b]",
    "base: &a {host: a.test}",
    "!!omap [a: 1]",
    "!!binary aGk=",
    "!!set {a, b}",
    "!!python/object:os.system x",
    "!!str",
    "? [a, b]",
    ": v",
    "{",
    "[",
    "]",
    "}",
    '"\\t"',
    "'",
    "#",
    "---",
    "...",
    "%YAML 1.1",
    "\t",
    "\ufeff",
    "\x85",
)
# Pieces of TOML route files.
TOML_PIECES = (
    "[routes.r]",
    "[routes.jf]",
    '[routes."jf\\n"]',
    "[[routes.r.x]]",
    "[routes]",
    "[routes.r.path]",
    'host = "a.test"',
    'host = ["a.test", "b.test"]',
    'servers = ["http://10.0.0.5:8096"]',
    "servers = []",
    "servers = [[1], {a = 1}]",
    "path = { strip = true }",
    'headers = { X-A = "v", "X-B\\n" = "w" }',
    "priority = 7",
    "priority = 0x" + "f" * 40,
    "priority = 9_999",
    "priority = inf",
    "priority = nan",
    "priority = 1979-05-27T07:32:00Z",
    "priority = 07:32:00",
    "websocket = true",
    "routes = 1",
    "x = 1",
    "a.b.c = 1",
    "=",
    "[",
    "]",
    "{",
    '"',
    '"""',
    "'''",
    "#",
    "\\u0000",
)


def _digits(count: int) -> st.SearchStrategy[str]:
    return st.sampled_from(("", "0x", "-", "1:")).map(lambda head: head + "9" * count)


# every piece, or a run of digits long enough to trip Python's int/str conversion limit
LONG_NUMBERS = st.integers(4290, 4310).flatmap(_digits)
# a valid start, so that the random lines after it often land inside a route
YAML_HEADS = ("", "routes:\n  r:\n    host: a.test\n    servers: [http://a.lan]\n")
TOML_HEADS = ("", '[routes.r]\nhost = "a.test"\nservers = ["http://a.lan"]\n')
YAML_LINES = st.lists(
    st.tuples(
        st.sampled_from(("", "  ", "    ", "      ", "- ")),
        st.one_of(
            st.sampled_from(YAML_PIECES),
            st.text(max_size=12),
            LONG_NUMBERS.map(lambda n: "priority: " + n),
        ),
        st.sampled_from(("", " ", " *a", " &a", ": v", " # c")),
    ).map("".join),
    max_size=14,
).map(lambda lines: "\n".join(lines) + "\n")
YAML_TEXTS = st.tuples(st.sampled_from(YAML_HEADS), YAML_LINES).map("".join)
TOML_LINES = st.lists(
    st.one_of(
        st.sampled_from(TOML_PIECES),
        st.text(max_size=12),
        LONG_NUMBERS.map(lambda n: "priority = " + n),
    ),
    max_size=14,
).map(lambda lines: "\n".join(lines) + "\n")
TOML_TEXTS = st.tuples(st.sampled_from(TOML_HEADS), TOML_LINES).map("".join)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(name: str, data: bytes) -> RouteFile:
    """Parse, and check what any answer must be: routes or a one-line error, never both."""
    file = parse_routes_file(name, data)
    assert file.name == name
    if file.error is not None:
        assert file.routes == ()
        assert file.error.reason
        # the reason goes into a log line and a report line as it is
        assert "\n" not in file.error.reason, file.error
    return file


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(name: str, data: bytes) -> None:
    """Any bytes under any name give a RouteFile."""
    check(name, data)


@FUZZ
@given(name=st.sampled_from(("routes.yaml", "routes.yml")), text=YAML_TEXTS)
def test_yaml_like_text_never_raises(name: str, text: str) -> None:
    """YAML built from route file pieces and YAML's corners gives a RouteFile."""
    check(name, text.encode())


@FUZZ
@given(text=TOML_TEXTS)
def test_toml_like_text_never_raises(text: str) -> None:
    """TOML built from route file pieces gives a RouteFile."""
    check("routes.toml", text.encode())
