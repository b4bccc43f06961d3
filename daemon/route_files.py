"""Route files: static routes declared in YAML or TOML files, checked like labels.

Pure step beside ``labels``: the ``watched`` edge reads the bytes of each file in the
routes directory and hands them here; routing takes the resulting ``RouteFile`` next to
the containers. A file declares routes to backends Docker does not know (a NAS, a
host-network process) under ``routes.<name>``, with the label keys (no prefix) plus
``servers``, the backend URLs. Every value goes through the same grammars and route
builder as a label (``labels.route_from_source``), so a file can say nothing a label
could not. Files are strict: any error (syntax, unknown key, bad value) skips the whole
file, with the line it is on when known, rather than serving part of what was meant.

Which names in the routes directory are route files is decided here too
(``route_file_name_problem``), so the daemon and ``dockyard check`` agree on it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import yaml

from daemon.errors import LabelError
from daemon.label_values import (
    ROUTE_NAME_RE,
    check_host_name,
    check_plain_text,
    closest_key,
    parse_bool,
    parse_port,
)
from daemon.labels import HEADER_KEYS, KNOWN_KEYS, LabelSource, RouteLabels, route_from_source

__all__ = [
    "FILE_NAME_RE",
    "MAX_FILE_BYTES",
    "ROUTE_FILE_SUFFIXES",
    "FileError",
    "RouteFile",
    "Server",
    "StaticRoute",
    "is_candidate",
    "parse_routes_file",
    "route_file_name_problem",
]

ROUTE_FILE_SUFFIXES = (".yaml", ".yml", ".toml")
# The names the daemon reads in a watched directory: nothing that needs quoting in a log
# line, a shell or an nginx comment, and no name an editor or a tool hides or mangles.
FILE_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_FILE_NAME_RULE = (
    "file names are 1 to 128 letters, digits, '.', '_' and '-', starting with a letter or digit"
)
# A hand-written routes file is a few KiB; reading a bigger one whole would stall the
# daemon's pass for a mistake (a log or a dump saved under the wrong name) or an attack.
MAX_FILE_BYTES = 1024 * 1024
# A container's port and network pick an address among its own; a file has no container.
_REFUSED_KEYS = ("port", "network")
_FILE_KEYS = (*(key for key in KNOWN_KEYS if key not in _REFUSED_KEYS), "servers")
_SUGGESTIONS = (*_FILE_KEYS, *(f"{stem}.<Name>" for stem in HEADER_KEYS))
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# The deepest real key is three levels (auth: forward: response_headers:); the limit also
# ends alias cycles (&a {b: *a}), which YAML allows.
_MAX_DEPTH = 8
# Aliases let a small file expand into a huge tree; every key and list item visited costs
# one (through aliases again each time), so [*big, *big, ...] is as dear as the keys.
_MAX_ITEMS = 10000
# A value as label text, a list joined with ',': real ones (servers, users, a CSP) are a
# few KiB, while aliases can repeat one long text into gigabytes.
_MAX_TEXT = 64 * 1024
# No key takes a number near this long. Longer YAML ones are refused before they are built:
# YAML 1.1 reads 1:2:3 as base 60, in time quadratic in its length; and Python's str()
# refuses ints of thousands of digits (a TOML hex number builds fine, then cannot print).
_MAX_NUMBER_DIGITS = 100
_LONG_NUMBER = (
    f"a whole number of more than {_MAX_NUMBER_DIGITS} digits is no value here "
    "(quote it if it is text)"
)
_TOML_LINE_RE = re.compile(r"\(at line ([0-9]+), column [0-9]+\)")
_SERVER_URL_RE = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?P<query>\?[^#]*)?(?P<fragment>#.*)?$"
)
_BRACKETED_RE = re.compile(r"^\[(?P<host>[^\]]*)\](?::(?P<port>.*))?$")
_PLAIN_AUTHORITY_RE = re.compile(r"^(?P<host>[^:\[\]]*)(?::(?P<port>.*))?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The backend schemes (RouteOptions.scheme) that speak what the servers' URLs say.
_SCHEMES_FOR = {"http": ("http",), "https": ("https", "https+insecure")}


@dataclass(frozen=True, slots=True)
class Server:
    """One backend server from a ``servers`` URL."""

    # IPv4, IPv6 (no brackets) or a lower-case DNS name (nginx resolves it at load)
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """One ``routes.<name>`` of a file: its routes (as labels give them) and its servers."""

    name: str
    # after the www/apex expansion, each named ``name``
    routes: tuple[RouteLabels, ...]
    # sorted, no duplicates; empty only when the route redirects elsewhere (redirect.to)
    servers: tuple[Server, ...]


@dataclass(frozen=True, slots=True)
class FileError:
    """Why a file is skipped: a sentence naming the key and value it is about, if any."""

    reason: str
    line: int | None = None  # 1-based
    key: str | None = None  # routes.jellyfin.websocket
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RouteFile:
    """One routes file: its routes, or the error that skips it whole."""

    name: str
    # the first 12 hex digits of the SHA-256 of the bytes
    digest: str
    routes: tuple[StaticRoute, ...] = ()
    error: FileError | None = None


@dataclass(frozen=True, slots=True)
class _Field:
    """One flattened key's value as the file wrote it (str, int, bool, list...)."""

    value: object
    line: int | None


@dataclass(frozen=True, slots=True)
class _Body:
    """The keys of one ``routes.<name>``, flattened (``path.strip``), with their lines."""

    name: str
    line: int | None
    fields: Mapping[str, _Field]


class _InvalidError(Exception):
    """Ends the reading of a file; carries what ``RouteFile.error`` will say."""

    def __init__(self, error: FileError) -> None:
        super().__init__(error.reason)
        self.error = error


def _invalid(
    why: str, key: str | None = None, value: str | None = None, line: int | None = None
) -> _InvalidError:
    """An error whose reason starts with the key (and value), as label errors read."""
    if key is not None and value is not None:
        reason = f"{key}={value!r}: {why}"
    elif key is not None:
        reason = f"{key}: {why}"
    else:
        reason = why
    return _InvalidError(FileError(reason, line, key, value))


def is_candidate(name: str) -> bool:
    """Whether a name in the routes directory is meant as a route file: not hidden, not an
    editor's backup (``name~``), a route file suffix. Cheap, for watcher events and
    listings; ``route_file_name_problem`` then says whether the daemon reads it."""
    # suffixes as written, as the daemon always compared them: Media.YAML is not read
    return (
        not name.startswith(".") and not name.endswith("~") and name.endswith(ROUTE_FILE_SUFFIXES)
    )


def route_file_name_problem(name: str) -> str | None:
    """None when the daemon reads ``name`` in its routes directory as a route file, else why not.

    The reason is worth reporting for a candidate (``is_candidate``): someone meant it as a
    route file and it is ignored. Other names (hidden, backups, other suffixes) are skipped
    without a word, as editors' swap files and notes are expected there.
    """
    if name.startswith("."):
        return "hidden files are ignored"
    if name.endswith("~"):
        return "backup files (name~) are ignored"
    if not name.endswith(ROUTE_FILE_SUFFIXES):
        return "route files end in " + ", ".join(ROUTE_FILE_SUFFIXES)
    if not FILE_NAME_RE.match(name):
        return _FILE_NAME_RULE
    return None


def parse_routes_file(name: str, data: bytes) -> RouteFile:
    """Read one routes file (format by the suffix of ``name``); never raises.

    A file with any error has no routes and says why in ``error``.
    """
    digest = hashlib.sha256(data).hexdigest()[:12]
    try:
        bodies = _read(name, data)
        routes = [route for body in bodies if (route := _static_route(body)) is not None]
    except _InvalidError as invalid:
        return RouteFile(name, digest, error=invalid.error)
    return RouteFile(name, digest, tuple(sorted(routes, key=lambda r: r.name)))


def _read(name: str, data: bytes) -> list[_Body]:
    suffix = next((s for s in ROUTE_FILE_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise _invalid("routes files end in " + ", ".join(ROUTE_FILE_SUFFIXES))
    if len(data) > MAX_FILE_BYTES:
        raise _invalid("the file is larger than 1 MiB")
    try:
        # A BOM is how some Windows editors mark UTF-8; tomllib would take it for a key.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _invalid("not UTF-8 text", line=line) from None
    return _read_toml(text) if suffix == ".toml" else _read_yaml(text)


def _read_yaml(text: str) -> list[_Body]:
    try:
        return _walk_yaml(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        why = ": ".join(part for part in (err.context, err.problem) if part)
        line = mark.line + 1 if mark else None
        raise _invalid(f"not valid YAML: {why or err}", line=line) from None
    except yaml.reader.ReaderError as err:
        # raised for characters YAML does not allow; position counts characters of text
        line = text.count("\n", 0, err.position) + 1
        char = err.character if isinstance(err.character, int) else ord(err.character)
        raise _invalid(f"not valid YAML: {err.reason} (U+{char:04X})", line=line) from None
    except yaml.YAMLError as err:
        raise _invalid(f"not valid YAML: {err}") from None
    except RecursionError:
        raise _invalid("not valid YAML: nested too deeply") from None


def _walk_yaml(text: str) -> list[_Body]:
    loader = yaml.SafeLoader(text)
    try:
        return _YamlReader(loader).file(loader.get_single_node())
    finally:
        loader.dispose()


def _line(node: yaml.Node) -> int | None:
    return node.start_mark.line + 1 if node.start_mark is not None else None


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG)


class _YamlReader:
    """Walks the composed node tree (for line numbers) with ``safe_load``'s values."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.budget = _MAX_ITEMS

    def file(self, root: yaml.Node | None) -> list[_Body]:
        # a file of comments, or one that says null, declares nothing
        if root is None or _is_null(root):
            return []
        if not isinstance(root, yaml.MappingNode):
            raise _invalid("a routes file is a mapping with one key, routes", line=_line(root))
        routes: yaml.Node | None = None
        for key_node, value_node in self._pairs(root, ""):
            key = self._key(key_node, "")
            if key != "routes":
                raise _unknown_top_key(key, _line(key_node))
            routes = value_node
        # "routes:" with every route commented out is a file that routes nothing yet
        if routes is None or _is_null(routes):
            return []
        if not isinstance(routes, yaml.MappingNode):
            raise _invalid("a mapping of route names to routes", key="routes", line=_line(routes))
        bodies = []
        for key_node, value_node in self._pairs(routes, "routes."):
            name = self._key(key_node, "routes.")
            line = _line(key_node)
            if not isinstance(value_node, yaml.MappingNode):
                raise _not_a_route(name, line)
            bodies.append(_Body(name, line, self._mapping(value_node, f"routes.{name}.", 0)))
        return bodies

    def _pairs(self, node: yaml.MappingNode, where: str) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """The key and value nodes of a mapping; the same key twice is an error."""
        seen: dict[str, int | None] = {}
        for key_node, value_node in node.value:
            self._spend(1)
            if key_node.tag != _MERGE_TAG:
                key = self._key(key_node, where)
                if key in seen:
                    raise _twice(where + key, seen[key], _line(key_node))
                seen[key] = _line(key_node)
            yield key_node, value_node

    def _spend(self, items: int) -> None:
        self.budget -= items
        if self.budget < 0:
            raise _invalid(f"more than {_MAX_ITEMS} keys and list items (aliases included)")

    def _key(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            where = where.rstrip(".") or "the top level"
            raise _invalid(f"keys under {where} are plain words", line=_line(node))
        # the text as written: keys are names, never numbers or true/false
        key = str(node.value)
        _check_key(where + key, _line(node))
        return key

    def _mapping(self, node: yaml.MappingNode, where: str, depth: int) -> dict[str, _Field]:
        """The keys of a route's mapping, nested ones flattened with dots."""
        if depth > _MAX_DEPTH:
            raise _invalid("nested deeper than any key", key=where.rstrip("."), line=_line(node))
        fields: dict[str, _Field] = {}
        merged: dict[str, _Field] = {}
        for key_node, value_node in self._pairs(node, where):
            if key_node.tag == _MERGE_TAG:
                # safe_load's merge: explicit keys win, then earlier merged mappings
                for source in self._merge_sources(value_node, where):
                    for key, field in self._mapping(source, where, depth + 1).items():
                        merged.setdefault(key, field)
                continue
            key = self._key(key_node, where)
            if isinstance(value_node, yaml.MappingNode):
                inner = self._mapping(value_node, f"{where}{key}.", depth + 1)
                for sub, field in inner.items():
                    _put(fields, f"{key}.{sub}", field, where)
            else:
                value = self._value(value_node, where + key)
                _put(fields, key, _Field(value, _line(key_node)), where)
        for key, field in merged.items():
            fields.setdefault(key, field)
        return fields

    def _merge_sources(self, node: yaml.Node, where: str) -> list[yaml.MappingNode]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(item, yaml.MappingNode) for item in items):
            raise _invalid("<< merges mappings only", key=where + "<<", line=_line(node))
        return list(items)

    def _value(self, node: yaml.Node, key: str) -> object:
        """A value's list of plain values, or its one plain value."""
        if not isinstance(node, yaml.SequenceNode):
            return self._plain(node, key)
        if node.tag != _SEQ_TAG:
            raise _invalid(f"lists here are plain lists, not {node.tag}", key=key, line=_line(node))
        self._spend(len(node.value))
        return [self._plain(item, key) for item in node.value]

    def _plain(self, node: yaml.Node, key: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            # checked before anything is built, so nothing nested is built at all
            why = "lists hold plain values, not lists or mappings"
            raise _invalid(why, key=key, line=_line(node))
        if node.tag == _BOOL_TAG:
            # YAML 1.1 reads off/on/yes/no as booleans, and "false" is no TLS mode: keep
            # the word, which every true/false key reads the same (tls: off stays off)
            return str(node.value)
        if node.tag == _INT_TAG and len(node.value) > _MAX_NUMBER_DIGITS:
            raise _invalid(_LONG_NUMBER, key=key, line=_line(node))
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as err:
            # the constructors' own checks, such as a timestamp with month 13
            raise _invalid(f"not valid YAML: {err}", key=key, line=_line(node)) from None


def _read_toml(text: str) -> list[_Body]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = _TOML_LINE_RE.search(str(err))
        if match is not None:
            line: int | None = int(match.group(1))
        else:
            # "(at end of document)": the last line is where the file stopped making sense
            line = text.count("\n") + 1 if str(err).endswith("(at end of document)") else None
        raise _invalid(f"not valid TOML: {err}", line=line) from None
    except ValueError:
        # not a TOMLDecodeError: int() refused a decimal number of thousands of digits
        why = "a whole number of thousands of digits (quote it if it is text)"
        raise _invalid(f"not valid TOML: {why}") from None
    except RecursionError:
        raise _invalid("not valid TOML: nested too deeply") from None
    for key in document:
        _check_key(key, None)
        if key != "routes":
            raise _unknown_top_key(key, None)
    routes = document.get("routes", {})
    if not isinstance(routes, dict):
        raise _invalid("a table of route names to routes", key="routes")
    bodies = []
    for name, table in routes.items():
        _check_key(f"routes.{name}", None)
        if not isinstance(table, dict):
            raise _not_a_route(name, None)
        bodies.append(_Body(name, None, _table(table, f"routes.{name}.", 0)))
    return bodies


def _table(table: Mapping[str, object], where: str, depth: int) -> dict[str, _Field]:
    if depth > _MAX_DEPTH:
        raise _invalid("nested deeper than any key", key=where.rstrip("."))
    fields: dict[str, _Field] = {}
    for key, value in table.items():
        _check_key(where + key, None)
        if isinstance(value, dict):
            for sub, field in _table(value, f"{where}{key}.", depth + 1).items():
                _put(fields, f"{key}.{sub}", field, where)
        else:
            _put(fields, key, _Field(value, None), where)
    return fields


def _put(fields: dict[str, _Field], key: str, field: _Field, where: str) -> None:
    """Add one flattened key; ``path.strip`` and ``path: {strip:}`` are the same key."""
    if key in fields:
        raise _twice(where + key, fields[key].line, field.line)
    fields[key] = field


def _check_key(key: str, line: int | None) -> None:
    """Refuse control characters in a key (its full name), as in any label value."""
    try:
        check_plain_text(key, key)
    except LabelError as err:
        # quoted: a line break in a key must not break the log line or the report
        raise _InvalidError(FileError(f"{key!r}: {err.reason}", line, key)) from None


def _twice(key: str, first: int | None, line: int | None) -> _InvalidError:
    where = f" (first on line {first})" if first is not None else ""
    return _invalid(f"set twice{where}", key=key, line=line)


def _unknown_top_key(key: str, line: int | None) -> _InvalidError:
    hint = " (did you mean routes?)" if closest_key(key, ("routes",)) else ""
    return _invalid(f"unknown key{hint}: a routes file has only routes", key=key, line=line)


def _not_a_route(name: str, line: int | None) -> _InvalidError:
    return _invalid(
        "a route is a mapping of keys (host, servers, ...)", key=f"routes.{name}", line=line
    )


def _check_keys(body: _Body) -> None:
    where = f"routes.{body.name}."
    for key, field in body.fields.items():
        if key in _REFUSED_KEYS:
            raise _invalid(
                "file routes name their backends in servers", key=where + key, line=field.line
            )
        if key.startswith("route."):
            raise _invalid(
                "route.<name>.<key> is for labels; in a file the route's name is its key "
                "under routes",
                key=where + key,
                line=field.line,
            )
        stem, _, header = key.partition(".")
        if key in _FILE_KEYS or (stem in HEADER_KEYS and header):
            continue
        # a misspelt header stem keeps its header name: header.X-Robots-Tag
        near = closest_key(stem, HEADER_KEYS, cutoff=0.75) if header else None
        suggestion = f"{near}.{header}" if near else closest_key(key, _SUGGESTIONS)
        hint = f" (did you mean {where}{suggestion}?)" if suggestion else ""
        raise _invalid(f"unknown key{hint}", key=where + key, line=field.line)


def _text(key: str, field: _Field) -> str:
    """A value as label text: lists join with ',', true/false and whole numbers as written."""
    value = field.value
    items = value if isinstance(value, list) else [value]
    texts = []
    size = -1  # the commas between items
    for item in items:
        text = _scalar_text(key, item, field.line)
        size += len(text) + 1
        # before the join: aliases repeat one text, so the joined one could be gigabytes
        if size > _MAX_TEXT:
            why = f"longer than {_MAX_TEXT // 1024} KiB as text (lists joined with ',')"
            raise _invalid(why, key=key, line=field.line)
        texts.append(text)
    return ",".join(texts) if isinstance(value, list) else texts[0]


def _scalar_text(key: str, value: object, line: int | None) -> str:
    # bool before int: True is an int too
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # beyond Python's digit limit: a long TOML hex number
            text = ""
        if not text or len(text.lstrip("-")) > _MAX_NUMBER_DIGITS:
            raise _invalid(_LONG_NUMBER, key=key, line=line)
        return text
    if isinstance(value, str):
        return value
    if value is None:
        raise _invalid("has no value", key=key, line=line)
    if isinstance(value, float):
        # 1.50 would come back as 1.5: whatever needs a fraction is text, quoted
        why = "a number with a fraction is not a value here (quote it if it is text)"
        raise _invalid(why, key=key, value=str(value), line=line)
    if isinstance(value, list | dict):
        raise _invalid("lists hold plain values, not lists or mappings", key=key, line=line)
    why = f"a text, a whole number or true/false, not a {type(value).__name__}"
    raise _invalid(why, key=key, value=str(value), line=line)


def _static_route(body: _Body) -> StaticRoute | None:
    """The routes of one ``routes.<name>``; None when it says ``enable: false``."""
    if not ROUTE_NAME_RE.match(body.name):
        raise _invalid(
            "route names are 1 to 32 letters, digits, '-' and '_', starting with a letter or digit",
            key=f"routes.{body.name}",
            line=body.line,
        )
    _check_keys(body)
    where = f"routes.{body.name}."
    texts = {key: _text(where + key, field) for key, field in body.fields.items()}
    try:
        return _build(body, texts)
    except LabelError as err:
        field = body.fields.get(err.label.removeprefix(where))
        line = field.line if field is not None else None
        raise _InvalidError(FileError(str(err), line, err.label, err.value)) from None


def _build(body: _Body, texts: Mapping[str, str]) -> StaticRoute | None:
    name = body.name
    where = f"routes.{name}."
    for key, text in texts.items():
        check_plain_text(where + key, text)
    if "enable" in texts and not parse_bool(where + "enable", texts["enable"]):
        return None
    if "host" not in texts:
        raise _invalid("a route needs a host", key=where + "host", line=body.line)
    src = LabelSource({key: (where + key, text) for key, text in texts.items() if key != "servers"})
    routes = route_from_source(name, src, f"routes.{name}")
    scheme, servers = _servers(where + "servers", texts.get("servers", ""))
    # routes[0] is the route as written; a www/apex redirect also serves, so it has none
    if routes[0].options.redirect is not None:
        if servers:
            raise LabelError(
                where + "servers",
                texts["servers"],
                "a route that redirects elsewhere (redirect.to) sends no request to servers",
            )
        return StaticRoute(name, routes, ())
    if scheme is None:
        field = body.fields.get("servers")
        raise _invalid(
            "a route needs servers (http:// or https:// URLs) unless redirect.to sends its "
            "requests elsewhere",
            key=where + "servers",
            line=field.line if field is not None else body.line,
        )
    if "scheme" in texts:
        # already checked against the schemes by the route builder
        backend = routes[0].options.scheme
        if backend not in _SCHEMES_FOR[scheme]:
            raise LabelError(
                where + "scheme",
                texts["scheme"],
                f"the servers are {scheme}:// URLs, so the scheme is "
                + " or ".join(_SCHEMES_FOR[scheme]),
            )
    else:
        backend = scheme
    proxied = tuple(
        route
        if route.options.redirect is not None
        else replace(route, options=replace(route.options, scheme=backend))
        for route in routes
    )
    return StaticRoute(name, proxied, servers)


def _servers(label: str, text: str) -> tuple[str | None, tuple[Server, ...]]:
    """The scheme the servers share (None without servers) and the servers, sorted."""
    if not text.strip():
        return None, ()
    items = [item.strip() for item in text.split(",")]
    if "" in items:
        raise LabelError(label, text, "an empty server URL in the list")
    parsed = [_server(label, item) for item in items]
    schemes = {scheme for scheme, _ in parsed}
    if len(schemes) > 1:
        raise LabelError(
            label, text, "the servers of a route all speak http:// or all https://, not both"
        )
    servers = sorted({server for _, server in parsed}, key=lambda s: (s.address, s.port))
    return schemes.pop(), tuple(servers)


def _server(label: str, url: str) -> tuple[str, Server]:
    """One ``http(s)://host[:port]`` URL: the scheme and the server it names."""
    match = _SERVER_URL_RE.match(url)
    scheme = match.group("scheme").lower() if match else ""
    if match is None or scheme not in _DEFAULT_PORTS:
        raise LabelError(
            label, url, "a server is an http:// or https:// URL, such as http://192.168.1.20:8096"
        )
    authority = match.group("authority")
    if "@" in authority:
        raise LabelError(label, url, "no user name or password in a server URL")
    if match.group("query") is not None:
        raise LabelError(label, url, "no query (?...) in a server URL")
    if match.group("fragment") is not None:
        raise LabelError(label, url, "no fragment (#...) in a server URL")
    if match.group("path") not in ("", "/"):
        raise LabelError(
            label, url, "no path in a server URL (path.add_prefix puts one before every request)"
        )
    if authority.count(":") > 1 and "[" not in authority:
        raise LabelError(label, url, "an IPv6 address is written in brackets: http://[::1]:8080")
    bracketed = _BRACKETED_RE.match(authority)
    plain = _PLAIN_AUTHORITY_RE.match(authority)
    if bracketed is not None:
        address = _ipv6(label, url, bracketed.group("host"))
        port_text = bracketed.group("port")
    elif plain is not None:
        address = _host(label, url, plain.group("host"))
        port_text = plain.group("port")
    else:
        raise LabelError(
            label, url, "a host name, an IPv4 address or a [bracketed] IPv6 address, then :port"
        )
    port = _DEFAULT_PORTS[scheme]
    if port_text is not None:
        try:
            port = parse_port(label, port_text)
        except LabelError:
            raise LabelError(label, url, "the port is a number from 1 to 65535") from None
    return scheme, Server(address, port)


def _ipv6(label: str, url: str, text: str) -> str:
    if "%" in text:
        # a zone names a local interface: meaningless in a proxy's config
        raise LabelError(label, url, "no zone (%...) in an IPv6 address")
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise LabelError(label, url, f"{text!r} in brackets is not an IPv6 address") from None


def _host(label: str, url: str, text: str) -> str:
    name = text.lower().removesuffix(".")
    if not name:
        raise LabelError(label, url, "no host in the server URL")
    if re.fullmatch(r"[0-9.]+", name):
        # digits and dots only: meant as an address, and resolving it as a name would hide that
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise LabelError(label, url, f"{name} is not an IPv4 address") from None
    if "*" in name:
        raise LabelError(label, url, "a server is one host, not a wildcard")
    check_host_name(label, url, name)
    return name
