"""Reconcile: one pass from "something changed" to "nginx serves the new routes".

Called by the loop in ``running`` whenever the trigger fires. A pass re-reads the whole
state (level-triggered), builds the routing table, renders it, and hands it to nginx
only when the bytes differ from what is live. When nginx rejects the candidate, the
containers responsible are found by testing configs without them (``find_culprits``),
and the config is applied without them: one bad container never blocks the others,
and the last good config keeps serving until a good one exists.

Route files and your own templates take the same path. A route file nginx rejects is a
suspect like a container. Templates are tried as a set: when a changed set fails to
render, or renders a config nginx rejects that the last good set (at first: the shipped
one) renders fine, the templates are at fault; the pass goes on with the last good set
and ``template_invalid`` names the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import jinja2
import structlog

from daemon.errors import ConfigRejectedError, EngineUnavailableError
from daemon.nginx import NginxControl
from daemon.rendering import (
    RenderFacts,
    TemplateSet,
    auth_files,
    config_generation,
    environment_for,
    place_in_templates,
    render_config,
    template_error_place,
)
from daemon.routing import FILE_UNIT, Problem, RoutingResult, build_routes
from daemon.settings import Settings
from daemon.sources import ContainerSource, Snapshot
from daemon.tls import CertFiles, TlsState, acme_hosts, own_in_use
from daemon.watched import FilesSnapshot

log = structlog.get_logger("daemon.reconcile")


class CertificateSource(Protocol):
    """What reconcile needs from the certificate edge (``certificates.CertificateKeeper``)."""

    def want(self, hosts: frozenset[str]) -> None:
        """Tell it which hosts want a CA certificate now."""
        ...

    def state(self) -> TlsState:
        """The certificate files ready to serve."""
        ...


class FileSourceLike(Protocol):
    """What reconcile needs from the watched files (``watched.FileSource``)."""

    def snapshot(self) -> FilesSnapshot:
        """The settled route files, certificate pairs and templates."""
        ...


def find_culprits(
    suspects: Sequence[str], passes: Callable[[frozenset[str]], bool]
) -> frozenset[str] | None:
    """Find ids whose exclusion makes ``passes`` true, in O(k log n) tests for k culprits.

    ``passes(excluded)`` says whether the config without ``excluded`` is accepted. The
    result is None when even excluding every suspect fails (the fault is not theirs).
    """
    if not passes(frozenset(suspects)):
        return None

    def search(group: Sequence[str], base: frozenset[str]) -> frozenset[str]:
        # Known: passes(base | group). Find the part of group that must stay excluded.
        if passes(base):
            return frozenset()
        if len(group) == 1:
            return frozenset(group)
        middle = len(group) // 2
        left, right = group[:middle], group[middle:]
        found_left = search(left, base | frozenset(right))
        return found_left | search(right, base | found_left)

    return search(list(suspects), frozenset())


@dataclass(slots=True)
class _Memory:
    """What the reconciler remembers between passes."""

    keys: frozenset[tuple[str, str]] = frozenset()
    reported: frozenset[tuple[str, ...]] = frozenset()
    # Containers and route files nginx rejected, by (unit, fingerprint): tried excluded
    # first next time.
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)
    # The template set of the live config, and the fingerprint of a set found broken
    good_templates: TemplateSet | None = None
    bad_templates: str | None = None


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A render (and, unless already live, ``nginx -t``) of one routing result."""

    text: str | None
    error: str | None = None
    # the exception of a failed render, for finding the template line
    exception: Exception | None = None


class Reconciler:
    """Runs passes; holds no state that cannot be rebuilt by re-reading everything."""

    def __init__(
        self,
        settings: Settings,
        source: ContainerSource,
        nginx: NginxControl,
        env: jinja2.Environment,
        facts: RenderFacts,
        *,
        certificates: CertificateSource | None = None,
        files: FileSourceLike | None = None,
    ) -> None:
        self._settings = settings
        self._source = source
        self._nginx = nginx
        # used when there is no file source (then templates never change)
        self._env = env
        self._facts = facts
        self._certificates = certificates
        self._files = files
        self._tls: TlsState | None = None
        self._memory = _Memory()
        self._names: dict[str, str] = {}
        self._last_snapshot: Snapshot | None = None

    def reconcile(self) -> bool:
        """One full pass; True when nginx got a new config. Raises if the engine is away.

        With the engine away, the watched files still apply: the pass runs over the
        containers the last good snapshot saw (what nginx serves anyway), then raises so
        the loop keeps retrying the engine. Before any snapshot, nothing runs: the last
        good config of the previous run keeps serving.
        """
        try:
            snapshot = self._source.snapshot()
        except EngineUnavailableError:
            if self._files is None or self._last_snapshot is None:
                raise
            self._pass(self._last_snapshot)
            raise
        self._last_snapshot = snapshot
        return self._pass(snapshot)

    def _pass(self, snapshot: Snapshot) -> bool:
        files = self._files.snapshot() if self._files is not None else FilesSnapshot()
        containers = snapshot.containers
        self._names = {c.id: c.name for c in containers}
        fingerprints = {c.id: c.labels_fingerprint() for c in containers}
        stamps = dict(files.route_stamps)
        fingerprints |= {
            FILE_UNIT + f.name: f"{f.digest}@{stamps.get(f.name)}" for f in files.routes
        }

        def build(exclude: frozenset[str]) -> RoutingResult:
            return build_routes(containers, snapshot.context, exclude, files.routes)

        remembered = frozenset(
            unit for unit, print_ in fingerprints.items() if (unit, print_) in self._memory.rejected
        )
        result = build(remembered)
        self._report(result.problems, fingerprints)
        self._update_tls(result, files)
        templates = self._templates(files.templates)
        attempt = self._attempt(result, templates)
        if attempt.error is None:
            assert attempt.text is not None
            text = attempt.text
            if remembered:
                log.debug("rejected_units_still_excluded", count=len(remembered))
        else:
            found = self._recover(fingerprints, build, result, templates, attempt)
            if found is None:
                return False
            text, result, templates = found

        self._templates_good(templates)
        if self._is_live(text):
            self._memory.keys = result.table.keys
            return False
        seconds = self._nginx.apply(text)
        keys = result.table.keys
        log.info(
            "routes_applied",
            added=len(keys - self._memory.keys),
            removed=len(self._memory.keys - keys),
            total=len(keys),
            containers=len(containers),
            route_files=len(files.routes),
            reload_seconds=round(seconds, 4),
        )
        self._memory.keys = keys
        return True

    def _update_tls(self, result: RoutingResult, files: FilesSnapshot) -> None:
        own = files.certificates
        if self._certificates is not None:
            self._certificates.want(acme_hosts(result.table, self._settings, own))
            self._tls = self._certificates.state()
        elif own:
            self._tls = TlsState()
        if self._tls is not None:
            where = self._facts.paths.own_certificates
            pairs = tuple((c, CertFiles(where / f"{c.digest}.pem", c.digest)) for c in own)
            self._tls = dataclasses.replace(self._tls, own=pairs)

    def _is_live(self, text: str) -> bool:
        return config_generation(text) == self._nginx.serving()

    # -- templates -------------------------------------------------------------------

    def _templates(self, current: TemplateSet | None) -> TemplateSet | None:
        """The set to render with: the files' set, unless that exact set failed before."""
        good = self._memory.good_templates
        if current is None or good is None:
            return current
        if current.fingerprint == self._memory.bad_templates:
            return good
        # the files changed since the failure: a set that fails again is reported again
        self._memory.bad_templates = None
        return current

    def _templates_good(self, templates: TemplateSet | None) -> None:
        good = self._memory.good_templates
        if templates is None or (good is not None and good.fingerprint == templates.fingerprint):
            return
        if good is not None:
            log.info("templates_applied", changed=list(templates.changed_from(good)))
        self._memory.good_templates = templates

    def _recover(
        self,
        fingerprints: Mapping[str, str],
        build: Callable[[frozenset[str]], RoutingResult],
        result: RoutingResult,
        templates: TemplateSet | None,
        failed: _Attempt,
    ) -> tuple[str, RoutingResult, TemplateSet | None] | None:
        """Find what made the candidate fail: changed templates, containers, route files.

        With templates that differ from the last good set, the culprits are searched with
        the good set, whose failures can only be the units'. The changed set is then
        tried on what is left: if it fails there, the templates are at fault as well, and
        the pass goes on with the good set. A broken template never makes healthy
        containers look guilty, and never becomes the good set.
        """
        fallback = self._fallback(templates)
        if fallback is None:
            text, result = self._without_culprits(fingerprints, build, result, templates)
            return None if text is None else (text, result, templates)
        good = self._attempt(result, fallback)
        if good.error is None:
            assert good.text is not None
            self._blame(templates, fallback, failed)
            return good.text, result, fallback
        text, result = self._without_culprits(fingerprints, build, result, fallback)
        if text is None:
            return None
        retry = self._attempt(result, templates)
        if retry.error is None:
            assert retry.text is not None
            return retry.text, result, templates
        self._blame(templates, fallback, retry)
        # nginx must have tested what it applies last: test the good set's text again
        again = self._attempt(result, fallback)
        if again.error is not None or again.text is None:
            raise ConfigRejectedError(again.error or "")
        return again.text, result, fallback

    def _fallback(self, templates: TemplateSet | None) -> TemplateSet | None:
        """The set to fall back to when ``templates`` fail, if it differs from them."""
        if templates is None:
            return None
        fallback = self._memory.good_templates or templates.shipped_only()
        return None if fallback.fingerprint == templates.fingerprint else fallback

    def _blame(
        self, templates: TemplateSet | None, fallback: TemplateSet, failed: _Attempt
    ) -> None:
        """Log ``template_invalid`` once for this set, with the file and line if found."""
        assert templates is not None
        changed = templates.changed_from(fallback)
        place = None
        if failed.exception is not None:
            place = template_error_place(failed.exception)
        elif failed.text is not None and failed.error is not None:
            place = place_in_templates(failed.error, failed.text, templates, changed)
        fields: dict[str, object] = {"changed": list(changed)}
        if place is not None:
            fields["template"], line = place
            if line is not None:
                fields["line"] = line
        log.error(
            "template_invalid",
            **fields,
            error=failed.error,
            action="kept the last good templates"
            if self._memory.good_templates is not None
            else "using the shipped templates",
        )
        self._memory.bad_templates = templates.fingerprint

    # -- rendering and testing -------------------------------------------------------

    def _attempt(self, result: RoutingResult, templates: TemplateSet | None) -> _Attempt:
        try:
            text = self._render(result, templates)
        except (jinja2.TemplateError, ValueError) as err:
            return _Attempt(None, f"template: {err}", err)
        if self._is_live(text):
            return _Attempt(text)
        try:
            self._nginx.test(text)
        except ConfigRejectedError as err:
            return _Attempt(text, err.message)
        return _Attempt(text)

    def _render(self, result: RoutingResult, templates: TemplateSet | None) -> str:
        env = self._env if templates is None else environment_for(templates)
        text = render_config(result.table, self._settings, self._facts, env, self._tls)
        self._nginx.provide(auth_files(result.table))
        if self._tls is not None and self._tls.own:
            used = own_in_use(result.table, self._settings, (c for c, _ in self._tls.own))
            self._nginx.provide_certificates({f"{c.digest}.pem": c.pem for c in used})
        return text

    def _without_culprits(
        self,
        fingerprints: Mapping[str, str],
        build: Callable[[frozenset[str]], RoutingResult],
        first: RoutingResult,
        templates: TemplateSet | None,
    ) -> tuple[str | None, RoutingResult]:
        """Find the containers and route files nginx chokes on; the config without them."""
        suspects = sorted(set(fingerprints) - first.skipped)
        errors: dict[frozenset[str], str] = {}

        def passes(excluded: frozenset[str]) -> bool:
            attempt = self._attempt(build(excluded), templates)
            if attempt.error is not None:
                errors[excluded] = attempt.error
                return False
            return True

        culprits = find_culprits(suspects, passes)
        if culprits is None:
            log.error(
                "config_invalid",
                reason="nginx rejects the config even without any container or route file; "
                "keeping the last good config",
                error=errors.get(frozenset(suspects), ""),
            )
            return None, first
        message = next(iter(errors.values()), "")
        for unit in sorted(culprits):
            key = (unit, fingerprints[unit])
            if key not in self._memory.rejected:
                self._log_rejected(unit, message)
            self._memory.rejected[key] = message
        live = set(fingerprints.items())
        self._memory.rejected = {k: v for k, v in self._memory.rejected.items() if k in live}
        result = build(culprits)
        attempt = self._attempt(result, templates)
        if attempt.error is not None or attempt.text is None:
            raise ConfigRejectedError(attempt.error or "")
        return attempt.text, result

    def _log_rejected(self, unit: str, message: str) -> None:
        if unit.startswith(FILE_UNIT):
            log.error(
                "routes_file_invalid",
                file=unit.removeprefix(FILE_UNIT),
                reason="nginx rejects the config this file's routes produce",
                error=message,
                action="file skipped",
            )
            return
        log.error(
            "container_rejected",
            container=self._names.get(unit, unit),
            container_id=unit[:12],
            reason="nginx rejects the config this container's labels produce",
            error=message,
        )

    def _report(self, problems: Sequence[Problem], fingerprints: Mapping[str, str]) -> None:
        """Log each problem once per container labels or file version (again on a change)."""
        current = set()
        for problem in problems:
            fields = dict(problem.fields)
            unit = problem.container_id or FILE_UNIT + fields.get("file", "")
            key = (
                problem.event,
                problem.container_id,
                fingerprints.get(unit, ""),
                *(v for _, v in problem.fields),
            )
            current.add(key)
            if key in self._memory.reported:
                continue
            subject: dict[str, object] = {}
            if problem.container:
                subject["container"] = problem.container
            if problem.container_id:
                subject["container_id"] = problem.container_id[:12]
            if fields.get("line", "").isdigit():
                subject["line"] = int(fields.pop("line"))  # a number, as in template_invalid
            log.log(
                {"info": 20, "warning": 30, "error": 40}.get(problem.level, 30),
                problem.event,
                **subject,
                **fields,
            )
        self._memory.reported = frozenset(current)
