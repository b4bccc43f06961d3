"""Reconcile: one pass from snapshot to nginx, with culprit isolation, using small fakes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.errors import ConfigRejectedError, EngineUnavailableError
from daemon.reconcile import Reconciler, find_culprits
from daemon.rendering import (
    Paths,
    RenderFacts,
    TemplateSet,
    config_generation,
    make_environment,
)
from daemon.route_files import parse_routes_file
from daemon.routing import Attachment, ContainerInfo, RoutingContext
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.sources import Snapshot
from daemon.watched import FilesSnapshot, read_shipped_templates


def test_find_culprits_finds_every_bad_one_with_few_tests() -> None:
    """Bisection isolates exactly the bad ids in far fewer tests than one per suspect."""
    suspects = [f"c{i:03d}" for i in range(200)]
    bad = {"c017", "c150"}
    calls = []

    def passes(excluded: frozenset[str]) -> bool:
        calls.append(excluded)
        return bad <= excluded

    assert find_culprits(suspects, passes) == frozenset(bad)
    assert len(calls) < 40


def test_find_culprits_gives_up_when_nobody_is_to_blame() -> None:
    """If even the config without every suspect fails, the fault is elsewhere: None."""
    assert find_culprits(["a", "b"], lambda excluded: False) is None


def test_find_culprits_with_no_culprit_tests_once_more() -> None:
    """A config that passes with nobody excluded yields an empty set."""
    assert find_culprits(["a", "b"], lambda excluded: True) == frozenset()


class FakeSource:
    """Returns a fixed snapshot, or raises as an unreachable engine would."""

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.containers = containers
        self.down = False

    def snapshot(self) -> Snapshot:
        if self.down:
            raise EngineUnavailableError("connection refused")
        return Snapshot(tuple(self.containers), RoutingContext())


class FakeNginx:
    """Accepts any config except one naming ``bad.test``; records what is applied."""

    def __init__(self) -> None:
        self.live: str | None = None
        self.applied: list[str] = []
        self.tested = 0
        self.files: dict[str, str] = {}
        self.certificates: dict[str, bytes] = {}
        self._tested_text: str | None = None

    def serving(self) -> str | None:
        return None if self.live is None else config_generation(self.live)

    def test(self, text: str) -> None:
        self.tested += 1
        if "server_name bad.test;" in text:
            raise ConfigRejectedError('nginx: [emerg] something about "bad.test"')
        for number, line in enumerate(text.splitlines(), start=1):
            if "proxy_passs" in line:
                raise ConfigRejectedError(
                    f'nginx: [emerg] unknown directive "proxy_passs" in nginx.conf:{number}'
                )
        self._tested_text = text

    def provide(self, files: Mapping[str, str]) -> None:
        self.files.update(files)

    def provide_certificates(self, files: Mapping[str, bytes]) -> None:
        self.certificates.update(files)

    def apply(self, text: str) -> float:
        assert text == self._tested_text
        self.live = text
        self.applied.append(text)
        return 0.01


def web(name: str, host: str, ip: str) -> ContainerInfo:
    """A ready container serving ``host`` on port 80."""
    return ContainerInfo(
        id=f"id-{name}",
        name=name,
        labels=(("dockyard.host", host),),
        attachments=(Attachment("bridge", ip),),
        exposed_ports=(80,),
    )


@pytest.fixture
def parts() -> tuple[FakeSource, FakeNginx, Reconciler]:
    """A reconciler over a fake engine and a fake nginx."""
    settings = Settings(state_dir=Path("/state"))
    source = FakeSource([web("a", "a.test", "172.17.0.2")])
    nginx = FakeNginx()
    env = make_environment(None, builtin_templates())
    facts = RenderFacts(Paths.under(settings.state_dir))
    return source, nginx, Reconciler(settings, source, nginx, env, facts)


def test_unchanged_state_does_not_reload(parts: tuple[FakeSource, FakeNginx, Reconciler]) -> None:
    """A second pass over the same containers renders the same bytes and applies nothing."""
    _, nginx, reconciler = parts
    assert reconciler.reconcile() is True
    assert reconciler.reconcile() is False
    assert len(nginx.applied) == 1


def test_unchanged_state_runs_no_nginx_test(
    parts: tuple[FakeSource, FakeNginx, Reconciler],
) -> None:
    """A pass whose config equals the live one skips ``nginx -t`` (it costs seconds at scale)."""
    _, nginx, reconciler = parts
    reconciler.reconcile()
    tested = nginx.tested
    reconciler.reconcile()
    assert nginx.tested == tested


def test_summary_counts_added_and_removed(parts: tuple[FakeSource, FakeNginx, Reconciler]) -> None:
    """``routes_applied`` reports what changed."""
    source, _, reconciler = parts
    reconciler.reconcile()
    source.containers = [web("b", "b.test", "172.17.0.3"), web("c", "c.test", "172.17.0.4")]
    with capture_logs() as logs:
        reconciler.reconcile()
    (summary,) = [e for e in logs if e["event"] == "routes_applied"]
    assert (summary["added"], summary["removed"], summary["total"]) == (2, 1, 2)


def test_rejected_container_is_dropped_and_the_rest_applied(
    parts: tuple[FakeSource, FakeNginx, Reconciler],
) -> None:
    """When nginx refuses the config, the container behind it is left out, the rest served."""
    source, nginx, reconciler = parts
    source.containers = [
        web("a", "a.test", "172.17.0.2"),
        web("bad", "bad.test", "172.17.0.3"),
        web("c", "c.test", "172.17.0.4"),
    ]
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    assert nginx.live is not None
    assert "server_name a.test;" in nginx.live
    assert "bad.test" not in nginx.live
    rejected = [e for e in logs if e["event"] == "container_rejected"]
    assert [e["container"] for e in rejected] == ["bad"]
    assert "bad.test" in rejected[0]["error"]

    tested_before = nginx.tested
    with capture_logs() as logs:
        assert reconciler.reconcile() is False
    # The known culprit is excluded up front, so the config equals the live one: no test.
    assert nginx.tested == tested_before
    assert not [e for e in logs if e["event"] == "container_rejected"]


def test_engine_errors_propagate_and_keep_the_config(
    parts: tuple[FakeSource, FakeNginx, Reconciler],
) -> None:
    """An unreachable engine raises and leaves the live config untouched."""
    source, nginx, reconciler = parts
    reconciler.reconcile()
    live = nginx.live
    source.down = True
    with pytest.raises(EngineUnavailableError):
        reconciler.reconcile()
    assert nginx.live == live


def test_problems_are_logged_once_per_labels(
    parts: tuple[FakeSource, FakeNginx, Reconciler],
) -> None:
    """A bad label is logged once, and again only when the container's labels change."""
    source, _, reconciler = parts
    bad = ContainerInfo(
        id="id-x", name="x", labels=(("dockyard.host", "x;y"),), exposed_ports=(80,)
    )
    source.containers = [bad]
    with capture_logs() as logs:
        reconciler.reconcile()
        reconciler.reconcile()
    invalid = [e for e in logs if e["event"] == "label_invalid"]
    assert len(invalid) == 1
    assert invalid[0]["label"] == "dockyard.host"
    assert invalid[0]["value"] == "x;y"
    assert invalid[0]["container"] == "x"
    source.containers = [
        ContainerInfo(id="id-x", name="x", labels=(("dockyard.host", "x{y"),), exposed_ports=(80,))
    ]
    with capture_logs() as logs:
        reconciler.reconcile()
    assert [e["value"] for e in logs if e["event"] == "label_invalid"] == ["x{y"]


SHIPPED = read_shipped_templates(builtin_templates())
BODY = {name: text for name, text, _ in SHIPPED}["location_body.j2"]
BROKEN_LINE = next(n for n, line in enumerate(BODY.splitlines(), start=1) if "proxy_pass " in line)


class FakeFiles:
    """Hands out whatever snapshot the test sets."""

    def __init__(self) -> None:
        self.current = FilesSnapshot(templates=TemplateSet(SHIPPED))

    def snapshot(self) -> FilesSnapshot:
        return self.current

    def use_templates(self, body: str) -> None:
        own = (("location_body.j2", body, "/own/location_body.j2"),)
        self.current = FilesSnapshot(self.current.routes, templates=TemplateSet(SHIPPED, own))


@pytest.fixture
def with_files() -> tuple[FakeSource, FakeNginx, FakeFiles, Reconciler]:
    """A reconciler whose templates and route files come from a fake file source."""
    settings = Settings(state_dir=Path("/state"))
    source = FakeSource([web("a", "a.test", "172.17.0.2")])
    nginx = FakeNginx()
    files = FakeFiles()
    env = make_environment(None, builtin_templates())
    facts = RenderFacts(Paths.under(settings.state_dir))
    return source, nginx, files, Reconciler(settings, source, nginx, env, facts, files=files)


def broken(body: str) -> str:
    """The location template with an unknown directive nginx refuses."""
    return body.replace("proxy_pass ", "proxy_passs ", 1)


def test_template_nginx_rejects_keeps_the_last_good_templates(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """A template edit nginx rejects is named with file and line; the good set keeps serving."""
    source, nginx, files, reconciler = with_files
    assert reconciler.reconcile() is True
    files.use_templates(broken(BODY))
    source.containers = [*source.containers, web("b", "b.test", "172.17.0.3")]
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    (invalid,) = [e for e in logs if e["event"] == "template_invalid"]
    assert (invalid["template"], invalid["line"]) == ("/own/location_body.j2", BROKEN_LINE)
    assert invalid["changed"] == ["location_body.j2"]
    assert invalid["action"] == "kept the last good templates"
    assert nginx.live is not None
    assert "proxy_passs" not in nginx.live
    assert "server_name b.test;" in nginx.live  # the routes still moved on

    tested = nginx.tested
    with capture_logs() as logs:
        assert reconciler.reconcile() is False
    assert nginx.tested == tested  # the known-bad set is not tried again
    assert not [e for e in logs if e["event"] == "template_invalid"]


def test_broken_template_at_start_renders_with_the_shipped_ones(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """With no good set yet, a broken template leaves the shipped templates in use."""
    _, nginx, files, reconciler = with_files
    files.use_templates(broken(BODY))
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    (invalid,) = [e for e in logs if e["event"] == "template_invalid"]
    assert invalid["action"] == "using the shipped templates"
    assert nginx.live is not None
    assert "server_name a.test;" in nginx.live


def test_template_syntax_error_names_file_and_line(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """A Jinja syntax error is reported with the template's path and the line of the error."""
    _, nginx, files, reconciler = with_files
    reconciler.reconcile()
    files.use_templates(BODY + "{% if %}\n")
    with capture_logs() as logs:
        reconciler.reconcile()
    (invalid,) = [e for e in logs if e["event"] == "template_invalid"]
    assert invalid["template"] == "/own/location_body.j2"
    assert invalid["line"] == len(BODY.splitlines()) + 1
    assert len(nginx.applied) == 1


def test_fixed_template_is_applied(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """After a broken edit, a good edit goes live and ``templates_applied`` names it."""
    _, nginx, files, reconciler = with_files
    reconciler.reconcile()
    files.use_templates(broken(BODY))
    reconciler.reconcile()
    files.use_templates(BODY.replace("proxy_pass ", "# edited\nproxy_pass ", 1))
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    assert nginx.live is not None
    assert "# edited" in nginx.live
    (applied,) = [e for e in logs if e["event"] == "templates_applied"]
    assert applied["changed"] == ["location_body.j2"]


def test_route_file_nginx_rejects_is_skipped_and_the_rest_served(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """A route file whose config nginx refuses is left out; containers and other files serve."""
    _, nginx, files, reconciler = with_files
    good = parse_routes_file(
        "good.yaml", b"routes:\n  g:\n    host: g.test\n    servers: [http://10.0.0.1]\n"
    )
    bad = parse_routes_file(
        "bad.yaml", b"routes:\n  b:\n    host: bad.test\n    servers: [http://10.0.0.2]\n"
    )
    files.current = FilesSnapshot((bad, good), templates=files.current.templates)
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    (invalid,) = [e for e in logs if e["event"] == "routes_file_invalid"]
    assert (invalid["file"], invalid["action"]) == ("bad.yaml", "file skipped")
    assert "bad.test" in invalid["error"]
    assert nginx.live is not None
    assert "server_name g.test;" in nginx.live
    assert "bad.test" not in nginx.live


def test_route_files_apply_while_the_engine_is_away(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """With the engine down, a new route file still goes live beside the last seen containers."""
    source, nginx, files, reconciler = with_files
    reconciler.reconcile()
    source.down = True
    route = parse_routes_file(
        "nas.yaml", b"routes:\n  nas:\n    host: nas.test\n    servers: [http://10.0.0.9]\n"
    )
    files.current = FilesSnapshot((route,), templates=files.current.templates)
    with pytest.raises(EngineUnavailableError):
        reconciler.reconcile()
    assert nginx.live is not None
    assert "server_name nas.test;" in nginx.live
    assert "server_name a.test;" in nginx.live


def test_engine_away_before_any_snapshot_changes_nothing(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """Without a first snapshot, an unreachable engine raises and nothing is applied."""
    source, nginx, _, reconciler = with_files
    source.down = True
    with pytest.raises(EngineUnavailableError):
        reconciler.reconcile()
    assert nginx.applied == []


def test_broken_template_and_bad_container_together_blame_each_rightly(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """A broken template arriving with a bad container: only that container is rejected,
    the template is reported, and healthy routes keep serving with the good templates."""
    source, nginx, files, reconciler = with_files
    reconciler.reconcile()
    files.use_templates(broken(BODY))
    source.containers = [*source.containers, web("bad", "bad.test", "172.17.0.9")]
    with capture_logs() as logs:
        reconciler.reconcile()
    assert [e["container"] for e in logs if e["event"] == "container_rejected"] == ["bad"]
    assert [e["event"] for e in logs if e["event"].startswith("template")] == ["template_invalid"]
    assert nginx.live is not None
    assert "server_name a.test;" in nginx.live
    assert "proxy_passs" not in nginx.live
    with capture_logs() as logs:
        reconciler.reconcile()
    assert not [e for e in logs if e["event"] in ("templates_applied", "template_invalid")]


def test_bad_container_with_a_good_template_edit_keeps_the_edit(
    with_files: tuple[FakeSource, FakeNginx, FakeFiles, Reconciler],
) -> None:
    """A good template edit arriving with a bad container: the edit goes live without it."""
    source, nginx, files, reconciler = with_files
    reconciler.reconcile()
    files.use_templates(BODY.replace("proxy_pass ", "# edited\nproxy_pass ", 1))
    source.containers = [*source.containers, web("bad", "bad.test", "172.17.0.9")]
    with capture_logs() as logs:
        assert reconciler.reconcile() is True
    assert [e["container"] for e in logs if e["event"] == "container_rejected"] == ["bad"]
    assert not [e for e in logs if e["event"] == "template_invalid"]
    assert nginx.live is not None
    assert "# edited" in nginx.live
    assert "server_name a.test;" in nginx.live
