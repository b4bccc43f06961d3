"""``dockyard check``: compose files read without Docker, routed, and judged for CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon import cli
from daemon.compose_check import ComposeError, read_compose

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
services:
  web:
    image: traefik/whoami
    labels:
      dockyard.host: app.example.com
      dockyard.port: 8080
      dockyard.websocket: "true"
  db:
    image: postgres
"""

Check = Callable[..., tuple[int, str, str]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory named like a compose project."""
    path = tmp_path / "shop"
    path.mkdir()
    return path


@pytest.fixture
def check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Check:
    """Run ``dockyard check ARGS`` in-process: exit code, stdout, stderr."""
    for variable in [v for v in os.environ if v.startswith(("DOCKYARD_", "COMPOSE_"))]:
        monkeypatch.delenv(variable)
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = cli.main(["check", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write(directory: Path, text: str, name: str = "compose.yml") -> Path:
    """Write a compose file (dedented) and return its path."""
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def as_json(check: Check, *files: Path | str) -> tuple[int, dict[str, Any]]:
    """Run the check with ``--format json``; exit code and the parsed document."""
    code, out, _ = check("--format", "json", *files)
    return code, json.loads(out)


def service(document: dict[str, Any], name: str) -> dict[str, Any]:
    """One service of the JSON report."""
    (found,) = [s for s in document["services"] if s["name"] == name]
    assert isinstance(found, dict)
    return found


def labels_of(
    project: Path, labels: dict[str, str], env: dict[str, str] | None = None
) -> dict[str, str]:
    """The labels of a one-service file after interpolation, without compose's own."""
    body = "".join(f"      {key}: {json.dumps(value)}\n" for key, value in labels.items())
    path = write(project, "services:\n  app:\n    labels:\n" + body)
    (app,) = read_compose([path], env or {}).services
    return dict(app.labels)


def test_good_file_prints_routes_and_exits_zero(project: Path, check: Check) -> None:
    """Each service is listed with its routes (host, path, port, options); exit 0."""
    code, out, err = check(write(project, GOOD))
    assert code == 0, out + err
    assert "web:\n  route    app.example.com/ -> port 8080  [websocket=on" in out
    assert "db:\n  no routes" in out
    assert out.endswith("2 services, 1 route, 0 errors, 0 warnings: ok\n")


def test_typo_label_warns_with_suggestion_and_exits_zero(project: Path, check: Check) -> None:
    """An unknown label is a warning naming the closest known label; the route still counts."""
    text = GOOD.replace("dockyard.websocket", "dockyard.websockt")
    code, out, _ = check(write(project, text))
    assert code == 0
    assert "warning  label_unknown: dockyard.websockt (did you mean dockyard.websocket?)" in out
    assert "1 route, 0 errors, 1 warning: ok" in out


def test_bad_value_is_an_error_naming_service_label_value_reason(
    project: Path, check: Check
) -> None:
    """An invalid value fails the check: service, label, value and reason are all printed."""
    path = write(project, GOOD.replace("dockyard.port: 8080", "dockyard.port: 80a"))
    code, out, _ = check(path)
    assert code == 1
    assert (
        "web:\n  error    label_invalid: dockyard.port='80a': a port number from 1 to 65535" in out
    )
    assert out.endswith("1 error, 0 warnings: not ready to deploy\n")
    code, document = as_json(check, path)
    assert code == 1
    assert service(document, "web")["problems"] == [
        {
            "service": "web",
            "level": "error",
            "event": "label_invalid",
            "label": "dockyard.port",
            "value": "80a",
            "reason": "a port number from 1 to 65535",
        }
    ]


def test_list_form_labels_are_read(project: Path, check: Check) -> None:
    """Labels written as a list of ``key=value`` (values may contain '=') work like a mapping."""
    path = write(
        project,
        """
        services:
          api:
            labels:
              - dockyard.host=api.example.com
              - dockyard.port=9000
              - dockyard.path=/v1
              - dockyard.headers.X-Note=a=b
        """,
    )
    code, document = as_json(check, path)
    assert code == 0
    (route,) = service(document, "api")["routes"]
    assert (route["host"], route["path"], route["port"]) == ("api.example.com", "/v1", 9000)
    assert route["options"] == {"headers": "X-Note"}
    (api,) = read_compose([path], {}).services
    assert dict(api.labels)["dockyard.headers.X-Note"] == "a=b"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${NAME}.example.com", "shop.example.com"),
        ("$NAME.example.com", "shop.example.com"),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${MISSING:-${NAME}}", "shop"),
        ("${NAME:+set}", "set"),
        ("${MISSING+set}", ""),
        ("$$apr1$$x", "$apr1$x"),
        ("costs $5", "costs $5"),
    ],
)
def test_interpolation_follows_compose(project: Path, value: str, expected: str) -> None:
    """``$VAR``, ``${VAR}``, defaults, alternatives and ``$$`` expand as compose expands them."""
    env = {"NAME": "shop", "EMPTY": ""}
    assert labels_of(project, {"dockyard.host": value}, env)["dockyard.host"] == expected


def test_dotenv_next_to_the_file_fills_variables_and_environment_wins(project: Path) -> None:
    """``.env`` beside the (first) file supplies variables; the environment overrides it."""
    (project / ".env").write_text(
        '# settings\nexport DOMAIN="example.org"\nPORT=8080 # app\nPATH_X=/env\n'
    )
    labels = {
        "dockyard.host": "app.${DOMAIN}",
        "dockyard.port": "$PORT",
        "dockyard.path": "$PATH_X",
    }
    got = labels_of(project, labels, {"PATH_X": "/shell"})
    assert got["dockyard.host"] == "app.example.org"
    assert got["dockyard.port"] == "8080"
    assert got["dockyard.path"] == "/shell"


def test_unset_variable_is_a_warning(project: Path, check: Check) -> None:
    """A variable nobody set becomes empty, as in compose, and the check says which."""
    path = write(project, GOOD.replace("app.example.com", "app.example.com${SUFFIX}"))
    code, out, _ = check(path)
    assert code == 0
    assert "warning  variable_unset: $SUFFIX: not set: compose uses an empty string" in out


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("${DOMAIN:?set DOMAIN first}", "DOMAIN: set DOMAIN first"),
        ("${DOMAIN", "unclosed '${'"),
        ("${1DOMAIN}", "invalid interpolation '${1DOMAIN}'"),
    ],
)
def test_interpolation_errors_make_the_file_unusable(
    project: Path, check: Check, label: str, message: str
) -> None:
    """Required-but-unset and malformed ``${...}`` stop the check with exit 2, like compose."""
    code, out, err = check(write(project, GOOD.replace("app.example.com", label)))
    assert code == 2
    assert out == ""
    assert "services.web.labels.dockyard.host: " + message in err


def test_json_format_is_one_parseable_document(project: Path, check: Check) -> None:
    """``--format json`` prints one document with counts, services, routes and problems."""
    code, document = as_json(check, write(project, GOOD))
    assert code == 0
    assert document["project"] == "shop"
    assert (document["errors"], document["warnings"], document["problems"]) == (0, 0, [])
    assert [s["name"] for s in document["services"]] == ["web", "db"]
    assert service(document, "web")["routes"] == [
        {
            "host": "app.example.com",
            "path": "/",
            "exact": False,
            "port": 8080,
            "options": {
                "websocket": "on",
                "buffering": "off",
                "timeout.read": "7d",
                "timeout.send": "7d",
            },
        }
    ]


def test_exact_path_is_said_once(project: Path, check: Check) -> None:
    """An exact path shows as ``(exact)``, not again among the options."""
    text = GOOD.replace("dockyard.websocket", "dockyard.path: /x\n      dockyard.path.exact")
    code, out, _ = check(write(project, text))
    assert code == 0
    assert "route    app.example.com/x (exact) -> port 8080\n" in out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.yml", None, "No such file or directory"),
        ("broken.yml", "services: [unclosed", "not valid YAML"),
        ("list.yml", "- a\n- b\n", "the top level must be a mapping"),
        ("labels.yml", "services:\n  a:\n    labels: 5\n", "services.a.labels must be a mapping"),
        (
            "net.yml",
            "services:\n  a:\n    networks: [front]\n",
            "services.a.networks: 'front' is declared in no file",
        ),
    ],
)
def test_unusable_file_exits_two(
    project: Path, check: Check, name: str, text: str | None, message: str
) -> None:
    """A missing file, broken YAML or a file that is not a compose file: exit 2, on stderr."""
    path = project / name
    if text is not None:
        path.write_text(text)
    code, out, err = check(path)
    assert code == 2
    assert out == ""
    assert err.startswith(f"dockyard check: {path}") and message in err


def test_later_files_override_labels_like_compose(project: Path, check: Check) -> None:
    """``check a.yml b.yml`` merges as ``docker compose -f a.yml -f b.yml``: later labels win."""
    base = write(project, GOOD.replace("dockyard.port: 8080", "dockyard.port: 80a"))
    override = write(
        project,
        """
        services:
          web:
            labels:
              - dockyard.port=8081
            expose: ["9000"]
        """,
        "compose.override.yml",
    )
    assert check(base)[0] == 1
    code, document = as_json(check, base, override)
    assert code == 0
    assert document["files"] == [str(base), str(override)]
    (route,) = service(document, "web")["routes"]
    assert (route["host"], route["port"]) == ("app.example.com", 8081)


def test_yaml_words_stay_text_as_in_compose(project: Path, check: Check) -> None:
    """Unquoted ``off``/``yes`` and ``22:22`` are text (YAML 1.2), not YAML 1.1 booleans."""
    path = write(
        project,
        """
        services:
          web:
            ports: [8080:80]
            labels:
              dockyard.host: app.example.com
              dockyard.tls: off
              dockyard.websocket: yes
        """,
    )
    code, document = as_json(check, path)
    assert code == 0, document
    (route,) = service(document, "web")["routes"]
    assert route["port"] == 80
    assert route["options"]["tls"] == "off"
    assert route["options"]["websocket"] == "on"


def test_no_port_and_no_expose_is_a_warning(project: Path, check: Check) -> None:
    """Without a port label or expose/ports the image's EXPOSE decides: a warning, exit 0."""
    code, out, _ = check(write(project, GOOD.replace("dockyard.port: 8080", "")))
    assert code == 0
    assert "route    app.example.com/ -> port from the image's EXPOSE" in out
    assert "warning  port_unverified: no dockyard.port label and no expose or ports entry" in out


def test_several_exposed_ports_without_port_label_is_an_error(project: Path, check: Check) -> None:
    """Two ports in expose/ports and no port label: the daemon would skip it, so exit 1."""
    text = GOOD.replace("dockyard.port: 8080", "").replace(
        "image: traefik/whoami", 'image: x\n    expose: ["80"]\n    ports: ["8443:443"]'
    )
    code, out, _ = check(write(project, text))
    assert code == 1
    assert "error    container_skipped: no dockyard.port label and 2 exposed ports" in out


def test_network_label_must_name_the_docker_network(project: Path, check: Check) -> None:
    """Compose prefixes network names with the project: a label naming the key is an error."""
    text = """
        services:
          api:
            networks: [backend, proxy]
            labels:
              dockyard.host: api.example.com
              dockyard.port: 80
              dockyard.network: {network}
        networks:
          backend: {{}}
          proxy:
            external: true
        """
    code, out, _ = check(write(project, text.format(network="backend")))
    assert code == 1
    assert (
        "error    container_skipped: not attached to network 'backend' named by its label; "
        "networks: shop_backend, proxy (project shop)" in out
    )
    for network in ("shop_backend", "proxy"):
        assert check(write(project, text.format(network=network)))[0] == 0
    assert check(write(project, text.format(network="shop_backend")), "-p", "prod")[0] == 1


def test_replicas_that_disagree_are_an_error(project: Path, check: Check) -> None:
    """Two services on one host and path with different options: ``route_conflict``, exit 1."""
    path = write(
        project,
        """
        services:
          a:
            labels: {dockyard.host: a.test, dockyard.port: 80, dockyard.websocket: "true"}
          b:
            labels: {dockyard.host: a.test, dockyard.port: 80}
        """,
    )
    code, document = as_json(check, path)
    assert code == 1
    (problem,) = service(document, "b")["problems"]
    assert (problem["level"], problem["event"]) == ("error", "route_conflict")
    assert service(document, "a")["problems"] == []


def test_dockyard_labels_under_deploy_are_a_warning(project: Path, check: Check) -> None:
    """Labels under ``deploy.labels`` never reach the container: the check says so."""
    text = GOOD.replace(
        "    labels:", "    deploy:\n      labels:\n        dockyard.host: x.test\n    labels:"
    )
    code, out, _ = check(write(project, text))
    assert code == 0
    assert "warning  label_in_deploy: dockyard.host: deploy.labels are for swarm services" in out


def test_traefik_v1_labels_are_checked_through_routing(project: Path, check: Check) -> None:
    """Traefik v1 labels go through the daemon's routing: routes, ignored keys, bad values."""
    path = write(
        project,
        """
        services:
          old:
            labels:
              traefik.frontend.rule: "Host:old.example.com;PathPrefixStrip:/app"
              traefik.port: "8080"
              traefik.backend.healthcheck.path: /health
          bad:
            labels:
              - traefik.frontend.rule=Host:bad..example.com
        """,
    )
    code, document = as_json(check, path)
    assert code == 1
    old = service(document, "old")
    assert [(r["host"], r["path"], r["port"]) for r in old["routes"]] == [
        ("old.example.com", "/app", 8080)
    ]
    assert [(p["level"], p["label"]) for p in old["problems"]] == [
        ("warning", "traefik.backend.healthcheck.path")
    ]
    (problem,) = service(document, "bad")["problems"]
    assert (problem["level"], problem["label"]) == ("error", "traefik.frontend.rule")


def test_label_prefix_comes_from_settings_or_the_flag(
    project: Path, check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only labels under the configured prefix are read; the flag may follow ``check``."""
    path = write(project, GOOD.replace("dockyard.", "proxy."))
    assert "web:\n  no routes" in check(path)[1]
    assert "route    app.example.com/" in check(path, "--label-prefix", "proxy")[1]
    monkeypatch.setenv("DOCKYARD_LABEL_PREFIX", "proxy")
    assert "route    app.example.com/" in check(path)[1]


def test_python_m_daemon_check_runs_without_docker(project: Path) -> None:
    """``python -m daemon check`` works as a subprocess and never imports docker."""
    path = write(project, GOOD.replace("dockyard.port: 8080", "dockyard.port: 0"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKER_HOST"] = "tcp://192.0.2.1:1"  # would hang or fail if anything asked Docker

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    done = python("-m", "daemon", "check", str(path))
    assert done.returncode == 1, done.stderr
    assert "error    label_invalid: dockyard.port='0'" in done.stdout
    probe = (
        "import sys; from daemon import cli; cli.main(['check', sys.argv[1]]); "
        "print('docker loaded:', 'docker' in sys.modules)"
    )
    done = python("-c", probe, str(path))
    assert done.stdout.splitlines()[-1] == "docker loaded: False"


def test_read_compose_raises_compose_error_for_unknown_network(project: Path) -> None:
    """A service on a network no file declares is refused before routing, like compose does."""
    path = write(project, "services:\n  a:\n    networks: [nope]\n")
    with pytest.raises(ComposeError, match="'nope' is declared in no file"):
        read_compose([path], {})


def test_networks_ports_and_project_name_read_as_compose_names_them(project: Path) -> None:
    """Network names (``name:``, ``external``), TCP ports and ranges, and the project name."""
    path = write(
        project,
        """
        name: store
        services:
          web:
            networks: [named, old, ext, default]
            expose: ["8000-8002", "9000/udp"]
            ports: [{target: 7000}, {target: 7001, protocol: udp}, "127.0.0.1:80:81"]
        networks:
          named: {name: custom}
          old: {external: {name: legacy}}
          ext: {external: true}
        """,
    )
    compose = read_compose([path], {})
    (web,) = compose.services
    assert compose.name == "store"
    assert web.networks == ("custom", "legacy", "ext", "store_default")
    assert web.ports == (81, 7000, 8000, 8001, 8002)
    assert read_compose([path], {"COMPOSE_PROJECT_NAME": "Prod!"}).name == "prod"


def test_network_mode_host_and_service_as_docker_sees_them(project: Path, check: Check) -> None:
    """``host`` is reached at the bridge gateway; ``service:x`` shares x's network: an error."""
    path = write(
        project,
        """
        services:
          onhost:
            network_mode: host
            labels: {dockyard.host: h.test, dockyard.port: 8080}
          sidecar:
            network_mode: "service:onhost"
            labels: {dockyard.host: s.test, dockyard.port: 80}
        """,
    )
    code, document = as_json(check, path)
    assert code == 1
    (route,) = service(document, "onhost")["routes"]
    assert (route["host"], route["port"]) == ("h.test", 8080)
    (problem,) = service(document, "sidecar")["problems"]
    assert (problem["event"], problem["reason"]) == (
        "container_skipped",
        "network_mode container:... shares another container's network",
    )


ROUTES = """
routes:
  jellyfin:
    host: media.example.com
    servers: ["http://10.0.0.5:8096"]
    websocket: true
"""


def test_route_files_alone_are_checked(project: Path, check: Check) -> None:
    """``--routes`` without compose files: each file route is listed with its servers."""
    path = write(project, ROUTES, "media.yaml")
    code, out, err = check("--routes", path)
    assert code == 0, out + err
    assert out.startswith(f"route files: {path}\n")
    assert f"{path}:jellyfin:\n  route    media.example.com/ -> http://10.0.0.5:8096  [" in out
    assert out.endswith("1 route file, 1 route, 0 errors, 0 warnings: ok\n")


def test_bad_route_file_is_an_error_with_file_and_line(project: Path, check: Check) -> None:
    """An invalid route file fails the check: ``routes_file_invalid`` names file and line."""
    path = write(project, ROUTES.replace("websocket", "websockt"), "media.yaml")
    code, out, _ = check("--routes", path)
    assert code == 1
    assert f"error    routes_file_invalid: {path}:6: routes.jellyfin.websockt: unknown key" in out
    assert "jellyfin:\n" not in out
    assert out.endswith("1 route file, 0 routes, 1 error, 0 warnings: not ready to deploy\n")


def test_route_file_wins_a_host_a_service_asks_for(project: Path, check: Check) -> None:
    """A service on a host a route file defines loses it (``route_conflict``); the file serves."""
    compose = write(project, GOOD.replace("app.example.com", "media.example.com"))
    routes = write(project, ROUTES, "media.yaml")
    code, out, _ = check(compose, "--routes", routes)
    assert code == 1
    assert (
        "web:\n  error    route_conflict: media.example.com: the host is defined in route file "
        f"{routes}:jellyfin; route files win over labels\n" in out
    )
    assert f"{routes}:jellyfin:\n  route    media.example.com/ -> http://10.0.0.5:8096" in out
    assert "2 services, 1 route file, 1 route, 1 error, 0 warnings: not ready to deploy" in out


def test_routes_directory_reads_only_route_file_suffixes(project: Path, check: Check) -> None:
    """A directory gives its ``*.yaml``, ``*.yml`` and ``*.toml`` files, as the daemon reads it."""
    directory = project / "routes.d"
    directory.mkdir()
    write(directory, ROUTES, "a.yaml")
    write(directory, ROUTES.replace("jellyfin", "b").replace("media.", "b."), "b.yml")
    write(directory, '[routes.c]\nhost = "c.test"\nservers = ["http://10.0.0.7"]\n', "c.toml")
    for ignored in ("notes.txt", "compose.json", ".hidden.yaml", "old.yaml~"):
        write(directory, "routes: [not a route file", ignored)
    code, document = as_json(check, "--routes", directory)
    assert code == 0, document
    assert document["route_files"] == [
        str(directory / name) for name in ("a.yaml", "b.yml", "c.toml")
    ]
    assert [entry["route"] for entry in document["file_routes"]] == ["jellyfin", "b", "c"]


def test_routes_directory_reports_names_the_daemon_ignores(project: Path, check: Check) -> None:
    """A route file under a name the daemon will not read is an error, its content unread."""
    directory = project / "routes.d"
    directory.mkdir()
    write(directory, ROUTES, "media.yaml")
    bad = write(directory, "routes: [not even read", "my routes.yaml")
    write(directory, "routes: [not a route file", "notes txt")
    code, out, _ = check("--routes", directory)
    assert code == 1
    assert (
        f"error    routes_file_invalid: {bad}: the daemon ignores this file: file names are 1 "
        "to 128 letters, digits, '.', '_' and '-', starting with a letter or digit; "
        "action: file skipped\n"
    ) in out
    assert f"{directory / 'media.yaml'}:jellyfin:\n  route    media.example.com/" in out
    assert "notes txt" not in out
    assert out.endswith("2 route files, 1 route, 1 error, 0 warnings: not ready to deploy\n")


def test_a_named_route_file_is_read_whatever_its_name(project: Path, check: Check) -> None:
    """A file given by path is checked as written: it may be deployed under another name."""
    path = write(project, ROUTES, "media (draft).yaml")
    code, out, _ = check("--routes", path)
    assert code == 0, out
    assert f"{path}:jellyfin:\n" in out


def test_a_file_error_reads_once_in_text_and_apart_in_json(project: Path, check: Check) -> None:
    """Text names key and value once (in the reason); JSON has them as fields too."""
    path = write(project, ROUTES.replace("websocket: true", "lb: fastest"), "media.yaml")
    code, out, _ = check("--routes", path)
    assert code == 1
    line = next(line for line in out.splitlines() if "routes_file_invalid" in line)
    assert line == (
        f"error    routes_file_invalid: {path}:6: routes.jellyfin.lb='fastest': one of "
        "round_robin, least_conn, ip_hash; action: file skipped"
    )
    code, document = as_json(check, "--routes", path)
    (problem,) = document["problems"]
    assert (problem["key"], problem["value"], problem["line"]) == (
        "routes.jellyfin.lb",
        "fastest",
        "6",
    )


def test_json_lists_file_routes_and_their_problems(project: Path, check: Check) -> None:
    """``--format json`` has ``route_files`` and ``file_routes``; file errors are problems."""
    good = write(project, ROUTES, "media.yaml")
    bad = write(project, "routes:\n  x:\n    servers: [http://10.0.0.6]\n", "bad.yaml")
    code, document = as_json(check, "--routes", good, "--routes", bad)
    assert code == 1
    assert (document["project"], document["files"], document["services"]) == (None, [], [])
    assert document["route_files"] == [str(good), str(bad)]
    assert document["file_routes"] == [
        {
            "name": f"{good}:jellyfin",
            "file": str(good),
            "route": "jellyfin",
            "routes": [
                {
                    "host": "media.example.com",
                    "path": "/",
                    "exact": False,
                    "servers": ["http://10.0.0.5:8096"],
                    "options": {
                        "websocket": "on",
                        "buffering": "off",
                        "timeout.read": "7d",
                        "timeout.send": "7d",
                    },
                }
            ],
            "problems": [],
        }
    ]
    (problem,) = document["problems"]
    assert (problem["event"], problem["file"], problem["line"]) == (
        "routes_file_invalid",
        str(bad),
        "2",
    )


def test_no_compose_file_and_no_routes_exits_two(check: Check) -> None:
    """``dockyard check`` with nothing to check says so on stderr and exits 2."""
    code, out, err = check()
    assert (code, out) == (2, "")
    assert err == "dockyard check: nothing to check: give compose files, --routes PATH, or both\n"


def test_unreadable_routes_path_exits_two(project: Path, check: Check) -> None:
    """A ``--routes`` path that does not exist is unusable like a missing compose file."""
    code, out, err = check(write(project, GOOD), "--routes", project / "routes.d")
    assert (code, out) == (2, "")
    assert err.startswith(f"dockyard check: {project / 'routes.d'}: No such file")
