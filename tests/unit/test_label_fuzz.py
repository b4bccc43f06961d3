"""Fuzzing the label parser: whatever a label says, the config nginx gets is well formed.

Hypothesis generates label sets over every known key (plain, header and named-route keys)
with values that mix valid grammar pieces and hostile text. Each set goes through
``parse_labels`` (which may refuse it with ``LabelError``) and ``build_routes`` into the
shipped templates; the config must then (a) hold only statements our templates write, in
the blocks they write them, with closed quotes, and (b) pass a real ``nginx -t``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acme_store import keys
from daemon.errors import LabelError
from daemon.labels import HEADER_KEYS, KNOWN_KEYS, parse_labels
from daemon.rendering import Paths, RenderFacts, auth_files, make_environment, render_config
from daemon.routing import Attachment, ContainerInfo, RoutingContext, RoutingTable, build_routes
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState

T = TypeVar("T")
BOOLS = ("true", "false", "yes", "off", "1")
APR1 = "alice:$apr1$abcdefgh$0123456789abcdefghijkl"
BCRYPT = "bob:$2y$05$" + "a" * 53
SHA = "carol:{SHA}" + "A" * 27 + "="
# Values each key accepts; the fuzzer mixes them with hostile text.
VALID: dict[str, tuple[str, ...]] = {
    "host": ("app.test", "a.test,www.a.test", "*.wild.test", "APP.Test."),
    "port": ("8080", "1", "65535"),
    "path": ("/", "/api", "/a/b", "/x,/y/z", "/@:+~._-"),
    "path.strip": BOOLS,
    "path.exact": BOOLS,
    "path.add_prefix": ("/p", "/", "/a/b"),
    "path.replace": ("/r", "/"),
    "network": ("bridge", "backend"),
    "websocket": BOOLS,
    "enable": ("true", "yes", "false"),
    "tls": ("acme", "self-signed", "off"),
    "https": ("redirect", "both", "only"),
    "hsts": ("max-age=63072000; includeSubDomains; preload", "max-age=0", "off"),
    "frame": ("deny", "SAMEORIGIN", "allow-from https://x.test/"),
    "nosniff": BOOLS,
    "xss_filter": BOOLS,
    "csp": ("default-src 'self'; img-src *", "script-src 'nonce-$x' \"q\" \\ {a} #b"),
    "referrer_policy": ("no-referrer", "origin, strict-origin"),
    "permissions_policy": ("geolocation=(), camera=(self)",),
    "allow": ("10.0.0.0/8", "192.168.1.7, ::1, fd00::/8"),
    "auth.basic": (APR1, BCRYPT, SHA, f"{APR1},{BCRYPT}"),
    # hosts nginx can resolve at load time: a container name routing resolves, IPs, localhost
    "auth.forward": ("http://auth:9091/api/verify?rd=https://x.test/", "https://localhost/a"),
    "auth.forward.response_headers": ("Remote-User, Remote-Groups", "X_A"),
    "rate_limit": ("10r/s", "300r/m"),
    "rate_limit.burst": ("0", "20"),
    "max_body_size": ("0", "10m", "2GB"),
    "buffering": BOOLS,
    "timeout.connect": ("5s", "100ms"),
    "timeout.read": ("7d", "30"),
    "timeout.send": ("1h", "90m"),
    "redirect.to": ("www", "apex", "https://x.test${request_uri}", "$scheme://a.test/$uri?$args"),
    "redirect.permanent": BOOLS,
    "scheme": ("http", "https", "https+insecure"),
    "lb": ("round_robin", "least_conn", "ip_hash"),
    "priority": ("0", "5", "-3"),
    "pass_host_header": BOOLS,
    "headers": ("noindex, nofollow", "", "a;b {c} #d 'e' \"f\" \\g $h ${i}"),
    "request_headers": ("/app", "", "$remote_addr ;{}# '\" \\"),
}
HEADER_NAMES = ("X-Robots-Tag", "X-Script-Name", "Remote-User", "Host", "X_A", "Server")
# Attempts to end a statement or block, start a comment, open a quote or escape one.
INJECTIONS = (
    ";",
    '; return 200 "pwned";',
    '"; add_header X-Injected 1; "',
    "'",
    "} server { listen 8081; } #",
    "# comment",
    "$host",
    "${dockyard_dollar}",
    "\\",
    '\\"',
    "\n}",
    "\r\n",
    "\t",
    "\x00",
    "\u2028",
    "é",
    " ",
    "{",
    ";dockyard_injected on;",
    "`id`",
)
HOSTILE_ALPHABET = ";{}#'\"\\$ \t\n\r`aZ09./:-_=,*()@?&%é…\u2028\x00\ufeff"

PREFIX = "dockyard"
CTX = RoutingContext(label_prefix=PREFIX, host_gateway="172.17.0.1")
# A plain pair of hosts shares one server block through a `map $host`; `auth` has no labels
# and gives forward-auth URLs naming it an address.
NEIGHBOURS = (
    ContainerInfo(
        "id-auth",
        "auth",
        (),
        attachments=(Attachment("bridge", "172.17.0.9"),),
        exposed_ports=(9091,),
    ),
    *(
        ContainerInfo(
            f"id-{name}",
            name,
            ((f"{PREFIX}.host", f"{name}.test"), (f"{PREFIX}.port", "80")),
            attachments=(Attachment("bridge", f"172.17.0.{index}"),),
        )
        for index, name in ((10, "s1"), (11, "s2"))
    ),
)
ENV = make_environment(None, builtin_templates())
TLS_MODES = st.sampled_from(("http", "fallback", "issued"))
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def grammar(key: str) -> str:
    """The VALID entry of a label key: ``route.api.headers.X`` → ``headers``."""
    if key.startswith("route.") and key.count(".") >= 2:
        key = key.split(".", 2)[2]
    stem = key.partition(".")[0]
    return stem if stem in HEADER_KEYS else key


# Printable ASCII passes the free-text grammars (header values): injections that get through.
printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
FREE_TEXT = frozenset({"headers", "request_headers", "csp", "permissions_policy"})
hostile = st.one_of(
    st.text(alphabet=HOSTILE_ALPHABET, max_size=30),
    printable,
    st.text(max_size=10),
    st.sampled_from(INJECTIONS),
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(("a", "/a", "a.", ";", "$", '"')),
        st.integers(64, 5000),
    ),
)


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, by weight (``st.one_of`` flattens and merges equal branches)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


header_names = weighted((5, st.sampled_from(HEADER_NAMES)), (1, hostile))
plain_keys = weighted(
    (4, st.sampled_from(KNOWN_KEYS)),
    (1, st.builds(lambda stem, name: f"{stem}.{name}", st.sampled_from(HEADER_KEYS), header_names)),
)
route_names = weighted((5, st.sampled_from(("api", "b_2", "x-1"))), (1, hostile))
label_keys = weighted(
    (3, plain_keys),
    (1, st.builds(lambda name, key: f"route.{name}.{key}", route_names, plain_keys)),
)


def valid_values(key: str) -> st.SearchStrategy[str]:
    """Values the key accepts."""
    return st.sampled_from(VALID.get(grammar(key), ("x",)))


def values(key: str) -> st.SearchStrategy[str]:
    """Hostile text, alone or around a valid value, or a valid value."""
    valid = valid_values(key)
    return weighted(
        (2, valid),
        (2, hostile),
        (1, st.builds(lambda v, h: v + h, valid, hostile)),
        (1, st.builds(lambda h, v: h + v, hostile, valid)),
    )


def accepted_values(key: str) -> st.SearchStrategy[str]:
    """Values the parser accepts, free texts full of nginx syntax."""
    if grammar(key) in FREE_TEXT:
        return weighted(
            (1, valid_values(key)), (2, printable), (1, st.sampled_from(INJECTIONS[:12]))
        )
    return valid_values(key)


# Labels a key needs beside it to be accepted at all.
PARTNERS = {
    "auth.forward.response_headers": {"auth.forward": "http://auth:9091/"},
    "rate_limit.burst": {"rate_limit": "1r/s"},
    "redirect.permanent": {"redirect.to": "www"},
}


@st.composite
def label_sets(draw: st.DrawFn) -> dict[str, str]:
    """A container's labels: usually a host, then keys whose values the parser accepts
    (hostile free text included), or with the first or every value hostile."""
    labels = {}
    if draw(st.integers(0, 9)):
        labels["host"] = draw(valid_values("host"))
    keys = draw(st.lists(label_keys, max_size=6, unique=True))
    mode = draw(st.sampled_from(("accepted", "first", "every")))
    for index, key in enumerate(keys):
        hostile_here = mode == "every" or (mode == "first" and index == 0)
        labels[key] = draw(values(key) if hostile_here else accepted_values(key))
        route = key[: len(key) - len(grammar(key))] if key.startswith("route.") else ""
        for partner, value in PARTNERS.get(grammar(key), {}).items():
            labels.setdefault(route + partner, value)
        if route:  # its own path: the plain route's would overlap it
            labels.setdefault(route + "path", "/" + route.split(".")[1])
    return {f"{PREFIX}.{key}": value for key, value in labels.items()}


# One container, or two whose hosts and paths may meet (replicas, shared server blocks).
CONTAINERS = st.lists(label_sets(), min_size=1, max_size=2)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One generated container's config and the htpasswd files it names."""

    config: str
    auth_files: dict[str, str]


@dataclass(frozen=True, slots=True)
class Workspace:
    """A state dir nginx can test configs in, with certificate files to name."""

    state: Path
    fallback: CertFiles
    issued: CertFiles

    def tls(self, mode: str, table: RoutingTable) -> TlsState | None:
        """No HTTPS, the fallback for every host, or a CA-issued certificate for each."""
        if mode == "http":
            return None
        hosts = sorted({route.host for route in table.routes}) if mode == "issued" else []
        return TlsState(self.fallback, tuple((host, self.issued) for host in hosts))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The state dir, its nginx directories, a CA bundle and two certificate files."""
    state = tmp_path_factory.mktemp("fuzz")
    paths = Paths.under(state)
    for directory in (paths.config.parent, paths.temp, paths.acme_challenge, paths.auth_files):
        directory.mkdir(parents=True, exist_ok=True)
    key = keys.new_key("ec256")
    pem = keys.self_signed(("fallback.invalid",), key, datetime.now(UTC), timedelta(days=1))
    (state / "ca.pem").write_text(pem)
    files = []
    for name in ("fallback", "issued"):
        path = state / f"{name}.pem"
        path.write_text(pem + key)
        files.append(CertFiles(path, name[0] * 16))
    return Workspace(state, *files)


def render(sets: list[dict[str, str]], workspace: Workspace, tls_mode: str) -> Rendered:
    """Each label set on a container → routing → the templates.

    Routing parses the labels and leaves out a container whose labels raise ``LabelError``;
    any other exception from the parser escapes ``build_routes`` and fails the test.
    """
    containers = [
        ContainerInfo(
            f"id-app{index}",
            f"app{index}",
            tuple(sorted(labels.items())),
            attachments=(Attachment("bridge", f"172.17.0.{2 + index}"),),
            exposed_ports=(8080,),
        )
        for index, labels in enumerate(sets)
    ]
    table = build_routes([*containers, *NEIGHBOURS], CTX).table
    state = workspace.state
    config_settings = Settings(state_dir=state, backend_ca=state / "ca.pem")
    facts = RenderFacts(Paths.under(state))
    text = render_config(table, config_settings, facts, ENV, workspace.tls(tls_mode, table))
    return Rendered(text, auth_files(table))


# -- (a) the structure: statements only our templates write ----------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    """One ``;``-terminated statement or block opening, with the blocks around it."""

    parents: tuple[str, ...]
    words: tuple[str, ...]
    line: int
    # index of the statement that opened the enclosing block (-1 at the top)
    block: int = -1

    @property
    def context(self) -> str:
        """The innermost block's directive, ``main`` at the top."""
        return self.parents[-1] if self.parents else "main"


def tokenise(text: str) -> list[Statement]:
    """Split config text into statements as nginx's ``ngx_conf_read_token`` does.

    Words end at whitespace, ``;`` or ``{`` (``${`` stays in a word); ``}`` ends a block
    only where a word could start; ``#`` starts a comment there too; a backslash escapes
    the next character; a quoted word must close on its line and be followed by a
    separator. Raises ``AssertionError`` where nginx would refuse the text.
    """
    statements: list[Statement] = []
    parents: list[str] = []
    openers: list[int] = []
    words: list[str] = []
    i, line = 0, 1
    while i < len(text):
        char = text[i]
        if char in " \t\r\n":
            line += char == "\n"
            i += 1
        elif char == "#":
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif char in ";{":
            assert words, f"line {line}: {char!r} without a directive"
            block = openers[-1] if openers else -1
            statements.append(Statement(tuple(parents), tuple(words), line, block))
            if char == "{":
                parents.append(words[0])
                openers.append(len(statements) - 1)
            words = []
            i += 1
        elif char == "}":
            assert not words, f"line {line}: '}}' ends the unfinished statement {words}"
            assert parents, f"line {line}: '}}' closes no block"
            parents.pop()
            openers.pop()
            i += 1
        elif char in "\"'":
            end = i + 1
            while end < len(text) and text[end] not in (char, "\n"):
                end += 2 if text[end] == "\\" else 1
            assert text[end : end + 1] == char, f"line {line}: quote not closed on its line"
            words.append(text[i + 1 : end])
            i = end + 1
            after = text[i : i + 1]
            assert after and after in " \t\r\n;{", f"line {line}: {after!r} right after a quote"
        else:
            end = i
            while end < len(text) and (
                text[end] not in " \t\r\n;{" or (text[end] == "{" and text[end - 1] == "$")
            ):
                end += 2 if text[end] == "\\" else 1
            words.append(text[i:end])
            i = end
    assert not words and not parents, "the config ends inside a statement or block"
    return statements


# (context → directive → (fewest, most) arguments) of every statement the templates write.
GRAMMAR: dict[str, dict[str, tuple[int, int]]] = {
    "main": {
        "daemon": (1, 1),
        "worker_processes": (1, 1),
        "worker_shutdown_timeout": (1, 1),
        "pid": (1, 1),
        "error_log": (2, 2),
        "events": (0, 0),
        "http": (0, 0),
    },
    "events": {"worker_connections": (1, 1)},
    "http": {
        **dict.fromkeys(
            (
                "server_tokens",
                "absolute_redirect",
                "default_type",
                "sendfile",
                "tcp_nopush",
                "keepalive_timeout",
                "client_body_temp_path",
                "proxy_temp_path",
                "fastcgi_temp_path",
                "uwsgi_temp_path",
                "scgi_temp_path",
                "server_names_hash_max_size",
                "server_names_hash_bucket_size",
                "map_hash_max_size",
                "map_hash_bucket_size",
                "variables_hash_max_size",
                "proxy_headers_hash_bucket_size",
                "variables_hash_bucket_size",
                "proxy_http_version",
                "set_real_ip_from",
                "real_ip_header",
                "real_ip_recursive",
                "ssl_ecdh_curve",
                "ssl_ciphers",
                "ssl_prefer_server_ciphers",
                "ssl_session_timeout",
                "ssl_session_cache",
                "ssl_session_tickets",
                "limit_req_status",
                "upstream",
            ),
            (1, 1),
        ),
        "log_format": (3, 3),
        "access_log": (1, 2),
        "ssl_protocols": (2, 2),
        "limit_req_zone": (3, 3),
        "map": (2, 2),
        "geo": (1, 2),
        "proxy_set_header": (2, 2),
        "server": (0, 0),
    },
    "upstream": {
        "server": (1, 1),
        "keepalive": (1, 1),
        "keepalive_timeout": (1, 1),
        "least_conn": (0, 0),
        "ip_hash": (0, 0),
    },
    "server": {
        "listen": (1, 4),
        "server_name": (1, 1),
        "location": (1, 2),
        "ssl_certificate": (1, 1),
        "ssl_certificate_key": (1, 1),
        "ssl_reject_handshake": (1, 1),
        "add_header": (3, 3),
        "access_log": (1, 1),
    },
    "location": {
        **dict.fromkeys(
            (
                "alias",
                "default_type",
                "allow",
                "deny",
                "auth_basic",
                "auth_basic_user_file",
                "auth_request",
                "client_max_body_size",
                "proxy_hide_header",
                "proxy_pass",
                "proxy_pass_request_body",
                "proxy_ssl_server_name",
                "proxy_ssl_name",
                "proxy_ssl_verify",
                "proxy_ssl_trusted_certificate",
                "proxy_connect_timeout",
                "proxy_read_timeout",
                "proxy_send_timeout",
                "proxy_buffering",
                "proxy_request_buffering",
            ),
            (1, 1),
        ),
        "internal": (0, 0),
        "return": (1, 2),
        "if": (3, 3),
        "auth_request_set": (2, 2),
        "limit_req": (1, 3),
        "rewrite": (3, 3),
        "add_header": (3, 3),
        "proxy_set_header": (2, 2),
    },
    "if": {"return": (2, 2)},
    # entries, not directives: `key value;` (or `hostnames;`)
    "map": {"*": (0, 1)},
    "geo": {"*": (0, 1)},
}
# The last word some directives must end with: anything else means a value ran on.
LAST_WORD = {"add_header": "always", "rewrite": "break", "limit_req": "nodelay"}
# nginx reads a word into a 4096-byte buffer: 4095 characters are "too long parameter".
NGINX_LONGEST_WORD = 4094


def check_structure(config: str) -> None:
    """Every statement is one our templates write, in its block, with its argument count."""
    statements = tokenise(config)
    for statement in statements:
        name, arguments = statement.words[0], len(statement.words) - 1
        allowed = GRAMMAR[statement.context]
        low, high = allowed.get(name, allowed.get("*", (-1, -1)))
        where = f"line {statement.line} in {statement.context}: {' '.join(statement.words)!r}"
        assert low <= arguments <= high, f"statement our templates never write, {where}"
        if name in LAST_WORD and arguments > 1:
            assert statement.words[-1] == LAST_WORD[name], f"value ran on, {where}"
        longest = max(len(word) for word in statement.words)
        assert longest <= NGINX_LONGEST_WORD, f"a {longest}-character word, {where[:200]}"
    answers = Counter(s.block for s in statements if s.words[0] in ("return", "proxy_pass"))
    for block, count in answers.items():
        where = f"line {statements[block].line}"
        assert count == 1, f"{where}: a block with {count} return/proxy_pass statements"


# Values that made words nginx refuses ("too long parameter") before paths and URLs had a
# length limit: the fuzzer's second find. Each is now a label error.
LONG_VALUES = {
    "path": {"dockyard.path": "/" + "a" * 4093},
    "path-strip-regex": {"dockyard.path": "/" + "a." * 1022 + "a", "dockyard.path.strip": "1"},
    "path.add_prefix": {"dockyard.path.add_prefix": "/" + "a" * 4092},
    "path.replace": {"dockyard.path.replace": "/" + "a" * 4094},
    "redirect.to": {"dockyard.redirect.to": "https://x.test/" + "a" * 4080},
    "redirect.to-variables": {"dockyard.redirect.to": "https://x.test/" + "$request_uri" * 292},
    "auth.forward": {"dockyard.auth.forward": "http://auth:9091/" + "a" * 4073},
}


# -- the tests ---------------------------------------------------------------------------


def test_every_known_key_has_values_the_parser_accepts() -> None:
    """The generator knows every label key, and its valid values really are valid."""
    assert set(VALID) == {*KNOWN_KEYS, *HEADER_KEYS}
    for key, examples in VALID.items():
        name = f"{key}.X-Test" if key in HEADER_KEYS else key
        for value in examples:
            labels = {"host": "app.test", **PARTNERS.get(key, {}), name: value}
            parse_labels({f"{PREFIX}.{k}": v for k, v in labels.items()}, PREFIX)


def test_structure_check_catches_injected_statements() -> None:
    """The structural check refuses what an injection would look like."""
    good = "http {\n    server {\n        location / {\n            proxy_pass http://u1;\n"
    check_structure(good + "        }\n    }\n}\n")
    for bad in (
        '            add_header X "a" always; return 200;\n',  # a second answer
        "            dockyard_injected on;\n",  # not a directive of ours
        "            proxy_set_header X a b;\n",  # a value split into two words
        '            add_header X "a\n b" always;\n',  # a quote across lines
        '            add_header X "a"b always;\n',  # text right after a quote
        "            }\n",  # a block closed early
    ):
        with pytest.raises(AssertionError):
            check_structure(good + bad + "        }\n    }\n}\n")


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(labels=CONTAINERS, tls_mode=TLS_MODES)
def test_configs_hold_only_statements_our_templates_write(
    labels: list[dict[str, str]], tls_mode: str, workspace: Workspace
) -> None:
    """Whatever the labels say, every statement of the config is one of the templates'."""
    check_structure(render(labels, workspace, tls_mode).config)


def nginx_t(rendered: Rendered, workspace: Workspace) -> str:
    """Run ``nginx -t`` on the config, its htpasswd files written: "" or what nginx said."""
    assert NGINX is not None
    paths = Paths.under(workspace.state)
    for name, content in rendered.auth_files.items():
        (paths.auth_files / name).write_text(content)
    paths.config.write_text(rendered.config, encoding="utf-8")
    prefix = f"{paths.config.parent}/"
    done = subprocess.run(
        [NGINX, "-t", "-q", "-c", str(paths.config), "-p", prefix, "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "" if done.returncode == 0 else done.stderr or f"exit code {done.returncode}"


needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (tests/run.sh installs it)"
)


@needs_nginx
@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(labels=CONTAINERS, tls_mode=TLS_MODES)
def test_nginx_accepts_every_config(
    labels: list[dict[str, str]], tls_mode: str, workspace: Workspace
) -> None:
    """Whatever the labels say, ``nginx -t`` accepts the config they produce."""
    assert nginx_t(render(labels, workspace, tls_mode), workspace) == "", f"labels {labels!r}"


@needs_nginx
@pytest.mark.parametrize("burst", [None, "0"])
def test_rate_limit_without_burst_passes_nginx_t(workspace: Workspace, burst: str | None) -> None:
    """A rate limit without a burst passes ``nginx -t`` (the fuzzer's first find: burst=0)."""
    labels = {"dockyard.host": "app.test", "dockyard.rate_limit": "10r/s"}
    if burst is not None:
        labels["dockyard.rate_limit.burst"] = burst
    assert nginx_t(render([labels], workspace, "http"), workspace) == ""


LONGEST_NAME = "X" + "a" * 63


@needs_nginx
@pytest.mark.parametrize(
    "extra",
    [
        {f"dockyard.headers.{LONGEST_NAME}": "v"},
        {f"dockyard.request_headers.{LONGEST_NAME}": "v"},
        {
            "dockyard.auth.forward": "http://auth:9091/",
            "dockyard.auth.forward.response_headers": LONGEST_NAME,
        },
    ],
    ids=["response", "request", "forward-auth"],
)
def test_the_longest_header_names_pass_nginx_t(workspace: Workspace, extra: dict[str, str]) -> None:
    """A 64-character header name, the longest the labels take, fits nginx's header hashes."""
    labels = {"dockyard.host": "app.test", "dockyard.port": "8080", **extra}
    assert nginx_t(render([labels], workspace, "http"), workspace) == ""


@pytest.mark.parametrize("extra", LONG_VALUES.values(), ids=LONG_VALUES.keys())
def test_values_too_long_for_nginx_are_refused_by_the_parser(extra: dict[str, str]) -> None:
    """A value too long for one nginx config word is a label error, never an nginx error."""
    with pytest.raises(LabelError, match="at most"):
        parse_labels({"dockyard.host": "app.test", **extra}, PREFIX)
