"""Routing: containers become one routing table; refusals become problems, not crashes."""

from __future__ import annotations

import dataclasses

from daemon.routing import (
    Attachment,
    Backend,
    ContainerInfo,
    RoutingContext,
    build_routes,
)

CTX = RoutingContext(label_prefix="dockyard")


def container(
    name: str,
    ip: str = "172.17.0.2",
    *,
    network: str = "bridge",
    ports: tuple[int, ...] = (8080,),
    **labels: str,
) -> ContainerInfo:
    """A running container with ``dockyard.*`` labels given as keyword arguments."""
    extra = {k: v for k, v in labels.items() if k in {"health", "paused", "network_mode"}}
    ours = tuple(
        sorted((f"dockyard.{k.replace('_', '.')}", v) for k, v in labels.items() if k not in extra)
    )
    return ContainerInfo(
        id=f"id-{name}",
        name=name,
        labels=ours,
        health=extra.get("health"),
        paused=extra.get("paused") == "true",
        network_mode=extra.get("network_mode", "bridge"),
        attachments=(Attachment(network, ip),),
        exposed_ports=ports,
    )


def test_replicas_share_one_route_with_every_backend() -> None:
    """Containers with the same host and path are one route with several backends."""
    result = build_routes(
        [container("b", "172.17.0.3", host="a.test"), container("a", "172.17.0.2", host="a.test")],
        CTX,
    )
    (route,) = result.table.routes
    assert route.backends == (Backend("172.17.0.2", 8080), Backend("172.17.0.3", 8080))
    assert route.containers == ("a", "b")
    assert result.problems == ()


def test_paths_on_one_host_are_separate_routes() -> None:
    """Two containers on one host with different paths get a route each."""
    result = build_routes(
        [container("web", host="a.test"), container("jf", "172.17.0.9", host="a.test", path="/jf")],
        CTX,
    )
    assert [(r.host, r.path) for r in result.table.routes] == [("a.test", "/"), ("a.test", "/jf")]


def test_several_hosts_per_container() -> None:
    """A host list gives the container a route per host."""
    result = build_routes([container("web", host="a.test,b.test")], CTX)
    assert [r.host for r in result.table.routes] == ["a.test", "b.test"]


def test_port_label_wins_over_exposed_port() -> None:
    """The port label chooses among exposed ports (or any port)."""
    result = build_routes([container("web", ports=(80, 443), host="a.test", port="8443")], CTX)
    assert result.table.routes[0].backends == (Backend("172.17.0.2", 8443),)


def test_ambiguous_port_skips_the_container_with_a_reason() -> None:
    """No port label and several exposed ports: skipped, and the reason says so."""
    result = build_routes([container("web", ports=(80, 443), host="a.test")], CTX)
    assert result.table.routes == ()
    (problem,) = result.problems
    assert problem.event == "container_skipped"
    assert "2 exposed ports" in dict(problem.fields)["reason"]


def test_network_label_selects_the_address() -> None:
    """The network label picks that network's address, and a missing one is reported."""
    info = ContainerInfo(
        id="x",
        name="web",
        labels=(("dockyard.host", "a.test"), ("dockyard.network", "back")),
        attachments=(Attachment("front", "10.0.1.2"), Attachment("back", "10.0.2.2")),
        exposed_ports=(80,),
    )
    assert build_routes([info], CTX).table.routes[0].backends[0].address == "10.0.2.2"
    missing = ContainerInfo(
        id="y",
        name="web2",
        labels=(("dockyard.host", "b.test"), ("dockyard.network", "nowhere")),
        attachments=(Attachment("front", "10.0.1.3"),),
        exposed_ports=(80,),
    )
    result = build_routes([missing], CTX)
    assert result.table.routes == ()
    assert "nowhere" in dict(result.problems[0].fields)["reason"]


def test_address_falls_back_default_network_then_shared_then_first() -> None:
    """Without a label: DOCKYARD_NETWORK, then a network shared with the proxy, then the first."""
    info = ContainerInfo(
        id="x",
        name="web",
        labels=(("dockyard.host", "a.test"),),
        attachments=(
            Attachment("alpha", "10.0.0.2"),
            Attachment("proxy", "10.0.1.2"),
            Attachment("zeta", "10.0.2.2"),
        ),
        exposed_ports=(80,),
    )

    def address(ctx: RoutingContext) -> str:
        return build_routes([info], ctx).table.routes[0].backends[0].address

    assert address(RoutingContext(default_network="zeta", own_networks=("proxy",))) == "10.0.2.2"
    assert address(RoutingContext(default_network="absent", own_networks=("proxy",))) == "10.0.1.2"
    assert address(RoutingContext()) == "10.0.0.2"


def test_host_network_containers_are_reached_through_the_bridge_gateway() -> None:
    """``network_mode: host`` uses the bridge gateway address, not 127.0.0.1."""
    info = container("jf", host="a.test", port="8096", network_mode="host")
    info = dataclasses.replace(info, attachments=())
    ctx = RoutingContext(host_gateway="172.17.0.1")
    assert build_routes([info], ctx).table.routes[0].backends == (Backend("172.17.0.1", 8096),)
    assert build_routes([info], CTX).problems[0].event == "container_skipped"


def test_not_ready_containers_keep_the_route_but_get_no_traffic() -> None:
    """Unhealthy, starting and paused containers leave the route with no backends (503)."""
    ready = container("web", host="a.test")
    for state in (
        dataclasses.replace(ready, health="unhealthy"),
        dataclasses.replace(ready, health="starting"),
        dataclasses.replace(ready, paused=True),
    ):
        result = build_routes([state], CTX)
        (route,) = result.table.routes
        assert route.backends == ()


def test_healthy_replica_serves_while_the_other_is_unhealthy() -> None:
    """Only ready replicas become backends."""
    result = build_routes(
        [
            container("a", "172.17.0.2", host="a.test", health="healthy"),
            container("b", "172.17.0.3", host="a.test", health="unhealthy"),
        ],
        CTX,
    )
    assert result.table.routes[0].backends == (Backend("172.17.0.2", 8080),)


def test_invalid_label_skips_only_that_container() -> None:
    """One bad label drops its container (all its routes) and nothing else."""
    result = build_routes(
        [
            container("bad", host="b.test,c.test", port="99999"),
            container("good", "172.17.0.3", host="a.test"),
        ],
        CTX,
    )
    assert [r.host for r in result.table.routes] == ["a.test"]
    (problem,) = result.problems
    assert problem.event == "label_invalid"
    assert dict(problem.fields) == {
        "label": "dockyard.port",
        "value": "99999",
        "reason": "a port number from 1 to 65535",
    }
    assert result.skipped == frozenset({"id-bad"})


def test_conflicting_replica_options_are_reported() -> None:
    """Replicas that disagree on websocket/strip are reported; the first by name wins."""
    result = build_routes(
        [
            container("a", "172.17.0.2", host="a.test", websocket="true"),
            container("b", "172.17.0.3", host="a.test"),
        ],
        CTX,
    )
    assert result.table.routes[0].websocket is True
    assert [p.event for p in result.problems] == ["route_conflict"]


def test_excluded_containers_are_left_out() -> None:
    """Bisection can build the table without chosen containers."""
    result = build_routes(
        [container("a", host="a.test"), container("b", "172.17.0.3", host="b.test")],
        CTX,
        exclude=frozenset({"id-a"}),
    )
    assert [r.host for r in result.table.routes] == ["b.test"]


def test_table_is_independent_of_input_order() -> None:
    """The same containers in any order give the same table."""
    items = [container(n, f"172.17.0.{i}", host=f"{n}.test") for i, n in enumerate("abcde", 2)]
    assert build_routes(items, CTX).table == build_routes(list(reversed(items)), CTX).table


def labelled(
    name: str, ip: str, labels: dict[str, str], exposed_ports: tuple[int, ...] = (8080,)
) -> ContainerInfo:
    """A running container with the given full label names (dots and all)."""
    return dataclasses.replace(
        container(name, ip), labels=tuple(sorted(labels.items())), exposed_ports=exposed_ports
    )


def test_higher_priority_wins_one_host_and_path() -> None:
    """Of two containers on one host and path, the higher priority serves; the other is told."""
    result = build_routes(
        [
            container("low", "172.17.0.2", host="a.test"),
            container("high", "172.17.0.3", host="a.test", priority="10"),
        ],
        CTX,
    )
    (route,) = result.table.routes
    assert route.containers == ("high",)
    (problem,) = result.problems
    assert (problem.event, problem.container) == ("route_shadowed", "low")


def test_higher_priority_prefix_shadows_a_longer_path() -> None:
    """A ``/`` route with a higher priority takes the requests of a lower-priority ``/api``."""
    result = build_routes(
        [
            container("api", "172.17.0.2", host="a.test", path="/api"),
            container("web", "172.17.0.3", host="a.test", priority="5"),
            container("other", "172.17.0.4", host="b.test", path="/api"),
        ],
        CTX,
    )
    assert sorted((r.host, r.path) for r in result.table.routes) == [
        ("a.test", "/"),
        ("b.test", "/api"),
    ]
    (problem,) = result.problems
    assert problem.event == "route_shadowed"
    assert dict(problem.fields)["path"] == "/api"


def test_equal_priorities_keep_nginx_longest_prefix_rule() -> None:
    """Without priorities both paths stay: the longest prefix wins in nginx."""
    result = build_routes(
        [
            container("api", "172.17.0.2", host="a.test", path="/api"),
            container("web", "172.17.0.3", host="a.test"),
        ],
        CTX,
    )
    assert len(result.table.routes) == 2
    assert result.problems == ()


def test_forward_auth_host_resolves_to_a_container_address() -> None:
    """auth.forward naming a container or compose service gets that container's address."""
    auth = labelled("stack-authelia-1", "172.17.0.9", {"com.docker.compose.service": "authelia"})
    app = labelled(
        "app",
        "172.17.0.2",
        {"dockyard.host": "a.test", "dockyard.auth.forward": "http://authelia:9091/verify"},
    )
    other = labelled(
        "other",
        "172.17.0.3",
        {"dockyard.host": "b.test", "dockyard.auth.forward": "http://sso.example.org/verify"},
    )
    result = build_routes([auth, app, other], CTX)
    resolved = {r.host: r.options.forward_auth for r in result.table.routes}
    assert resolved["a.test"] is not None
    assert resolved["a.test"].address == "172.17.0.9"
    assert resolved["b.test"] is not None
    assert resolved["b.test"].address is None


def test_redirect_routes_need_no_port_or_address() -> None:
    """A redirect-only container with no port label and several exposed ports still routes."""
    result = build_routes(
        [
            labelled(
                "old",
                "172.17.0.2",
                {"dockyard.host": "old.test", "dockyard.redirect.to": "https://new.test"},
                exposed_ports=(80, 443),
            )
        ],
        CTX,
    )
    (route,) = result.table.routes
    assert route.backends == ()
    assert route.options.redirect is not None
    assert result.problems == ()


def test_named_routes_reach_their_own_ports() -> None:
    """A named route with its own port gets a backend on that port of the same container."""
    result = build_routes(
        [
            labelled(
                "app",
                "172.17.0.2",
                {
                    "dockyard.host": "app.test",
                    "dockyard.port": "80",
                    "dockyard.route.admin.host": "admin.app.test",
                    "dockyard.route.admin.port": "9000",
                },
            )
        ],
        CTX,
    )
    assert {(r.host, r.backends) for r in result.table.routes} == {
        ("app.test", (Backend("172.17.0.2", 80),)),
        ("admin.app.test", (Backend("172.17.0.2", 9000),)),
    }


def test_exact_and_prefix_routes_on_one_path_are_separate() -> None:
    """``path.exact`` makes its own route next to a prefix route on the same path."""
    result = build_routes(
        [
            container("prefix", "172.17.0.2", host="a.test", path="/x"),
            container("exact", "172.17.0.3", host="a.test", path="/x", path_exact="true"),
        ],
        CTX,
    )
    assert sorted((r.path, r.exact, r.containers) for r in result.table.routes) == [
        ("/x", False, ("prefix",)),
        ("/x", True, ("exact",)),
    ]
    assert result.table.keys == {("a.test", "/x"), ("a.test", "=/x")}


def test_replicas_disagreeing_on_lb_are_reported() -> None:
    """Replicas that ask for different balancing methods are told; the first by name wins."""
    result = build_routes(
        [
            container("a", "172.17.0.2", host="a.test", lb="ip_hash"),
            container("b", "172.17.0.3", host="a.test", lb="least_conn"),
        ],
        CTX,
    )
    assert result.table.routes[0].lb == "ip_hash"
    assert [p.event for p in result.problems] == ["route_conflict"]


def test_forward_auth_reaches_unlabelled_containers_and_fails_closed_without_one() -> None:
    """An unlabelled auth server is found; a one-word name nobody has fails closed."""
    auth = dataclasses.replace(labelled("authelia", "172.17.0.9", {}), exposed_ports=())
    app = labelled(
        "app",
        "172.17.0.2",
        {"dockyard.host": "a.test", "dockyard.auth.forward": "http://authelia:9091/verify"},
    )
    found = build_routes([app], dataclasses.replace(CTX, others=(auth,)))
    (route,) = found.table.routes
    assert route.options.forward_auth is not None
    assert route.options.forward_auth.address == "172.17.0.9"
    assert found.problems == ()

    missing = build_routes([app], CTX)
    (route,) = missing.table.routes
    assert route.options.forward_auth is not None
    assert not route.options.forward_auth.reachable
    assert [p.event for p in missing.problems] == ["auth_server_unknown"]
