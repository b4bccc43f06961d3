# dockyard: the daemon and the nginx it supervises, in one image. See docs/docker-image.md.
#
#   docker build -t dockyard .
#   docker run -d --name dockyard -p 80:80 -p 443:443 \
#       -v /var/run/docker.sock:/var/run/docker.sock:ro -v dockyard-data:/data dockyard
#
# Written for the classic builder as well as BuildKit: no RUN --mount, no heredocs.

# Any Debian-based image with (or able to apt-get) Python >= 3.11, e.g. debian:bookworm-slim.
# Whatever the base lacks of nginx, tini, ca-certificates and the venv module is installed
# from Debian; a base that has them all builds without network access to Debian.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS system
# Debian's nginx rather than nginx-light: on bookworm nginx-light is nginx plus the echo
# module (which dockyard does not use), and trixie no longer has it. The policy-rc.d stub
# keeps the package scripts from starting nginx inside the build (Debian's own images ship
# one; debootstrap'ed or custom bases may not).
RUN set -eu; \
    packages=""; \
    command -v nginx >/dev/null || packages="$packages nginx"; \
    command -v tini >/dev/null || packages="$packages tini"; \
    [ -s /etc/ssl/certs/ca-certificates.crt ] || packages="$packages ca-certificates"; \
    python3 -c 'import ensurepip, venv' 2>/dev/null || packages="$packages python3 python3-venv"; \
    if [ -n "$packages" ]; then \
        stub=""; \
        if [ ! -e /usr/sbin/policy-rc.d ]; then \
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
            chmod 0755 /usr/sbin/policy-rc.d; \
            stub=yes; \
        fi; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
        if [ -n "$stub" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
    fi; \
    python3 -c 'import sys; assert sys.version_info >= (3, 11), "dockyard needs Python >= 3.11"'

# The venv is built in its own stage, so the source tree and anything a build was pointed at
# (wheels in the build context) never reach the final image; only /opt/dockyard does.
FROM system AS install
# pip reads PIP_* variables: pass e.g. PIP_INDEX_URL for a mirror, or PIP_NO_INDEX=1 with
# PIP_FIND_LINKS=/src/build/wheels for wheels prepared in the build context (offline builds).
# Declared without defaults, so they are set only when passed.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY . /src
RUN python3 -m venv /opt/dockyard \
    && /opt/dockyard/bin/pip install --no-cache-dir --disable-pip-version-check /src

FROM system
COPY --from=install /opt/dockyard /opt/dockyard
# Unbuffered: `docker logs` shows each JSON line when it happens, not a block later.
ENV PATH=/opt/dockyard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DOCKYARD_STATE_DIR=/data
# The generated nginx config, the ACME store and certificates, routes.d/ and certs.d/.
VOLUME ["/data"]
EXPOSE 80 443
# Runs as root on purpose (binding 80/443, reading a Docker socket whose group differs from
# host to host); nginx's workers drop to nobody. Reasons and alternatives: docs/docker-image.md.
USER root
# The daemon exits 0 within 10 s of SIGTERM (nginx quits gracefully first): `docker stop`'s
# default timeout.
STOPSIGNAL SIGTERM
# Healthy: the daemon wrote its health file recently and nginx answers on its control socket.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["dockyard", "health"]
# tini is PID 1: it forwards signals to the daemon and reaps every orphan in the container
# (e.g. processes left by `docker exec`); the daemon reaps nginx's own.
ENTRYPOINT ["tini", "--", "dockyard"]
CMD ["run"]
LABEL org.opencontainers.image.title="dockyard" \
      org.opencontainers.image.description="Docker labels in, a live nginx reverse proxy with automatic HTTPS out" \
      org.opencontainers.image.licenses="MIT"
