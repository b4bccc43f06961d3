"""Compose check: compose files read without Docker, routed, and judged before deploying.

A side entrance to the flow, for CI (``dockyard check``). Where the daemon's ``sources``
step lists containers from the Docker engine, this step reads the services of compose
files, interpolated and merged the way ``docker compose -f a.yml -f b.yml`` does for the
fields routing needs (labels, ``network_mode``, ``networks``, ``expose``, ``ports``),
makes one ``ContainerInfo`` per service with a placeholder address, and runs the same
pure ``routing.build_routes`` as the daemon, so every label dialect routing reads is
checked the same way. The result is a ``CheckReport``: per service, the routes it would
get and its findings, each an error (the deployed proxy would not do what the file says)
or a warning. Route files (``--routes``) are parsed by ``route_files`` and routed in the
same call, as the daemon routes them beside its containers, so a file's own errors and a
host both a file and a service claim show up before the file reaches the routes directory.
Nothing here imports ``sources`` or talks to Docker.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from daemon.errors import DockyardError
from daemon.labels import ForwardAuth, RateLimit, Redirect, RouteOptions
from daemon.route_files import (
    FileError,
    RouteFile,
    is_candidate,
    parse_routes_file,
    route_file_name_problem,
)
from daemon.routing import (
    COMPOSE_SERVICE,
    FILE_UNIT,
    Attachment,
    ContainerInfo,
    Problem,
    Route,
    RoutingContext,
    build_routes,
)
from daemon.settings import Settings

__all__ = [
    "ERROR_EVENTS",
    "CheckReport",
    "ComposeError",
    "ComposeProject",
    "ComposeService",
    "check_compose",
    "format_json",
    "format_text",
    "read_compose",
    "read_route_files",
    "run_check",
]

Level = Literal["error", "warning", "info"]
# Routing problems after which the deployed proxy would not do what the file says: a
# container (all its routes) is left out, or a replica's or path's options are ignored.
# Everything else routing reports is a warning (label_unknown, route_shadowed: priority
# labels ask for it) or a note (container_not_exposed).
ERROR_EVENTS = frozenset({"label_invalid", "container_skipped", "route_conflict"})
_LEVELS: tuple[Level, ...] = ("error", "warning", "info")

_HOST_GATEWAY = "172.17.0.1"  # Docker's default bridge gateway, for network_mode: host
_FIRST_ADDRESS = ipaddress.IPv4Address("10.0.0.1")  # placeholders, one per service
_IMAGE_PORT = 0  # stands for the image's EXPOSE, which only Docker can read
_BRACED_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PORT_RE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
_COMPOSE_PROJECT = "com.docker.compose.project"


class ComposeError(DockyardError):
    """A compose file that cannot be used (missing, unreadable, not YAML, or malformed), or a
    route file or directory that cannot be read."""


class _ComposeLoader(yaml.SafeLoader):
    """YAML as compose v2 reads the fields we use: every scalar is text, except null.

    PyYAML follows YAML 1.1, where ``off`` is false and ``22:22`` a base-60 number;
    compose (YAML 1.2) keeps both as written, and so do we. Anchors and ``<<`` work.
    """


_KEPT_TAGS = ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")
_ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class ComposeService:
    """One service of the merged files, as routing needs it."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    network_mode: str | None = None
    # Docker's names of its networks (``<project>_<key>`` unless declared otherwise)
    networks: tuple[str, ...] = ()
    # container ports from ``expose`` and ``ports`` (TCP); the image may add more
    ports: tuple[int, ...] = ()
    deploy_labels: tuple[str, ...] = ()
    unset_variables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ComposeProject:
    """The services of one or more compose files, merged in order."""

    name: str
    files: tuple[Path, ...]
    services: tuple[ComposeService, ...]


@dataclass(slots=True)
class _Draft:
    """A service while the files are merged; later files add to it."""

    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str | None = None
    networks: list[str] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    deploy_labels: dict[str, str] = field(default_factory=dict)
    unset: set[str] = field(default_factory=set)
    where: str = ""  # the file and service that last named networks, for errors


def read_compose(
    paths: Sequence[Path], environ: Mapping[str, str], project_name: str | None = None
) -> ComposeProject:
    """Read and merge compose files; raise ``ComposeError`` when one cannot be used.

    Variables come from ``environ``, then from the ``.env`` next to the first file.
    """
    env = {**_read_dotenv(paths[0].parent / ".env"), **environ}
    drafts: dict[str, _Draft] = {}
    declared: dict[str, Any] = {}
    named = None
    for path in paths:
        document = _load(path)
        if document.get("name") is not None:
            named = _text(_interpolated(document["name"], env, set(), f"{path}: name"), "name")
        declared.update(_mapping(document.get("networks"), f"{path}: networks"))
        for name, spec in _mapping(document.get("services"), f"{path}: services").items():
            where = f"{path}: services.{name}"
            _merge(drafts.setdefault(str(name), _Draft()), _mapping(spec, where), env, where)
    project = _project_name(
        project_name or env.get("COMPOSE_PROJECT_NAME") or named or paths[0].resolve().parent.name
    )
    networks = {"default": f"{project}_default"}
    for key, config in declared.items():
        config = _interpolated(config, env, set(), f"networks.{key}")  # noqa: PLW2901
        networks[str(key)] = _network_name(project, str(key), config)
    services = tuple(_finish(name, draft, networks) for name, draft in drafts.items())
    return ComposeProject(project, tuple(paths), services)


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ComposeError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ComposeError(f"{path}: not UTF-8 text") from None
    try:
        document = yaml.load(text, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ComposeError(f"{path}: not valid YAML: {err}") from None
    return _mapping(document, f"{path}: the top level")


def _read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, ``export``, one pair of quotes; no expansion."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise ComposeError(f"{path}: {err}") from None
    values = {}
    for line in text.splitlines():
        key, equals, value = line.strip().removeprefix("export ").partition("=")
        if not equals or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _merge(draft: _Draft, spec: Mapping[str, Any], env: Mapping[str, str], where: str) -> None:
    """Add one file's description of a service, as ``docker compose -f`` overrides do."""

    def read(key: str) -> Any:
        return _interpolated(spec.get(key), env, draft.unset, f"{where}.{key}")

    draft.labels.update(_labels(read("labels"), f"{where}.labels"))
    if spec.get("network_mode") is not None:
        draft.network_mode = _text(read("network_mode"), f"{where}.network_mode")
    networks = read("networks")
    if isinstance(networks, dict):
        networks = list(networks)
    for key in _list(networks, f"{where}.networks"):
        draft.where = where
        if _text(key, f"{where}.networks") not in draft.networks:
            draft.networks.append(key)
    draft.ports |= _container_ports(read("expose"), f"{where}.expose")
    draft.ports |= _container_ports(read("ports"), f"{where}.ports")
    deploy = _mapping(spec.get("deploy"), f"{where}.deploy")
    labels = _interpolated(deploy.get("labels"), env, draft.unset, f"{where}.deploy.labels")
    draft.deploy_labels.update(_labels(labels, f"{where}.deploy.labels"))


def _finish(name: str, draft: _Draft, networks: Mapping[str, str]) -> ComposeService:
    attached: list[str] = []
    if draft.network_mode is None:
        for key in draft.networks or ["default"]:
            if key not in networks:
                raise ComposeError(f"{draft.where}.networks: {key!r} is declared in no file")
            attached.append(networks[key])
    return ComposeService(
        name=name,
        labels=tuple(draft.labels.items()),
        network_mode=draft.network_mode,
        networks=tuple(attached),
        ports=tuple(sorted(draft.ports)),
        deploy_labels=tuple(draft.deploy_labels),
        unset_variables=tuple(sorted(draft.unset)),
    )


def _project_name(raw: str) -> str:
    """Compose's normalisation: lower case, only letters, digits, ``_`` and ``-``."""
    name = re.sub(r"[^a-z0-9_-]", "", raw.lower()).lstrip("_-")
    if not name:
        raise ComposeError(f"project name {raw!r} has no letter or digit: use --project-name")
    return name


def _network_name(project: str, key: str, config: Any) -> str:
    config = _mapping(config, f"networks.{key}")
    external = config.get("external")
    if isinstance(external, dict) and external.get("name"):
        return str(external["name"])
    if config.get("name"):
        return str(config["name"])
    if isinstance(external, str) and external.lower() == "true":
        return key
    return f"{project}_{key}"


def _interpolated(value: Any, env: Mapping[str, str], unset: set[str], where: str) -> Any:
    """``value`` with every string interpolated (mapping keys stay as written)."""
    if isinstance(value, str):
        try:
            return _interpolate(value, env, unset)
        except ValueError as err:
            raise ComposeError(f"{where}: {err}") from None
    if isinstance(value, list):
        return [_interpolated(item, env, unset, where) for item in value]
    if isinstance(value, dict):
        return {
            key: _interpolated(item, env, unset, f"{where}.{key}") for key, item in value.items()
        }
    return value


def _interpolate(text: str, env: Mapping[str, str], unset: set[str]) -> str:
    """``$$``, ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` (also ``-``, ``?``, ``:?``, ``+``,
    ``:+``) as compose expands them; an unset variable is empty and noted in ``unset``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "{":
            end, depth = i + 2, 1
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            if depth:
                raise ValueError(f"unclosed '${{' in {text!r}")
            out.append(_substitute(text[i + 2 : end - 1], env, unset))
            i = end
        elif match := _NAME_RE.match(text, i + 1):
            out.append(_substitute(match.group(), env, unset))
            i = match.end()
        else:  # '$' before anything else stays as it is, as in compose
            out.append("$")
            i += 1
    return "".join(out)


def _substitute(expression: str, env: Mapping[str, str], unset: set[str]) -> str:
    match = _BRACED_RE.fullmatch(expression)
    if match is None:
        raise ValueError(f"invalid interpolation '${{{expression}}}'")
    name, operator, argument = match.groups()
    value = env.get(name)
    present = bool(value) if operator and operator.startswith(":") else value is not None
    if operator in ("-", ":-"):
        return value if present and value is not None else _interpolate(argument, env, unset)
    if operator in ("+", ":+"):
        return _interpolate(argument, env, unset) if present else ""
    if operator in ("?", ":?") and not present:
        raise ValueError(f"{name}: {argument or 'required variable is not set'}")
    if value is None:
        unset.add(name)
    return value or ""


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ComposeError(f"{where} must be a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{where} must be a list")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ComposeError(f"{where} must be text, not {type(value).__name__}")
    return value


def _labels(value: Any, where: str) -> dict[str, str]:
    """Labels given as a mapping or as a list of ``key=value``; a null value is empty."""
    if isinstance(value, list):
        pairs = [_text(item, where).partition("=") for item in value]
        return {key: text for key, _, text in pairs}
    return {
        str(key): "" if text is None else _text(text, f"{where}.{key}")
        for key, text in _mapping(value, where).items()
    }


def _container_ports(value: Any, where: str) -> set[int]:
    """TCP container ports of ``expose``/``ports`` entries (short or long syntax, ranges)."""
    ports: set[int] = set()
    for item in _list(value, where):
        if isinstance(item, dict):
            item = f"{item.get('target')}/{item.get('protocol') or 'tcp'}"  # noqa: PLW2901
        spec, _, protocol = _text(item, where).partition("/")
        if protocol not in ("", "tcp"):
            continue
        match = _PORT_RE.match(spec.rsplit(":", 1)[-1])
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
        if not 1 <= low <= high <= 65535:
            raise ComposeError(f"{where}: {item!r} is not a container port or port range")
        ports.update(range(low, high + 1))
    return ports


# -- the check -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the check tells about a service or the project."""

    level: Level
    event: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RouteSummary:
    """A route a service would get: where it answers, the port, the options not at default."""

    host: str
    path: str
    exact: bool
    # None for redirects, when the image's EXPOSE decides (unknown without Docker), and
    # for a route file's route, whose backends are its servers
    port: int | None
    options: tuple[tuple[str, str], ...] = ()
    # a route file's servers as URLs (``http://10.0.0.5:8096``); empty for a service
    servers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceReport:
    """One service's routes and findings."""

    name: str
    routes: tuple[RouteSummary, ...] = ()
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The verdict on a set of compose files."""

    project: str
    files: tuple[str, ...]
    services: tuple[ServiceReport, ...]
    # findings no single service owns (and a route file's own errors)
    findings: tuple[Finding, ...] = ()
    # the route files read; None when none were asked for (compose files only)
    route_files: tuple[str, ...] | None = None
    # one entry per route of the route files routing kept, named ``<file>:<route>``
    file_routes: tuple[ServiceReport, ...] = ()

    def count(self, level: Level) -> int:
        """How many findings of ``level`` there are in all."""
        entries = (*self.services, *self.file_routes)
        every = [*self.findings, *(f for entry in entries for f in entry.findings)]
        return sum(finding.level == level for finding in every)

    @property
    def exit_code(self) -> int:
        """1 when any finding is an error, else 0."""
        return 1 if self.count("error") else 0


def check_compose(
    project: ComposeProject,
    label_prefix: str,
    default_network: str | None = None,
    route_files: Sequence[RouteFile] | None = None,
) -> CheckReport:
    """Route the project's services (and route files) as the daemon would; collect routes
    and findings. ``route_files`` None means none were asked for."""
    addresses = {
        service.name: _HOST_GATEWAY
        if service.network_mode == "host"
        else str(_FIRST_ADDRESS + index)
        for index, service in enumerate(project.services)
    }
    ctx = RoutingContext(
        label_prefix=label_prefix, default_network=default_network, host_gateway=_HOST_GATEWAY
    )
    containers = [_container(s, project.name, addresses[s.name]) for s in project.services]
    result = build_routes(containers, ctx, files=route_files or ())
    by_name = {service.name: service for service in project.services}
    findings = {name: _compose_findings(service, label_prefix) for name, service in by_name.items()}
    # a file routing skipped (invalid, or a route name taken) serves nothing: no entries
    entries: dict[str, list[Finding]] = {
        f"{file.name}:{static.name}": []
        for file in route_files or ()
        if FILE_UNIT + file.name not in result.skipped
        for static in file.routes
    }
    loose = []
    for problem in result.problems:
        fields = dict(problem.fields)
        entry = f"{fields.get('file')}:{fields.get('route')}"
        if not problem.container and entry in entries:
            # the entry's name says file and route already
            kept = tuple(item for item in problem.fields if item[0] not in ("file", "route"))
            entries[entry].append(Finding(_level(problem), problem.event, kept))
            continue
        owners = [name for name in problem.container.split(", ") if name in by_name]
        for owner in owners:
            findings[owner].append(_finding(problem, by_name[owner], project.name))
        # a merged route's problem (shadowed, host options) names file routes like services
        named = [name for name in problem.container.split(", ") if name in entries]
        for name in named:
            entries[name].append(_finding(problem, None, project.name))
        if not owners and not named:
            loose.append(_finding(problem, None, project.name))
    routes: dict[str, list[RouteSummary]] = {name: [] for name in by_name}
    file_routes: dict[str, list[RouteSummary]] = {name: [] for name in entries}
    for route in result.table.routes:
        for name in route.containers:
            if name in routes:
                routes[name].append(_summary(route, addresses[name]))
            elif name in file_routes:
                file_routes[name].append(_file_summary(route))
    for name, summaries in routes.items():
        if any(r.port is None and "redirect.to" not in dict(r.options) for r in summaries):
            findings[name].append(_unverified_port(label_prefix))
    return CheckReport(
        project=project.name,
        files=tuple(str(path) for path in project.files),
        services=tuple(
            ServiceReport(name, tuple(routes[name]), _by_level(findings[name])) for name in by_name
        ),
        findings=_by_level(loose),
        route_files=None if route_files is None else tuple(file.name for file in route_files),
        file_routes=tuple(
            ServiceReport(name, tuple(file_routes[name]), _by_level(found))
            for name, found in entries.items()
        ),
    )


def _container(service: ComposeService, project: str, address: str) -> ContainerInfo:
    mode = service.network_mode or "bridge"
    if mode.startswith("service:"):  # Docker sees the service's container
        mode = "container:" + mode.removeprefix("service:")
    names: tuple[str, ...] = ()
    if service.network_mode is None:
        names = service.networks
    elif mode not in ("host", "none") and not mode.startswith("container:"):
        names = (mode,)  # bridge, or a network named directly
    labels = {**dict(service.labels), COMPOSE_SERVICE: service.name, _COMPOSE_PROJECT: project}
    return ContainerInfo(
        id=f"compose:{service.name}",
        name=service.name,
        labels=tuple(sorted(labels.items())),
        network_mode=mode,
        attachments=tuple(Attachment(name, address) for name in names),
        exposed_ports=service.ports or (_IMAGE_PORT,),
    )


def _level(problem: Problem) -> Level:
    if problem.event in ERROR_EVENTS or problem.level == "error":
        return "error"
    return "info" if problem.level == "info" else "warning"


def _finding(problem: Problem, service: ComposeService | None, project: str) -> Finding:
    fields = problem.fields
    reason = dict(fields).get("reason", "")
    if service is not None and problem.event == "container_skipped" and "network" in reason:
        # compose prefixes network names with the project: say which names Docker will see
        attached = ", ".join(service.networks) or f"none (network_mode {service.network_mode})"
        fields += (("networks", f"{attached} (project {project})"),)
    return Finding(_level(problem), problem.event, fields)


def _compose_findings(service: ComposeService, label_prefix: str) -> list[Finding]:
    found = [
        Finding(
            "warning",
            "variable_unset",
            (("variable", name), ("reason", "not set: compose uses an empty string")),
        )
        for name in service.unset_variables
    ]
    found += [
        Finding(
            "warning",
            "label_in_deploy",
            (
                ("label", label),
                ("reason", "deploy.labels are for swarm services: move it to labels"),
            ),
        )
        for label in service.deploy_labels
        if label.startswith(label_prefix + ".")
    ]
    return found


def _unverified_port(label_prefix: str) -> Finding:
    reason = (
        f"no {label_prefix}.port label and no expose or ports entry: the image's EXPOSE "
        "decides at deploy time (exactly one TCP port, or the container is skipped)"
    )
    return Finding("warning", "port_unverified", (("reason", reason),))


def _by_level(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: _LEVELS.index(f.level)))


def _summary(route: Route, address: str) -> RouteSummary:
    port = next((b.port for b in route.backends if b.address == address), None)
    return RouteSummary(
        host=route.host,
        path=route.path,
        exact=route.exact,
        port=None if port == _IMAGE_PORT else port,
        options=_options(route),
    )


def _file_summary(route: Route) -> RouteSummary:
    # https+insecure still speaks https:// (its option is listed among the options)
    scheme = "https" if route.options.scheme.startswith("https") else "http"
    servers = tuple(f"{scheme}://{backend.endpoint}" for backend in route.backends)
    return RouteSummary(
        host=route.host,
        path=route.path,
        exact=route.exact,
        port=None,
        options=_options(route),
        servers=servers,
    )


def _options(route: Route) -> tuple[tuple[str, str], ...]:
    """The route's settings that differ from the defaults, as short text."""
    found = [(name, value) for name, value in (("tls", route.tls), ("https", route.https)) if value]
    if route.hsts is not None:
        found.append(("hsts", route.hsts if isinstance(route.hsts, str) else route.hsts.header))
    if route.lb != "round_robin":
        found.append(("lb", route.lb))
    if route.priority:
        found.append(("priority", str(route.priority)))
    defaults = RouteOptions()
    for spec in dataclasses.fields(RouteOptions):
        value = getattr(route.options, spec.name)
        if value != getattr(defaults, spec.name):
            found.append((_OPTION_LABELS.get(spec.name, spec.name), _option_text(value)))
    return tuple(found)


# RouteOptions fields by the label key that sets them, where the two differ
_OPTION_LABELS = {
    "strip": "path.strip",
    "add_prefix": "path.add_prefix",
    "replace_path": "path.replace",
    "response_headers": "headers",
    "basic_auth": "auth.basic",
    "forward_auth": "auth.forward",
    "connect_timeout": "timeout.connect",
    "read_timeout": "timeout.read",
    "send_timeout": "timeout.send",
    "redirect": "redirect.to",
}


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, ForwardAuth):
        return f"{value.url.scheme}://{value.url.authority}{value.url.path}"
    if isinstance(value, RateLimit):
        return f"{value.rate} burst {value.burst}"
    if isinstance(value, Redirect):
        return f"{value.target} ({301 if value.permanent else 302})"
    if isinstance(value, tuple):  # header (name, value) and user (name, hash) pairs: names
        return ", ".join(str(item[0] if isinstance(item, tuple) else item) for item in value)
    return str(value)


# -- output ----------------------------------------------------------------------------


def format_text(report: CheckReport) -> str:
    """For people: each service (then each file route), its routes, then its errors,
    warnings and notes."""
    lines = []
    if report.files:
        lines.append(f"{', '.join(report.files)} (project {report.project})")
    if report.route_files is not None:
        lines.append(f"route files: {', '.join(report.route_files) or 'none found'}")
    lines += [_finding_line(finding) for finding in report.findings]
    for entry in (*report.services, *report.file_routes):
        lines.append(f"{entry.name}:")
        for route in entry.routes:
            where = f"{route.host}{route.path}" + (" (exact)" if route.exact else "")
            if "redirect.to" in dict(route.options):
                target = "redirect"
            elif route.servers:
                target = ", ".join(route.servers)
            elif route.port is None:
                target = "port from the image's EXPOSE"
            else:
                target = f"port {route.port}"
            options = ", ".join(f"{name}={value}" for name, value in route.options)
            lines.append(f"  route    {where} -> {target}" + (f"  [{options}]" if options else ""))
        if not entry.routes and not entry.findings:
            lines.append("  no routes")
        lines += ["  " + _finding_line(finding) for finding in entry.findings]
    errors, warnings = report.count("error"), report.count("warning")
    routes = sum(len(entry.routes) for entry in (*report.services, *report.file_routes))
    verdict = "not ready to deploy" if errors else "ok"
    counts = []
    # "0 services" would only be noise when route files alone are checked
    if report.files or report.route_files is None:
        counts.append(_plural(len(report.services), "service"))
    if report.route_files is not None:
        counts.append(_plural(len(report.route_files), "route file"))
    counts += [_plural(routes, "route"), _plural(errors, "error"), _plural(warnings, "warning")]
    lines.append(f"{', '.join(counts)}: {verdict}")
    return "\n".join(lines) + "\n"


def _finding_line(finding: Finding) -> str:
    fields = dict(finding.fields)
    head = ""
    if "label" in fields:
        head = fields.pop("label")
        head += f"={fields.pop('value')!r}" if "value" in fields else ""
    elif "host" in fields:
        head = fields.pop("host") + fields.pop("path", "")
    elif "variable" in fields:
        head = "$" + fields.pop("variable")
    elif "file" in fields:  # a route file's own error: file:line, as editors open it
        head = fields.pop("file") + (f":{fields.pop('line')}" if "line" in fields else "")
        # the reason starts with them already (JSON keeps them apart for tools)
        fields.pop("key", None)
        fields.pop("value", None)
    suggestion = fields.pop("suggestion", "")
    text = ": ".join(part for part in (head, fields.pop("reason", "")) if part)
    text += f" (did you mean {suggestion}?)" if suggestion else ""
    text += "".join(f"; {key}: {value}" for key, value in fields.items())
    label = "note" if finding.level == "info" else finding.level
    return f"{label:<8} {finding.event}: {text}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def format_json(report: CheckReport) -> str:
    """For machines: one JSON document; every problem names its service, or its route
    file (``file``, and ``route`` when it is about one route)."""

    def problem(finding: Finding, service: str | None) -> dict[str, str | None]:
        return {"service": service, "level": finding.level, "event": finding.event} | dict(
            finding.fields
        )

    def file_route(entry: ServiceReport) -> dict[str, Any]:
        # route names never hold ':', so the last one splits file from route
        file, _, name = entry.name.rpartition(":")
        where = {"file": file, "route": name}
        routes = [
            {
                "host": route.host,
                "path": route.path,
                "exact": route.exact,
                "servers": list(route.servers),
                "options": dict(route.options),
            }
            for route in entry.routes
        ]
        problems = [
            where | {"level": finding.level, "event": finding.event} | dict(finding.fields)
            for finding in entry.findings
        ]
        return {"name": entry.name, **where, "routes": routes, "problems": problems}

    document: dict[str, Any] = {
        "project": report.project if report.files else None,  # route files alone: none
        "files": list(report.files),
        "errors": report.count("error"),
        "warnings": report.count("warning"),
        "problems": [problem(finding, None) for finding in report.findings],
        "services": [
            {
                "name": service.name,
                "routes": [
                    {
                        "host": route.host,
                        "path": route.path,
                        "exact": route.exact,
                        "port": route.port,
                        "options": dict(route.options),
                    }
                    for route in service.routes
                ],
                "problems": [problem(finding, service.name) for finding in service.findings],
            }
            for service in report.services
        ],
    }
    if report.route_files is not None:  # absent for compose files alone, as before
        document["route_files"] = list(report.route_files)
        document["file_routes"] = [file_route(entry) for entry in report.file_routes]
    return json.dumps(document, indent=2) + "\n"


def read_route_files(paths: Sequence[Path]) -> tuple[RouteFile, ...]:
    """Parse route files, and those of directories as the daemon picks them from its routes
    directory (``route_files.is_candidate``); raise ``ComposeError`` when one is unreadable.

    A file is named by its path as given, so findings point at it from where CI runs. A
    directory's file the daemon would ignore for its name (``route_file_name_problem``) is
    not read: it comes back with that error, as the file would serve nothing once deployed.
    """
    chosen: dict[Path, tuple[Path, str | None]] = {}
    for path in paths:
        if path.is_dir():
            try:
                found = [
                    (item, route_file_name_problem(item.name))
                    for item in sorted(path.iterdir())
                    if is_candidate(item.name) and item.is_file()
                ]
            except OSError as err:
                raise ComposeError(f"{path}: {err.strerror or err}") from None
        else:
            # a file named on the command line is read whatever its name, as it may be
            # copied into the routes directory under another
            found = [(path, None)]
        for item, problem in found:
            # the same file twice would clash with itself over its route names
            chosen.setdefault(item.resolve(), (item, problem))
    files = []
    for item, problem in chosen.values():
        if problem is not None:
            error = FileError(f"the daemon ignores this file: {problem}")
            files.append(RouteFile(str(item), "", error=error))
            continue
        try:
            data = item.read_bytes()
        except OSError as err:
            raise ComposeError(f"{item}: {err.strerror or err}") from None
        files.append(parse_routes_file(str(item), data))
    return tuple(files)


def run_check(
    paths: Sequence[Path],
    environ: Mapping[str, str],
    settings: Settings,
    *,
    routes: Sequence[Path] = (),
    output: Literal["text", "json"] = "text",
    project_name: str | None = None,
    out: TextIO | None = None,
) -> int:
    """``dockyard check``: print the report; 0 ok, 1 errors, 2 a file cannot be used.

    ``paths`` are compose files, ``routes`` route files or directories; either may be empty.
    """
    out = out or sys.stdout
    try:
        project = ComposeProject("", (), ())  # route files alone: no services
        if paths:
            project = read_compose(paths, environ, project_name)
        route_files = read_route_files(routes) if routes else None
    except ComposeError as err:
        sys.stderr.write(f"dockyard check: {err}\n")
        return 2
    report = check_compose(project, settings.label_prefix, settings.network, route_files)
    out.write(format_json(report) if output == "json" else format_text(report))
    return report.exit_code
