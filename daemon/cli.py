"""CLI: the ``dockyard`` command (and ``python -m daemon``), the entry point of the flow.

``dockyard run`` runs the daemon; ``dockyard health`` says whether the running one is
healthy (the image's HEALTHCHECK); ``dockyard render`` prints the config it would write
for the containers running now and the route files; ``dockyard import-traefik`` moves a Traefik v1
``acme.json`` into the certificate store (exit code 1 when it refuses, nothing written);
``dockyard check`` reads compose files and route files, never Docker, and prints the
routes and problems they would give (exit code 1 on errors).
Flags mirror the ``DOCKYARD_*`` variables and win over them; a bad setting stops startup
with one ``settings_invalid`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from acme_store.errors import StoreLockedError, StoreUnreadableError
from acme_store.records import time_text
from acme_store.store import JsonStore
from daemon import __version__
from daemon.errors import EngineUnavailableError, SettingsError
from daemon.logs import configure_logging
from daemon.own_certificates import refuse_deprecated_certificates
from daemon.rendering import environment_for, render_config
from daemon.routing import build_routes
from daemon.settings import Settings, load_settings

log = structlog.get_logger("daemon.cli")

# (flag, variable, help): every flag overrides the environment variable of the same name.
_FLAGS = (
    ("--http-port", "DOCKYARD_HTTP_PORT", "HTTP listen port (80)"),
    ("--https-port", "DOCKYARD_HTTPS_PORT", "HTTPS listen port (443)"),
    ("--state-dir", "DOCKYARD_STATE_DIR", "generated config, nginx files (/var/lib/dockyard)"),
    ("--label-prefix", "DOCKYARD_LABEL_PREFIX", "label namespace (dockyard)"),
    ("--network", "DOCKYARD_NETWORK", "default Docker network to reach containers on"),
    ("--log-format", "DOCKYARD_LOG_FORMAT", "json or console (json)"),
    ("--access-log", "DOCKYARD_ACCESS_LOG", "on or off (on)"),
    ("--nginx", "DOCKYARD_NGINX", "the nginx binary (nginx)"),
    ("--templates", "DOCKYARD_TEMPLATES", "directory with templates overriding the built-in ones"),
    ("--routes-dir", "DOCKYARD_ROUTES_DIR", "static route files ($STATE_DIR/routes.d)"),
    (
        "--certs-dir",
        "DOCKYARD_CERTS_DIR",
        "your own <name>.crt + <name>.key pairs ($STATE_DIR/certs.d)",
    ),
    ("--backend-ca", "DOCKYARD_BACKEND_CA", "CA bundle for HTTPS backends (the system's)"),
    ("--trusted-proxies", "DOCKYARD_TRUSTED_PROXIES", "CIDRs whose X-Forwarded-* are believed"),
    ("--acme-email", "DOCKYARD_ACME_EMAIL", "contact address; turns on ACME certificates"),
    ("--acme-directory", "DOCKYARD_ACME_DIRECTORY", "ACME directory URL or 'staging'"),
    ("--acme-store", "DOCKYARD_ACME_STORE", "the JSON certificate store ($STATE_DIR/acme.json)"),
    ("--acme-key-type", "DOCKYARD_ACME_KEY_TYPE", "ec256, ec384, rsa2048 or rsa4096 (ec256)"),
    ("--acme-profile", "DOCKYARD_ACME_PROFILE", "ACME profile, e.g. tlsserver (CA default)"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockyard", description="Docker labels in, a live nginx reverse proxy out."
    )
    parser.add_argument("--version", action="version", version=f"dockyard {__version__}")
    for flag, variable, text in _FLAGS:
        parser.add_argument(flag, dest=variable, metavar="VALUE", help=f"{text}; ${variable}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daemon in the foreground (supervises nginx)")
    commands.add_parser("render", help="print the nginx config for the containers running now")
    commands.add_parser(
        "health",
        help="exit 0 when the running daemon is healthy (nginx answers, the Docker engine "
        "answered within the last minute), else 1: for the image's HEALTHCHECK",
    )
    importing = commands.add_parser(
        "import-traefik",
        help="import certificates and the ACME account of a Traefik v1 acme.json into the "
        "store (while the daemon is stopped)",
    )
    importing.add_argument("source", metavar="ACME_JSON", type=Path, help="Traefik's acme.json")
    importing.add_argument(
        "--directory",
        dest="DOCKYARD_ACME_DIRECTORY",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="ACME directory URL of the CA Traefik used (its caServer); $DOCKYARD_ACME_DIRECTORY",
    )
    checking = commands.add_parser(
        "check",
        help="print the routes and problems of compose files and route files, without Docker "
        "(exit 1 on errors, 2 when a file cannot be read)",
    )
    # optional so that route files can be checked alone; main() refuses an empty check
    checking.add_argument("files", metavar="COMPOSE_FILE", type=Path, nargs="*")
    checking.add_argument(
        "--routes",
        metavar="PATH",
        type=Path,
        action="append",
        default=[],
        help="a route file, or a directory of them as DOCKYARD_ROUTES_DIR (repeatable)",
    )
    checking.add_argument("--format", choices=("text", "json"), default="text")
    checking.add_argument("-p", "--project-name", metavar="NAME", help="as docker compose -p")
    checking.add_argument(
        "--label-prefix", dest="DOCKYARD_LABEL_PREFIX", metavar="VALUE", default=argparse.SUPPRESS
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load settings, run the command; return the exit code."""
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    env.update({k: v for k, v in vars(args).items() if k.startswith("DOCKYARD_") and v})
    wanted_format = env.get("DOCKYARD_LOG_FORMAT", "json")
    configure_logging("console" if wanted_format == "console" else "json")
    refuse_deprecated_certificates()
    try:
        settings = load_settings(env)
    except SettingsError as err:
        log.error(
            "settings_invalid",
            variable=err.variable,
            value=err.value,
            allowed=err.allowed,
        )
        return 2
    return _command(args, settings)


def _command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command with valid settings."""
    if args.command == "health":
        return health(settings)
    if args.command == "render":
        configure_logging(settings.log_format, stream=sys.stderr)
        return render(settings)
    if args.command == "import-traefik":
        configure_logging(settings.log_format)
        return import_traefik(settings, args.source)
    if args.command == "check":
        return check(args, settings)
    from daemon.running import run  # noqa: PLC0415 - keeps `render` and `--version` light

    return run(settings)


def check(args: argparse.Namespace, settings: Settings) -> int:
    """``dockyard check``: compose files and route files, without Docker."""
    from daemon import compose_check  # noqa: PLC0415 - loads yaml: only here

    if not args.files and not args.routes:
        sys.stderr.write(
            "dockyard check: nothing to check: give compose files, --routes PATH, or both\n"
        )
        return 2
    return compose_check.run_check(
        args.files,
        os.environ,
        settings,
        routes=args.routes,
        output=args.format,
        project_name=args.project_name,
    )


def health(settings: Settings) -> int:
    """One line on stdout, ``healthy`` or ``unhealthy: <reason>``; exit code 0 or 1."""
    from daemon.health import read_record, verdict  # noqa: PLC0415 - keeps the others light
    from daemon.nginx import query_generation  # noqa: PLC0415

    record = read_record(settings.state_dir)
    answers = record is not None and (
        query_generation(Path(record.control_socket), timeout=2.0) is not None
    )
    reason = verdict(record, time.time(), nginx_answers=answers)
    sys.stdout.write("healthy\n" if reason is None else f"unhealthy: {reason}\n")
    return 0 if reason is None else 1


def render(settings: Settings) -> int:
    """Print the config for the running containers to stdout; problems go to stderr."""
    from daemon.running import builtin_templates, detect_facts  # noqa: PLC0415
    from daemon.sources import DockerSource  # noqa: PLC0415 - `check` never loads docker
    from daemon.watched import FileSource  # noqa: PLC0415

    try:
        snapshot = DockerSource(settings).snapshot()
    except EngineUnavailableError as err:
        log.error("docker_unavailable", error=str(err))
        return 1
    files = FileSource(settings, builtin_templates(), schedule=lambda _: None).snapshot()
    result = build_routes(snapshot.containers, snapshot.context, files=files.routes)
    for problem in result.problems:
        subject = {"container": problem.container} if problem.container else {}
        log.warning(problem.event, **subject, **dict(problem.fields))
    assert files.templates is not None  # a FileSource always reads the template set
    env = environment_for(files.templates)
    sys.stdout.write(render_config(result.table, settings, detect_facts(settings), env))
    return 0


def import_traefik(settings: Settings, source: Path) -> int:
    """Merge a Traefik v1 ``acme.json`` into the store; 1 when refused (nothing written)."""
    from acme_store import importing  # noqa: PLC0415 - loads cryptography: only here

    where = {"source": str(source), "store": str(settings.store_path)}
    try:
        report = importing.import_traefik(
            source, JsonStore(settings.store_path), settings.acme_directory
        )
    except StoreLockedError:
        reason = "the store is locked by a running dockyard; stop it, import, then start it"
        log.error("traefik_import_refused", **where, reason=reason)
        return 1
    except (importing.ImportRefusedError, StoreUnreadableError) as err:
        log.error("traefik_import_refused", **where, reason=err.reason)
        return 1
    except OSError as err:
        log.error("traefik_import_refused", **where, reason=str(err))
        return 1
    directory = report.directory
    if report.account == "skipped":
        log.warning("traefik_account_skipped", directory=directory, reason=report.account_reason)
    elif report.account != "absent":
        account = report.data.account_for(directory)
        uri = account.uri if account is not None else None
        event = "traefik_account_imported"
        if report.account == "unchanged":
            event = "traefik_account_unchanged"
        log.info(event, directory=directory, uri=uri)
    for record in report.imported:
        log.info(
            "traefik_certificate_imported",
            host=record.main,
            names=list(record.names),
            not_after=time_text(record.not_after),
        )
    for kept in report.kept:
        log.info(
            "traefik_certificate_kept",
            host=kept.host,
            stored_not_after=time_text(kept.stored_not_after),
            imported_not_after=time_text(kept.imported_not_after),
            reason="the store's certificate is as new or newer",
        )
    for skipped in report.skipped:
        log.warning("traefik_certificate_skipped", domain=skipped.domain, reason=skipped.reason)
    log.info(
        "traefik_import_finished",
        **where,
        directory=directory,
        imported=len(report.imported),
        kept=len(report.kept),
        skipped=len(report.skipped),
        written=report.changed,
    )
    return 0
