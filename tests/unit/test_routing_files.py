"""Routing with route files: file routes join the table, and a host a file names is the file's."""

from __future__ import annotations

from textwrap import dedent

from daemon.route_files import RouteFile, parse_routes_file
from daemon.routing import (
    FILE_UNIT,
    Attachment,
    Backend,
    ContainerInfo,
    Problem,
    RoutingContext,
    RoutingResult,
    build_routes,
)

CTX = RoutingContext(label_prefix="dockyard")


def route_file(name: str, text: str) -> RouteFile:
    """The route file ``name`` holding the YAML ``text``."""
    return parse_routes_file(name, dedent(text).encode())


def one_route(name: str, route: str, host: str, *extra: str) -> RouteFile:
    """A YAML file ``name`` with one route to http://192.168.1.20:8096 on ``host``."""
    lines = [
        "routes:",
        f"  {route}:",
        f"    host: {host}",
        "    servers: ['http://192.168.1.20:8096']",
    ]
    lines += [f"    {line}" for line in extra]
    return parse_routes_file(name, ("\n".join(lines) + "\n").encode())


def container(name: str, ip: str = "172.17.0.2", **labels: str) -> ContainerInfo:
    """A running container on the bridge, exposing 8080, with ``dockyard.*`` labels."""
    return ContainerInfo(
        id=f"id-{name}",
        name=name,
        labels=tuple(sorted((f"dockyard.{key}", value) for key, value in labels.items())),
        attachments=(Attachment("bridge", ip),),
        exposed_ports=(8080,),
    )


def events(result: RoutingResult, event: str) -> list[Problem]:
    """The problems of one kind."""
    return [p for p in result.problems if p.event == event]


def served(result: RoutingResult) -> list[tuple[str, str, tuple[str, ...]]]:
    """(host, path, containers) of every route in the table."""
    return [(r.host, r.path, r.containers) for r in result.table.routes]


def test_a_file_route_becomes_a_route_to_its_servers() -> None:
    """A file route is a Route whose backends are its servers, named ``<file>:<route>``."""
    media = route_file(
        "media.yaml",
        """\
        routes:
          jellyfin:
            host: media.example.org
            servers: ["http://192.168.1.21:8096", "http://192.168.1.20:8096"]
            websocket: true
            path:
              strip: true
        """,
    )
    result = build_routes([], CTX, files=[media])
    (route,) = result.table.routes
    assert (route.host, route.path) == ("media.example.org", "/")
    assert route.backends == (Backend("192.168.1.20", 8096), Backend("192.168.1.21", 8096))
    assert route.containers == ("media.yaml:jellyfin",)
    assert route.websocket
    assert result.problems == ()
    assert result.skipped == frozenset()


def test_a_file_with_an_error_is_reported_with_its_line_and_skipped() -> None:
    """An invalid file gives routes_file_invalid (error, file, line, reason); others serve."""
    bad = one_route("bad.yaml", "r", "bad.test", "websockt: true")
    good = one_route("good.yaml", "g", "good.test")
    result = build_routes([], CTX, files=[bad, good])
    assert served(result) == [("good.test", "/", ("good.yaml:g",))]
    (problem,) = result.problems
    assert problem.event == "routes_file_invalid"
    assert problem.level == "error"
    fields = dict(problem.fields)
    assert fields["file"] == "bad.yaml"
    assert fields["line"] == "5"
    assert "websockt" in fields["reason"]
    assert fields["action"] == "file skipped"
    assert result.skipped == frozenset({FILE_UNIT + "bad.yaml"})


def test_a_file_error_gives_its_key_and_value_as_fields() -> None:
    """routes_file_invalid carries the error's key and value apart, as label_invalid does."""
    result = build_routes([], CTX, files=[one_route("bad.yaml", "r", "bad.test", "lb: fastest")])
    (problem,) = events(result, "routes_file_invalid")
    fields = dict(problem.fields)
    assert (fields["key"], fields["value"], fields["line"]) == ("routes.r.lb", "fastest", "5")
    assert fields["reason"].startswith("routes.r.lb='fastest': one of round_robin")
    unknown = build_routes([], CTX, files=[one_route("u.yaml", "r", "u.test", "websockt: on")])
    fields = dict(unknown.problems[0].fields)
    assert fields["key"] == "routes.r.websockt"
    assert "value" not in fields


def test_a_route_name_reused_in_a_later_file_skips_the_later_file() -> None:
    """The first file by name keeps a route name; the later file using it is skipped whole."""
    first = one_route("a.yaml", "web", "a.test")
    later = route_file(
        "b.yaml",
        """\
        routes:
          other:
            host: other.test
            servers: ["http://10.0.0.2"]
          web:
            host: b.test
            servers: ["http://10.0.0.3"]
        """,
    )
    result = build_routes([], CTX, files=[later, first])
    assert served(result) == [("a.test", "/", ("a.yaml:web",))]
    (problem,) = result.problems
    fields = dict(problem.fields)
    assert (problem.event, fields["file"]) == ("routes_file_invalid", "b.yaml")
    assert fields["reason"] == "route name 'web' is already defined in a.yaml"
    assert "line" not in fields
    assert result.skipped == frozenset({FILE_UNIT + "b.yaml"})


def test_two_file_routes_on_one_host_and_path_the_first_by_file_name_wins() -> None:
    """Same host and path in two files: the first file by name serves, the other is told."""
    result = build_routes(
        [],
        CTX,
        files=[one_route("b.yaml", "second", "x.test"), one_route("a.yaml", "first", "x.test")],
    )
    assert served(result) == [("x.test", "/", ("a.yaml:first",))]
    (problem,) = result.problems
    fields = dict(problem.fields)
    assert problem.event == "route_conflict"
    assert (fields["file"], fields["route"], fields["host"], fields["path"]) == (
        "b.yaml",
        "second",
        "x.test",
        "/",
    )
    assert "a.yaml:first" in fields["reason"]


def test_two_file_routes_on_one_host_and_path_the_higher_priority_wins() -> None:
    """A higher priority in a later file wins the host and path; the earlier file is told."""
    result = build_routes(
        [],
        CTX,
        files=[
            one_route("a.yaml", "first", "x.test"),
            one_route("b.yaml", "second", "x.test", "priority: 10"),
        ],
    )
    assert served(result) == [("x.test", "/", ("b.yaml:second",))]
    (problem,) = result.problems
    fields = dict(problem.fields)
    assert (problem.event, fields["file"], fields["route"]) == ("route_conflict", "a.yaml", "first")
    assert "b.yaml:second" in fields["reason"]


def test_a_container_loses_every_path_on_a_host_a_file_defines_and_keeps_its_others() -> None:
    """A container on a file's host loses all its paths there (one route_conflict naming the
    file), whatever its priority, and still serves its other hosts."""
    greedy = container("greedy", host="media.example.org,own.test", path="/a,/b", priority="100")
    files = [one_route("media.yaml", "jellyfin", "media.example.org")]
    result = build_routes([greedy], CTX, files=files)
    assert served(result) == [
        ("media.example.org", "/", ("media.yaml:jellyfin",)),
        ("own.test", "/a", ("greedy",)),
        ("own.test", "/b", ("greedy",)),
    ]
    (problem,) = result.problems
    fields = dict(problem.fields)
    assert (problem.event, problem.container, problem.container_id) == (
        "route_conflict",
        "greedy",
        "id-greedy",
    )
    assert fields["host"] == "media.example.org"
    assert "route file media.yaml:jellyfin" in fields["reason"]
    assert result.skipped == frozenset()


def test_a_container_cannot_take_a_name_under_a_files_wildcard() -> None:
    """A container on a name a file's wildcard host covers loses it, with a route_conflict."""
    files = [one_route("corp.yaml", "corp", "'*.corp.test'")]
    result = build_routes([container("evil", host="intranet.corp.test")], CTX, files=files)
    assert served(result) == [("*.corp.test", "/", ("corp.yaml:corp",))]
    assert [p.event for p in result.problems] == ["route_conflict"]


def test_a_file_does_not_take_hosts_it_does_not_name() -> None:
    """A container on another host, or a path of its own, is untouched by a file route."""
    result = build_routes(
        [container("web", host="web.test", path="/api")],
        CTX,
        files=[one_route("media.yaml", "jellyfin", "media.test")],
    )
    assert served(result) == [
        ("media.test", "/", ("media.yaml:jellyfin",)),
        ("web.test", "/api", ("web",)),
    ]
    assert result.problems == ()


def test_an_excluded_file_is_dropped_and_gives_its_hosts_back() -> None:
    """``exclude`` with FILE_UNIT + name drops that file; its host goes to the container."""
    files = [one_route("a.yaml", "a", "x.test"), one_route("b.yaml", "b", "b.test")]
    web = container("web", host="x.test")
    result = build_routes([web], CTX, exclude=frozenset({FILE_UNIT + "a.yaml"}), files=files)
    assert served(result) == [("b.test", "/", ("b.yaml:b",)), ("x.test", "/", ("web",))]
    assert result.problems == ()
    assert result.skipped == frozenset()


def test_forward_auth_in_a_file_route_resolves_a_container_name() -> None:
    """A forward-auth URL naming a running container gets that container's address."""
    authelia = ContainerInfo(
        id="id-authelia",
        name="authelia",
        labels=(),
        attachments=(Attachment("bridge", "172.17.0.9"),),
    )
    files = [one_route("a.yaml", "a", "a.test", "auth.forward: http://authelia:9091/api/verify")]
    result = build_routes([], RoutingContext(others=(authelia,)), files=files)
    (route,) = result.table.routes
    auth = route.options.forward_auth
    assert auth is not None
    assert (auth.address, auth.reachable) == ("172.17.0.9", True)
    assert result.problems == ()


def test_forward_auth_in_a_file_route_to_no_running_container_fails_closed() -> None:
    """A one-word auth host nobody runs: the file route fails closed and the file is named."""
    files = [one_route("a.yaml", "a", "a.test", "auth.forward: http://authelia:9091/api/verify")]
    result = build_routes([], CTX, files=files)
    (route,) = result.table.routes
    assert route.options.forward_auth is not None
    assert route.options.forward_auth.reachable is False
    (problem,) = result.problems
    fields = dict(problem.fields)
    assert (problem.event, fields["file"], fields["route"], fields["host"]) == (
        "auth_server_unknown",
        "a.yaml",
        "a",
        "authelia",
    )
