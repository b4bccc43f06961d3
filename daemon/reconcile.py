"""Reconcile: one pass from "something changed" to "nginx serves the new routes".

Called by the loop in ``running`` whenever the trigger fires. A pass re-reads the whole
state (level-triggered), builds the routing table, renders it, and hands it to nginx
only when the bytes differ from what is live. When nginx rejects the candidate, the
containers responsible are found by testing configs without them (``find_culprits``),
and the config is applied without them: one bad container never blocks the others,
and the last good config keeps serving until a good one exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import jinja2
import structlog

from daemon.errors import ConfigRejectedError
from daemon.nginx import NginxControl
from daemon.rendering import RenderFacts, auth_files, config_generation, render_config
from daemon.routing import ContainerInfo, Problem, RoutingResult, build_routes
from daemon.settings import Settings
from daemon.sources import ContainerSource
from daemon.tls import TlsState, acme_hosts

log = structlog.get_logger("daemon.reconcile")


class CertificateSource(Protocol):
    """What reconcile needs from the certificate edge (``certificates.CertificateKeeper``)."""

    def want(self, hosts: frozenset[str]) -> None:
        """Tell it which hosts want a CA certificate now."""
        ...

    def state(self) -> TlsState:
        """The certificate files ready to serve."""
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
    # Containers nginx rejected, by (id, labels fingerprint): tried excluded first next time.
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)


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
    ) -> None:
        self._settings = settings
        self._source = source
        self._nginx = nginx
        self._env = env
        self._facts = facts
        self._certificates = certificates
        self._tls: TlsState | None = None
        self._memory = _Memory()

    def reconcile(self) -> bool:
        """One full pass; True when nginx got a new config. Raises if the engine is away."""
        snapshot = self._source.snapshot()
        containers = snapshot.containers
        routing = snapshot.context

        def build(exclude: frozenset[str]) -> RoutingResult:
            return build_routes(containers, routing, exclude)

        remembered = frozenset(
            c.id for c in containers if (c.id, c.labels_fingerprint()) in self._memory.rejected
        )
        result = build(remembered)
        self._report(result.problems, containers)
        if self._certificates is not None:
            self._certificates.want(acme_hosts(result.table, self._settings))
            self._tls = self._certificates.state()
        text = self._try_render(result)
        # Most passes change nothing (a health check passed again, a replica's twin
        # restarted): a config nginx already serves needs no `nginx -t`, which grows with
        # the config.
        if text is None or (not self._is_live(text) and not self._accepts(text)):
            text, result = self._without_culprits(containers, build, result)
            if text is None:
                return False
        elif remembered:
            log.debug("rejected_containers_still_excluded", count=len(remembered))

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
            reload_seconds=round(seconds, 4),
        )
        self._memory.keys = keys
        return True

    def _is_live(self, text: str) -> bool:
        return config_generation(text) == self._nginx.serving()

    def _try_render(self, result: RoutingResult) -> str | None:
        try:
            return self._render(result)
        except (jinja2.TemplateError, ValueError) as err:
            log.error("render_failed", error=str(err))
            return None

    def _render(self, result: RoutingResult) -> str:
        text = render_config(result.table, self._settings, self._facts, self._env, self._tls)
        self._nginx.provide(auth_files(result.table))
        return text

    def _accepts(self, text: str) -> bool:
        try:
            self._nginx.test(text)
        except ConfigRejectedError as err:
            log.warning("config_rejected", error=err.message)
            return False
        return True

    def _without_culprits(
        self,
        containers: Sequence[ContainerInfo],
        build: Callable[[frozenset[str]], RoutingResult],
        first: RoutingResult,
    ) -> tuple[str | None, RoutingResult]:
        """Find the containers nginx chokes on and return the config without them."""
        suspects = sorted({c.id for c in containers} - first.skipped)
        errors: dict[frozenset[str], str] = {}

        def passes(excluded: frozenset[str]) -> bool:
            result = build(excluded)
            try:
                text = self._render(result)
                self._nginx.test(text)
            except (jinja2.TemplateError, ValueError) as err:
                errors[excluded] = f"template: {err}"
                return False
            except ConfigRejectedError as err:
                errors[excluded] = err.message
                return False
            return True

        culprits = find_culprits(suspects, passes)
        if culprits is None:
            log.error(
                "config_invalid",
                reason="nginx rejects the config even without any container; "
                "keeping the last good config",
                error=errors.get(frozenset(suspects), ""),
            )
            return None, first
        by_id = {c.id: c for c in containers}
        message = next(iter(errors.values()), "")
        for container_id in sorted(culprits):
            container = by_id[container_id]
            key = (container.id, container.labels_fingerprint())
            if key not in self._memory.rejected:
                log.error(
                    "container_rejected",
                    container=container.name,
                    container_id=container.id[:12],
                    reason="nginx rejects the config this container's labels produce",
                    error=message,
                )
            self._memory.rejected[key] = message
        live_ids = {(c.id, c.labels_fingerprint()) for c in containers}
        self._memory.rejected = {k: v for k, v in self._memory.rejected.items() if k in live_ids}
        result = build(culprits)
        text = self._render(result)
        self._nginx.test(text)
        return text, result

    def _report(self, problems: Sequence[Problem], containers: Sequence[ContainerInfo]) -> None:
        """Log each problem once per container labels (repeated only when labels change)."""
        fingerprints = {c.id: c.labels_fingerprint() for c in containers}
        current = set()
        for problem in problems:
            key = (
                problem.event,
                problem.container_id,
                fingerprints.get(problem.container_id, ""),
                *(v for _, v in problem.fields),
            )
            current.add(key)
            if key in self._memory.reported:
                continue
            log.log(
                {"info": 20, "warning": 30, "error": 40}.get(problem.level, 30),
                problem.event,
                container=problem.container,
                container_id=problem.container_id[:12],
                **dict(problem.fields),
            )
        self._memory.reported = frozenset(current)
